"""load_module for the model kernel (today's design: the kernel links the raw file).

The steps of kernel/module/main.c, each with its errno: signature check, ELF checks
(:mod:`lkm.module.validate`), vermagic, name already loaded, layout (:mod:`lkm.link.layout`),
memory (module_alloc), symbol resolution and relocation (:mod:`lkm.link`), duplicate exports,
parameters, references to the modules it uses, the init routine, freeing init memory.
Runs inside the caller's transaction: any exception leaves the state as it was, except a failed
init routine (:class:`InitFailed`), after which the state holds what the init left.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import zlib
from typing import TYPE_CHECKING, cast

from lkm.errors import InvalidModule
from lkm.kernel.executor import LoadedImage
from lkm.kernel.interface import (
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    TAINT_ORDER,
    KernelError,
    kernel_error,
)
from lkm.kernel.state import DbSymbols, addr
from lkm.symbols.table import SymbolTable

if TYPE_CHECKING:
    from lkm.kernel.model import ModelKernel
    from lkm.module.file import ModuleFile

SIG_MAGIC = b"~Module signature appended~\n"
# Integer parameter types and their ranges (kernel/params.c STANDARD_PARAM_DEF).
INT_TYPES = {
    "byte": (0, 0xFF),
    "short": (-(1 << 15), (1 << 15) - 1),
    "ushort": (0, 0xFFFF),
    "int": (-(1 << 31), (1 << 31) - 1),
    "uint": (0, 0xFFFFFFFF),
    "long": (-(1 << 63), (1 << 63) - 1),
    "ulong": (0, (1 << 64) - 1),
    "ullong": (0, (1 << 64) - 1),
    "hexint": (0, 0xFFFFFFFF),
}
BOOL_WORDS = {"y", "Y", "1", "n", "N", "0", "on", "off", "true", "false", ""}


def split_args(args: str) -> list[tuple[str, str | None]]:
    """kernel/params.c parse_args/next_arg: whitespace-separated, double quotes group, the first
    '=' splits name and value, quotes around the value stripped, "--" ends the list."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(args)
    while i < n:
        while i < n and args[i].isspace():
            i += 1
        if i >= n:
            break
        start, quoted = i, False
        while i < n and (quoted or not args[i].isspace()):
            if args[i] == '"':
                quoted = not quoted
            i += 1
        word = args[start:i]
        if word == "--":
            break
        name, eq, value = word.partition("=")
        name = name.replace('"', "")
        if eq and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        elif eq:
            value = value.replace('"', "")
        out.append((name, value if eq else None))
    return out


def _check_param(mod: ModuleFile, ptype: str, name: str, value: str | None) -> None:
    base = ptype.removeprefix("array of ")
    values = (value or "").split(",") if ptype.startswith("array of ") else [value or ""]
    for v in values:
        rng = INT_TYPES.get(base)
        ok = True
        if rng is not None:
            try:
                ok = rng[0] <= int(v, 0) <= rng[1]
            except ValueError:
                ok = False
        elif base in ("bool", "invbool"):
            ok = value is None or v in BOOL_WORDS
        if not ok:
            raise KernelError(
                "init_module", errno.EINVAL, f"{mod.name}: '{value}' invalid for parameter `{name}'"
            )


def parse_params(mod: ModuleFile, args: str, warnings: list[str]) -> dict[str, str]:
    """The values given, by parameter (names with '-' as '_'); unknown ones warned and ignored."""
    declared = {p.name: p.type or "" for p in mod.parameters}
    given: dict[str, str] = {}
    for name, value in split_args(args):
        key = name.replace("-", "_")
        if key not in declared:
            warnings.append(f"{mod.name}: unknown parameter '{name}' ignored")
            continue
        _check_param(mod, declared[key], key, value)
        given[key] = "" if value is None else value
    return given


def strip_signature(data: bytes) -> tuple[bytes, bool]:
    """module_sig_check without keys: the appended signature is removed (its trailer checked
    by :mod:`lkm.module.signature` when the file is read), reported as present or not."""
    if data.endswith(SIG_MAGIC):
        from lkm.module.signature import module_size

        try:
            return data[: module_size(data)], True
        except InvalidModule as exc:
            raise KernelError("init_module", exc.errno, exc.reason) from None
    return data, False


def module_sig_check(kernel: ModelKernel, call: str, data: bytes, flags: int) -> tuple[bytes, bool]:
    """kernel/module/signing.c module_sig_check (:mod:`lkm.trust.sig`): the module without its
    signature, and whether it gets taint E; refused loads raise the kernel's errno.  The policy is
    the model's: ``sig`` (CONFIG_MODULE_SIG), ``sig_enforce``, ``lockdown`` and the trusted keys
    (``trusted_keys``: the builtin certificate list; absent: not known, signers not checked)."""
    from lkm.trust.sig import check_for_load

    meta = kernel.meta
    keys = meta.get("trusted_keys")
    ring = None
    if keys is not None:
        from lkm.trust.keys import load_certificate_list

        ring = load_certificate_list(bytes.fromhex(keys), kernel=meta.get("kernel", "6.1"))[0]
    mangled = bool(flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC))
    decision = check_for_load(
        data, ring, "", kernel=meta.get("kernel", "6.1"), enforce=meta.get("sig_enforce", "0") == "1",
        lockdown=meta.get("lockdown", "none") != "none", module_sig=meta.get("sig", "1") == "1",
        mangled=mangled,
    )  # fmt: skip
    if decision.errno:
        why = (
            "; ".join(m for m in decision.messages if m) or decision.result.detail or "signature check failed"
        )
        raise KernelError(call, decision.errno, why)
    if decision.result.errno == 0 and decision.result.signed_size < len(data):
        return data[: decision.result.signed_size], decision.taint
    try:  # unsigned, or a signature the kernel looked past (not enforcing, or mangled)
        raw, _signed = strip_signature(data)
    except KernelError:
        raw = data
    return raw, decision.taint


def _taint_once(db: sqlite3.Connection, bit: int) -> bool:
    """Set a global taint bit; True if it was not set before."""
    row = db.execute("SELECT value FROM meta WHERE key='tainted'").fetchone()
    value = int(row[0]) if row else 0
    db.execute("INSERT OR REPLACE INTO meta VALUES ('tainted', ?)", (str(value | bit),))
    return not value & bit


class InitFailed(Exception):
    """The init routine failed after the module was freed: the caller commits, then raises ``error``."""

    def __init__(self, error: KernelError) -> None:
        super().__init__(str(error))
        self.error = error


def load_module(
    kernel: ModelKernel,
    db: sqlite3.Connection,
    call: str,
    data: bytes,
    params: str,
    flags: int,
    path: str | None,
) -> list[str]:
    """Load one module into the model; returns the kernel's warnings (printk lines)."""
    from lkm.link import link
    from lkm.link.kallsyms import format_module_kallsyms, module_kallsyms
    from lkm.link.layout import KernelConfig, layout_module
    from lkm.link.resolve import check_vermagic, kernel_resolver
    from lkm.module.file import ModuleFile
    from lkm.module.validate import check_module

    meta = kernel.meta
    warnings: list[str] = []
    taints = ""
    try:
        raw, sig_taint = module_sig_check(kernel, call, data, flags)
        mod = ModuleFile.from_bytes(raw, path=path)
        if sig_taint:
            taints += "E"
            if _taint_once(db, 1 << 13):  # pr_notice_once: the first unverified module of the boot
                warnings.append(
                    f"{mod.name}: module verification failed: signature and/or required key missing "
                    "- tainting kernel"
                )
        arch = meta["arch"]
        smsize = int(meta["struct_module_size"]) if "struct_module_size" in meta else None
        check_module(mod.elf, kernel=meta.get("kernel", "6.1"), arch=arch, struct_module_size=smsize)
        check_vermagic(mod, meta["vermagic"], force=bool(flags & MODULE_INIT_IGNORE_VERMAGIC))
    except InvalidModule as exc:
        raise kernel_error(call, exc) from None
    name = mod.name
    if not mod.versions:
        taints += "F" if "F" not in taints else ""
    license_ = mod.license or ""
    if not license_ or license_ == "Proprietary":
        taints = "P" + taints
    if mod.get("intree") != "Y":
        taints += "O"
    existing = kernel._find(db, name)
    if existing is not None and existing[4] in ("Loading", "Unformed"):
        # add_unformed_module waits for that load to finish; in this process it is a caller
        # of this one (modprobe run by its init's request_module), so it never will.
        from lkm.kernel.kmod import KmodDeadlock

        raise KmodDeadlock(
            f"{call} of {name} waits for {name} to finish loading, whose init waits in "
            f"request_module for this modprobe: the kernel hangs here"
        )
    if existing is not None:
        raise KernelError(
            call, errno.EEXIST if existing[4] == "Live" else errno.EBUSY, f"Module {name} already loaded"
        )
    given = parse_params(mod, params, warnings)
    cfg = KernelConfig(page_size=kernel.page_size, kallsyms_all=meta.get("kallsyms_all", "1") == "1")
    try:
        lay = layout_module(mod.elf, meta["layout"], cfg)
    except InvalidModule as exc:
        raise kernel_error(call, exc) from None
    cur = db.execute(
        "INSERT INTO modules (name, design, base, size, state, path) VALUES (?, '6', 0, 0, 'Unformed', ?)",
        (name, path),
    )
    seq = cast(int, cur.lastrowid)
    bases: dict[str, int] = {}
    for region in lay.sizes:
        size = lay.alloc_size(region)
        if size:
            bases[region] = kernel._alloc(db, seq, name, region, size)
    symbols = DbSymbols(db)
    try:
        resolve = kernel_resolver(
            mod,
            cast(SymbolTable, symbols),
            force_modversion=bool(flags & MODULE_INIT_IGNORE_MODVERSIONS),
            warnings=warnings,
        )
        image = link(mod, resolve, bases={r: bases.get(r, 0) for r in lay.sizes}, layout=lay)
    except InvalidModule as exc:
        raise kernel_error(call, exc) from None
    values = image.symbol_values
    by_name = {s.name: values[s.number] for s in mod.elf.symbols() if s.name and s.shndx}
    exports = []
    for ord_, e in enumerate(mod.exports):
        dup = db.execute(
            "SELECT 'kernel' FROM ksyms WHERE name=? UNION ALL SELECT m.name FROM msyms s JOIN modules m "
            "USING (seq) WHERE s.name=? AND s.kind='export'",
            (e.name, e.name),
        ).fetchone()
        if dup is not None:
            raise KernelError(
                call, errno.ENOEXEC, f"{name}: exports duplicate symbol {e.name} (owned by {dup[0]})"
            )
        value = by_name.get(e.symbol or e.name, by_name.get(e.name, 0))
        exports.append((seq, e.name, addr(value), "export", None, int(e.gpl), e.crc, e.namespace, ord_))
    db.executemany("INSERT INTO msyms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", exports)
    lines = format_module_kallsyms(name, module_kallsyms(mod, image), mod.elf.elfclass)
    db.execute(
        "INSERT INTO kallsyms VALUES (?, ?)",
        (seq, zlib.compress(lines.encode("utf-8", "surrogateescape"), 1)),
    )
    used: list[int] = []
    for sym in image.resolved:
        owner = symbols.owners.get(sym)
        if owner is not None and owner[0] not in used:
            used.append(owner[0])
    nrefs = db.execute("SELECT COALESCE(MAX(ord), 0) FROM refs").fetchone()[0]
    db.executemany("INSERT INTO refs VALUES (?, ?, ?)", ((seq, u, nrefs + 1 + i) for i, u in enumerate(used)))
    init = by_name.get("init_module", 0)
    exit_ = by_name.get("cleanup_module", 0)
    memory = {bases[r]: bytes(buf) for r, buf in image.regions.items() if r in bases}
    sections = {p.name: image.section_addresses[n] for n, p in lay.placements.items() if p.size}
    core = [r for r in bases if not r.startswith("init")]
    text_region = "core" if "core" in lay.sizes else "text"
    size = lay.sizes.get("core", 0) if "core" in lay.sizes else sum(lay.alloc_size(r) for r in core)
    info = {
        "init": init,
        "exit": exit_,
        "sections": sections,
        "params": given,
        "regions": {r: [b, lay.alloc_size(r)] for r, b in bases.items()},
        "sizes": {p.name: p.size for p in lay.placements.values() if p.size},
    }
    db.execute(
        "UPDATE modules SET base=?, size=?, state='Loading', taints=?, init=?, cleanup=?, info=? WHERE seq=?",
        (
            addr(bases.get(text_region, 0)),
            size,
            _taint_letters(taints),
            addr(init),
            addr(exit_),
            json.dumps(info),
            seq,
        ),
    )
    if init:
        ret = kernel.executor.call(LoadedImage(name, memory, {}), init, ())
        if ret < 0:
            # do_init_module's failure path: this module goes, what its init did stays (a
            # module it requested is loaded and live), so the call's work is kept, not undone.
            kernel._free(db, seq)
            raise InitFailed(KernelError(call, -ret, f"{name}: init routine failed ({ret})"))
        if ret > 0:
            warnings.append(
                f"do_init_module: '{name}'->init suspiciously returned {ret}, "
                "it should follow 0/-E convention"
            )
    # do_init_module: the init regions are freed once init has run.
    for r in [r for r in bases if r.startswith("init")]:
        db.execute("DELETE FROM areas WHERE seq=? AND region=?", (seq, r))
        del memory[bases[r]]
    kernel._store_memory(db, seq, memory)
    db.execute("UPDATE modules SET state='Live' WHERE seq=?", (seq,))
    return warnings


def _taint_letters(taints: str) -> str:
    return "".join(c for c in TAINT_ORDER if c in taints)

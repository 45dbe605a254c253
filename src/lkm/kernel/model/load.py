"""load_module for the model kernel (today's design: the kernel links the raw file)
=================================================================================

:func:`load_module` runs the steps of kernel/module/main.c's ``load_module`` as named
functions over one :class:`LoadInfo` (the kernel's ``struct load_info``), each with the
kernel's errno: :func:`module_sig_check`, :func:`elf_validity_check` (:mod:`lkm.module.validate`
and vermagic), :func:`check_modinfo` (out-of-tree and license taints), :func:`add_unformed_module`
(a module of that name), :func:`module_sig_taint` (taint E), :func:`layout_and_allocate`
(:mod:`lkm.link.layout`, module_alloc), :func:`simplify_symbols` and :func:`apply_relocations`
(:func:`lkm.link.link`), :func:`post_relocation` (duplicate exports, kallsyms, references),
:func:`parse_args`, :func:`complete_formation` and :func:`do_init_module` (the init routine,
freeing init memory).  The order is the kernel's: it decides which of two errors a doubly
broken load reports (an unknown symbol before a bad parameter) and the order of the log's
lines (a guest's: out-of-tree, then the unverified signature).

Runs inside the caller's transaction (:class:`~lkm.kernel.model.store.Store`): any exception
leaves the state as it was, except a failed init routine (:class:`InitFailed`), after which
the state holds what the init left, and the global taint a refused load set
(:attr:`LoadInfo.taint_bits`: add_taint is never undone), which the caller keeps.  What the
kernel prints on the way (taint, unknown symbols, unknown parameters, an odd init return) is
collected in :attr:`LoadInfo.printk`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from lkm.errors import InvalidModule, LinkError
from lkm.kernel.executor import Executor, LoadedImage
from lkm.kernel.interface import (
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    TAINT_ORDER,
    KernelError,
    kernel_error,
)
from lkm.kernel.model.kmod import KmodDeadlock
from lkm.kernel.model.store import DbSymbols, Store
from lkm.kernel.model.vmalloc import ModuleMemory
from lkm.kernels import KernelConfig
from lkm.link import link
from lkm.link.image import LinkedImage
from lkm.link.kallsyms import module_kallsyms_lines
from lkm.link.layout import Layout, layout_module
from lkm.link.resolve import check_vermagic, kernel_resolver
from lkm.module.file import ModuleFile
from lkm.module.signature import module_size
from lkm.module.validate import check_module
from lkm.symbols.table import SymbolTable
from lkm.trust.keys import load_certificate_list
from lkm.trust.sig import check_for_load

__all__ = [
    "BOOL_WORDS",
    "INT_TYPES",
    "SIG_MAGIC",
    "TAINT_OOT_MODULE",
    "TAINT_PROPRIETARY_MODULE",
    "TAINT_UNSIGNED_MODULE",
    "InitFailed",
    "LoadInfo",
    "add_unformed_module",
    "apply_relocations",
    "check_modinfo",
    "complete_formation",
    "do_init_module",
    "elf_validity_check",
    "layout_and_allocate",
    "load_module",
    "module_sig_check",
    "module_sig_taint",
    "parse_args",
    "parse_params",
    "post_relocation",
    "sig_check",
    "simplify_symbols",
    "split_args",
    "strip_signature",
]


# Global taint bits (include/linux/panic.h TAINT_*) the loader sets.
TAINT_PROPRIETARY_MODULE = 1 << 0
TAINT_OOT_MODULE = 1 << 12
TAINT_UNSIGNED_MODULE = 1 << 13

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
        try:
            return data[: module_size(data)], True
        except InvalidModule as exc:
            raise KernelError("init_module", exc.errno, exc.reason) from None
    return data, False


def sig_check(meta: dict[str, str], call: str, data: bytes, flags: int) -> tuple[bytes, bool]:
    """kernel/module/signing.c module_sig_check (:mod:`lkm.trust.sig`): the module without its
    signature, and whether it gets taint E; refused loads raise the kernel's errno.  The policy is
    the model's: ``sig`` (CONFIG_MODULE_SIG), ``sig_enforce``, ``lockdown`` and the trusted keys
    (``trusted_keys``: the builtin certificate list; absent: not known, signers not checked)."""
    keys = meta.get("trusted_keys")
    ring = None
    if keys is not None:
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


class InitFailed(Exception):
    """The init routine failed after the module was freed: the caller commits, then raises ``error``."""

    def __init__(self, error: KernelError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class LoadInfo:
    """One load (the kernel's struct load_info and what load_module keeps on the way): the
    call, its arguments, the model it loads into, and each step's result."""

    call: str
    data: bytes
    params: str
    flags: int
    path: str | None
    store: Store
    meta: dict[str, str]
    page_size: int
    memory: ModuleMemory
    executor: Executor
    printk: list[str] = field(default_factory=list)  # the kernel's messages, in order
    raw: bytes = b""  # the module without its signature
    sig_taint: bool = False
    mod: ModuleFile | None = None
    taints: str = ""
    taint_bits: int = 0  # global taint set by this load: kept even if the load fails (add_taint)
    given: dict[str, str] = field(default_factory=dict)  # parameter values by name
    layout: Layout | None = None
    seq: int = 0
    bases: dict[str, int] = field(default_factory=dict)
    symbols: DbSymbols | None = None
    resolve: Callable[[str], int | None] | None = None
    image: LinkedImage | None = None
    values: dict[str, int] = field(default_factory=dict)  # addresses of init, exit and the exports
    init: int = 0
    exit: int = 0

    @property
    def module(self) -> ModuleFile:
        assert self.mod is not None, "elf_validity_check runs first"
        return self.mod

    @property
    def lay(self) -> Layout:
        assert self.layout is not None, "layout_and_allocate runs first"
        return self.layout

    @property
    def linked(self) -> LinkedImage:
        assert self.image is not None, "apply_relocations runs first"
        return self.image


def load_module(info: LoadInfo) -> None:
    """Load one module into the model (kernel/module/main.c load_module)."""
    module_sig_check(info)
    elf_validity_check(info)
    check_modinfo(info)
    add_unformed_module(info)
    module_sig_taint(info)
    layout_and_allocate(info)
    simplify_symbols(info)
    apply_relocations(info)
    post_relocation(info)
    parse_args(info)  # the kernel's comes after the symbols: their errors come first
    complete_formation(info)
    do_init_module(info)


def module_sig_check(info: LoadInfo) -> None:
    """The signature (kernel/module/signing.c): refused, or kept as taint E."""
    info.raw, info.sig_taint = sig_check(info.meta, info.call, info.data, info.flags)


def elf_validity_check(info: LoadInfo) -> None:
    """The ELF checks of the model's kernel version and architecture, and vermagic."""
    meta = info.meta
    try:
        info.mod = mod = ModuleFile.from_bytes(info.raw, path=info.path)
        smsize = int(meta["struct_module_size"]) if "struct_module_size" in meta else None
        check_module(mod.elf, kernel=meta.get("kernel", "6.1"), arch=meta["arch"], struct_module_size=smsize)
        check_vermagic(mod, meta["vermagic"], force=bool(info.flags & MODULE_INIT_IGNORE_VERMAGIC))
    except InvalidModule as exc:
        raise kernel_error(info.call, exc) from None


def check_modinfo(info: LoadInfo) -> None:
    """Taints from .modinfo: F (no symbol versions), P (license), O (out of tree), each
    announced the first time the kernel gets it (module_license_taint_check, check_modinfo)."""
    mod = info.module
    if not mod.versions:
        info.taints += "F" if "F" not in info.taints else ""
    if mod.get("intree") != "Y":
        info.taints += "O"
        info.taint_bits |= TAINT_OOT_MODULE
        if info.store.add_taint(TAINT_OOT_MODULE):
            info.printk.append(f"{mod.name}: loading out-of-tree module taints kernel.")
    license_ = mod.license or ""
    if not license_ or license_ == "Proprietary":  # set_license, after the out-of-tree check
        info.taints = "P" + info.taints
        info.taint_bits |= TAINT_PROPRIETARY_MODULE
        if info.store.add_taint(TAINT_PROPRIETARY_MODULE):
            info.printk.append(f"{mod.name}: module license '{license_ or 'unspecified'}' taints kernel.")
            info.printk.append("Disabling lock debugging due to kernel taint")


def module_sig_taint(info: LoadInfo) -> None:
    """An unverified signature taints E once the module has its place in the list (6.1:
    load_module after add_unformed_module; 6.12: module_augment_kernel_taints, after the
    out-of-tree and license taints), announced once per boot (pr_notice_once)."""
    if info.sig_taint:
        info.taints += "E"
        info.taint_bits |= TAINT_UNSIGNED_MODULE
        if info.store.add_taint(TAINT_UNSIGNED_MODULE):
            info.printk.append(
                f"{info.module.name}: module verification failed: signature and/or required key "
                "missing - tainting kernel"
            )


def add_unformed_module(info: LoadInfo) -> None:
    """A module of this name already there: EEXIST when live, EBUSY while going; one still
    loading would be waited for, which in this process never ends (:class:`KmodDeadlock`)."""
    name = info.module.name
    existing = info.store.find(name)
    if existing is not None and existing.state in ("Loading", "Unformed"):
        # add_unformed_module waits for that load to finish; in this process it is a caller
        # of this one (modprobe run by its init's request_module), so it never will.
        raise KmodDeadlock(
            f"{info.call} of {name} waits for {name} to finish loading, whose init waits in "
            f"request_module for this modprobe: the kernel hangs here"
        )
    if existing is not None:
        raise KernelError(
            info.call,
            errno.EEXIST if existing.state == "Live" else errno.EBUSY,
            f"Module {name} already loaded",
        )


def parse_args(info: LoadInfo) -> None:
    """The parameters given (unknown ones warned about and ignored)."""
    info.given = parse_params(info.module, info.params, info.printk)


def layout_and_allocate(info: LoadInfo) -> None:
    """The layout of the model's kernel version, the module's row (Unformed) and its memory."""
    meta = info.meta
    mod = info.module
    cfg = KernelConfig(page_size=info.page_size, kallsyms_all=meta.get("kallsyms_all", "1") == "1")
    try:
        info.layout = lay = layout_module(mod.elf, meta["layout"], cfg)
    except InvalidModule as exc:
        raise kernel_error(info.call, exc) from None
    info.seq = info.store.new_module(mod.name, "6", path=info.path)
    for region in lay.sizes:
        size = lay.alloc_size(region)
        if size:
            info.bases[region] = info.memory.alloc(info.store, info.seq, mod.name, region, size)


def simplify_symbols(info: LoadInfo) -> None:
    """Bind the undefined symbols as the kernel does, exports of the kernel and the modules."""
    info.symbols = DbSymbols(info.store.db, info.store.kernel_export_map())
    try:
        info.resolve = kernel_resolver(
            info.module,
            cast(SymbolTable, info.symbols),
            force_modversion=bool(info.flags & MODULE_INIT_IGNORE_MODVERSIONS),
            warnings=info.printk,
        )
    except InvalidModule as exc:
        raise kernel_error(info.call, exc) from None


def apply_relocations(info: LoadInfo) -> None:
    """Relocate the module at its memory (:func:`lkm.link.link`)."""
    assert info.resolve is not None
    lay = info.lay
    try:
        info.image = image = link(
            info.module, info.resolve, bases={r: info.bases.get(r, 0) for r in lay.sizes}, layout=lay
        )
    except InvalidModule as exc:
        if isinstance(exc, LinkError):  # simplify_symbols' pr_warn per unknown symbol
            info.printk.extend(exc.printk)
        raise kernel_error(info.call, exc) from None
    values = image.symbol_values
    wanted = {"init_module", "cleanup_module"}  # and the exported symbols
    for e in info.module.exports:
        wanted.update((e.name, e.symbol or e.name))
    syms = info.module.elf.symbols()
    info.values = {s.name: values[s.number] for s in syms if s.shndx and s.name in wanted}


def post_relocation(info: LoadInfo) -> None:
    """The module's exports (ENOEXEC for one the kernel or a module already exports), its
    /proc/kallsyms lines, and references to the modules whose symbols it bound."""
    mod, store, image = info.module, info.store, info.linked
    exports = []
    for e in mod.exports:
        owner = store.export_owner(e.name)
        if owner is not None:
            raise KernelError(
                info.call, errno.ENOEXEC, f"{mod.name}: exports duplicate symbol {e.name} (owned by {owner})"
            )
        value = info.values.get(e.symbol or e.name, info.values.get(e.name, 0))
        exports.append((e.name, value, int(e.gpl), e.crc, e.namespace))
    store.add_exports(info.seq, exports)
    store.add_kallsyms(info.seq, module_kallsyms_lines(mod, image))
    assert info.symbols is not None
    used: list[int] = []
    for sym in image.resolved:
        owner_seq = info.symbols.owners.get(sym)
        if owner_seq is not None and owner_seq[0] not in used:
            used.append(owner_seq[0])
    store.add_refs(info.seq, used)


def complete_formation(info: LoadInfo) -> None:
    """The module's place, size, taints and facts recorded; state Loading."""
    lay, bases = info.lay, info.bases
    info.init = info.values.get("init_module", 0)
    info.exit = info.values.get("cleanup_module", 0)
    sections = {p.name: info.linked.section_addresses[n] for n, p in lay.placements.items() if p.size}
    core = [r for r in bases if not r.startswith("init")]
    text_region = "core" if "core" in lay.sizes else "text"
    size = lay.sizes.get("core", 0) if "core" in lay.sizes else sum(lay.alloc_size(r) for r in core)
    facts: dict[str, object] = {
        "init": info.init,
        "exit": info.exit,
        "sections": sections,
        "params": info.given,
        "regions": {r: [b, lay.alloc_size(r)] for r, b in bases.items()},
        "sizes": {p.name: p.size for p in lay.placements.values() if p.size},
    }
    info.store.form_module(
        info.seq, bases.get(text_region, 0), size, _taint_letters(info.taints), info.init, info.exit, facts
    )


def do_init_module(info: LoadInfo) -> None:
    """Run init: a negative return frees the module (:class:`InitFailed`, what init did is
    kept), a positive one is warned about; then the init regions are freed and it is Live."""
    name, store, bases = info.module.name, info.store, info.bases
    memory = {bases[r]: bytes(buf) for r, buf in info.linked.regions.items() if r in bases}
    if info.init:
        ret = info.executor.call(LoadedImage(name, memory, {}), info.init, ())
        if ret < 0:
            # do_init_module's failure path: this module goes, what its init did stays (a
            # module it requested is loaded and live), so the call's work is kept, not undone.
            store.free(info.seq)
            raise InitFailed(KernelError(info.call, -ret, f"{name}: init routine failed ({ret})"))
        if ret > 0:
            info.printk.append(
                f"do_init_module: '{name}'->init suspiciously returned {ret}, "
                "it should follow 0/-E convention"
            )
            info.printk.append("do_init_module: loading module anyway...")
    # do_init_module: the init regions are freed once init has run.
    for r in [r for r in bases if r.startswith("init")]:
        store.free_area(info.seq, r)
        del memory[bases[r]]
    store.store_memory(info.seq, memory)
    store.set_live(info.seq)


def _taint_letters(taints: str) -> str:
    return "".join(c for c in TAINT_ORDER if c in taints)

"""Will a module built for one kernel load into another, and if not, why (kABI compatibility).

:func:`check_module` replays load_module's acceptance checks offline against a
:class:`TargetKernel` (its exports with CRCs, GPL flags and namespaces from Module.symvers, its
vermagic and configuration, its trusted keys), in the kernel's order: signature
(module_sig_check), ``module_layout`` (check_modstruct_version), vermagic (check_modinfo's
same_magic, release skipped with modversions), exported symbols without CRCs, then every
undefined symbol as resolve_symbol sees it (GPL-only, CRC, namespace), plus the dependencies
modprobe would have to load first.  :func:`weak_modules` is RHEL's weak-modules compatibility
(every needed symbol present with the same CRC, iterated as modules drop out), and
:func:`symvers_diff` compares two kernels' exports.  Facts: the trust spec §3.
"""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lkm.errors import InvalidModule, LkmError
from lkm.link.resolve import same_magic
from lkm.module.file import ModuleFile
from lkm.module.source import read_module
from lkm.module.symbols import NeededSymbol
from lkm.module.validate import check_module as elf_check
from lkm.safeio import read_bytes
from lkm.symbols.sources import parse_module_symvers
from lkm.symbols.table import KernelSymbol
from lkm.trust.keys import trusted_keys_from_image
from lkm.trust.sig import check_for_load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.trust.keys import Keyring

__all__ = [
    "GPL_COMPATIBLE",
    "SHF_ALLOC",
    "STB_WEAK",
    "Reason",
    "SymversChange",
    "TargetKernel",
    "Verdict",
    "WeakResult",
    "check_module",
    "check_modules",
    "depmod_symbol_reports",
    "load_symvers",
    "load_target",
    "module_paths",
    "parse_config",
    "symvers_diff",
    "weak_modules",
]

SHF_ALLOC = 0x2
STB_WEAK = 2
GPL_COMPATIBLE = frozenset(
    {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}
)


def _modname(path_or_name: str) -> str:
    base = os.path.basename(path_or_name)
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


class TargetKernel:
    """What an offline check needs of the kernel a module is meant for."""

    def __init__(
        self, release: str, vermagic: str, exports: Iterable[KernelSymbol], *,
        config: dict[str, str] | None = None, modules: Iterable[str] = (), keys: Keyring | None = None,
        kernel: str = "6.1", source: str = "", struct_module_size: int | None = None,
    ) -> None:  # fmt: skip
        self.release = release
        self.vermagic = vermagic
        self.exports: dict[str, KernelSymbol] = {}
        for s in exports:
            self.exports.setdefault(s.name, s)
        self.config = config or {}
        self.modules = {_modname(m) for m in modules}
        self.keys = keys  # lkm.trust.keys.Keyring or None (not known)
        self.kernel = kernel
        self.source = source
        self.struct_module_size = struct_module_size  # sizeof(struct module): the tree's this_module

    def _on(self, name: str, default: bool) -> bool:
        if not self.config:
            return default
        return self.config.get(name) in ("y", "m")

    @property
    def modversions(self) -> bool:
        return self._on("CONFIG_MODVERSIONS", True)

    @property
    def force_load(self) -> bool:
        return self._on("CONFIG_MODULE_FORCE_LOAD", True)

    @property
    def module_sig(self) -> bool:
        return self._on("CONFIG_MODULE_SIG", True)

    @property
    def sig_force(self) -> bool:
        return self._on("CONFIG_MODULE_SIG_FORCE", False)

    @property
    def allow_missing_ns(self) -> bool:
        return self._on("CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS", False)

    @property
    def livepatch(self) -> bool:
        return self._on("CONFIG_LIVEPATCH", True)


def parse_config(text: str) -> dict[str, str]:
    """A kernel .config as {CONFIG_X: value} (unset options absent)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v.strip('"')
    return out


def _read(path: str, limit: int = 1 << 30) -> bytes:
    try:
        return read_bytes(path, limit=limit)
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None


def load_symvers(path: str) -> list[KernelSymbol]:
    """Module.symvers or a RHEL symvers-<release>.gz."""
    data = _read(path)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return parse_module_symvers(data, path=path)


def load_target(
    tree: str, *, symvers: str | None = None, image: str | None = None, config: str | None = None,
    with_keys: bool = True,
) -> TargetKernel:  # fmt: skip
    """A target kernel from an installed tree: ``tree`` is a root holding boot/ and
    lib/modules/RELEASE (or the lib/modules/RELEASE directory itself).  Module.symvers is
    ``symvers`` or found under lib/modules/RELEASE/build or usr/src/linux-headers-RELEASE;
    vermagic comes from the tree's modules, config and keys from boot/."""
    tree = os.path.abspath(tree)
    if os.path.isdir(os.path.join(tree, "kernel")) and not os.path.isdir(os.path.join(tree, "lib")):
        moddir = tree
        release = os.path.basename(tree)
        root = os.path.dirname(os.path.dirname(os.path.dirname(tree)))
    else:
        base = os.path.join(tree, "lib", "modules")
        try:
            releases = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
        except OSError:
            raise LkmError("not a kernel tree (no lib/modules/RELEASE)", path=tree) from None
        if len(releases) != 1:
            raise LkmError(f"expected one release under lib/modules, found {len(releases)}", path=tree)
        release = releases[0]
        moddir = os.path.join(base, release)
        root = tree
    modules: list[str] = []
    for dirpath, _dirs, files in os.walk(moddir):
        modules.extend(os.path.join(dirpath, f) for f in files if ".ko" in f)
    if not modules:
        raise LkmError("no modules in the tree", path=moddir)

    first = ModuleFile.from_bytes(bytes(read_module(sorted(modules)[0]).data))
    vermagic = first.vermagic or ""
    this = first.elf.section(".gnu.linkonce.this_module")
    smsize = this.size if this is not None else None
    if symvers is None:
        headers = os.path.join(root, "usr", "src", f"linux-headers-{release}")
        for cand in (
            os.path.join(moddir, "build", "Module.symvers"),
            os.path.join(headers, "Module.symvers"),
        ):
            if os.path.isfile(cand):
                symvers = cand
                break
    if symvers is None:
        raise LkmError(f"no Module.symvers for {release} (give --symvers)", path=tree)
    exports = load_symvers(symvers)
    cfg_path = config or os.path.join(root, "boot", f"config-{release}")
    cfg = parse_config(_read(cfg_path).decode("utf-8", "replace")) if os.path.isfile(cfg_path) else {}
    img = image or os.path.join(root, "boot", f"vmlinuz-{release}")
    keys = None
    kernel = "6.12" if _release_at_least(release, 6, 12) else "6.1"
    if with_keys and os.path.isfile(img):
        tk = trusted_keys_from_image(img)
        keys, kernel = tk.ring, tk.kernel
    return TargetKernel(release, vermagic, exports, config=cfg, modules=modules, keys=keys, kernel=kernel,
                        source=tree, struct_module_size=smsize)  # fmt: skip


def _release_at_least(release: str, major: int, minor: int) -> bool:
    parts = release.split(".")
    try:
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()))) >= (major, minor)
    except (IndexError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding: ``kind`` (signature, module_layout, vermagic, export_crcs, unknown_symbol,
    gpl_only, crc, namespace, dependency, taint, warning), the ``errno`` the load fails with
    (0: the load goes on), the kernel's log line and the symbol or module concerned."""

    kind: str
    errno: int
    message: str
    subject: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "errno": errno.errorcode.get(self.errno, 0) if self.errno else 0,
                "message": self.message, "subject": self.subject}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """A module's fate on the target: ``errno`` 0 if it loads (``taints`` it adds), else the
    errno insmod reports; ``reasons`` every finding in the kernel's order."""

    path: str
    name: str
    errno: int
    taints: str
    reasons: list[Reason]
    needs: list[str]

    @property
    def loads(self) -> bool:
        return self.errno == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "module": self.path, "name": self.name, "loads": self.loads,
            "errno": errno.errorcode.get(self.errno, str(self.errno)) if self.errno else 0,
            "taints": self.taints, "needs": self.needs, "reasons": [r.as_dict() for r in self.reasons],
        }  # fmt: skip


def _versions_usable(mod: ModuleFile) -> bool:
    """find_sec("__versions"): present and still SHF_ALLOC (kmod --force-modversion clears it)."""
    sec = mod.elf.section("__versions")
    return sec is not None and bool(sec.flags & SHF_ALLOC)


class _Check:
    """One module's check in progress (as the kernel's struct load_info): the module, the
    target, and what the steps found so far (reasons in the kernel's order, taint letters)."""

    __slots__ = ("mod", "name", "target", "reasons", "taints", "usable", "mod_versions")

    def __init__(self, mod: ModuleFile, target: TargetKernel) -> None:
        self.mod = mod
        self.name = mod.name
        self.target = target
        self.reasons: list[Reason] = []
        self.taints: set[str] = set()
        self.usable = False  # __versions present and used (target.modversions)
        self.mod_versions: dict[str, int] = {}

    def add(self, kind: str, err: int, message: str, subject: str = "") -> None:
        self.reasons.append(Reason(kind, err, message, subject))

    def force(self, reason: str, subject: str) -> None:
        """try_to_force_load."""
        if self.target.force_load:
            self.taints.add("F")
            self.add("taint", 0, f"{self.name}: {reason}: kernel tainted.", subject)
        else:
            self.add(
                subject or "force",
                errno.ENOEXEC,
                f"{self.name}: {reason}: refused (no CONFIG_MODULE_FORCE_LOAD)",
                subject,
            )


def check_module(
    path: str, target: TargetKernel, *, others: dict[str, ModuleFile] | None = None, enforce: bool = False,
    data: bytes | None = None,
) -> Verdict:  # fmt: skip
    """Every reason the target would refuse (or taint) the module at ``path``.  ``others``: modules
    given alongside (by name) whose exports satisfy this one's needs, as if loaded first."""

    if data is None:
        data = bytes(read_module(path).data)
    mod = ModuleFile.from_bytes(data, path=path)
    c = _Check(mod, target)
    _check_signature(c, data, enforce)
    _check_elf(c)
    _check_modstruct_version(c)
    _check_vermagic(c)
    _check_modinfo_taints(c)
    others = others or {}
    needs = _check_symbols(c, others)
    _check_dependencies(c, others, needs)
    order = "PFOCE"
    taints = "".join(x for x in order if x in c.taints)
    return Verdict(path, c.name, _kernel_errno(c.reasons), taints, c.reasons, needs)


def _check_signature(c: _Check, data: bytes, enforce: bool) -> None:
    """1. module_sig_check: refused, or taint E."""
    target, name = c.target, c.name
    dec = check_for_load(data, target.keys, name, kernel=target.kernel, enforce=enforce or target.sig_force,
                         module_sig=target.module_sig)  # fmt: skip
    if dec.errno:
        msg = "; ".join(dec.messages) or dec.result.detail
        c.add("signature", dec.errno, msg or os.strerror(dec.errno))
    elif dec.taint:
        c.taints.add("E")
        why = {
            errno.ENODATA: "unsigned",
            errno.ENOKEY: "signer not trusted",
            errno.ENOPKG: "unsupported crypto",
        }
        c.add("taint", 0, f"{name}: module verification failed: signature and/or required key missing "
              f"- tainting kernel ({why.get(dec.result.errno, '')})", "E")  # fmt: skip


def _check_elf(c: _Check) -> None:
    """2. ELF validity (elf_validity_check / setup_load_info), sizeof(struct module) included;
    then which __versions entries the later steps compare."""
    target, mod = c.target, c.mod
    try:
        elf_check(mod.elf, kernel=target.kernel, struct_module_size=target.struct_module_size)
    except InvalidModule as exc:
        text = exc.reason
        if "has size" in text and ".gnu.linkonce.this_module" in text:  # the kernel's words
            text = (f"module {c.name}: .gnu.linkonce.this_module section size must match the kernel's built "
                    f"struct module size at run time")  # fmt: skip
        c.add("elf", exc.errno, text)
    c.usable = target.modversions and _versions_usable(mod)
    if c.usable:
        for n, crc in mod.versions:
            c.mod_versions.setdefault(n, crc)


def _check_modstruct_version(c: _Check) -> None:
    """2. module_layout (check_modstruct_version)."""
    layout = c.target.exports.get("module_layout")
    if c.target.modversions and layout is not None and layout.crc is not None:
        if not c.usable:
            c.force("module_layout", "module_layout")
        elif "module_layout" in c.mod_versions and c.mod_versions["module_layout"] & 0xFFFFFFFF != layout.crc:
            msg = f"{c.name}: disagrees about version of symbol module_layout"
            c.add("module_layout", errno.ENOEXEC, msg, "module_layout")


def _check_vermagic(c: _Check) -> None:
    """3. vermagic, livepatch."""
    name, target = c.name, c.target
    magic = c.mod.vermagic
    if magic is None:
        c.force("bad vermagic", "vermagic")
    else:
        if not same_magic(magic, target.vermagic, c.usable):
            c.add("vermagic", errno.ENOEXEC, f"{name}: version magic '{magic}' should be '{target.vermagic}'")
    if c.mod.get("livepatch") == "Y" and not target.livepatch:
        c.add(
            "vermagic",
            errno.ENOEXEC,
            f"{name}: module is marked as livepatch module, but livepatch support is disabled",
        )


def _check_modinfo_taints(c: _Check) -> None:
    """4. modinfo taints; 5. exported symbols without CRCs."""
    mod = c.mod
    license_ = mod.license or ""
    if license_ not in GPL_COMPATIBLE:
        c.taints.add("P")
        c.add("taint", 0, f"{c.name}: module license '{license_ or 'unspecified'}' taints kernel.", "P")
    if mod.get("intree") != "Y":
        c.taints.add("O")
    if mod.get("staging") == "Y":
        c.taints.add("C")
    if c.target.modversions and any(e.crc is None for e in mod.exports):
        c.force("no versions for exported symbols", "export_crcs")


def _check_symbols(c: _Check, others: dict[str, ModuleFile]) -> list[str]:
    """6. symbols (simplify_symbols): each needed symbol found, GPL-only, CRC and namespace
    checked; the modules providing them (the target's or ``others``), in first-use order."""
    mod, name, target = c.mod, c.name, c.target
    gpl_ok = (mod.license or "") in GPL_COMPATIBLE
    needs: list[str] = []
    provided: dict[str, tuple[KernelSymbol, str | None]] = {}
    for other_name, other in others.items():
        if other_name == name:
            continue
        for e in other.exports:
            provided.setdefault(e.name, (KernelSymbol(e.name, exported=True, gpl_only=e.gpl, crc=e.crc,
                                                      namespace=e.namespace), other_name))  # fmt: skip
    imported = set(mod.import_ns)
    own = {e.name for e in mod.exports}
    seen: set[str] = set()
    for sym in mod.needed:
        sname = sym.name
        if sname in seen or sname in own:
            continue
        seen.add(sname)
        found = target.exports.get(sname)
        owner: str | None = None
        if found is not None:
            owner = _modname(found.module) if found.module else None
        elif sname in provided:
            found, owner = provided[sname]
        if found is None or (found.gpl_only and not gpl_ok):
            if sym.bind == STB_WEAK:
                continue
            if found is not None:
                c.add("gpl_only", errno.ENOENT, f"{name}: Unknown symbol {sname} (err -2)", sname)
            else:
                c.add("unknown_symbol", errno.ENOENT, f"{name}: Unknown symbol {sname} (err -2)", sname)
            continue
        if target.modversions and found.crc is not None:
            if not c.usable:
                c.force(sname, sname)
            elif sname not in c.mod_versions:
                c.add("warning", 0, f"{name}: no symbol version for {sname}", sname)
            elif c.mod_versions[sname] & 0xFFFFFFFF != found.crc & 0xFFFFFFFF:
                c.add("crc", errno.EINVAL, f"{name}: disagrees about version of symbol {sname}", sname)
                continue
        if found.namespace and found.namespace not in imported:
            ns = found.namespace
            msg = f"{name}: module uses symbol ({sname}) from namespace {ns}, but does not import it."
            c.add("namespace", 0 if target.allow_missing_ns else errno.EINVAL, msg, sname)
            if not target.allow_missing_ns:
                continue
        if owner and owner not in needs:
            needs.append(owner)
    return needs


def _check_dependencies(c: _Check, others: dict[str, ModuleFile], needs: list[str]) -> None:
    """7. dependencies modprobe would load first; ``needs`` gains the declared ones."""
    mod, name = c.mod, c.name
    for d in dict.fromkeys(_modname(x) for x in [*mod.depends, *needs]):
        if d and d not in c.target.modules and d not in others and d != name:
            c.add("dependency", errno.ENOENT, f"{name}: needs module {d}, which the target does not have", d)
    for n in mod.depends:
        if _modname(n) not in needs and n:
            needs.append(_modname(n))


def _kernel_errno(reasons: list[Reason]) -> int:
    """The kernel's errno: first fatal step, except symbols, where the last failure wins."""
    symbol_kinds = {"unknown_symbol", "gpl_only", "crc", "namespace"}
    for r in reasons:
        if r.errno and r.kind not in symbol_kinds and r.kind != "dependency":
            return r.errno
    sym_errs = [r.errno for r in reasons if r.errno and r.kind in symbol_kinds]
    return sym_errs[-1] if sym_errs else next((r.errno for r in reasons if r.errno), 0)


def module_paths(args: Sequence[str]) -> list[str]:
    """Module files named, and every module under directories named."""
    out: list[str] = []
    for a in args:
        if os.path.isdir(a):
            for dirpath, _dirs, files in os.walk(a):
                out.extend(os.path.join(dirpath, f) for f in sorted(files) if ".ko" in f)
        else:
            out.append(a)
    return out


def check_modules(paths: Sequence[str], target: TargetKernel, *, enforce: bool = False) -> list[Verdict]:
    """:func:`check_module` for each, the others given alongside counting as loadable providers."""
    datas = {p: bytes(read_module(p).data) for p in paths}
    others = {
        ModuleFile.from_bytes(d, path=p).name: ModuleFile.from_bytes(d, path=p) for p, d in datas.items()
    }
    return [check_module(p, target, others=others, enforce=enforce, data=datas[p]) for p in paths]


# --------------------------------------------------------------------------------------
# weak-modules


@dataclass(slots=True, unsafe_hash=True)
class WeakResult:
    """RHEL weak-modules: ``compatible`` modules (paths) linkable into the target's weak-updates,
    ``incompatible`` {path: [depmod-style reasons]}."""

    compatible: list[str]
    incompatible: dict[str, list[str]]


def weak_modules(paths: Sequence[str], symvers: Iterable[KernelSymbol]) -> WeakResult:
    """Which of ``paths`` are kABI-compatible with the kernel of ``symvers`` (its Module.symvers):
    each needed symbol must be exported by the kernel or by another still-compatible module with
    the same CRC (depmod -e -E's "needs unknown symbol" / "disagrees about version of symbol"),
    removing incompatible modules until nothing changes, as weak-modules reruns depmod.
    Vermagic, signatures, GPL-only and namespaces are not weak-modules' business."""
    kernel = _symvers_crcs(symvers)
    alive = {p: ModuleFile.from_bytes(bytes(read_module(p).data), path=p) for p in paths}
    incompatible: dict[str, list[str]] = {}
    while True:
        found = depmod_symbol_reports(alive, kernel)
        if not found:
            break
        for p, why in found.items():
            incompatible[p] = why
            del alive[p]
    return WeakResult(sorted(alive), incompatible)


def _symvers_crcs(symvers: Iterable[KernelSymbol], *, vmlinux_only: bool = False) -> dict[str, int | None]:
    """{symbol: crc} of a symvers file (depmod -E reads only the vmlinux rows)."""
    kernel: dict[str, int | None] = {}
    for s in symvers:
        if not vmlinux_only or s.module is None:
            kernel.setdefault(s.name, s.crc)
    return kernel


def depmod_symbol_reports(mods: dict[str, ModuleFile], kernel: dict[str, int | None]) -> dict[str, list[str]]:
    """One ``depmod -e -E symvers`` pass: per module, its "needs unknown symbol S" and
    "disagrees about version of symbol S" findings (kernel exports first, then the modules')."""
    # depmod adds the symvers symbols first and then each module's exports over them (its
    # symbol hash keeps the last one added)
    provided: dict[str, int | None] = dict(kernel)
    for m in mods.values():
        for e in m.exports:
            provided[e.name] = e.crc
    out: dict[str, list[str]] = {}
    for p, m in mods.items():
        why: list[str] = []
        needed = list(m.needed)
        names = {x.name for x in needed}
        # kmod also checks __versions entries that are no undefined symbol (module_layout)
        needed += [NeededSymbol(n, c, 1) for n, c in m.versions if n not in names]
        for sym in needed:
            if sym.name in provided:
                crc = provided[sym.name]
            else:
                if sym.bind != STB_WEAK:
                    why.append(f"needs unknown symbol {sym.name}")
                continue
            if sym.crc is not None and crc is not None and sym.crc & 0xFFFFFFFF != crc & 0xFFFFFFFF:
                why.append(f"disagrees about version of symbol {sym.name}")
        if why:
            out[p] = list(dict.fromkeys(why))
    return out


# --------------------------------------------------------------------------------------
# symvers diff


@dataclass(slots=True, unsafe_hash=True)
class SymversChange:
    """One export that differs between kernels A and B: ``change`` added, removed, crc, gpl,
    namespace (one row per kind), with both sides' values."""

    change: str
    name: str
    old: str
    new: str
    module: str


def _kind(s: KernelSymbol) -> str:
    return "EXPORT_SYMBOL_GPL" if s.gpl_only else "EXPORT_SYMBOL"


def symvers_diff(a: Iterable[KernelSymbol], b: Iterable[KernelSymbol]) -> list[SymversChange]:
    """Exports added, removed, with changed CRC, GPL status or namespace, by symbol name."""
    old: dict[str, KernelSymbol] = {}
    new: dict[str, KernelSymbol] = {}
    for s in a:
        old.setdefault(s.name, s)
    for s in b:
        new.setdefault(s.name, s)
    out: list[SymversChange] = []
    for name in sorted(old.keys() | new.keys()):
        x, y = old.get(name), new.get(name)
        if y is None:
            assert x is not None
            out.append(SymversChange("removed", name, _row(x), "", x.module or "vmlinux"))
            continue
        if x is None:
            out.append(SymversChange("added", name, "", _row(y), y.module or "vmlinux"))
            continue
        mod = y.module or "vmlinux"
        if x.crc != y.crc:
            out.append(SymversChange("crc", name, _hex(x.crc), _hex(y.crc), mod))
        if x.gpl_only != y.gpl_only:
            out.append(SymversChange("gpl", name, _kind(x), _kind(y), mod))
        if (x.namespace or "") != (y.namespace or ""):
            out.append(SymversChange("namespace", name, x.namespace or "", y.namespace or "", mod))
    return out


def _hex(crc: int | None) -> str:
    return "" if crc is None else f"0x{crc:08x}"


def _row(s: KernelSymbol) -> str:
    return f"{_hex(s.crc)} {_kind(s)}{' ' + s.namespace if s.namespace else ''}"

"""Linking a 2.4 module object as modutils 2.4.16's insmod does (insmod/insmod.c), offline.

:func:`link_module_24` runs insmod's steps from ``add_kernel_symbols`` to ``init_module`` on an
:class:`~lkm.link.obj24.ObjFile` and returns a :class:`LinkedImage24`: the single blob insmod
hands to ``sys_init_module`` (``insmod -O``), the filled ``struct module`` at its head, the
module's exports as the kernel will list them, and what the ``-m`` map prints.  The kernel's
view (``query_module``: its symbols, and each loaded module's address and symbols, newest
first) comes in as :class:`KernelSymbols24`, e.g. from a ``/proc/ksyms`` copy.

Steps (and their order, which decides the bytes): kernel symbols bound (modules first; a
``GPLONLY_`` name only for a GPL-compatible license; versioned ``_R<crc>`` names matched to plain
ones when only one side uses versions), ``.this`` created first with the name string patched
into ``.kstrtab``, the i386 GOT, unresolved check, commons, init_module/cleanup_module/
kernel_version made local, ksymoops symbols, ``.kmodtab`` and export-all, ``__archdata``,
optional ``__kallsyms``, layout, relocation and patches, the struct module fields.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from dataclasses import dataclass, field

from lkm.elf import ElfFile
from lkm.elf.constants import (
    EM_386,
    EM_486,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHN_LORESERVE,
    SHT_NOBITS,
    SHT_REL,
    STB_GLOBAL,
    STB_LOCAL,
)
from lkm.errors import InvalidModule
from lkm.kernels import STRUCT_MODULE_24
from lkm.limits import VMALLOC_RESERVE_24, check_region_sizes
from lkm.link import kallsyms24
from lkm.link.image import LinkError
from lkm.link.obj24 import SHN_HIRESERVE, ObjFile, Sec, Sym, ncv_compare
from lkm.link.params24 import ParamError, apply_arguments
from lkm.link.reloc24 import FORMULAS_24, GOT_TYPES_24, INSMOD24_I386, R_386_GOT32
from lkm.module.file import ModuleFile
from lkm.symbols.sources import version_prefix

__all__ = [
    "GPL_LICENSES_24",
    "KERNEL_IDX",
    "KSYMOOPS_SECTIONS",
    "MODULE_24",
    "MODULE_REF_24",
    "MOD_AUTOCLEAN",
    "NOLOAD_BASE",
    "SIZEOF_MODULE_24",
    "SYMPREFIX",
    "Insmod24Options",
    "Insmod24Plan",
    "KernelSymbols24",
    "LinkedImage24",
    "LoadedModule24",
    "MapSymbol",
    "gpl_license_24",
    "ksymoops_object_symbol",
    "ksymoops_section_symbol",
    "link_module_24",
    "module_version",
    "plan_module_24",
]

MODULE_24 = struct.Struct("<24I")
SIZEOF_MODULE_24 = MODULE_24.size  # 96
MODULE_REF_24 = 12  # struct module_ref { dep, ref, next_ref }
MOD_AUTOCLEAN = 4
KERNEL_IDX = SHN_HIRESERVE + 1  # secidx of kernel symbols; module i: KERNEL_IDX + 1 + i
SYMPREFIX = "__insmod_"
KSYMOOPS_SECTIONS = (".text", ".rodata", ".data", ".bss")
NOLOAD_BASE = 0x12340000  # insmod -n: where the module is "loaded" without a kernel
# obj_gpl_license: must match 2.4.16's include/linux/module.h list exactly
GPL_LICENSES_24 = ("GPL", "GPL and additional rights", "Dual BSD/GPL", "Dual MPL/GPL")


@dataclass(slots=True, unsafe_hash=True)
class LoadedModule24:
    """A module already in the kernel as query_module reports it: QM_INFO's address (its
    struct module) and QM_SYMBOLS' (name, value) pairs, names exactly as exported."""

    name: str
    address: int
    symbols: list[tuple[str, int]]


@dataclass(slots=True, unsafe_hash=True)
class KernelSymbols24:
    """The kernel as insmod sees it: QM_SYMBOLS of the kernel (raw names, ``GPLONLY_`` and
    ``_R<crc>`` included), the loaded modules newest first, and uname's release and version."""

    kernel: list[tuple[str, int]]
    modules: list[LoadedModule24] = field(default_factory=list)
    release: str | None = None
    smp: bool = False

    @classmethod
    def from_ksyms(cls, text: str, *, release: str | None = None, smp: bool = False) -> KernelSymbols24:
        """From a 2.4 ``/proc/ksyms`` (``ADDR NAME`` kernel, ``ADDR NAME\\t[MODULE]``, modules
        first, newest first) or System.map-like ``ADDR TYPE NAME`` lines (kernel only).  A
        module's address is its ``__insmod_<name>_O`` symbol (the struct module), else its
        lowest symbol."""
        kernel: list[tuple[str, int]] = []
        mods: dict[str, list[tuple[str, int]]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            head, _, owner = line.partition("\t")
            fields = head.split()
            if len(fields) not in (2, 3) or (owner and not (owner.startswith("[") and owner.endswith("]"))):
                raise InvalidModule(f"ksyms line {n}: expected 'ADDRESS NAME[\\t[MODULE]]': {line[:80]!r}")
            try:
                value = int(fields[0], 16)
            except ValueError:
                raise InvalidModule(f"ksyms line {n}: bad address {fields[0]!r}") from None
            entry = (fields[-1], value)
            (mods.setdefault(owner[1:-1], []) if owner else kernel).append(entry)
        modules = []
        for name, syms in mods.items():
            tag = f"{SYMPREFIX}{name}_O"
            addr = next((v for s, v in syms if s.startswith(tag)), min(v for _, v in syms))
            modules.append(LoadedModule24(name, addr, syms))
        return cls(kernel, modules, release, smp)


@dataclass(frozen=True, slots=True)
class Insmod24Options:
    """insmod's switches: ``name`` (-o), ``autoclean`` (-k), ``export`` (-X default, False is
    -x), ``ksymoops`` (-Y default, False is -y), ``kallsyms`` (-S: add __kallsyms even if the
    kernel has none), ``persist`` (-e FILE, absolute), ``force`` (-f), ``prefix`` (-P);
    ``object_path``/``mtime`` for the ``_O`` symbol (default: the module file's realpath and
    mtime); ``args`` the ``symbol=value`` module arguments."""

    name: str | None = None
    autoclean: bool = False
    export: bool = True
    ksymoops: bool = True
    kallsyms: bool = False
    persist: str | None = None
    force: bool = False
    prefix: str | None = None
    object_path: str | None = None
    mtime: int | None = None
    args: tuple[str, ...] = ()


@dataclass(slots=True, unsafe_hash=True)
class MapSymbol:
    """A line of the ``-m`` map: final value, type letter, name."""

    value: int
    type: str
    name: str


@dataclass(slots=True, kw_only=True, unsafe_hash=True)
class LinkedImage24:
    """What insmod passes to ``init_module(name, image)``: ``image`` (``size`` bytes at ``base``,
    struct module first), ``module`` its fields by name, ``sections`` (name, address, size,
    alignment) in load order, ``exports`` the __ksymtab entries (name, value) the kernel will
    list, ``deps`` the names of the modules it uses, ``map_symbols`` the -m map's symbols,
    ``section_addresses``/``symbol_values`` by the object's own section and symbol indexes,
    ``resolved`` each undefined name of the object with the value bound to it."""

    name: str
    base: int
    size: int
    image: bytes
    module: dict[str, int]
    sections: list[tuple[str, int, int, int]]
    exports: list[tuple[str, int]]
    deps: list[str]
    map_symbols: list[MapSymbol]
    section_addresses: dict[int, int]
    symbol_values: list[int]
    resolved: dict[str, int]
    relocations: int
    warnings: list[str]

    def as_loaded(self) -> LoadedModule24:
        """This module as the next insmod will see it in the kernel (query_module)."""
        return LoadedModule24(self.name, self.base, list(self.exports))


def module_version(mod: ModuleFile) -> int:
    """get_module_version: kernel_version=a.b.c (strtoul each, c at least one digit) as
    a<<16|b<<8|c, -1 if absent or malformed."""
    m = _VERSION.match(mod.get("kernel_version") or "")
    return int(m[1]) << 16 | int(m[2]) << 8 | int(m[3]) if m else -1


_VERSION = re.compile(r"\s*\+?(\d+)\.\s*\+?(\d+)\.\s*\+?(\d+)")


def gpl_license_24(obj: ObjFile) -> bool:
    """obj_gpl_license == 0: the first ``license``-keyed .modinfo string names a GPL license."""
    sec = obj.find_section(".modinfo")
    for raw in bytes(sec.contents or b"").split(b"\0") if sec is not None else ():
        key, eq, value = raw.partition(b"=")
        if eq and b"license".startswith(key):  # insmod compares only the key's length
            return value.decode("latin-1") in GPL_LICENSES_24
    return False


def _atoi(text: str | None) -> int:
    digits = ""
    for ch in (text or "").strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits or 0)


class Insmod24Plan:
    """A module prepared by insmod up to ``create_module``: every section, symbol and table
    in place, its ``size`` known.  :meth:`link` finishes at the address the kernel gave (once:
    the object is relocated in place).  The model kernel calls ``plan_module_24``, allocates
    ``size`` bytes, then ``link(address)``."""

    def __init__(self, mod: ModuleFile, kernel: KernelSymbols24, opt: Insmod24Options) -> None:
        elf = mod.elf
        path = mod.path
        if elf.e_machine not in (EM_386, EM_486) or elf.elfclass != 32:
            raise LinkError("ELF file not for this architecture (2.4 linking is i386)", path=path)
        self.mod, self.opt = mod, opt
        self.name = name = opt.name or _insmod_name(path or mod.name)
        if any(m.name == name for m in kernel.modules):
            raise LinkError(f"a module named {name} already exists", path=path)
        self.obj = obj = ObjFile(elf, path)
        self.warnings: list[str] = []
        m_version = module_version(mod)
        if m_version == -1:
            raise LinkError("couldn't find the kernel version the module was compiled for", path=path)
        k_crcs = next((v for s, v in kernel.kernel if s == "Using_Versions"), 0)
        if mod.get("kernel_version") is not None:
            m_crcs = _atoi(mod.get("using_checksums"))
        else:
            m_crcs = int(obj.find_symbol("Using_Versions") is not None)
        m_release = (mod.get("kernel_version") or "")[:32]
        if kernel.release is not None and (not m_crcs or not k_crcs) and kernel.release[:32] != m_release:
            why = (f"kernel-module version mismatch: {path} was compiled for kernel version {m_release} "
                   f"while this kernel is version {kernel.release}")  # fmt: skip
            if not opt.force:
                raise LinkError(why, path=path)
            self.warnings.append(why)
        if m_crcs != k_crcs:
            prefix = opt.prefix
            if prefix is None:
                prefix = version_prefix(s for s, _ in kernel.kernel)
            if prefix is None:
                prefix = "smp_" if kernel.smp else ""
            obj.set_symbol_compare(*ncv_compare(prefix))
        gpl = gpl_license_24(obj)
        used, gplonly_seen = _add_kernel_symbols(obj, kernel, gpl)
        self.this = _create_this_module(obj, name)
        self.got = _create_got(obj)
        missing = obj.undefined()
        if missing:
            why = "; ".join(f"unresolved symbol {s}" for s in missing)
            if not gpl and gplonly_seen:
                why += " (license not GPL-compatible: GPLONLY_ symbols are not available to it)"
            raise LinkError(why, path=path)
        obj.allocate_commons()
        try:
            apply_arguments(obj, mod, opt.args)
        except ParamError as exc:
            raise LinkError(str(exc), path=path) from None
        for special in ("cleanup_module", "init_module", "kernel_version"):
            sym = obj.find_symbol(special)
            if sym is not None:
                sym.info = STB_LOCAL << 4 | sym.info & 0xF
        persist = _persist_file(mod, opt)
        if opt.ksymoops:
            _add_ksymoops_symbols(obj, mod, name, self.this, persist, m_version, opt)
        self.deps = _create_module_ksymtab(obj, kernel, used, opt.export)
        obj.create_alloced_section("__archdata", 16, 0)  # i386 arch_archdata adds nothing
        self.kallsyms: Sec | None = None
        if opt.kallsyms or _kernel_has_kallsyms(kernel):
            self.kallsyms = obj.find_section(kallsyms24.SECTION)
            if self.kallsyms is None:
                self.kallsyms = obj.create_alloced_section(kallsyms24.SECTION, 0, 0)
            kallsyms24.fill(obj, self.kallsyms)
        self.size = obj.load_size()

        check_region_sizes({"image": self.size}, mod.path, area=VMALLOC_RESERVE_24)
        self._done = False

    def link(self, base: int) -> LinkedImage24:
        """obj_relocate at ``base``, __kallsyms again, struct module filled, the image."""
        if self._done:
            raise ValueError("an Insmod24Plan links once (the object is relocated in place)")
        self._done = True
        if not 0 <= base <= (1 << 32) - self.size:
            raise InvalidModule(
                f"{self.mod.name}: base {base:#x} (+{self.size:#x}) does not fit the 32-bit address space",
                errno.EINVAL,
                path=self.mod.path,
            )
        obj, elf = self.obj, self.mod.elf
        count = _relocate(obj, base, self.got, self.mod.name)
        if self.kallsyms is not None:
            kallsyms24.fill(obj, self.kallsyms)
        fields = _fill_struct_module(obj, self.this, self.size, len(self.deps), self.opt.autoclean)
        image = obj.image(self.size)
        return LinkedImage24(
            name=self.name,
            base=base,
            size=self.size,
            image=bytes(image),
            module=fields,
            sections=[(s.name, s.addr, s.size, s.align) for s in obj.load_order],
            exports=_exports(obj, image, base),
            deps=self.deps,
            map_symbols=_map_symbols(obj),
            section_addresses={s.idx: s.addr for s in obj.sections[: elf.e_shnum] if s.flags & SHF_ALLOC},
            symbol_values=_symbol_values(obj, elf),
            resolved=_resolved(obj, elf),
            relocations=count,
            warnings=self.warnings,
        )


def plan_module_24(
    mod: ModuleFile, kernel: KernelSymbols24, options: Insmod24Options | None = None
) -> Insmod24Plan:
    """insmod's steps up to create_module for ``mod`` (a 2.4 i386 object) against ``kernel``.
    Raises :class:`~lkm.link.image.LinkError` with insmod's wording ("unresolved symbol X",
    "kernel-module version mismatch", ...)."""
    return Insmod24Plan(mod, kernel, options or Insmod24Options())


def link_module_24(
    mod: ModuleFile, kernel: KernelSymbols24, base: int = NOLOAD_BASE, options: Insmod24Options | None = None
) -> LinkedImage24:
    """Link ``mod`` at ``base`` as insmod does against ``kernel`` (plan, then link)."""
    return plan_module_24(mod, kernel, options).link(base)


def _insmod_name(path: str) -> str:
    """The module name insmod derives: basename without .o, .mod or .o.gz."""
    base = os.path.basename(path)
    for ext in (".o.gz", ".o", ".mod"):
        if base.endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base


def _add_kernel_symbols(obj: ObjFile, kernel: KernelSymbols24, gpl: bool) -> tuple[list[int], bool]:
    """add_kernel_symbols: loaded modules' symbols first (newest first), then the kernel's; a
    name is bound only where the object holds it as non-local.  Returns the indexes of the
    modules that supplied a symbol, and whether a GPLONLY_ name was seen."""
    used: list[int] = []
    seen = False
    sources = [(KERNEL_IDX + 1 + i, m.symbols) for i, m in enumerate(kernel.modules)]
    sources.append((KERNEL_IDX, kernel.kernel))
    for idx, syms in sources:
        supplied = False
        for raw, value in syms:
            sname = raw
            if sname.startswith("GPLONLY_"):
                seen = True
                if not gpl:
                    continue
                sname = sname[8:]
            sym = obj.find_symbol(sname)
            if sym is not None and sym.bind != STB_LOCAL:
                sym = obj.add_symbol(sname, -1, STB_GLOBAL << 4, idx, value, 0)
                supplied |= sym.secidx == idx
        if supplied and idx != KERNEL_IDX:
            used.append(idx - KERNEL_IDX - 1)
    return used, seen


def _create_this_module(obj: ObjFile, name: str) -> Sec:
    """create_this_module: .this (struct module, zeroed) first in the image, __this_module."""
    sec = obj.create_alloced_section_first(".this", 4, SIZEOF_MODULE_24, SHF_WRITE)
    obj.add_symbol("__this_module", -1, STB_LOCAL << 4 | 1, sec.idx, 0, SIZEOF_MODULE_24)
    obj.string_patch(sec.idx, STRUCT_MODULE_24.index("name") * 4, name)
    return sec


def _create_got(obj: ObjFile) -> Sec | None:
    """i386 arch_create_got: a 4-byte slot per symbol named by a GOT32 relocation, in order of
    first use; a .got (maybe empty) also when GOTPC/GOTOFF appear."""
    elf = obj.elf
    offset, needed = 0, False
    for sec in list(obj.sections):
        if sec.type != SHT_REL:
            continue
        syms = elf.symbols(elf.sections[sec.link])
        for r in elf.relocations(elf.sections[sec.idx]):
            if r.type in GOT_TYPES_24:
                needed = True
            if r.type != R_386_GOT32 or r.sym >= len(syms):
                continue
            y = syms[r.sym]
            sym = obj.find_symbol(y.name or obj.sections[y.shndx].name)
            if sym is None:
                raise LinkError(f"GOT32 relocation against unknown symbol {y.name}", path=obj.path)
            if sym.got is None:
                sym.got, offset = offset, offset + 4
    if offset or needed:
        return obj.create_alloced_section(".got", 4, offset, SHF_WRITE)
    return None


def _persist_file(mod: ModuleFile, opt: Insmod24Options) -> str | None:
    """The persist file (-e) when the module has a persistent ('p') parameter."""
    if not opt.persist:
        return None
    persistent = False
    for key, value in mod.modinfo:
        if key.startswith("parm_") and not key.startswith("parm_desc_"):
            t = value.lstrip("0123456789-")
            if t.endswith("p") and len(t) >= 2:
                if t[-2] == "s":
                    raise LinkError(f"parameter {key[5:]} is invalid persistent string", path=mod.path)
                persistent = True
    if not persistent:
        return None
    if not opt.persist.startswith("/"):
        raise LinkError(f"Persistent filenames must be absolute, ignoring '{opt.persist}'", path=mod.path)
    if not opt.ksymoops:
        raise LinkError("has persistent data but ksymoops symbols are not available", path=mod.path)
    return opt.persist


def _add_ksymtab(obj: ObjFile, sym: Sym) -> None:
    """add_ksymtab: a {value, name} entry at the end of an allocated __ksymtab."""
    sec = obj.find_section("__ksymtab")
    if sec is not None and not sec.flags & SHF_ALLOC:
        sec.name = "x_ksymtab"  # EXPORT_NO_SYMBOLS' unallocated one is renamed out of the way
        sec = None
    if sec is None:
        sec = obj.create_alloced_section("__ksymtab", 4, 0)
    ofs = obj.extend_section(sec, 8)
    obj.symbol_patch(sec.idx, ofs, sym)
    obj.string_patch(sec.idx, ofs + 4, sym.name)


def ksymoops_object_symbol(name: str, path: str, mtime: int, version: int) -> str:
    """``__insmod_<name>_O<path>_M<mtime>_V<version>``: mtime upper-case hex, 8 digits (i386)."""
    return f"{SYMPREFIX}{name}_O{path}_M{mtime & 0xFFFFFFFF:08X}_V{version}"


def ksymoops_section_symbol(name: str, section: str, size: int) -> str:
    return f"{SYMPREFIX}{name}_S{section}_L{size}"


def _add_ksymoops_symbols(
    obj: ObjFile, mod: ModuleFile, name: str, this: Sec, persist: str | None, version: int,
    opt: Insmod24Options,
) -> None:  # fmt: skip
    """add_ksymoops_symbols: _O (object, mtime, version) and _P at .this, _S per non-empty
    .text/.rodata/.data/.bss; into __ksymtab now if it exists or exports are off."""
    path = opt.object_path or os.path.realpath(mod.path or name)
    mtime = opt.mtime
    if mtime is None:
        try:
            mtime = int(os.stat(path).st_mtime)
        except OSError:
            mtime = 0
    use_ksymtab = obj.find_section("__ksymtab") is not None or not opt.export
    names = [(ksymoops_object_symbol(name, path, mtime, version), this)]
    if persist is not None:
        names.append((f"{SYMPREFIX}{name}_P{persist}", this))
    for secname in KSYMOOPS_SECTIONS:
        sec = obj.find_section(secname)
        if sec is not None and sec.size:
            names.append((ksymoops_section_symbol(name, secname, sec.size), sec))
    for sname, sec in names:
        sym = obj.add_symbol(sname, -1, STB_GLOBAL << 4, sec.idx, 0, 0)
        if use_ksymtab:
            _add_ksymtab(obj, sym)


def _create_module_ksymtab(obj: ObjFile, kernel: KernelSymbols24, used: list[int], export: bool) -> list[str]:
    """create_module_ksymtab: a module_ref per used module in .kmodtab (ref -> __this_module),
    and without a __ksymtab every non-local loaded symbol exported (unless -x)."""
    if used:
        sec = obj.create_alloced_section(".kmodtab", 4, MODULE_REF_24 * len(used))
        this = obj.find_symbol("__this_module")
        assert sec.contents is not None and this is not None
        for k, i in enumerate(sorted(used)):
            struct.pack_into("<III", sec.contents, k * MODULE_REF_24, kernel.modules[i].address, 0, 0)
            obj.symbol_patch(sec.idx, k * MODULE_REF_24 + 4, this)
    if export and obj.find_section("__ksymtab") is None:
        loaded = {s.idx for s in obj.sections if s.flags & SHF_ALLOC}
        for sym in list(obj.symbols()):
            if (
                sym.bind != STB_LOCAL
                and sym.secidx <= SHN_HIRESERVE
                and (sym.secidx >= SHN_LORESERVE or sym.secidx in loaded)
            ):
                _add_ksymtab(obj, sym)
    return [kernel.modules[i].name for i in sorted(used)]


def _kernel_has_kallsyms(kernel: KernelSymbols24) -> bool:
    """add_kallsyms: the kernel has __start___kallsyms < __stop___kallsyms (names up to _R)."""
    start = stop = 0
    for raw, value in kernel.kernel:
        base = raw[: raw.find("_R")] if "_R" in raw else raw
        if base and f"__start_{kallsyms24.SECTION}".startswith(base):
            start = value
        elif base and f"__stop_{kallsyms24.SECTION}".startswith(base):
            stop = value
    return start < stop


def _relocate(obj: ObjFile, base: int, got: Sec | None, modname: str) -> int:
    """obj_relocate: every section at base + offset, every REL section whose target is
    allocated applied in section order, then the string and symbol patches."""
    elf = obj.elf
    obj.baseaddr = base
    for sec in obj.sections:
        sec.addr = (sec.addr + base) & 0xFFFFFFFF
    got_addr = got.addr if got is not None else 0
    count = 0
    errors: list[str] = []
    for relsec in obj.sections[: elf.e_shnum]:
        if relsec.type != SHT_REL:
            continue
        target = obj.sections[relsec.info]
        if not target.flags & SHF_ALLOC:
            continue
        syms = elf.symbols(elf.sections[relsec.link])
        buf = target.contents
        for r in elf.relocations(elf.sections[relsec.idx]):
            count += 1
            where = f"{modname}: {target.name}+{r.offset:#x}"
            if r.sym >= len(syms):
                errors.append(f"{where}: Bad symbol index: {r.sym:08x} >= {len(syms):08x}")
                continue
            sym = obj.rel_symbol(syms, r.sym) if r.sym else None
            kind = INSMOD24_I386.get(r.type)
            label = sym.name if sym is not None else syms[r.sym].name
            if kind is None:
                errors.append(f"{where}: Unhandled relocation of type {r.type} for {label}")
                continue
            if r.type == 0:
                continue
            if buf is None or r.offset + 4 > min(target.size, len(buf)):
                errors.append(f"{where}: relocation past the end of the section")
                continue
            value = obj.final_value(sym)
            slot = 0
            if r.type == R_386_GOT32:
                assert sym is not None and sym.got is not None
                assert got is not None and got.contents is not None
                if not sym.got_done:
                    sym.got_done = True
                    # i386 addresses: a 64-bit kernel map's values wrap as insmod's would
                    struct.pack_into("<I", got.contents, sym.got, value & 0xFFFFFFFF)
                slot = sym.got
            a = struct.unpack_from("<I", buf, r.offset)[0]
            p = target.addr + r.offset
            v = FORMULAS_24[kind[1]](a, value, p, got_addr, slot, base)
            struct.pack_into("<I", buf, r.offset, v & 0xFFFFFFFF)
    if errors:
        raise LinkError("; ".join(errors), path=obj.path)
    strsec = obj.find_section(".kstrtab")
    for secidx, offset, at in obj.string_patches:
        assert strsec is not None
        _patch(obj, obj.sections[secidx], offset, strsec.addr + at)
    for secidx, offset, sym in obj.symbol_patches:
        _patch(obj, obj.sections[secidx], offset, obj.final_value(sym))
    return count


def _patch(obj: ObjFile, sec: Sec, offset: int, value: int) -> None:
    if sec.contents is None or offset < 0 or offset + 4 > len(sec.contents):
        raise LinkError(f"{sec.name}+{offset:#x}: patch past the end of the section", path=obj.path)
    struct.pack_into("<I", sec.contents, offset, value & 0xFFFFFFFF)


def _fill_struct_module(obj: ObjFile, this: Sec, size: int, ndeps: int, autoclean: bool) -> dict[str, int]:
    """init_module (insmod's): the fields of struct module in .this, after relocation."""
    assert this.contents is not None
    f = dict(zip(STRUCT_MODULE_24, MODULE_24.unpack_from(this.contents), strict=True))
    f["size_of_struct"] = SIZEOF_MODULE_24
    f["size"] = size
    f["flags"] = MOD_AUTOCLEAN if autoclean else 0
    sec = obj.find_section("__ksymtab")
    if sec is not None and sec.size:
        f["syms"], f["nsyms"] = sec.addr, sec.size // 8
    if ndeps:
        kmodtab = obj.find_section(".kmodtab")
        assert kmodtab is not None
        f["deps"], f["ndeps"] = kmodtab.addr, ndeps
    f["init"] = obj.final_value(obj.find_symbol("init_module"))
    f["cleanup"] = obj.final_value(obj.find_symbol("cleanup_module"))
    sec = obj.find_section("__ex_table")
    if sec is not None:
        f["ex_table_start"], f["ex_table_end"] = sec.addr, sec.addr + sec.size
    runsize = 0
    for init in (".text.init", ".data.init"):
        sec = obj.find_section(init)
        if sec is not None and (not runsize or runsize > sec.addr - this.addr):
            runsize = sec.addr - this.addr
    f["runsize"] = runsize
    for key, secname in (("archdata", "__archdata"), ("kallsyms", kallsyms24.SECTION)):
        sec = obj.find_section(secname)
        if sec is not None and sec.size:
            f[f"{key}_start"], f[f"{key}_end"] = sec.addr, sec.addr + sec.size
    MODULE_24.pack_into(this.contents, 0, *(f[k] & 0xFFFFFFFF for k in STRUCT_MODULE_24))
    return f


def _exports(obj: ObjFile, image: bytearray, base: int) -> list[tuple[str, int]]:
    """The __ksymtab entries as the kernel reads them from the image (QM_SYMBOLS)."""
    sec = obj.find_section("__ksymtab")
    if sec is None or not sec.size or not sec.flags & SHF_ALLOC:
        return []
    out = []
    for k in range(sec.size // 8):
        at = sec.addr - base + 8 * k
        if not 0 <= at <= len(image) - 8:
            break
        value, name_at = struct.unpack_from("<II", image, at)
        at = name_at - base
        if not 0 <= at < len(image):
            continue
        end = image.find(b"\0", at)
        out.append((image[at : end if end >= 0 else len(image)].decode("utf-8", "surrogateescape"), value))
    return out


def _map_symbols(obj: ObjFile) -> list[MapSymbol]:
    """print_load_map's symbols: loaded or absolute, stably sorted by final value."""
    rows = []
    for sym in obj.symbols():
        if sym.secidx > SHN_HIRESERVE or not obj.is_loaded(sym.secidx):
            continue
        if sym.secidx == SHN_ABS:
            letter, value = "A", sym.value
        else:
            sec = obj.sections[sym.secidx]
            letter = "T" if sec.flags & SHF_EXECINSTR else "D" if sec.flags & SHF_WRITE else "R"
            if sec.type == SHT_NOBITS:  # never left after allocate_commons
                letter = "B"
            value = obj.final_value(sym)
        rows.append(MapSymbol(value, letter.lower() if sym.bind == STB_LOCAL else letter, sym.name))
    rows.sort(key=lambda m: m.value)
    return rows


def _symbol_values(obj: ObjFile, elf: ElfFile) -> list[int]:
    """Each symbol of the object's table at its final value (0 where unresolved)."""
    syms = elf.symbols()
    return [0] + [obj.final_value(obj.rel_symbol(syms, i)) for i in range(1, len(syms))]


def _resolved(obj: ObjFile, elf: ElfFile) -> dict[str, int]:
    """Undefined names of the object with what they were bound to (kernel, modules, weak 0,
    insmod's own __this_module)."""
    out = {}
    for y in elf.symbols()[1:]:
        if y.shndx == 0 and y.name:
            sym = obj.find_symbol(y.name)
            if sym is not None and sym.secidx != 0:
                out[y.name] = obj.final_value(sym)
    return out

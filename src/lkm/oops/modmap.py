"""Where the loaded modules lie: the module map a symboliser needs.

A :class:`ModuleMap` is what the kernel knows of one module when it symbolises an address
(``__module_address`` + ``find_kallsyms_symbol``, kernel/module/kallsyms.c): the memory
regions the module occupies and, per region, where a symbol's size stops when no later symbol
does ("nextval").  The regions differ by kernel (``regions`` of :mod:`lkm.kernels`' records):

* up to 6.3 (``linux-6.1``): one core and one init area; nextval is the end of the area's
  *text* (``core_layout.text_size``), also for data addresses, so the kernel prints a
  wrapped-around size there (``crc16_table+0x20/0xffffffffffffff60``);
* from 6.4 (``linux-6.12``): one area per memory type (text, data, rodata, ...); nextval is
  the end of the area holding the address.

Sources: a ``/proc/modules`` + ``/sys/module/*/sections`` snapshot (:func:`from_snapshot`),
a :class:`lkm.kernel.interface.Kernel` (:func:`from_kernel`), optionally with the module
files, whose section sizes give the exact areas (the kernel's own layout,
:func:`lkm.link.layout.layout_module`).  Without a file the areas are inferred from the
section addresses: up to 6.3 the text ends where the first non-text section starts (with
STRICT_MODULE_RWX); from 6.4 each area starts page-aligned with its first section and ends a
(vmalloc guard) page before the next area, the last one taking what /proc/modules' size
leaves.  2.4's ``__insmod_<mod>_S<sec>_L<len>`` symbols give a map too
(:func:`from_ksyms24`), or, without them, a module object matched through an export it
defines once (:func:`match_object24`, ksymoops' method).  :func:`module_symbols` gives a
module's kallsyms symbols from its file when /proc/kallsyms is not at hand.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from lkm.errors import LkmError
from lkm.kernels import VERSIONS, KernelVersion, by_name, for_release
from lkm.link.image import LinkError
from lkm.link.insmod24 import Insmod24Options, KernelSymbols24, link_module_24
from lkm.link.layout import KernelConfig, layout_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from lkm.kernel.interface import Kernel
    from lkm.link.layout import KernelConfig, Layout
    from lkm.module.file import ModuleFile

__all__ = [
    "PAGE",
    "Area",
    "Insmod24",
    "ModuleMap",
    "build_map",
    "from_kernel",
    "from_ksyms24",
    "from_snapshot",
    "insmod_symbols",
    "kernel_rules",
    "match_object24",
    "module_symbols",
    "parse_proc_modules",
    "parse_sections",
]

PAGE = 4096

# Section name prefixes of executable sections (what SHF_EXECINSTR sections of modules are called).
_EXEC_PREFIXES = (".text", ".exit.text", ".init.text", ".noinstr.text", ".altinstr_replacement",
                  ".static_call.text", ".sched.text", ".ref.text", ".meminit.text", ".fixup",
                  ".entry.text", ".kprobes.text", ".cpuidle.text", ".spinlock.text", ".plt",
                  ".text.ftrace_trampoline", ".init.plt")  # fmt: skip


def kernel_rules(release: str) -> str:
    """The name of the rules of kernel ``release`` (:func:`lkm.kernels.for_release`)."""
    return for_release(release).name


def _version(rules: str) -> KernelVersion:
    try:
        return by_name(rules)
    except ValueError:
        raise LkmError(f"unknown kernel rules {rules!r}; known: {', '.join(VERSIONS)}") from None


@dataclass(slots=True, unsafe_hash=True)
class Area:
    """One memory area of a module: [start, end); ``nextval`` the default end of a symbol found
    there, ``floor`` the lowest symbol value that may be found (0: any of the module)."""

    name: str
    start: int
    end: int
    nextval: int
    init: bool
    floor: int = 0


@dataclass(frozen=True, slots=True)
class ModuleMap:
    """One loaded module: name, /proc/modules facts, section addresses and its areas."""

    name: str
    size: int
    state: str
    base: int
    taints: str
    sections: dict[str, int]
    areas: list[Area]
    path: str | None = None

    def area_of(self, address: int) -> Area | None:
        for a in self.areas:
            if a.start <= address < a.end:
                return a
        return None


# -- snapshots --------------------------------------------------------------------------------

_PROC_MODULES = re.compile(
    r"^(?P<name>\S+) (?P<size>\d+) (?P<refs>-?\d+) (?P<deps>\S+) (?P<state>Live|Loading|Unloading)"
    r" 0x(?P<base>[0-9a-f]+)(?: (?P<taints>\([A-Z+\-]+\)))?\s*$"
)


def parse_proc_modules(text: str) -> list[tuple[str, int, str, int, str]]:
    """(name, size, state, base, taints) rows of /proc/modules."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _PROC_MODULES.match(line)
        if m is None:
            raise LkmError(f"/proc/modules line {n}: malformed: {line[:80]!r}")
        rows.append((m["name"], int(m["size"]), m["state"], int(m["base"], 16), m["taints"] or ""))
    return rows


def parse_sections(text: str) -> dict[str, dict[str, int]]:
    """``MODULE SECTION ADDRESS`` lines (as scripts/guest_oops.py saves /sys/module/*/sections)."""
    out: dict[str, dict[str, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise LkmError(f"sections line {n}: expected 'MODULE SECTION ADDRESS': {line[:80]!r}")
        try:
            out.setdefault(parts[0], {})[parts[1]] = int(parts[2], 16)
        except ValueError:
            raise LkmError(f"sections line {n}: bad address {parts[2]!r}") from None
    return out


def from_snapshot(
    proc_modules: str,
    sections: str | Mapping[str, Mapping[str, int]],
    *,
    rules: str = "linux-6.12",
    files: Mapping[str, ModuleFile] | None = None,
    config: KernelConfig | None = None,
) -> dict[str, ModuleMap]:
    """Module maps (by name, /proc/modules order) from a snapshot; ``files`` (name -> module
    file) make the areas exact."""
    secs = parse_sections(sections) if isinstance(sections, str) else sections
    out: dict[str, ModuleMap] = {}
    for name, size, state, base, taints in parse_proc_modules(proc_modules):
        mod_secs = dict(secs.get(name, {}))
        mf = (files or {}).get(name)
        out[name] = build_map(name, size, state, base, taints, mod_secs, rules, mf, config)
    _clip_inferred(out)
    return out


def _clip_inferred(maps: dict[str, ModuleMap]) -> None:
    """Areas guessed without a module file end at the latest a guard page before the next
    area of any module (vmalloc places allocations one after another)."""
    starts = sorted(a.start for m in maps.values() for a in m.areas)
    for m in maps.values():
        if m.path is not None:
            continue
        for a in m.areas:
            i = bisect_right(starts, a.start)
            if i < len(starts) and a.end > starts[i] - PAGE:
                a.end = max(a.start + PAGE, starts[i] - PAGE)
                a.nextval = min(a.nextval, a.end)


def from_kernel(
    kernel: Kernel, *, files: Mapping[str, ModuleFile] | None = None, config: KernelConfig | None = None
) -> dict[str, ModuleMap]:
    """Module maps of a running (or model) kernel: Kernel.modules() and Kernel.sections()."""
    rules = kernel_rules(kernel.release)
    out: dict[str, ModuleMap] = {}
    for lm in kernel.modules():
        secs = kernel.sections(lm.name)
        mf = (files or {}).get(lm.name)
        base = lm.address or secs.get(".text", 0)
        out[lm.name] = build_map(lm.name, lm.size, lm.state, base, lm.taints, secs, rules, mf, config)
    _clip_inferred(out)
    return out


def build_map(
    name: str,
    size: int,
    state: str,
    base: int,
    taints: str,
    sections: dict[str, int],
    rules: str,
    mf: ModuleFile | None,
    config: KernelConfig | None = None,
) -> ModuleMap:
    """One module's map; ``config`` the kernel's configuration (default: Debian's, with
    KALLSYMS_ALL and STRICT_MODULE_RWX), which decides the module's layout."""
    version = _version(rules)
    loading = state != "Live"
    areas = _areas_from_file(mf, sections, rules, loading, config) if mf is not None else None
    if areas is None:
        areas = _areas_inferred(base, size, sections, rules, loading)
    if version.regions == "area":
        for a in areas:
            a.floor = a.start
    return ModuleMap(name, size, state, base, taints, sections, areas, mf.path if mf is not None else None)


def _is_exec(name: str) -> bool:
    return name.startswith(_EXEC_PREFIXES)


def _areas_from_file(
    mf: ModuleFile, sections: dict[str, int], rules: str, loading: bool, config: KernelConfig | None
) -> list[Area] | None:
    """Areas from the kernel's layout of the module file, placed by the section addresses."""
    version = _version(rules)
    if version.user_space_link:
        return None
    try:
        layout = layout_module(mf.elf, version, config or KernelConfig(kallsyms_all=True))
    except (LkmError, ValueError):
        return None
    bases = _region_bases(layout, sections)
    areas = []
    for region, base in bases.items():
        init = region.startswith("init")
        if init and not loading:
            continue
        end = base + layout.alloc_size(region)
        if version.regions == "text_end":
            nextval = base + layout.marks.get(region, {}).get("text_size", 0)
        else:
            nextval = end
        areas.append(Area(region, base, end, nextval, init))
    return areas or None


def _region_bases(layout: Layout, sections: Mapping[str, int]) -> dict[str, int]:
    """Each region's load address, from the address of a section placed in it."""
    bases: dict[str, int] = {}
    for p in layout.placements.values():
        addr = sections.get(p.name)
        if addr is not None and p.region not in bases:
            bases[p.region] = addr - p.offset
    return bases


def _areas_inferred(base: int, size: int, sections: dict[str, int], rules: str, loading: bool) -> list[Area]:
    """Areas guessed from section addresses alone (no module file)."""
    init_secs = {n: a for n, a in sections.items() if n.startswith(".init")}
    core_secs = {n: a for n, a in sections.items() if not n.startswith(".init") and a}
    areas: list[Area] = []
    version = _version(rules)
    if version.regions == "text_end" or version.user_space_link:
        core_end = base + size
        if loading and init_secs:
            init_base = min(init_secs.values()) & ~(PAGE - 1)
            if init_base > base:
                core_end = min(core_end, init_base)
            init_data = [a for n, a in init_secs.items() if not _is_exec(n)]
            init_text_end = min(init_data) if init_data else base + size
            areas.append(Area("init", init_base, max(base + size, init_text_end), init_text_end, True))
        data = [a for n, a in core_secs.items() if not _is_exec(n) and a >= base]
        text_end = min(data) if data else core_end
        areas.insert(0, Area("core", base, core_end, text_end, False))
        return areas
    # 6.4+: each memory type is its own allocation, page-aligned, its first section at its
    # start; vmalloc leaves a guard page after each, so an area ends a page before the next
    # one starts, and the last one gets what /proc/modules' size leaves over.
    starts = sorted({a for n, a in sections.items() if a and (loading or not n.startswith(".init"))})
    firsts = [a for a in starts if not a % PAGE]
    if not firsts:
        return [Area("core", base, base + size, base + size, False)]
    inits = {a for n, a in sections.items() if n.startswith(".init")}
    bounds: list[tuple[int, int]] = []
    for i, a in enumerate(firsts):
        if i + 1 < len(firsts):
            bounds.append((a, firsts[i + 1] - PAGE))
        else:
            used = sum(e - b for b, e in bounds)
            last = max(s for s in starts if s >= a)
            end = a + size - used if size > used else 0
            bounds.append((a, max(end, (last | (PAGE - 1)) + 1)))
    for a, e in bounds:
        init = any(a <= x < e for x in inits)
        areas.append(Area(("init_" if init else "") + "area", a, max(e, a + PAGE), max(e, a + PAGE), init))
    return areas


# -- 2.4: ksymoops' __insmod symbols ----------------------------------------------------------

_INSMOD = re.compile(r"__insmod_(?P<mod>.+?)_(?:O(?P<path>.*)_M(?P<mtime>[0-9A-Fa-f]+)_V(?P<ver>-?\d+)"
                     r"|S(?P<sec>.*)_L(?P<len>\d+)|P(?P<persist>.*))$")  # fmt: skip


@dataclass(slots=True, unsafe_hash=True)
class Insmod24:
    """What one module's ``__insmod_*`` symbols say: object path, mtime, version, sections."""

    module: str
    path: str | None
    mtime: int | None
    version: int | None
    sections: dict[str, tuple[int, int]]
    base: int | None


def insmod_symbols(symbols: Iterable[tuple[str, int]]) -> dict[str, Insmod24]:
    """Parse ``__insmod_*`` (name, address) pairs, ksymoops' regex, into per-module records."""
    out: dict[str, Insmod24] = {}
    for name, addr in symbols:
        m = _INSMOD.match(name)
        if m is None:
            continue
        rec = out.get(m["mod"])
        if rec is None:
            rec = out[m["mod"]] = Insmod24(m["mod"], None, None, None, {}, None)
        if m["path"] is not None:
            rec.path, rec.mtime, rec.version, rec.base = m["path"], int(m["mtime"], 16), int(m["ver"]), addr
        elif m["sec"] is not None:
            rec.sections[m["sec"]] = (addr, int(m["len"]))
    return out


def from_ksyms24(symbols: Iterable[tuple[str, int]]) -> dict[str, ModuleMap]:
    """Module maps of a 2.4 kernel from the ``__insmod_*_S<sec>_L<len>`` symbols of /proc/ksyms."""
    out: dict[str, ModuleMap] = {}
    for mod, rec in insmod_symbols(symbols).items():
        areas = [
            Area(sec, start, start + length, start + length, False)
            for sec, (start, length) in rec.sections.items()
        ]
        if not areas:
            continue
        base = rec.base if rec.base is not None else min(a.start for a in areas)
        size = max(a.end for a in areas) - base
        secs = {sec: start for sec, (start, _length) in rec.sections.items()}
        out[mod] = ModuleMap(
            mod, size, "Live", base, "", secs, sorted(areas, key=lambda a: a.start), rec.path
        )
    return out


# -- module symbols from the module file ------------------------------------------------------


def module_symbols(
    mf: ModuleFile, mod: ModuleMap, rules: str = "linux-6.12", config: KernelConfig | None = None
) -> list[tuple[int, str]]:
    """(address, name) of the symbols the kernel's kallsyms holds for a loaded module, in
    symtab order, from its file and section addresses: while loading, the whole symbol table;
    once live, the kept core symbols (layout_symtab's is_core_symbol choice)."""
    elf = mf.elf
    syms = elf.symbols()
    secs = elf.sections
    layout = layout_module(elf, rules, config or KernelConfig(kallsyms_all=True))
    if mod.state == "Live":
        if layout.kallsyms is None:
            return []
        chosen = layout.kallsyms.kept[1:]
    else:
        chosen = list(range(1, len(syms)))
    # sections the snapshot does not list (empty ones) placed by the layout
    bases = _region_bases(layout, mod.sections)
    where = {p.number: bases[p.region] + p.offset for p in layout.placements.values() if p.region in bases}
    out = []
    for i in chosen:
        s = syms[i]
        if not s.name or s.shndx == 0:
            continue
        if s.shndx >= len(secs):  # SHN_ABS and other reserved indices: the value as is
            out.append((s.value, s.name))
            continue
        base = mod.sections.get(secs[s.shndx].name, where.get(s.shndx))
        if base is not None:
            out.append((base + s.value, s.name))
    return out


def match_object24(
    module: str,
    exports: Iterable[tuple[str, int]],
    obj: ModuleFile,
    kernel: Iterable[tuple[str, int]] = (),
) -> tuple[ModuleMap, list[tuple[int, str]]] | None:
    """ksymoops' method for a 2.4 module without ``__insmod`` symbols: an exported symbol (from
    /proc/ksyms) that the object defines exactly once fixes the module's load base; every
    other symbol of the object is placed as insmod laid the module out (modutils 2.4.16's
    insmod, :func:`lkm.link.insmod24.link_module_24`, linked against ``kernel``'s exports; with
    and without insmod's ksymoops symbols and export-all, the variant on which all unique
    exports agree).  Gives the module's map and all its symbols at their load addresses, or
    None when no export is unique in the object or no layout agrees with the exports."""

    elf = obj.elf
    syms = elf.symbols()
    counts: dict[str, int] = {}
    for s in syms[1:]:
        if s.name and 0 < s.shndx < len(elf.sections) and s.type not in (3, 4):  # not SECTION/FILE
            counts[s.name] = counts.get(s.name, 0) + 1
    unique = [(n, a) for n, a in exports if counts.get(n) == 1]
    if not unique:
        return None
    core = KernelSymbols24(list(kernel))
    for opt in (
        Insmod24Options(ksymoops=False),
        Insmod24Options(),
        Insmod24Options(ksymoops=False, export=False),
    ):
        try:
            img = link_module_24(obj, core, 0, opt)
        except (LinkError, LkmError):
            continue
        at0 = {s.name: img.symbol_values[i] for i, s in enumerate(syms) if counts.get(s.name) == 1}
        deltas = {(a - at0[n]) & 0xFFFFFFFF for n, a in unique if n in at0}
        if len(deltas) != 1:
            continue
        (delta,) = deltas
        symbols = [((img.symbol_values[i] + delta) & 0xFFFFFFFF, s.name) for i, s in enumerate(syms)
                   if i and s.name and 0 < s.shndx < len(elf.sections) and s.type not in (3, 4)]  # fmt: skip
        base = delta  # the image (struct module first) was linked at 0
        area = Area("image", base, base + img.size, base + img.size, False, base)
        secs = {name: (addr + delta) & 0xFFFFFFFF for name, addr, _size, _align in img.sections}
        return ModuleMap(module, img.size, "Live", base, "", secs, [area], obj.path), symbols
    return None

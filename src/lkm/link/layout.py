"""Section layout: where each section of a module goes, as the kernel (6.1, 6.12) or 2.4's
insmod lays it out.  One engine, rules from each version's record (:mod:`lkm.kernels`); see
../shared/spec/kernel-loader.md §2 and modutils-2.4.md (load order).

The result is a :class:`Layout`: for every allocated section its region and offset, and each
region's size; addresses come later, from the regions' bases (``Layout.address``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lkm.arch import for_machine
from lkm.elf import ElfFile, Section
from lkm.elf.constants import (
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_RO_AFTER_INIT,
    SHF_WRITE,
    SHT_NOBITS,
)
from lkm.errors import InvalidModule
from lkm.kernels import KernelConfig, KernelVersion, LayoutRules, by_name, is_init_section
from lkm.limits import check_region_sizes
from lkm.link.obj24 import ObjFile
from lkm.module.validate import check_structure

if TYPE_CHECKING:
    from lkm.module.file import ModuleFile

__all__ = [
    "KallsymsArea",
    "KernelConfig",
    "Layout",
    "Placement",
    "default_layout",
    "is_init_section",
    "layout_24",
    "layout_module",
    "rewrite_flags",
    "sequential_bases",
]

ARCH_SHF_SMALL = 0  # x86, arm64: no small-data sections

# layout_sections' mask rows: (flags all required, flags all excluded), in placement order.
MASKS: tuple[tuple[int, int], ...] = (
    (SHF_EXECINSTR | SHF_ALLOC, ARCH_SHF_SMALL),
    (SHF_ALLOC, SHF_WRITE | ARCH_SHF_SMALL),
    (SHF_RO_AFTER_INIT | SHF_ALLOC, ARCH_SHF_SMALL),
    (SHF_WRITE | SHF_ALLOC, ARCH_SHF_SMALL),
    (ARCH_SHF_SMALL | SHF_ALLOC, 0),
)


@dataclass(slots=True, unsafe_hash=True)
class Placement:
    """A section's place: its region and offset in it (``flags`` as the kernel rewrote them)."""

    number: int
    name: str
    region: str
    offset: int
    size: int
    flags: int


@dataclass(slots=True, unsafe_hash=True)
class KallsymsArea:
    """Where layout_symtab put the module's kallsyms: the kept symbols, their strings and type
    bytes at the end of core data; the temporary struct mod_kallsyms and all type bytes in init."""

    region: str
    symoffs: int
    stroffs: int
    core_typeoffs: int
    kept: list[int]
    init_region: str
    init_off: int
    init_typeoffs: int


@dataclass(slots=True, unsafe_hash=True)
class Layout:
    """Sections placed in regions.  ``sizes`` are the regions' sizes as the kernel computes them;
    ``marks`` 6.1's text_size/ro_size/ro_after_init_size per region."""

    rules: str
    placements: dict[int, Placement]
    sizes: dict[str, int]
    marks: dict[str, dict[str, int]]
    kallsyms: KallsymsArea | None
    page_size: int
    # sections with no file contents (zero-filled), as laid out
    nobits: set[int] = field(default_factory=set)
    # arm64: the PltPlan of module_frob_arch_sections
    arch_plan: object = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_region_sizes(self.sizes)  # before anyone allocates them

    def alloc_size(self, region: str) -> int:
        """The region's allocated size: page-aligned (0: nothing allocated)."""
        return _align(self.sizes.get(region, 0), self.page_size)

    def address(self, number: int, bases: dict[str, int]) -> int:
        """The final address of section ``number`` given each region's base address."""
        p = self.placements[number]
        return bases[p.region] + p.offset


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1) if alignment > 1 else value


def rewrite_flags(elf: ElfFile, sections: list[Section] | None = None) -> dict[int, int]:
    """Section flags after rewrite_section_headers and layout_and_allocate: .modinfo and
    __versions lose SHF_ALLOC, as does .data..percpu (copied to the per-cpu area instead);
    .data..ro_after_init and __jump_table gain SHF_RO_AFTER_INIT when allocated."""
    flags = {s.number: s.flags for s in (sections or elf.sections)}
    for name in (".modinfo", "__versions", ".data..percpu"):
        sec = _find_alloc(elf, name, flags)
        if sec is not None:
            flags[sec.number] &= ~SHF_ALLOC
    for name in (".data..ro_after_init", "__jump_table"):
        sec = _find_alloc(elf, name, flags)
        if sec is not None:
            flags[sec.number] |= SHF_RO_AFTER_INIT
    return flags


def _find_alloc(elf: ElfFile, name: str, flags: dict[int, int]) -> Section | None:
    """find_sec: the first section of that name that is SHF_ALLOC."""
    for s in elf.sections_named(name):
        if flags[s.number] & SHF_ALLOC:
            return s
    return None


def layout_module(
    elf: ElfFile,
    rules: str | KernelVersion = "linux-6.12",
    config: KernelConfig | None = None,
    overrides: dict[int, Section] | None = None,
) -> Layout:
    """Lay out ``elf`` as the kernel with ``rules`` ("linux-6.1", "linux-6.12") does.
    ``overrides`` are section headers as the architecture rewrote them before layout
    (arm64's module_frob_arch_sections: PLT and ftrace trampoline sections)."""
    r = by_name(rules).layout
    if r is None:  # insmod lays the object out in user space
        return layout_24(elf)
    cfg = config or KernelConfig()
    # What the kernel checks before laying a module out (elf_validity_check and friends), with
    # its errno: a hostile header never reaches the arithmetic and allocations below.
    check_structure(elf)
    page = cfg.page_size
    strict = cfg.strict_module_rwx
    plan = None
    arch = for_machine(elf.e_machine)
    if overrides is None and arch is not None and arch.frob_arch_sections is not None:
        plan = arch.frob_arch_sections(elf, cfg)
        overrides = plan.overrides
    secs = [overrides.get(s.number, s) for s in elf.sections] if overrides else elf.sections
    flags = rewrite_flags(elf, secs)
    sizes: dict[str, int] = {}
    marks: dict[str, dict[str, int]] = {}
    placements: dict[int, Placement] = {}
    mark_names = ("text_size", "ro_size", "ro_after_init_size", None, None)
    for is_init in (False, True):
        regions = r.init_regions if is_init else r.core_regions
        align_after = r.init_align_after if is_init else r.core_align_after
        for m, (need, refuse) in enumerate(MASKS):
            region = regions[m]
            for s in secs:
                f = flags[s.number]
                if (f & need) != need or f & refuse or s.number in placements:
                    continue
                if is_init_section(s.name, cfg) != is_init or region is None:
                    continue
                placements[s.number] = _place(s, region, f, sizes)
            if region is None:
                continue
            if m in align_after and strict:
                sizes[region] = _align(sizes.get(region, 0), page)
            mark = mark_names[m]
            if mark is not None and len(set(regions)) == 1:  # 6.1's one-region bookkeeping
                marks.setdefault(region, {})[mark] = sizes.get(region, 0)
        only = regions[0]
        if len(set(regions)) == 1 and is_init and only is not None:
            # "RO after init doesn't apply to init_layout: it takes the value of ro_size"
            marks[only]["ro_after_init_size"] = marks[only].get("ro_size", 0)
    kallsyms = _layout_symtab(elf, r, cfg, flags, placements, sizes) if cfg.kallsyms else None
    nobits = {s.number for s in secs if s.type == SHT_NOBITS}
    try:
        layout = Layout(r.name, placements, sizes, marks, kallsyms, page, nobits)
    except InvalidModule as exc:
        exc.path = exc.path or elf.path
        raise
    layout.arch_plan = plan
    return layout


def _place(s: Section, region: str, flags: int, sizes: dict[str, int]) -> Placement:
    """module_get_offset: align the running size to sh_addralign (0 means 1), place, grow."""
    offset = _align(sizes.get(region, 0), s.addralign or 1)
    sizes[region] = offset + s.size
    return Placement(s.number, s.name, region, offset, s.size, flags)


def _layout_symtab(
    elf: ElfFile,
    r: LayoutRules,
    cfg: KernelConfig,
    flags: dict[int, int],
    placements: dict[int, Placement],
    sizes: dict[str, int],
) -> KallsymsArea:
    """layout_symtab: .symtab and .strtab go to init data; room for the kept (core) symbols, their
    names and type bytes is appended to core data; mod_kallsyms and all type bytes to init."""
    symtab = elf.symtab()
    if symtab is None:
        raise InvalidModule("module has no symbols (stripped?)", path=elf.path)
    strtab = elf.sections[symtab.link]
    core_data = r.core_regions[3]
    init_data = r.init_regions[3]
    assert init_data is not None
    word = elf.word_size
    sym_size = 24 if word == 8 else 16
    flags[symtab.number] |= SHF_ALLOC
    placements[symtab.number] = _place(symtab, init_data, flags[symtab.number], sizes)
    syms = elf.symbols(symtab)
    percpu = _find_alloc(elf, ".data..percpu", {s.number: s.flags for s in elf.sections})
    pcpu = percpu.number if percpu is not None else -1
    # is_core_symbol: named, defined in an allocated non-init section that is executable (any
    # allocated one with KALLSYMS_ALL, which also keeps the per-cpu section's symbols).
    core = {
        n
        for n, p in placements.items()
        if not p.region.startswith("init") and (cfg.kallsyms_all or flags[n] & SHF_EXECINSTR)
    }
    if cfg.kallsyms_all and pcpu >= 0:
        core.add(pcpu)
    kept = [0, *(s.number for s in syms[1:] if s.shndx in core and s.name)]
    # symbol 0's empty name, then each kept name with its NUL
    strtab_size = 1 + sum(len(syms[i].name.encode("utf-8", "surrogateescape")) + 1 for i in kept[1:])
    symoffs = _align(sizes.get(core_data, 0), symtab.addralign or 1)
    stroffs = symoffs + len(kept) * sym_size
    core_typeoffs = stroffs + strtab_size
    sizes[core_data] = core_typeoffs + len(kept)
    if r.core_align_after and cfg.strict_module_rwx:  # 6.1: strict_align(data size)
        sizes[core_data] = _align(sizes[core_data], cfg.page_size)
    flags[strtab.number] |= SHF_ALLOC
    placements[strtab.number] = _place(strtab, init_data, flags[strtab.number], sizes)
    # struct mod_kallsyms { Elf_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; }
    mod_kallsyms_size, mod_kallsyms_align = (32, 8) if word == 8 else (16, 4)
    init_off = _align(sizes[init_data], mod_kallsyms_align)
    init_typeoffs = init_off + mod_kallsyms_size
    sizes[init_data] = init_typeoffs + len(syms)
    if r.init_align_after and cfg.strict_module_rwx:
        sizes[init_data] = _align(sizes[init_data], cfg.page_size)
    return KallsymsArea(core_data, symoffs, stroffs, core_typeoffs, kept, init_data, init_off, init_typeoffs)


# -- 2.4 insmod -------------------------------------------------------------------------------


def layout_24(elf: ElfFile, extra_first: tuple[tuple[str, int, int], ...] = ()) -> Layout:
    """insmod's layout of the object's own sections (modutils' load order and packing, as
    :class:`lkm.link.obj24.ObjFile` keeps it) in one contiguous image ("image" region);
    ``extra_first`` (name, size, align) are sections put at the head (``.this``), numbered -1,
    -2, ...  The full insmod link, with the sections insmod adds, is
    :func:`lkm.link.insmod24.link_module_24`."""
    obj = ObjFile(elf, elf.path)
    first = len(obj.sections)
    for name, size, align in reversed(extra_first):
        obj.create_alloced_section_first(name, align, size, SHF_WRITE)
    size = obj.load_size()
    placements: dict[int, Placement] = {}
    for sec in obj.load_order:
        n = sec.idx if sec.idx < first else -1 - (len(extra_first) - 1 - (sec.idx - first))
        placements[n] = Placement(n, sec.name, "image", sec.addr, sec.size, sec.flags)
    try:
        return Layout("linux-2.4", placements, {"image": size}, {}, None, 4096)
    except InvalidModule as exc:
        exc.path = exc.path or elf.path
        raise


def sequential_bases(lay: Layout, at: int, given: dict[str, int] | None = None) -> tuple[dict[str, int], int]:
    """Each region (not given explicitly) placed after the previous, page-aligned, from ``at``;
    the bases and the next free address after them."""
    bases = dict(given or {})
    for r in sorted(lay.sizes, key=lambda r: _REGION_ORDER.get(r, len(_REGION_ORDER))):
        if r not in bases:
            bases[r] = at
            at += lay.alloc_size(r) or lay.page_size
    return bases, at


_REGIONS = (
    "image",
    "core",
    "text",
    "rodata",
    "ro_after_init",
    "data",
    "init",
    "init_text",
    "init_rodata",
    "init_data",
)
_REGION_ORDER = {r: i for i, r in enumerate(_REGIONS)}


def default_layout(mod: ModuleFile) -> str:
    """The layout rules for a module: 2.4 objects, else by the release in its vermagic."""
    return mod.version.name

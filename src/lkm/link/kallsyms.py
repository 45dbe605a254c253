"""A linked module's kallsyms: the symbols the kernel keeps for it after init, with the type
letters of kernel/module/kallsyms.c (elf_type) and the lines /proc/kallsyms prints for them."""

from __future__ import annotations

from dataclasses import dataclass

from lkm.elf.constants import (
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHN_LORESERVE,
    SHN_UNDEF,
    SHT_NOBITS,
    STB_WEAK,
    STT_OBJECT,
)
from lkm.link.image import LinkedImage
from lkm.module.file import ModuleFile

__all__ = ["ModuleSymbol", "elf_type", "format_module_kallsyms", "module_kallsyms", "module_kallsyms_lines"]


@dataclass(slots=True, unsafe_hash=True)
class ModuleSymbol:
    """One kept symbol: final value, type letter as /proc/kallsyms shows it, name."""

    value: int
    type: str
    name: str


def elf_type(mod: ModuleFile, image: LinkedImage, number: int, percpu: int | None = -1) -> str:
    """The kernel's elf_type() for symbol ``number`` (section flags as the loader rewrote them).

    ``percpu`` is the index of ``.data..percpu`` (None if absent), looked up here when not given,
    so a caller typing every symbol of a module looks it up once."""
    elf = mod.elf
    s = elf.symbols()[number]
    if s.bind == STB_WEAK:
        return "v" if s.type == STT_OBJECT else "w"
    if s.shndx == SHN_UNDEF:
        return "U"
    if percpu == -1:
        sec_percpu = elf.section(".data..percpu")
        percpu = sec_percpu.number if sec_percpu is not None else None
    if s.shndx == SHN_ABS or s.shndx == percpu:
        return "a"
    if s.shndx >= SHN_LORESERVE:
        return "?"
    sec = elf.sections[s.shndx]
    placed = image.layout.placements.get(s.shndx)
    flags = placed.flags if placed is not None else sec.flags & ~SHF_ALLOC
    if flags & SHF_EXECINSTR:
        return "t"
    if flags & SHF_ALLOC and sec.type != SHT_NOBITS:
        return "r" if not flags & SHF_WRITE else "d"
    if sec.type == SHT_NOBITS:
        return "b"
    if sec.name.startswith(".debug"):
        return "n"
    return "?"


def module_kallsyms(mod: ModuleFile, image: LinkedImage) -> list[ModuleSymbol]:
    """The kept (core) symbols in kept-symtab order, as /proc/kallsyms lists a live module: type
    letter upper-case when the symbol is exported through the non-GPL __ksymtab with the same
    value, nameless symbols skipped."""
    return [ModuleSymbol(v, t, n) for v, t, n in _kept_symbols(mod, image)]


def module_kallsyms_lines(mod: ModuleFile, image: LinkedImage) -> str:
    """``format_module_kallsyms(mod.name, module_kallsyms(mod, image), mod.elf.elfclass)`` in
    one pass, without a record per symbol (what a loader stores for every module)."""
    pattern = f"%0{mod.elf.elfclass // 4}x %s %s\t[{mod.name.replace('%', '%%')}]\n"
    return "".join([pattern % row for row in _kept_symbols(mod, image)])


def _kept_symbols(mod: ModuleFile, image: LinkedImage) -> list[tuple[int, str, str]]:
    """(value, type letter, name) of :func:`module_kallsyms`'s symbols."""
    area = image.layout.kallsyms
    if area is None:
        return []
    syms = mod.elf.symbols()
    values = image.symbol_values
    wanted = {e.symbol or e.name for e in mod.exports if not e.gpl}
    by_name = {s.name: values[s.number] for s in syms if s.name in wanted and s.shndx != SHN_UNDEF}
    exported = {e.name: by_name.get(e.symbol or e.name) for e in mod.exports if not e.gpl}
    percpu_sec = mod.elf.section(".data..percpu")
    percpu = percpu_sec.number if percpu_sec is not None else None
    out: list[tuple[int, str, str]] = []
    append = out.append
    # elf_type of a non-weak symbol depends on its section only: each section's letter once
    by_section: dict[int, str] = {}
    for n in area.kept:
        s = syms[n]
        name = s.name
        if not name:
            continue
        info = s.info
        if info >> 4 == STB_WEAK:
            t = "v" if info & 0xF == STT_OBJECT else "w"
        else:
            t = by_section.get(s.shndx, "")
            if not t:
                t = by_section[s.shndx] = elf_type(mod, image, n, percpu).lower()
        value = values[n]
        if name in exported and exported[name] == value:
            t = t.upper()
        append((value, t, name))
    return out


def format_module_kallsyms(module: str, symbols: list[ModuleSymbol], bits: int = 64) -> str:
    """``"%px %c %s\\t[%s]\\n"`` lines, the pointer at full width."""
    w = bits // 4
    return "".join(f"{s.value:0{w}x} {s.type} {s.name}\t[{module}]\n" for s in symbols)

"""What a module exports and what it needs.

Exports are read from the export tables themselves (``__ksymtab``/``__ksymtab_gpl`` with their
relocations, CRCs from the parallel ``__kcrctab``/``__kcrctab_gpl``, namespaces from the third
field), so they are exactly what the kernel would register; 2.4 objects use ``__ksymtab``
{value, name} pairs whose names live in ``.kstrtab``.  Needed symbols are the undefined symbols,
with the CRC the module was built against from ``__versions``.
"""

from __future__ import annotations

import struct
from itertools import repeat
from operator import rshift
from typing import NamedTuple

from lkm.elf import ElfFile, Relocation, Section, cstring
from lkm.elf.constants import EM_386, EM_486, EM_AARCH64, EM_X86_64, SHN_LORESERVE, SHN_UNDEF, SHT_NOBITS
from lkm.record import Record


class Export(Record):
    """One exported symbol; ``symbol`` is the symbol the entry's value points at (normally the
    same as ``name``), ``crc`` from the parallel CRC table."""

    __slots__ = ("name", "gpl", "crc", "namespace", "symbol")

    def __init__(
        self, name: str, gpl: bool, crc: int | None, namespace: str | None, symbol: str | None
    ) -> None:
        self.name = name
        self.gpl = gpl
        self.crc = crc
        self.namespace = namespace
        self.symbol = symbol


class NeededSymbol(NamedTuple):
    """An undefined symbol; ``crc`` from __versions (None without an entry), ``bind`` STB_*.

    A tuple, so that a whole module's list is built in C (a tree has ~200 000 of them)."""

    name: str
    crc: int | None
    bind: int


# (ksymtab section, GPL-only, parallel CRC section)
KSYMTAB_SECTIONS: tuple[tuple[str, bool, str], ...] = (
    ("__ksymtab", False, "__kcrctab"),
    ("__ksymtab_gpl", True, "__kcrctab_gpl"),
)

GPLONLY_PREFIX = "GPLONLY_"

# Architectures whose struct kernel_symbol holds 32-bit place-relative offsets (PREL32).
PREL32_MACHINES = frozenset({EM_X86_64, EM_386, EM_486, EM_AARCH64})


class _Resolver:
    """Static resolution of relocations inside one object, for reading tables out of a .ko:
    where a relocation points (section, offset) and the string there."""

    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        self.symtab = elf.symtab()
        self._places: dict[int, tuple[int, int] | None] = {}
        self._s32 = struct.Struct("<i" if elf.little_endian else ">i")
        if self.symtab is not None:
            self._sym_base, self._sym_count, _s0, _s1 = elf._symtab_data(self.symtab)

    def relocs_by_offset(self, target: Section) -> dict[int, Relocation]:
        out: dict[int, Relocation] = {}
        for rs in self.elf.relocation_sections_for(target):
            for r in self.elf.relocations(rs):
                out[r.offset] = r
        return out

    def addend(self, target: Section, r: Relocation, width: int = 4) -> int:
        if r.addend is not None:
            return r.addend
        off = target.offset + r.offset  # SHT_REL: the addend sits in the target bytes
        if width == 4:
            return int(self._s32.unpack_from(self.elf.data, off)[0])
        return self.elf.word(off)

    def place(self, number: int) -> tuple[int, int] | None:
        """(st_shndx, st_value) of symbol ``number``, without decoding its name."""
        got = self._places.get(number, False)
        if got is not False:
            return got  # type: ignore[return-value]
        place = None
        if self.symtab is not None and 0 < number < self._sym_count:
            lay = self.elf.layout
            f = lay.sym.unpack_from(self.elf.data, self._sym_base + number * lay.sym.size)
            place = (f[3], f[4]) if lay.elf64 else (f[5], f[1])
        self._places[number] = place
        return place

    def symbol_name(self, r: Relocation) -> str | None:
        s = self.elf.symbol(r.sym, self.symtab) if r.sym and self.symtab is not None else None
        return s.name or None if s is not None else None

    def location(self, target: Section, r: Relocation, width: int = 4) -> tuple[Section, int] | None:
        """(section, offset) that relocation ``r`` points at, if it points into this object."""
        place = self.place(r.sym)
        if place is None:
            return None
        shndx, value = place
        if shndx == SHN_UNDEF or shndx >= min(SHN_LORESERVE, self.elf.e_shnum):
            return None
        return self.elf.section_at(shndx), value + self.addend(target, r, width)

    def string(self, target: Section, r: Relocation | None, width: int = 4) -> str | None:
        if r is None:
            return None
        loc = self.location(target, r, width)
        if loc is None:
            return None
        sec, off = loc
        if sec.type == SHT_NOBITS or not 0 <= off < sec.size:
            return None
        self.elf.check_bounds(sec)
        return cstring(self.elf.data, sec.offset + off, sec.offset + sec.size)


def exports(elf: ElfFile) -> list[Export]:
    """Exported symbols in table order: __ksymtab then __ksymtab_gpl."""
    res: _Resolver | None = None
    out: list[Export] = []
    for tab_name, gpl, crc_name in KSYMTAB_SECTIONS:
        tab = elf.section(tab_name)
        if tab is None or tab.size == 0 or tab.type == SHT_NOBITS:
            continue
        if res is None:
            res = _Resolver(elf)
        elf.check_bounds(tab)
        relocs = res.relocs_by_offset(tab)
        if elf.e_machine in PREL32_MACHINES:
            entsize, fields, width = 12, (0, 4, 8), 4
        else:
            w = elf.word_size
            entsize, fields, width = 3 * w, (0, w, 2 * w), w
        crcs = _crcs(elf, res, elf.section(crc_name))
        for i in range(tab.size // entsize):
            base = i * entsize
            name = res.string(tab, relocs.get(base + fields[1]), width)
            if name is None:
                continue
            ns = res.string(tab, relocs.get(base + fields[2]), width) or None
            vrel = relocs.get(base + fields[0])
            sym = res.symbol_name(vrel) if vrel is not None else None
            crc = crcs[i] if crcs is not None and i < len(crcs) else None
            out.append(Export(name, gpl, crc, ns, sym))
    return out


def _crcs(elf: ElfFile, res: _Resolver, sec: Section | None) -> list[int] | None:
    if sec is None or sec.type == SHT_NOBITS:
        return None
    elf.check_bounds(sec)
    relocs = res.relocs_by_offset(sec)
    out = []
    for i in range(sec.size // 4):
        v = elf.u32(sec.offset + 4 * i)
        r = relocs.get(4 * i)
        place = res.place(r.sym) if r is not None else None
        if r is not None and place is not None:
            # `.long __crc_sym` against an absolute symbol whose value is the CRC.
            v = (place[1] + res.addend(sec, r)) & 0xFFFFFFFF
        out.append(v)
    return out


def exports24(elf: ElfFile) -> list[Export]:
    """2.4 exports: ``struct module_symbol { unsigned long value; const char *name; }``."""
    tab = elf.section("__ksymtab")
    if tab is None or tab.size == 0 or tab.type == SHT_NOBITS:
        return []
    res = _Resolver(elf)
    elf.check_bounds(tab)
    relocs = res.relocs_by_offset(tab)
    w = elf.word_size
    out = []
    for i in range(tab.size // (2 * w)):
        base = 2 * w * i
        name = res.string(tab, relocs.get(base + w), w)
        if name is None:
            continue
        vrel = relocs.get(base)
        # 2.4's EXPORT_SYMBOL_GPL names the string "GPLONLY_<sym>"; insmod strips the prefix and
        # lets only GPL-compatible modules bind to it.
        gpl = name.startswith(GPLONLY_PREFIX)
        if gpl:
            name = name[len(GPLONLY_PREFIX) :]
        out.append(Export(name, gpl, None, None, res.symbol_name(vrel) if vrel else None))
    return out


def versions(elf: ElfFile) -> list[tuple[str, int]]:
    """``__versions``: (symbol, crc) in file order; 64-byte struct modversion_info entries,
    the name read up to its first NUL as libkmod reads it."""
    sec = elf.section("__versions")
    if sec is None or sec.type == SHT_NOBITS:
        return []
    data = elf.section_data(sec)
    w = elf.word_size
    entry = struct.Struct(("<" if elf.little_endian else ">") + ("Q56s" if w == 8 else "I60s"))
    n = len(data) // 64
    return [
        (raw.partition(b"\0")[0].decode("utf-8", "surrogateescape"), crc)
        for crc, raw in entry.iter_unpack(data[: n * 64])
    ]


def needed(elf: ElfFile) -> list[NeededSymbol]:
    """Undefined symbols in symbol-table order, with the first matching __versions CRC."""
    vers = dict(reversed(versions(elf)))  # the first entry of a name wins, as in check_version
    names, infos = elf.undefined_columns()
    crcs = map(vers.get, names)
    binds = map(rshift, infos, repeat(4))
    return list(map(tuple.__new__, repeat(NeededSymbol), zip(names, crcs, binds, strict=True)))

"""What a module exports and what it needs.

Exports are read from the export tables themselves (``__ksymtab``/``__ksymtab_gpl`` with their
relocations, CRCs from the parallel ``__kcrctab``/``__kcrctab_gpl``, namespaces from the third
field), so they are exactly what the kernel would register; 2.4 objects use ``__ksymtab``
{value, name} pairs whose names live in ``.kstrtab``.  Needed symbols are the undefined symbols,
with the CRC the module was built against from ``__versions``.
"""

from __future__ import annotations

import struct
from itertools import accumulate, count, repeat
from operator import add, rshift
from typing import NamedTuple

from lkm.elf import ElfFile, Section, cstring
from lkm.elf.constants import (
    EM_386,
    EM_486,
    EM_AARCH64,
    EM_X86_64,
    SHN_LORESERVE,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_RELA,
)
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
    where a relocation points (section, offset) and the string there.  Relocations are kept
    as offset -> (symbol index, addend or None for REL), built column-wise."""

    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        self.symtab = elf.symtab()
        self._places: dict[int, tuple[int, int] | None] = {}
        self._strings: dict[int, tuple[dict[int, str], int, int]] = {}
        self._s32 = struct.Struct("<i" if elf.little_endian else ">i")
        if self.symtab is not None:
            self._sym_base, self._sym_count, _s0, _s1 = elf._symtab_data(self.symtab)

    def relocs_by_offset(self, target: Section) -> dict[int, tuple[int, int | None]]:
        elf = self.elf
        lay = elf.layout
        out: dict[int, tuple[int, int | None]] = {}
        for rs in elf.relocation_sections_for(target):
            data = elf.section_data(rs)
            st = lay.rela if rs.type == SHT_RELA else lay.rel
            rows = list(st.iter_unpack(data[: len(data) // st.size * st.size]))
            if not rows:
                continue
            cols = list(zip(*rows, strict=True))
            syms = map(rshift, cols[1], repeat(lay.r_sym_shift))
            adds = cols[2] if rs.type == SHT_RELA else repeat(None)
            out.update(zip(cols[0], zip(syms, adds, strict=False), strict=False))
        return out

    def addend(self, target: Section, offset: int, addend: int | None, width: int = 4) -> int:
        if addend is not None:
            return addend
        off = target.offset + offset  # SHT_REL: the addend sits in the target bytes
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

    def symbol_name(self, number: int) -> str | None:
        s = self.elf.symbol(number, self.symtab) if number and self.symtab is not None else None
        return s.name or None if s is not None else None

    def string(
        self, target: Section, offset: int, rel: tuple[int, int | None] | None, width: int = 4
    ) -> str | None:
        """The string that the relocation ``rel`` at ``offset`` of ``target`` points at."""
        if rel is None:
            return None
        place = self.place(rel[0])
        if place is None:
            return None
        shndx, value = place
        if shndx == SHN_UNDEF or shndx >= min(SHN_LORESERVE, self.elf.e_shnum):
            return None
        pos = value + self.addend(target, offset, rel[1], width)
        starts, s0, s1 = self._string_table(shndx)
        name = starts.get(pos)
        if name is not None:
            return name
        if s0 < 0 or not 0 <= pos < s1 - s0:
            return None
        return cstring(self.elf.data, s0 + pos, s1)

    def _string_table(self, shndx: int) -> tuple[dict[int, str], int, int]:
        """Offset -> string for every string start of section ``shndx`` (split once, in C)."""
        got = self._strings.get(shndx)
        if got is None:
            sec = self.elf.section_at(shndx)
            if sec.type == SHT_NOBITS:
                got = ({}, -1, -1)
            else:
                self.elf.check_bounds(sec)
                s0, s1 = sec.offset, sec.offset + sec.size
                raw = self.elf.data[s0:s1]
                starts: dict[int, str] = {}
                if raw.isascii():  # one byte a character: str lengths are byte offsets
                    parts = raw.decode("ascii").split("\0")
                    starts = dict(
                        zip(map(add, accumulate(map(len, parts), initial=0), count()), parts, strict=False)
                    )
                got = (starts, s0, s1)
            self._strings[shndx] = got
        return got


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
            entsize, (f_value, f_name, f_ns), width = 12, (0, 4, 8), 4
        else:
            w = elf.word_size
            entsize, (f_value, f_name, f_ns), width = 3 * w, (0, w, 2 * w), w
        crcs = _crcs(elf, res, elf.section(crc_name))
        get = relocs.get
        for i in range(tab.size // entsize):
            base = i * entsize
            name = res.string(tab, base + f_name, get(base + f_name), width)
            if name is None:
                continue
            ns = res.string(tab, base + f_ns, get(base + f_ns), width) or None
            vrel = get(base + f_value)
            sym = res.symbol_name(vrel[0]) if vrel is not None else None
            crc = crcs[i] if crcs is not None and i < len(crcs) else None
            out.append(Export(name, gpl, crc, ns, sym))
    return out


def _crcs(elf: ElfFile, res: _Resolver, sec: Section | None) -> list[int] | None:
    if sec is None or sec.type == SHT_NOBITS:
        return None
    elf.check_bounds(sec)
    relocs = res.relocs_by_offset(sec)
    n = sec.size // 4
    out = list(struct.unpack_from(("<" if elf.little_endian else ">") + f"{n}I", elf.data, sec.offset))
    for off, rel in relocs.items():
        place = res.place(rel[0])
        if place is not None and off % 4 == 0 and off // 4 < n:
            # `.long __crc_sym` against an absolute symbol whose value is the CRC.
            out[off // 4] = (place[1] + res.addend(sec, off, rel[1])) & 0xFFFFFFFF
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
        name = res.string(tab, base + w, relocs.get(base + w), w)
        if name is None:
            continue
        vrel = relocs.get(base)
        # 2.4's EXPORT_SYMBOL_GPL names the string "GPLONLY_<sym>"; insmod strips the prefix and
        # lets only GPL-compatible modules bind to it.
        gpl = name.startswith(GPLONLY_PREFIX)
        if gpl:
            name = name[len(GPLONLY_PREFIX) :]
        out.append(Export(name, gpl, None, None, res.symbol_name(vrel[0]) if vrel else None))
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

"""What a module exports and what it needs.

Exports are read from the export tables themselves (``__ksymtab``/``__ksymtab_gpl`` with their
relocations, CRCs from the parallel ``__kcrctab``/``__kcrctab_gpl``, namespaces from the third
field), so they are exactly what the kernel would register; 2.4 objects use ``__ksymtab``
{value, name} pairs whose names live in ``.kstrtab``.  Needed symbols are the undefined symbols,
with the CRC the module was built against from ``__versions``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import accumulate, count, repeat
from operator import add, itemgetter, rshift

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
from lkm.elf.file import words

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "GPLONLY_PREFIX",
    "KSYMTAB_SECTIONS",
    "PREL32_MACHINES",
    "Export",
    "exports",
    "exports24",
    "needed",
    "versions",
]


@dataclass(slots=True, unsafe_hash=True)
class Export:
    """One exported symbol; ``symbol`` is the symbol the entry's value points at (normally the
    same as ``name``), ``crc`` from the parallel CRC table."""

    name: str
    gpl: bool
    crc: int | None
    namespace: str | None
    symbol: str | None


if TYPE_CHECKING:
    from typing import NamedTuple

    class NeededSymbol(NamedTuple):
        name: str
        crc: int | None
        bind: int

else:

    class NeededSymbol(tuple):
        """An undefined symbol; ``crc`` from __versions (None without an entry), ``bind`` STB_*.

        A NamedTuple built without importing typing (its fields are C-level item getters), so
        that a whole module's list is built in C (a tree has ~200 000 of them)."""

        __slots__ = ()
        _fields = ("name", "crc", "bind")
        name = property(itemgetter(0))
        crc = property(itemgetter(1))
        bind = property(itemgetter(2))

        def __new__(cls, name, crc, bind):
            return tuple.__new__(cls, (name, crc, bind))

        def __repr__(self):
            return f"NeededSymbol(name={self[0]!r}, crc={self[1]!r}, bind={self[2]!r})"


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
        self._cols: tuple[Sequence[int], Sequence[int]] | None = None
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
        place = self._places[number] = self.places([number])[0]
        return place

    def symbol_name(self, number: int) -> str | None:
        s = self.elf.symbol(number, self.symtab) if number and self.symtab is not None else None
        return s.name or None if s is not None else None

    def symbol_names(self, numbers: list[int], likely: list[str | None] | None = None) -> list[str | None]:
        """Names of symbols ``numbers`` in bulk (None for 0, out of range or unnamed).

        ``likely``, when given, holds the name each symbol probably has (an export's value
        symbol is normally the export itself): when every one is right, which is checked in
        place in C, nothing is decoded."""
        if self.symtab is None:
            return [None] * len(numbers)
        elf, base, cnt = self.elf, self._sym_base, self._sym_count
        size, unpack = elf.layout.sym.size, elf.layout.u32.unpack_from
        rows = [k if 0 < k < cnt else 0 for k in numbers]
        offs = [unpack(elf.data, base + k * size)[0] if k else 0 for k in rows]
        _b, _c, s0, s1 = elf._symtab_data(self.symtab)
        if likely and None not in likely and 0 not in offs:
            keys = [nm.encode("utf-8", "surrogateescape") + b"\0" for nm in likely]  # type: ignore[union-attr]
            at = [o + s0 for o in offs]
            ends = list(map(add, at, map(len, keys)))
            # find() is what bytes and mmap share: each key found exactly where its symbol's name is.
            if max(ends) <= s1 and list(map(elf.data.find, keys, at, ends)) == at:
                return list(likely)
        return [nm or None for nm in elf._names_at(s0, s1, offs, 0, rows)]

    def places(self, numbers: list[int]) -> list[tuple[int, int] | None]:
        """:meth:`place` of every symbol of ``numbers``, in one pass."""
        if self.symtab is None:
            return [None] * len(numbers)
        lay, data, base, cnt = self.elf.layout, self.elf.data, self._sym_base, self._sym_count
        unpack, size = lay.sym.unpack_from, lay.sym.size
        i_sh, i_val = (3, 4) if lay.elf64 else (5, 1)
        out: list[tuple[int, int] | None] = []
        for k in numbers:
            if 0 < k < cnt:
                f = unpack(data, base + k * size)
                out.append((f[i_sh], f[i_val]))
            else:
                out.append(None)
        return out

    def strings(
        self, target: Section, relocs: dict[int, tuple[int, int | None]], offsets: range, width: int = 4
    ) -> list[str | None]:
        """:meth:`string` for every offset of ``offsets`` of ``target``: the common case (RELA
        against a symbol in a string section, pointing at a string start) resolved in bulk."""
        get = relocs.get
        rels = [get(off) for off in offsets]
        places = self.places([r[0] if r is not None else 0 for r in rels])
        lim = min(SHN_LORESERVE, self.elf.e_shnum)
        tables: dict[int, dict[int, str]] = {}
        out: list[str | None] = []
        append = out.append
        for off, rel, place in zip(offsets, rels, places, strict=True):
            name = None
            if rel is not None and place is not None and rel[1] is not None:
                shndx = place[0]
                if shndx != SHN_UNDEF and shndx < lim:
                    starts = tables.get(shndx)
                    if starts is None:
                        starts = tables[shndx] = self._string_table(shndx)[0]
                    name = starts.get(place[1] + rel[1])
            append(name if name is not None or rel is None else self.string(target, off, rel, width))
        return out

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

    def prel32_table(
        self, tab: Section, n: int
    ) -> tuple[list[str | None], list[str | None], list[str | None]] | None:
        """(names, namespaces, value symbols' names) of the ``n`` 12-byte {value, name, namespace}
        entries of ``tab``, column-wise in C, when the table has the shape an assembler gives it:
        one RELA section with one relocation per field in field order, the name and namespace
        ones against symbols of one string section each, pointing at string starts.  None when
        it has any other shape (the caller then resolves field by field)."""
        elf = self.elf
        rss = elf.relocation_sections_for(tab)
        if self.symtab is None or len(rss) != 1 or rss[0].type != SHT_RELA or n == 0:
            return None
        lay = elf.layout
        data = elf.section_data(rss[0])
        if len(data) != 3 * n * lay.rela.size:
            return None
        offs, infos, adds = zip(*lay.rela.iter_unpack(data), strict=True)
        if offs != tuple(range(0, 12 * n, 4)):  # field by field, in order
            return None
        syms = list(map(rshift, infos, repeat(lay.r_sym_shift)))
        if min(syms) <= 0 or max(syms) >= self._sym_count:
            return None
        shndx, value = self._columns()
        out: list[list[str | None]] = []
        for field in (1, 2):  # name, namespace
            pick = itemgetter(*syms[field::3]) if n > 1 else lambda col, k=syms[field]: (col[k],)
            secs = pick(shndx)
            sec = secs[0]
            if sec == SHN_UNDEF or sec >= min(SHN_LORESERVE, elf.e_shnum) or secs.count(sec) != n:
                return None
            starts = self._string_table(sec)[0]
            strings: list[str | None] = list(map(starts.get, map(add, pick(value), adds[field::3])))
            if None in strings:
                return None
            out.append(strings)
        return out[0], out[1], self.symbol_names(syms[0::3], out[0])

    def _columns(self) -> tuple[Sequence[int], Sequence[int]]:
        """(st_shndx, st_value) of every symbol: strided views of the table, in C."""
        cols = self._cols
        if cols is None:
            elf, lay = self.elf, self.elf.layout
            raw = elf.data[self._sym_base : self._sym_base + self._sym_count * lay.sym.size]
            half = words(raw, "H", elf.little_endian)
            if lay.elf64:  # Elf64_Sym: shndx is u16 #3 of 12, value u64 #1 of 3
                cols = (half[3::12], words(raw, "Q", elf.little_endian)[1::3])
            else:  # Elf32_Sym: value u32 #1 of 4, shndx u16 #7 of 8
                cols = (half[7::8], words(raw, "I", elf.little_endian)[1::4])
            self._cols = cols
        return cols

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
        if elf.e_machine in PREL32_MACHINES:
            entsize, (f_value, f_name, f_ns), width = 12, (0, 4, 8), 4
        else:
            w = elf.word_size
            entsize, (f_value, f_name, f_ns), width = 3 * w, (0, w, 2 * w), w
        crcs = _crcs(elf, res, elf.section(crc_name))
        n = tab.size // entsize
        fast = res.prel32_table(tab, n) if entsize == 12 else None
        if fast is not None:
            names, spaces, syms = fast
            vrels: Sequence[object] = names  # every entry has its value relocation
        else:
            relocs = res.relocs_by_offset(tab)
            names = res.strings(tab, relocs, range(f_name, n * entsize, entsize), width)
            spaces = res.strings(tab, relocs, range(f_ns, n * entsize, entsize), width)
            get = relocs.get
            vrels = [get(o) for o in range(f_value, n * entsize, entsize)]
            syms = res.symbol_names([r[0] if r is not None else 0 for r in vrels], names)  # type: ignore[index]
        for i, name in enumerate(names):
            if name is None:
                continue
            crc = crcs[i] if crcs is not None and i < len(crcs) else None
            out.append(Export(name, gpl, crc, spaces[i] or None, syms[i] if vrels[i] is not None else None))
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
    binds = bytes(infos).translate(_BIND_OF_INFO)  # st_info >> 4 for every symbol, in C
    return list(
        map(tuple.__new__, repeat(NeededSymbol), zip(names, map(vers.get, names), binds, strict=True))
    )


_BIND_OF_INFO = bytes(i >> 4 for i in range(256))

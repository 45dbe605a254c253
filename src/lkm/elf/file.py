"""ElfFile: section headers, string tables, symbols and relocations of one ELF object.

The structural checks here are the ones needed to read safely (and the ones libkmod makes
before it reads anything); the kernel's own acceptance rules are in :mod:`lkm.module.validate`.
Every failure is an :class:`~lkm.errors.InvalidModule` with the kernel's errno (ENOEXEC).
"""

from __future__ import annotations

import struct
import sys
from itertools import accumulate, compress, count
from operator import add, itemgetter, not_

from lkm.elf.constants import (
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    ELFMAG,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    SHT_SYMTAB,
    STB_LOCAL,
)
from lkm.errors import InvalidModule
from lkm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from mmap import mmap
    from typing import Literal

    # Buffers with .find(); a memoryview is copied to bytes once at open.
    Buffer = bytes | bytearray | mmap

__all__ = ["ElfFile", "Relocation", "Section", "Symbol", "cstring", "words"]


class Section(Record):
    """One section header; ``number`` is its index (readelf's [Nr])."""

    __slots__ = (
        "number", "name", "type", "flags", "addr", "offset", "size", "link", "info", "addralign", "entsize",
        "name_offset",
    )  # fmt: skip  # fmt: skip

    def __init__(
        self, number: int, name: str, type: int, flags: int, addr: int, offset: int, size: int, link: int,
        info: int, addralign: int, entsize: int, name_offset: int,
    ) -> None:  # fmt: skip
        self.number = number
        self.name = name
        self.type = type
        self.flags = flags
        self.addr = addr
        self.offset = offset
        self.size = size
        self.link = link
        self.info = info
        self.addralign = addralign
        self.entsize = entsize
        self.name_offset = name_offset


class Symbol(Record):
    """One symbol; ``number`` is its index in its symbol table (readelf's Num)."""

    __slots__ = ("number", "name", "value", "size", "info", "other", "shndx")

    def __init__(
        self, number: int, name: str, value: int, size: int, info: int, other: int, shndx: int
    ) -> None:
        self.number = number
        self.name = name
        self.value = value
        self.size = size
        self.info = info
        self.other = other
        self.shndx = shndx

    @property
    def bind(self) -> int:
        return self.info >> 4

    @property
    def type(self) -> int:
        return self.info & 0xF


class Relocation(Record):
    """One relocation; ``addend`` is None for SHT_REL (the addend is in the target bytes)."""

    __slots__ = ("offset", "sym", "type", "addend")

    def __init__(self, offset: int, sym: int, type: int, addend: int | None) -> None:
        self.offset = offset
        self.sym = sym
        self.type = type
        self.addend = addend


class _Layout:
    """The struct formats of one (class, byte order) combination."""

    __slots__ = ("ehdr", "elf64", "r_sym_shift", "r_type_mask", "rel", "rela", "shdr", "sym", "u32", "word")

    def __init__(self, cls: int, little: bool) -> None:
        e = "<" if little else ">"
        self.elf64 = cls == ELFCLASS64
        if self.elf64:
            self.ehdr = struct.Struct(e + "HHIQQQIHHHHHH")  # e_type .. e_shstrndx, after e_ident
            self.shdr = struct.Struct(e + "IIQQQQIIQQ")
            self.sym = struct.Struct(e + "IBBHQQ")  # name, info, other, shndx, value, size
            self.rel = struct.Struct(e + "QQ")
            self.rela = struct.Struct(e + "QQq")
            self.word = struct.Struct(e + "Q")  # the target's unsigned long
            self.r_sym_shift, self.r_type_mask = 32, 0xFFFFFFFF
        else:
            self.ehdr = struct.Struct(e + "HHIIIIIHHHHHH")
            self.shdr = struct.Struct(e + "IIIIIIIIII")
            self.sym = struct.Struct(e + "IIIBBH")  # name, value, size, info, other, shndx
            self.rel = struct.Struct(e + "II")
            self.rela = struct.Struct(e + "IIi")
            self.word = struct.Struct(e + "I")
            self.r_sym_shift, self.r_type_mask = 8, 0xFF
        self.u32 = struct.Struct(e + "I")


_RELOC_TYPES = (SHT_REL, SHT_RELA)
_SH_INFO_WORD = {True: 11, False: 7}  # sh_info as the n-th u32 of a section header, by elf64
_NATIVE_LITTLE = sys.byteorder == "little"
_LAYOUTS: dict[tuple[int, int], _Layout] = {}


def _layout(cls: int, enc: int) -> _Layout:
    lay = _LAYOUTS.get((cls, enc))
    if lay is None:
        lay = _LAYOUTS[(cls, enc)] = _Layout(cls, enc == ELFDATA2LSB)
    return lay


def words(raw: bytes | bytearray, code: Literal["H", "I", "Q"], little: bool) -> memoryview:
    """``raw`` as unsigned words of struct type ``code`` ("H", "I", "Q") in byte order
    ``little``, indexable and sliceable (strided) in C: a cast memoryview, over ``raw`` itself
    in the host's order (no copy), else over a byte-swapped copy (swapped by strided slice
    assignment: the ``array`` module would import ``collections`` at start-up)."""
    if little != _NATIVE_LITTLE:
        width = struct.calcsize(code)
        if len(raw) % width:
            raise ValueError("bytes length not a multiple of item size")
        swapped = bytearray(len(raw))
        for k in range(width):
            swapped[k::width] = raw[width - 1 - k :: width]
        raw = swapped
    return memoryview(raw).cast(code)


def _undef_rows(raw: bytes | bytearray, shndx_at: int, entsize: int) -> list[int]:
    """Rows of a symbol table slice whose st_shndx (u16 at ``shndx_at``) is SHN_UNDEF.

    The column is scanned in C: its two bytes are OR'ed column-wise (as big integers), and the
    rows whose result byte is zero picked, in either byte order, without unpacking an entry.
    """
    col_a, col_b = raw[shndx_at::entsize], raw[shndx_at + 1 :: entsize]
    either = int.from_bytes(col_a, "little") | int.from_bytes(col_b, "little")
    zeros = either.to_bytes(len(col_a), "little")
    return list(compress(range(len(zeros)), map(not_, zeros)))


def cstring(data: Buffer, offset: int, end: int | None = None) -> str:
    """The NUL-terminated string at ``offset`` (to ``end`` if no NUL), as str.

    Bytes that are not UTF-8 survive as surrogates, so ``encode(errors="surrogateescape")``
    gives back the file's bytes exactly (tools print what the file holds, like kmod).
    """
    if end is None:
        end = len(data)
    nul = data.find(b"\0", offset, end)
    if nul < 0:
        nul = end
    return bytes(data[offset:nul]).decode("utf-8", "surrogateescape")


class ElfFile:
    """One ELF object over a buffer (bytes, bytearray, memoryview or mmap)."""

    __slots__ = (
        "_name_offsets",
        "_made",
        "_names",
        "_types",
        "_words",
        "_strtabs",
        "_sections",
        "_shstr_end",
        "_shstr_off",
        "_sym_cache",
        "_symtab_no",
        "data",
        "e_machine",
        "e_shentsize",
        "e_shnum",
        "e_shoff",
        "e_shstrndx",
        "e_type",
        "elfclass",
        "layout",
        "little_endian",
        "path",
        "size",
    )

    def __init__(self, data: Buffer | memoryview, *, path: str | None = None) -> None:
        if isinstance(data, memoryview):
            data = bytes(data)
        self.data: Buffer = data
        self.path = path
        size = self.size = len(data)
        if size < 16 or data[:4] != ELFMAG:
            raise InvalidModule("not an ELF file (bad magic)", path=path)
        cls, enc = data[4], data[5]
        if cls not in (ELFCLASS32, ELFCLASS64):
            raise InvalidModule(f"unknown ELF class {cls}", path=path)
        if enc not in (ELFDATA2LSB, ELFDATA2MSB):
            raise InvalidModule(f"unknown ELF data encoding {enc}", path=path)
        self.elfclass = 64 if cls == ELFCLASS64 else 32
        self.little_endian = enc == ELFDATA2LSB
        lay = self.layout = _layout(cls, enc)
        if size < 16 + lay.ehdr.size:
            raise InvalidModule("file too short for an ELF header", path=path)
        (
            self.e_type,
            self.e_machine,
            _version,
            _entry,
            _phoff,
            self.e_shoff,
            _flags,
            _ehsize,
            _phentsize,
            _phnum,
            self.e_shentsize,
            self.e_shnum,
            self.e_shstrndx,
        ) = lay.ehdr.unpack_from(data, 16)
        shoff, shnum, shentsize = self.e_shoff, self.e_shnum, self.e_shentsize
        if shentsize != lay.shdr.size:
            raise InvalidModule(f"section header size {shentsize}, expected {lay.shdr.size}", path=path)
        if shoff >= size or shnum * shentsize > size - shoff:
            raise InvalidModule("section header table past end of file", path=path)
        if self.e_shstrndx == 0 or self.e_shstrndx >= shnum:
            raise InvalidModule(f"section name table index {self.e_shstrndx} out of range", path=path)
        # Headers are unpacked one by one when asked for; the columns every lookup scans (name,
        # type, info) are strided views of the table as u32 words, taken in C.
        columns = self._words = words(data[shoff : shoff + shnum * shentsize], "I", self.little_endian)
        shstr = lay.shdr.unpack_from(data, shoff + self.e_shstrndx * shentsize)
        s_type, s_off, s_size = shstr[1], shstr[4], shstr[5]
        if s_type == SHT_NOBITS or s_off + s_size > size or s_size == 0:
            raise InvalidModule("section name table past end of file or empty", path=path)
        if data[s_off + s_size - 1] != 0:
            raise InvalidModule("section name table not NUL-terminated", path=path)
        self._shstr_off = s_off
        self._shstr_end = s_off + s_size
        self._sym_cache: dict[tuple[int, int], list[Symbol]] = {}
        self._names = bytes(data[s_off : s_off + s_size])
        self._types: list[int] | None = None
        self._sections: list[Section] | None = None
        self._made: dict[int, Section] = {}
        self._name_offsets = columns[:: shentsize // 4].tolist()
        self._strtabs: dict[int, tuple[int, int, int, int]] = {}
        self._symtab_no = -1  # index of the first SYMTAB, 0 if none; -1 until looked up

    def _make_section(self, i: int) -> Section:
        no, typ, flags, addr, off, sz, link, info, align, entsize = self.layout.shdr.unpack_from(
            self.data, self.e_shoff + i * self.e_shentsize
        )
        names = self._names
        nm = names[no : names.index(b"\0", no)].decode("utf-8", "surrogateescape") if no < len(names) else ""
        return Section(i, nm, typ, flags, addr, off, sz, link, info, align, entsize, no)

    @property
    def sections(self) -> list[Section]:
        """All section headers, index 0 included (built on first use)."""
        if self._sections is None:
            self._sections = [self.section_at(i) for i in range(self.e_shnum)]
        return self._sections

    # -- sections ---------------------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        """The first section called ``name`` (libkmod's rule), or None."""
        if self._sections is not None:
            for s in self._sections:
                if s.name == name and s.number:
                    return s
            return None
        # Without building every Section: find where the name is in the name table, then which
        # header points there (list.index scans in C).
        key = name.encode("utf-8", "surrogateescape") + b"\0"
        names, offs = self._names, self._name_offsets
        best = -1
        pos = names.find(key)
        while pos >= 0:
            try:
                i = offs.index(pos, 1)
            except ValueError:
                pass
            else:
                if best < 0 or i < best:
                    best = i
            pos = names.find(key, pos + 1)
        return self.section_at(best) if best > 0 else None

    def sections_named(self, name: str) -> list[Section]:
        key = name.encode("utf-8", "surrogateescape") + b"\0"
        starts = self._names.startswith
        return [self.section_at(i) for i, o in enumerate(self._name_offsets) if i and starts(key, o)]

    def sections_of_type(self, sh_type: int) -> list[Section]:
        return [s for s in self.sections if s.type == sh_type]

    def check_bounds(self, sec: Section) -> None:
        if sec.type != SHT_NOBITS and (sec.offset > self.size or sec.size > self.size - sec.offset):
            raise InvalidModule(f"section {sec.name or sec.number} extends past end of file", path=self.path)

    def section_data(self, sec: Section) -> memoryview:
        """The section's bytes (empty for NOBITS), zero-copy."""
        if sec.type == SHT_NOBITS:
            return memoryview(b"")
        self.check_bounds(sec)
        return memoryview(self.data)[sec.offset : sec.offset + sec.size]

    def section_bytes(self, sec: Section) -> bytes:
        return bytes(self.section_data(sec))

    # -- strings ----------------------------------------------------------------------------

    def string(self, strtab: Section, offset: int) -> str:
        """The string at ``offset`` of string table ``strtab``."""
        if offset >= strtab.size:
            raise InvalidModule(
                f"string offset {offset} past end of {strtab.name or strtab.number}", path=self.path
            )
        self.check_bounds(strtab)
        return cstring(self.data, strtab.offset + offset, strtab.offset + strtab.size)

    # -- symbols ----------------------------------------------------------------------------

    def symtab(self) -> Section | None:
        """The first SHT_SYMTAB section (6.1's rule), or None."""
        no = self._symtab_no
        if no < 0:
            types = self._type_column()
            no = self._symtab_no = types.index(SHT_SYMTAB) if SHT_SYMTAB in types else 0
        return self.section_at(no) if no else None

    def section_at(self, number: int) -> Section:
        if self._sections is not None:
            return self._sections[number]
        sec = self._made.get(number)
        if sec is None:
            sec = self._made[number] = self._make_section(number)
        return sec

    def _symtab_data(self, symtab: Section) -> tuple[int, int, int, int]:
        """(first entry's file offset, entry count, string table start and end), bounds checked."""
        got = self._strtabs.get(symtab.number)
        if got is None:
            got = self._strtabs[symtab.number] = self._symtab_data_uncached(symtab)
        return got

    def _symtab_data_uncached(self, symtab: Section) -> tuple[int, int, int, int]:
        if symtab.link == 0 or symtab.link >= self.e_shnum:
            raise InvalidModule(f"symbol table {symtab.name} has no string table", path=self.path)
        strtab = self.section_at(symtab.link)
        self.check_bounds(symtab)
        self.check_bounds(strtab)
        # Names are read in place (no copy of a string table that may be 100 KB of local names).
        return symtab.offset, symtab.size // self.layout.sym.size, strtab.offset, strtab.offset + strtab.size

    def _name(self, s0: int, s1: int, off: int, idx: int) -> str:
        """The name at ``off`` of the string table data[s0:s1] (for symbol ``idx``)."""
        if not off:
            return ""
        if off >= s1 - s0:
            raise InvalidModule(f"symbol {idx} name offset past string table", path=self.path)
        data = self.data
        end = data.find(b"\0", s0 + off, s1)
        return data[s0 + off : end if end >= 0 else s1].decode("utf-8", "surrogateescape")

    def symbol(self, number: int, symtab: Section | None = None) -> Symbol | None:
        """One symbol by index (None if out of range), without decoding the whole table."""
        symtab = symtab or self.symtab()
        if symtab is None:
            return None
        base, count, s0, s1 = self._symtab_data(symtab)
        if not 0 <= number < count:
            return None
        lay = self.layout
        f = lay.sym.unpack_from(self.data, base + number * lay.sym.size)
        if lay.elf64:
            name_off, info, other, shndx, value, size = f
        else:
            name_off, value, size, info, other, shndx = f
        return Symbol(number, self._name(s0, s1, name_off, number), value, size, info, other, shndx)

    def symbols(self, symtab: Section | None = None, *, start: int = 0) -> list[Symbol]:
        """Symbols of ``symtab`` (default: the first SYMTAB) from index ``start``, names decoded."""
        if symtab is None:
            symtab = self.symtab()
            if symtab is None:
                return []
        key = (symtab.number, start)
        cached = self._sym_cache.get(key)
        if cached is not None:
            return cached
        out = self._decode_symbols(symtab, start, undefined_only=False)
        self._sym_cache[key] = out
        return out

    def undefined_symbols(self, symtab: Section | None = None) -> list[Symbol]:
        """Named SHN_UNDEF symbols among the non-locals (from sh_info on), in table order."""
        symtab = symtab or self.symtab()
        return self._decode_symbols(symtab, symtab.info, undefined_only=True) if symtab else []

    def undefined(self, symtab: Section | None = None) -> list[tuple[str, int]]:
        """(name, st_info) of the named SHN_UNDEF non-locals, in table order: the form of
        :meth:`undefined_symbols` for whole-tree scans (no Symbol objects, names in bulk)."""
        names, infos = self.undefined_columns(symtab)
        return list(zip(names, infos, strict=True))

    def undefined_columns(self, symtab: Section | None = None) -> tuple[list[str], list[int]]:
        """:meth:`undefined` as two parallel lists (names, st_info), built column-wise."""
        if symtab is None:
            symtab = self.symtab()
            if symtab is None:
                return [], []
        base, count, s0, s1 = self._symtab_data(symtab)
        start = symtab.info
        if start >= count:
            return [], []
        lay = self.layout
        entsize = lay.sym.size
        raw = self.data[base + start * entsize : base + count * entsize]
        rows = _undef_rows(raw, 6 if lay.elf64 else 14, entsize)
        if not rows:
            return [], []
        pick = itemgetter(*rows) if len(rows) > 1 else lambda seq: (seq[rows[0]],)
        # st_name is the first u32 of every entry: a strided view of the table as u32 words.
        st_names = words(raw, "I", self.little_endian)[:: entsize // 4]
        offs = list(pick(st_names))
        infos = list(pick(raw[4::entsize] if lay.elf64 else raw[12::entsize]))
        names = self._names_at(s0, s1, offs, start, rows)
        if 0 in offs:  # unnamed undefined symbols are not "needed"
            keep = [i for i, o in enumerate(offs) if o]
            return [names[i] for i in keep], [infos[i] for i in keep]
        return names, infos

    def _names_at(self, s0: int, s1: int, offs: list[int], start: int, rows: list[int]) -> list[str]:
        """Names at string-table offsets ``offs`` (of symbols ``start + rows``), "" for 0.

        Non-local names sit together at the end of a linker's string table, so the span they
        cover is decoded and split once (in C) instead of searched name by name; an offset inside
        a string (a shared suffix) is found by bisection; a sparse or non-ASCII span is searched.
        """
        if not offs:
            return []
        nstr = s1 - s0
        ordered = sorted(offs)
        hi = ordered[-1]
        if hi >= nstr:
            bad = next(j for o, j in zip(offs, rows, strict=True) if o >= nstr)
            raise InvalidModule(f"symbol {start + bad} name offset past string table", path=self.path)
        if not hi:
            return ["" for _ in offs]
        data = self.data
        end = data.find(b"\0", s0 + hi, s1)
        end = s1 if end < 0 else end
        # The span to split: from the lowest offset of the dense cluster at the end (a few
        # names may share a local's string earlier in the table; those are searched).
        k = ordered.count(0)  # past the unnamed ones (sorted first)
        n = len(ordered)
        while end - s0 - ordered[k] > 64 * (n - k):
            k += 1
            if k == n:
                return [self._name(s0, s1, o, start) for o in offs]
        lo = ordered[k]
        region = data[s0 + lo : end]
        if not region.isascii():
            return [self._name(s0, s1, o, start) for o in offs]
        parts = region.decode("ascii").split("\0")
        # Part i starts at lo + the sum of (len + 1) of the parts before it (ASCII: one byte a char).
        at = dict(zip(map(add, accumulate(map(len, parts), initial=lo), count()), parts, strict=False))
        at[0] = ""
        pick = itemgetter(*offs) if n > 1 else None
        try:
            return list(pick(at)) if pick is not None else [at[offs[0]]]
        except KeyError:
            pass
        starts = list(map(add, accumulate(map(len, parts), initial=lo), count()))
        for o in set(offs).difference(at):
            if o < lo:  # outside the split span
                at[o] = self._name(s0, s1, o, start)
            else:  # inside a string: the linker shared a suffix
                from bisect import bisect_right  # lazy: start-up (rare: shared suffixes)

                i = bisect_right(starts, o) - 1
                at[o] = parts[i][o - starts[i] :]
        return list(pick(at)) if pick is not None else [at[offs[0]]]

    def _scan(self, symtab: Section | None, *, start: int | None = None, undefined: bool = False
              ) -> list[tuple[int, str, tuple[int, ...]]]:  # fmt: skip
        """(index, name, raw fields) of the symbols from ``start`` (default: sh_info when
        ``undefined``, else 0), only the named SHN_UNDEF ones when ``undefined``."""
        if symtab is None:
            symtab = self.symtab()
            if symtab is None:
                return []
        base, count, s0, s1 = self._symtab_data(symtab)
        if start is None:
            start = symtab.info if undefined else 0
        if start >= count:
            return []
        lay = self.layout
        entsize = lay.sym.size
        data = self.data
        raw = data[base + start * entsize : base + count * entsize]
        if undefined:
            picked = _undef_rows(raw, 6 if lay.elf64 else 14, entsize)
            unpack = lay.sym.unpack_from
            entries = [(start + j, unpack(raw, j * entsize)) for j in picked]
        else:
            entries = list(enumerate(lay.sym.iter_unpack(raw), start))
        out = []
        nstr = s1 - s0
        find = data.find
        for idx, f in entries:
            off = f[0]
            if not off:
                if undefined:
                    continue
                out.append((idx, "", f))
                continue
            if off >= nstr:
                raise InvalidModule(f"symbol {idx} name offset past string table", path=self.path)
            end = find(b"\0", s0 + off, s1)
            out.append((idx, data[s0 + off : end if end >= 0 else s1].decode("utf-8", "surrogateescape"), f))
        return out

    def _decode_symbols(self, symtab: Section, start: int, *, undefined_only: bool) -> list[Symbol]:
        out = []
        for idx, name, f in self._scan(symtab, start=start, undefined=undefined_only):
            if self.layout.elf64:
                _n, info, other, shndx, value, size = f
            else:
                _n, value, size, info, other, shndx = f
            out.append(Symbol(idx, name, value, size, info, other, shndx))
        return out

    def global_symbols(self, symtab: Section | None = None) -> list[Symbol]:
        """The non-local symbols: from the symtab's sh_info (first non-local) on."""
        symtab = symtab or self.symtab()
        if symtab is None:
            return []
        return [s for s in self.symbols(symtab, start=symtab.info) if s.bind != STB_LOCAL]

    # -- relocations ------------------------------------------------------------------------

    def relocations(self, relsec: Section) -> list[Relocation]:
        """Entries of one SHT_REL or SHT_RELA section."""
        lay = self.layout
        data = self.section_data(relsec)
        shift, mask = lay.r_sym_shift, lay.r_type_mask
        if relsec.type == SHT_RELA:
            n = len(data) // lay.rela.size
            return [
                Relocation(off, info >> shift, info & mask, add)
                for off, info, add in lay.rela.iter_unpack(data[: n * lay.rela.size])
            ]
        if relsec.type == SHT_REL:
            n = len(data) // lay.rel.size
            return [
                Relocation(off, info >> shift, info & mask, None)
                for off, info in lay.rel.iter_unpack(data[: n * lay.rel.size])
            ]
        raise InvalidModule(f"section {relsec.name} is not a relocation section", path=self.path)

    def relocation_sections_for(self, target: Section) -> list[Section]:
        """REL/RELA sections whose sh_info names ``target``."""
        n = target.number
        infos = self._words[_SH_INFO_WORD[self.layout.elf64] :: self.e_shentsize // 4]
        if n not in infos:
            return []
        types = self._type_column()
        return [self.section_at(i) for i, v in enumerate(infos) if v == n and types[i] in _RELOC_TYPES]

    def _type_column(self) -> list[int]:
        """sh_type of every section header, in index order."""
        types = self._types
        if types is None:
            types = self._types = self._words[1 :: self.e_shentsize // 4].tolist()
        return types

    # -- words ------------------------------------------------------------------------------

    def word(self, offset: int) -> int:
        """An ``unsigned long`` of the target at file offset ``offset``."""
        return int(self.layout.word.unpack_from(self.data, offset)[0])

    def u32(self, offset: int) -> int:
        return int(self.layout.u32.unpack_from(self.data, offset)[0])

    @property
    def word_size(self) -> int:
        return self.elfclass // 8

"""Big-endian objects: a fixture module rewritten byte-swapped (ELF64 MSB, as s390x and ppc64
modules are) must read the same as the original, and as pyelftools reads the swapped file."""

from __future__ import annotations

import io
import struct

import pytest

from lkm.elf import ElfFile
from lkm.elf.constants import SHT_REL, SHT_RELA, SHT_SYMTAB
from lkm.module import ModuleFile

from support import FIX6, FIX24

LAYOUT = {
    64: {"ehdr": "HHIQQQIHHHHHH", "shdr": "IIQQQQIIQQ", "sym": "IBBHQQ", "rel": "QQ", "rela": "QQq"},
    32: {"ehdr": "HHIIIIIHHHHHH", "shdr": "IIIIIIIIII", "sym": "IIIBBH", "rel": "II", "rela": "IIi"},
}


def _swap(data: bytes, fmt: str, offset: int, count: int, out: bytearray) -> None:
    le, be = struct.Struct("<" + fmt), struct.Struct(">" + fmt)
    for i in range(count):
        be.pack_into(out, offset + i * le.size, *le.unpack_from(data, offset + i * le.size))


def to_big_endian(data: bytes) -> bytes:
    """The same object with every ELF structure byte-swapped (contents of other sections kept)."""
    cls = 64 if data[4] == 2 else 32
    lay = LAYOUT[cls]
    out = bytearray(data)
    out[5] = 2  # ELFDATA2MSB
    _swap(data, lay["ehdr"], 16, 1, out)
    e = struct.unpack_from("<" + lay["ehdr"], data, 16)
    shoff, shentsize, shnum = e[5], e[10], e[11]
    _swap(data, lay["shdr"], shoff, shnum, out)
    for i in range(shnum):
        sh = struct.unpack_from("<" + lay["shdr"], data, shoff + i * shentsize)
        typ, off, size = sh[1], sh[4], sh[5]
        kind = {SHT_SYMTAB: "sym", SHT_REL: "rel", SHT_RELA: "rela"}.get(typ)
        if kind is None:
            continue
        # r_info keeps its value (ELF64: sym << 32 | type), only its byte order changes.
        _swap(data, lay[kind], off, size // struct.calcsize("<" + lay[kind]), out)
    return bytes(out)


CASES = [
    FIX6 / "chardev.ko",
    FIX6 / "params.ko",
    FIX6 / "exporter.ko",
    FIX24 / "fat24.o",
    FIX24 / "msdos24.o",
]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_big_endian_reads_like_little_endian(path) -> None:  # type: ignore[no-untyped-def]
    le = ModuleFile.from_bytes(path.read_bytes(), path=str(path))
    be = ModuleFile.from_bytes(to_big_endian(path.read_bytes()), path=str(path))
    assert not be.elf.little_endian
    assert [s.astuple() for s in be.elf.sections] == [s.astuple() for s in le.elf.sections]
    assert be.elf.symbols() == le.elf.symbols()
    for sec in le.elf.sections:
        if sec.type in (SHT_REL, SHT_RELA):
            assert be.elf.relocations(be.elf.sections[sec.number]) == le.elf.relocations(sec)
    assert be.elf.undefined() == le.elf.undefined()
    assert be.modinfo == le.modinfo and be.parameters == le.parameters
    assert [n.name for n in be.needed] == [n.name for n in le.needed]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_big_endian_against_pyelftools(path) -> None:  # type: ignore[no-untyped-def]
    from elftools.elf.elffile import ELFFile

    data = to_big_endian(path.read_bytes())
    ours = ElfFile(data)
    theirs = ELFFile(io.BytesIO(data))
    assert not theirs.little_endian
    for sec in ours.sections:
        h = theirs.get_section(sec.number).header
        assert (sec.offset, sec.size, sec.link, sec.info, sec.addralign) == (
            h.sh_offset,
            h.sh_size,
            h.sh_link,
            h.sh_info,
            h.sh_addralign,
        )
    symtab = ours.symtab()
    assert symtab is not None
    tsyms = list(theirs.get_section(symtab.number).iter_symbols())
    assert [(s.name, s.value, s.size) for s in ours.symbols()] == [
        (t.name, t.entry.st_value, t.entry.st_size) for t in tsyms
    ]
    for sec in ours.sections:
        if sec.type == SHT_RELA and sec.size:
            mine = [(r.offset, r.sym, r.type, r.addend) for r in ours.relocations(sec)]
            tr = theirs.get_section(sec.number)
            assert mine == [
                (r["r_offset"], r["r_info_sym"], r["r_info_type"], r["r_addend"])
                for r in tr.iter_relocations()
            ]

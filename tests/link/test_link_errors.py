"""The linker refuses what the kernel refuses, with one line naming module, section, offset
and symbol: missing symbols, unknown relocation types, non-zero targets, overflow, bad indices."""

from __future__ import annotations

import errno
import struct

import pytest

from lkm.elf.constants import SHT_RELA
from lkm.link.image import LinkError, link_module
from lkm.link.layout import layout_module
from lkm.module import ModuleFile

from support import FIX6, FIX24

BASES_61 = {"core": 0xFFFFFFFFC0000000, "init": 0xFFFFFFFFC8000000}


def _kernel(name: str) -> int:
    return 0xFFFFFFFF81000000 + (hash(name) & 0xFFFF) * 16


def _first_rela(data: bytes, mod: ModuleFile, target: str) -> int:
    """File offset of the first RELA entry applying to section ``target``."""
    sec = mod.elf.section(target)
    assert sec is not None
    rs = next(s for s in mod.elf.relocation_sections_for(sec) if s.type == SHT_RELA)
    return rs.offset


def _link(data: bytes, resolve=_kernel):  # type: ignore[no-untyped-def]
    mod = ModuleFile.from_bytes(data, path="x.ko")
    return link_module(mod, layout_module(mod.elf, "linux-6.1"), BASES_61, resolve)


GOOD = (FIX6 / "chardev.ko").read_bytes()


def test_links() -> None:
    img = _link(GOOD)
    assert img.relocations > 0 and "__fentry__" in img.resolved


def test_unknown_symbol() -> None:
    with pytest.raises(LinkError) as ei:
        _link(GOOD, lambda name: None if name == "__register_chrdev" else _kernel(name))
    assert ei.value.errno == errno.ENOENT
    assert "Unknown symbol __register_chrdev" in ei.value.reason and "\n" not in ei.value.reason


def _patched_rela(field: int, fmt: str, value: int) -> bytes:
    mod = ModuleFile.from_bytes(GOOD)
    off = _first_rela(GOOD, mod, ".text")
    b = bytearray(GOOD)
    struct.pack_into(fmt, b, off + field, value)
    return bytes(b)


def test_unknown_relocation_type() -> None:
    mod = ModuleFile.from_bytes(GOOD)
    off = _first_rela(GOOD, mod, ".text")
    sym = struct.unpack_from("<Q", GOOD, off + 8)[0] >> 32
    data = _patched_rela(8, "<Q", (sym << 32) | 99)
    with pytest.raises(LinkError, match=r"chardev: \.text\+0x[0-9a-f]+ \(\S+\): Unknown relocation type 99"):
        _link(data)


def test_symbol_index_out_of_range() -> None:
    data = _patched_rela(8, "<Q", (0xFFFFFF << 32) | 2)
    with pytest.raises(
        LinkError, match=r"\.text\+0x[0-9a-f]+: relocation symbol index 16777215 out of range"
    ):
        _link(data)


def test_offset_past_section_end() -> None:
    data = _patched_rela(0, "<Q", 0xFFFFFF)
    with pytest.raises(LinkError, match="past the end of the section"):
        _link(data)


def test_nonzero_target() -> None:
    mod = ModuleFile.from_bytes(GOOD)
    off = _first_rela(GOOD, mod, ".text")
    r_offset = struct.unpack_from("<Q", GOOD, off)[0]
    text = mod.elf.section(".text")
    assert text is not None
    b = bytearray(GOOD)
    b[text.offset + r_offset] = 0x5A
    with pytest.raises(LinkError, match="Invalid relocation target, existing value is nonzero"):
        _link(bytes(b))


def test_overflow_32s() -> None:
    mod = ModuleFile.from_bytes(GOOD)
    rels = [
        (s, r)
        for s in mod.elf.sections
        if s.type == SHT_RELA
        for r in mod.elf.relocations(s)
        if r.type == 11  # R_X86_64_32S
    ]
    assert rels, "the fixture has R_X86_64_32S sites"
    # Modules far above the kernel's top 2 GiB: 32S values no longer sign-extend.
    with pytest.raises(LinkError, match="overflow in relocation type 11"):
        link_module(
            mod,
            layout_module(mod.elf, "linux-6.1"),
            {"core": 0x7F0000000000, "init": 0x7F0010000000},
            _kernel,
        )


def test_i386_rel_adds_in_place() -> None:
    """2.4/i386 REL: the value in the section is the addend (independent check of one site)."""
    mod = ModuleFile.open(FIX24 / "hello24.o")
    img = link_module(mod, layout_module(mod.elf, "linux-6.1"), {"core": 0xC8800000, "init": 0xC8900000},
                      lambda n: 0xC0100000)  # fmt: skip
    text = mod.elf.section(".text")
    assert text is not None
    for rs in mod.elf.relocation_sections_for(text):
        for r in mod.elf.relocations(rs):
            sym = mod.elf.symbols()[r.sym]
            if sym.name == "printk" and r.type == 2:  # R_386_PC32 call
                addend = struct.unpack_from("<i", mod.elf.section_bytes(text), r.offset)[0]
                p = img.section_addresses[text.number] + r.offset
                got = struct.unpack_from("<I", img.section_bytes(text.number), r.offset)[0]
                assert got == (0xC0100000 + addend - p) & 0xFFFFFFFF
                return
    raise AssertionError("no printk call found")

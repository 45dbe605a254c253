"""arm64 specifics: PLT sections sized before layout (module_frob_arch_sections) and branches out
of range routed through PLT entries (adrp x16; add x16, x16, :lo12:; br x16) that reach the
branch target; instruction relocations decoded back independently."""

from __future__ import annotations

import struct

import pytest

from lkm.arch.arm64 import PLT_ENTRY_SIZE, R, encode_imm, reloc_insn_imm, reloc_insn_movw
from lkm.elf.constants import SHT_NOBITS
from lkm.link.image import link_module
from lkm.link.layout import layout_module
from lkm.module import ModuleFile


def _adrp_target(insn: int, pc: int) -> int:
    imm = ((insn >> 29) & 3) | (((insn >> 5) & ((1 << 19) - 1)) << 2)
    if imm & (1 << 20):
        imm -= 1 << 21
    return (pc & ~0xFFF) + (imm << 12)


def _branch_target(insn: int, pc: int) -> int:
    imm = insn & ((1 << 26) - 1)
    if imm & (1 << 25):
        imm -= 1 << 26
    return pc + imm * 4


@pytest.fixture(scope="module")
def mod(corpus_trees) -> ModuleFile:  # type: ignore[no-untyped-def]
    from testing.corpus import module_files

    tree = next(t for t in corpus_trees if t.name == "arm64-6.1")
    return ModuleFile.open(next(p for p in module_files(tree) if p.name == "fat.ko"))


@pytest.mark.corpus
def test_plt_sections_sized_before_layout(mod: ModuleFile) -> None:
    lay = layout_module(mod.elf, "linux-6.1")
    plt = mod.elf.section(".plt")
    assert plt is not None and plt.number in lay.nobits
    p = lay.placements[plt.number]
    assert p.size % PLT_ENTRY_SIZE == 0 and p.size > PLT_ENTRY_SIZE and p.offset % 64 == 0
    assert mod.elf.sections[plt.number].type != SHT_NOBITS  # the file itself is untouched


@pytest.mark.corpus
def test_far_calls_go_through_the_plt(mod: ModuleFile) -> None:
    far = 0xFFFF800080000000  # 2 GiB away: out of a branch's 128 MiB
    lay = layout_module(mod.elf, "linux-6.1")
    bases = {"core": 0xFFFF800001000000, "init": 0xFFFF800004000000}
    img = link_module(mod, lay, bases, lambda n: far + (hash(n) & 0xFFF0))
    plt = mod.elf.section(".plt")
    text = mod.elf.section(".text")
    assert plt is not None and text is not None
    plt_addr, plt_size = img.section_addresses[plt.number], lay.placements[plt.number].size
    body = img.section_bytes(text.number)
    checked = 0
    for rs in mod.elf.relocation_sections_for(text):
        for r in mod.elf.relocations(rs):
            if r.type != R["CALL26"] or mod.elf.symbols()[r.sym].shndx != 0:
                continue
            pc = img.section_addresses[text.number] + r.offset
            via = _branch_target(struct.unpack_from("<I", body, r.offset)[0], pc)
            assert plt_addr <= via < plt_addr + plt_size and (via - plt_addr) % PLT_ENTRY_SIZE == 0
            entry = img.section_bytes(plt.number)[via - plt_addr : via - plt_addr + 12]
            adrp, add, br = struct.unpack("<III", entry)
            dst = _adrp_target(adrp, via) + ((add >> 10) & 0xFFF)
            assert dst == img.symbol_values[r.sym] + (r.addend or 0) and br == 0xD61F0200
            checked += 1
    assert checked > 10


def test_instruction_encodings() -> None:
    # b . + 0x1000 (imm26 = 0x400), from an ADRP-free "b" opcode
    insn, ovf = reloc_insn_imm("prel", 0x14000000, 0x1000, 0x2000, 2, 26, "imm26")
    assert insn == 0x14000400 and not ovf
    _, ovf = reloc_insn_imm("prel", 0x14000000, 0, 1 << 28, 2, 26, "imm26")
    assert ovf
    # movz/movn by sign (MOVW_SABS): negative values become MOVN with the inverted immediate
    insn, _ = reloc_insn_movw("abs", 0xD2800000, 0, (-2) & ((1 << 64) - 1), 0, "movnz")
    assert insn >> 29 & 3 == 0 and (insn >> 5) & 0xFFFF == 1
    insn, _ = reloc_insn_movw("abs", 0x92800000, 0, 5, 0, "movnz")
    assert insn >> 29 & 3 == 2 and (insn >> 5) & 0xFFFF == 5
    assert encode_imm("adr", 0x90000000, 0b101) == 0x90000000 | (1 << 29) | (1 << 5)

"""arm64 erratum 843419 workaround (CONFIG_ARM64_ERRATUM_843419 on an affected Cortex-A53), as
the kernel's module loader applies it: ADRPs that could land in the last 8 bytes of a page
raise their section's alignment when 4K alignment is enough, else get a PLT veneer slot;
at relocation an ADRP at such a place becomes an ADR when in range, else a branch to a veneer
(adrp+add into the same register, branch back).  Instructions decoded back here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.link.image import link_module
from lkm.link.layout import KernelConfig, layout_module
from lkm.module import ModuleFile

from support import require

BASES = {"core": 0xFFFF800001000000, "init": 0xFFFF800001800000}
EXT = 0xFFFF800009000000  # far beyond ADR's +-1 MiB from the module
SRC = """\
\t.text
\t.globl init_module
init_module:
\tret
\t.section .text.late,"ax",@progbits
\t.skip 0x7f8
\tadrp x1, ext_sym
\t.skip 0xff8 - 0x7fc
\tadrp x3, ext_sym
\tadrp x5, near_data
\tadd x5, x5, :lo12:near_data
\tret
\t.data
\t.globl near_data
near_data: .quad 1
\t.section .plt,"ax",@progbits
\t.section .init.plt,"ax",@progbits
\t.section .modinfo,"a"
\t.string "vermagic=6.1.0-test SMP mod_unload aarch64"
"""


def _sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def adr_target(insn: int, pc: int) -> tuple[bool, int, int]:
    """(is ADRP, register, target) of an ADR/ADRP."""
    assert insn & 0x1F000000 == 0x10000000, hex(insn)
    imm = _sext(((insn >> 29) & 3) | (((insn >> 5) & 0x7FFFF) << 2), 21)
    page = bool(insn >> 31)
    return page, insn & 0x1F, ((pc & ~0xFFF) + (imm << 12)) if page else pc + imm


def b_target(insn: int, pc: int) -> int:
    assert insn & 0xFC000000 == 0x14000000, hex(insn)
    return pc + 4 * _sext(insn & 0x3FFFFFF, 26)


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(shutil.which("aarch64-linux-gnu-as"), "binutils-aarch64-linux-gnu missing")
    d = tmp_path_factory.mktemp("erratum")
    (d / "e.s").write_text(SRC)
    subprocess.run(["aarch64-linux-gnu-as", "-o", str(d / "e.o"), str(d / "e.s")], check=True)
    return d / "e.o"


def _link(path: Path, erratum: bool):  # type: ignore[no-untyped-def]
    mod = ModuleFile.open(path)
    lay = layout_module(mod.elf, "linux-6.1", KernelConfig(arm64_erratum_843419=erratum))
    img = link_module(mod, lay, BASES, lambda n: EXT if n == "ext_sym" else None)
    num = {s.name: s.number for s in mod.elf.sections}
    return img, num


def word(img, num: dict[str, int], sec: str, off: int) -> int:  # type: ignore[no-untyped-def]
    return int.from_bytes(img.section_bytes(num[sec])[off : off + 4], "little")


def test_erratum_on_adr_and_veneer(obj: Path) -> None:
    img, num = _link(obj, True)
    text = img.section_addresses[num[".text.late"]]
    plt = img.section_addresses[num[".plt"]]
    near = img.section_addresses[num[".data"]]
    # the ADRP at 0x7f8 needs 4K alignment: .text.late got it (after .text's 4 bytes)
    assert text == BASES["core"] + 4096
    # .plt: 2 veneer slots + 1 slack (one per 4K of entries) + the kernel's spare entry
    assert img.layout.placements[num[".plt"]].size == 4 * 12
    assert adr_target(word(img, num, ".text.late", 0x7F8), text + 0x7F8) == (True, 1, EXT & ~0xFFF)
    # 0xff8: out of ADR range -> b veneer; the veneer recomputes the page into x3 and returns
    veneer = b_target(word(img, num, ".text.late", 0xFF8), text + 0xFF8)
    assert plt <= veneer < plt + 48 and (veneer - plt) % 12 == 0
    assert adr_target(word(img, num, ".plt", veneer - plt), veneer) == (True, 3, EXT & ~0xFFF)
    assert word(img, num, ".plt", veneer - plt + 4) == 0x91000000 | 3 << 5 | 3  # add x3, x3, #0
    assert b_target(word(img, num, ".plt", veneer - plt + 8), veneer + 8) == text + 0xFFC
    # 0xffc: the page of near_data is in ADR range -> adr x5, page
    assert adr_target(word(img, num, ".text.late", 0xFFC), text + 0xFFC) == (False, 5, near & ~0xFFF)


def test_erratum_off_plain_adrp(obj: Path) -> None:
    img, num = _link(obj, False)
    text = img.section_addresses[num[".text.late"]]
    assert text == BASES["core"] + 4
    assert img.layout.placements[num[".plt"]].size == 12
    for off, reg in ((0xFF8, 3), (0xFFC, 5)):
        page, r, _ = adr_target(word(img, num, ".text.late", off), text + off)
        assert page and r == reg

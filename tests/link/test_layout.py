"""Section layout by the spec's rules (kernel-loader.md §2; modutils 2.4 load order), on a small
object assembled here whose sections have known sizes and alignments.  Expected offsets are
worked out by hand below from those rules; the real kernel's choices are checked in the VM
tests of the real-kernel work."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.elf.constants import SHF_ALLOC, SHF_RO_AFTER_INIT
from lkm.link.layout import KernelConfig, layout_24, layout_module
from lkm.module import ModuleFile

from support import FIX6, FIX24, require

ASM = """
    .section .text,"ax",@progbits
    .p2align 4
    .globl f
f:  .skip 0x13
    .section .rodata,"a",@progbits
    .p2align 3
    .skip 5
    .section .data..ro_after_init,"aw",@progbits
    .p2align 2
    .skip 6
    .section .data,"aw",@progbits
    .p2align 2
    .skip 4
    .section .bss,"aw",@nobits
    .p2align 3
    .skip 8
    .section .init.text,"ax",@progbits
    .globl init_f
init_f: .skip 3
    .section .init.data,"aw",@progbits
    .p2align 3
    .skip 2
    .section .modinfo,"a",@progbits
    .asciz "license=GPL"
    .section .gnu.linkonce.this_module,"aw",@progbits
    .p2align 6
    .skip 64
"""


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> ModuleFile:
    require(shutil.which("as"), "binutils (as) missing")
    d = tmp_path_factory.mktemp("layout")
    (d / "m.s").write_text(ASM)
    subprocess.run(["as", "--64", "-o", str(d / "m.o"), str(d / "m.s")], check=True)
    return ModuleFile.open(d / "m.o")


def _at(layout, obj, name):  # type: ignore[no-untyped-def]
    sec = obj.elf.section(name)
    p = layout.placements[sec.number]
    return p.region, p.offset


def test_linux_61(obj: ModuleFile) -> None:
    lay = layout_module(obj.elf, "linux-6.1", KernelConfig(page_size=4096, strict_module_rwx=True))
    # core: text [0, 0x13) -> page; rodata at 0x1000 -> page; ro_after_init at 0x2000 -> page;
    # data at 0x3000, bss aligned 8 at 0x3008, this_module aligned 64 at 0x3040 (ends 0x3080) -> page
    assert _at(lay, obj, ".text") == ("core", 0)
    assert _at(lay, obj, ".rodata") == ("core", 0x1000)
    assert _at(lay, obj, ".data..ro_after_init") == ("core", 0x2000)
    assert _at(lay, obj, ".data") == ("core", 0x3000)
    assert _at(lay, obj, ".bss") == ("core", 0x3008)
    assert _at(lay, obj, ".gnu.linkonce.this_module") == ("core", 0x3040)
    assert lay.marks["core"] == {"text_size": 0x1000, "ro_size": 0x2000, "ro_after_init_size": 0x3000}
    # kallsyms: 2 kept symbols (index 0 and f; init_f is init) at 0x4000, names "\0f\0" (3 bytes),
    # 2 type bytes: ends 0x4035 -> page: 0x5000
    k = lay.kallsyms
    assert (k.symoffs, k.stroffs, k.core_typeoffs) == (0x4000, 0x4030, 0x4033)
    assert lay.sizes["core"] == 0x5000
    # init: .init.text at 0 -> page; .init.data aligned 8 at 0x1000 -> page; .symtab at 0x2000
    assert _at(lay, obj, ".init.text") == ("init", 0)
    assert _at(lay, obj, ".init.data") == ("init", 0x1000)
    assert _at(lay, obj, ".symtab") == ("init", 0x2000)
    assert lay.marks["init"] == {"text_size": 0x1000, "ro_size": 0x1000, "ro_after_init_size": 0x1000}
    symtab = obj.elf.symtab()
    assert symtab is not None
    strtab = obj.elf.sections[symtab.link]
    assert _at(lay, obj, ".strtab") == ("init", 0x2000 + symtab.size)
    mk = (0x2000 + symtab.size + strtab.size + 7) & ~7
    assert (k.init_off, k.init_typeoffs) == (mk, mk + 32)
    assert lay.sizes["init"] == (mk + 32 + symtab.size // 24 + 0xFFF) & ~0xFFF
    # not loaded: .modinfo loses SHF_ALLOC
    assert obj.elf.section(".modinfo").number not in lay.placements  # type: ignore[union-attr]


def test_linux_612(obj: ModuleFile) -> None:
    lay = layout_module(obj.elf, "linux-6.12", KernelConfig(page_size=4096))
    assert _at(lay, obj, ".text") == ("text", 0)
    assert _at(lay, obj, ".rodata") == ("rodata", 0)
    assert _at(lay, obj, ".data..ro_after_init") == ("ro_after_init", 0)
    assert _at(lay, obj, ".data") == ("data", 0)
    assert _at(lay, obj, ".bss") == ("data", 8)
    assert _at(lay, obj, ".gnu.linkonce.this_module") == ("data", 0x40)
    k = lay.kallsyms
    assert (k.symoffs, k.stroffs, k.core_typeoffs) == (0x80, 0xB0, 0xB3)
    assert lay.sizes == {
        "text": 0x13,
        "rodata": 5,
        "ro_after_init": 6,
        "data": 0xB5,
        "init_text": 3,
        "init_data": lay.sizes["init_data"],
    }
    assert _at(lay, obj, ".init.data") == ("init_data", 0)
    assert _at(lay, obj, ".symtab") == ("init_data", 8)
    assert lay.alloc_size("data") == 0x1000 and lay.alloc_size("init_rodata") == 0
    flags = lay.placements[obj.elf.section(".data..ro_after_init").number].flags  # type: ignore[union-attr]
    assert flags & SHF_RO_AFTER_INIT and flags & SHF_ALLOC


def test_kallsyms_all_keeps_data_symbols(tmp_path: Path) -> None:
    require(shutil.which("as"), "binutils (as) missing")
    (tmp_path / "d.s").write_text(
        '.section .data,"aw",@progbits\n.globl var\nvar: .long 1\n'
        '.section .text,"ax",@progbits\n.globl fn\nfn: ret\n'
    )
    subprocess.run(["as", "--64", "-o", str(tmp_path / "d.o"), str(tmp_path / "d.s")], check=True)
    elf = ModuleFile.open(tmp_path / "d.o").elf
    names = lambda lay: [elf.symbols()[i].name for i in lay.kallsyms.kept]  # noqa: E731
    assert names(layout_module(elf, "linux-6.12", KernelConfig(kallsyms_all=False))) == ["", "fn"]
    assert sorted(names(layout_module(elf, "linux-6.12", KernelConfig(kallsyms_all=True)))) == [
        "",
        "fn",
        "var",
    ]


def test_every_fixture_section_placed_once() -> None:
    for path in sorted(FIX6.glob("*.ko")):
        elf = ModuleFile.open(path).elf
        for rules in ("linux-6.1", "linux-6.12"):
            lay = layout_module(elf, rules)
            for p in lay.placements.values():
                assert p.offset % (elf.sections[p.number].addralign or 1) == 0
                assert p.offset + p.size <= lay.sizes[p.region]


def test_24_load_order() -> None:
    """insmod 2.4: text (exec, read-only) before rodata, data, bss; .text.init style names last."""
    elf = ModuleFile.open(FIX24 / "chardev24.o").elf
    lay = layout_24(elf, extra_first=((".this", 60, 4),))
    ordered = sorted(lay.placements.values(), key=lambda p: p.offset)
    assert ordered[0].name == ".this" and ordered[0].offset == 0
    names = [p.name for p in ordered]
    assert names.index(".text") < names.index(".data") < names.index(".bss")
    for p in ordered:
        if p.number >= 0:
            assert p.offset % (elf.sections[p.number].addralign or 1) == 0


def test_config_from_corpus(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    cfg = {
        t.name: KernelConfig.from_config_text(Path(t.config).read_text()) for t in corpus_trees if t.config
    }
    assert cfg["amd64-6.1"].kallsyms_all and not cfg["arm64-6.1"].kallsyms_all
    assert all(c.strict_module_rwx and c.page_size == 4096 for c in cfg.values())

"""The linked-ELF output: binutils and pyelftools read it; sections sit at their final addresses
with the linked bytes; symbols carry final values; imports are absolute; writes are atomic."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.link.image import link_module
from lkm.link.layout import layout_module
from lkm.link.output import linked_elf, region_blobs, write_atomic
from lkm.module import ModuleFile

from support import FIX6, FIX24, require

K64, K32 = 0xFFFFFFFF81000000, 0xC0100000
REGIONS_612 = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata")
CASES = [
    (FIX6 / "chardev.ko", "linux-6.1", {"core": 0xFFFFFFFFC0000000, "init": 0xFFFFFFFFC0800000}, K64),
    (
        FIX6 / "exporter.ko",
        "linux-6.12",
        {r: 0xFFFFFFFFC0000000 + i * 0x100000 for i, r in enumerate(REGIONS_612)},
        K64,
    ),
    (FIX24 / "fat24.o", "linux-2.4", {"image": 0xC8800000}, K32),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("path", "rules", "bases", "kbase"), CASES, ids=lambda v: getattr(v, "name", None))
def test_linked_elf_readable(
    path: Path, rules: str, bases: dict[str, int], kbase: int, tmp_path: Path
) -> None:
    from elftools.elf.elffile import ELFFile

    mod = ModuleFile.open(path)
    img = link_module(mod, layout_module(mod.elf, rules), bases, lambda n: kbase)
    out = tmp_path / "linked.elf"
    write_atomic(str(out), linked_elf(mod, img))
    with out.open("rb") as f:
        e = ELFFile(f)
        assert e["e_type"] == "ET_EXEC"
        for n, addr in img.section_addresses.items():
            sec = mod.elf.sections[n]
            if sec.name in (".symtab", ".strtab"):
                continue
            t = e.get_section_by_name(sec.name)
            assert t is not None and t["sh_addr"] == addr, sec.name
            if t["sh_type"] != "SHT_NOBITS":
                assert t.data() == img.section_bytes(n), sec.name
        syms = {s.name: s for s in e.get_section_by_name(".symtab").iter_symbols() if s.name}
        for name, value in img.resolved.items():
            assert syms[name]["st_value"] == value and syms[name]["st_shndx"] == "SHN_ABS"
        segs = [s for s in e.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert {s["p_vaddr"] for s in segs} == {bases[r] for r in img.regions if img.regions[r]}
    require(shutil.which("objdump"), "binutils missing")
    dis = subprocess.run(["objdump", "-d", str(out)], capture_output=True, text=True, check=True).stdout
    assert f"{min(bases.values()):x}" in dis


def test_blobs_are_the_regions() -> None:
    mod = ModuleFile.open(FIX24 / "hello24.o")
    img = link_module(mod, layout_module(mod.elf, "linux-2.4"), {"image": 0xC8800000}, lambda n: 0xC0100000)
    blobs = region_blobs(img)
    assert list(blobs) == ["image"] and len(blobs["image"]) == img.layout.sizes["image"]


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(TypeError):
        write_atomic(str(target), object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []

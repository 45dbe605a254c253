"""The linker against GNU ld: for a deterministic sample of real modules, ld links the same object
with every section at the address lkm's layout chose and every import at the address lkm
resolved (--section-start, --defsym); every allocated section's bytes must be identical.

ld merges SHF_MERGE sections (string tables), so the oracle's copy of the input has that flag
cleared with objcopy; lkm always reads the original file."""

from __future__ import annotations

import lzma
import os
import shutil
import sys
import zlib
from pathlib import Path

import pytest

from lkm.link.gnu_ld import KERNEL_REWRITTEN, TOOLS, ld_link, ld_section_name
from lkm.link.image import link_module
from lkm.link.layout import KernelConfig, layout_module
from lkm.module import ModuleFile

from support import IN_CI, require

TREES = {
    # tree: (layout rules, ld emulation, region bases, fake kernel base, per-cpu base)
    "amd64-6.1": (
        "linux-6.1",
        "elf_x86_64",
        {"core": 0xFFFFFFFFC0000000, "init": 0xFFFFFFFFC8000000},
        0xFFFFFFFF81000000,
    ),
    "amd64-6.12": (
        "linux-6.12",
        "elf_x86_64",
        {
            "text": 0xFFFFFFFFC0000000,
            "rodata": 0xFFFFFFFFC1000000,
            "ro_after_init": 0xFFFFFFFFC2000000,
            "data": 0xFFFFFFFFC3000000,
            "init_text": 0xFFFFFFFFC4000000,
            "init_rodata": 0xFFFFFFFFC5000000,
            "init_data": 0xFFFFFFFFC6000000,
        },
        0xFFFFFFFF81000000,
    ),
    "i386-6.1": ("linux-6.1", "elf_i386", {"core": 0xF8000000, "init": 0xF9000000}, 0xC1000000),
    # arm64: modules within branch range (128 MiB) of the kernel, so no PLT entry is needed
    "arm64-6.1": (
        "linux-6.1",
        "aarch64linux",
        {"core": 0xFFFF800001000000, "init": 0xFFFF800004000000},
        0xFFFF800002000000,
    ),
}
# CI: a deterministic sample of 300 a tree; LKM_LD_SAMPLE=all (scripts/ld_oracle_full) every module.
_SAMPLE = os.environ.get("LKM_LD_SAMPLE", "300" if IN_CI else "120")
PER_TREE = 10**9 if _SAMPLE == "all" else int(_SAMPLE)
PERCPU_BASE = 0x20000
# arm64 reaches per-cpu variables with ADRP (+-4 GiB): a per-cpu area among the kernel's addresses
PERCPU_BASES = {"arm64-6.1": 0xFFFF800003800000}


def _fake_address(name: str, kernel_base: int) -> int:
    return kernel_base + (zlib.crc32(name.encode()) & 0xFFFFF) * 16


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("tree_name", sorted(TREES))
def test_sections_identical_to_ld(corpus_trees, tree_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from elftools.elf.elffile import ELFFile

    from testing.corpus import module_files

    require(shutil.which(TOOLS[TREES[tree_name][1]][0]), f"GNU binutils for {tree_name} missing")
    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree, f"corpus tree {tree_name} missing")
    rules, emulation, bases, kernel_base = TREES[tree_name]
    config = KernelConfig.from_config_text(Path(tree.config).read_text())
    files = module_files(tree)
    sample = files[:: max(1, len(files) // PER_TREE)][:PER_TREE]
    compared = sections = relocs = 0
    bad: list[str] = []
    for path in sample:
        tmp = tmp_path / path.name.split(".")[0]
        tmp.mkdir()
        src = path
        if path.name.endswith(".xz"):
            src = tmp / "plain.ko"
            src.write_bytes(lzma.decompress(path.read_bytes()))
        mod = ModuleFile.open(src)
        lay = layout_module(mod.elf, rules, config)
        pcpu = PERCPU_BASES.get(tree_name, PERCPU_BASE)
        image = link_module(mod, lay, bases, lambda n: _fake_address(n, kernel_base), percpu_base=pcpu)
        out = ld_link(src, mod, image, emulation, tmp, percpu_base=pcpu)
        with out.open("rb") as f:
            theirs = ELFFile(f)
            for n, p in lay.placements.items():
                sec = mod.elf.sections[n]
                if sec.name in (".symtab", ".strtab") or sec.name in KERNEL_REWRITTEN or not p.size:
                    continue
                t = theirs.get_section_by_name(ld_section_name(sec.name))
                if t is None or t["sh_addr"] != image.section_addresses[n]:
                    bad.append(f"{path.name}:{sec.name}: ld placed it elsewhere")
                    continue
                want = t.data() if t["sh_type"] != "SHT_NOBITS" else bytes(p.size)
                if image.section_bytes(n) != want:
                    bad.append(f"{path.name}:{sec.name}: bytes differ")
                sections += 1
        relocs += image.relocations
        compared += 1
        shutil.rmtree(tmp)
    print(f"{tree_name}: {compared} modules, {sections} sections, {relocs} relocations; "
          f"{len(bad)} mismatches", file=sys.stderr)  # fmt: skip
    assert compared >= min(PER_TREE, len(files)) - 1
    assert not bad, bad[:10]

"""lkm verify on a real kernel (runs inside the VM guest): corpus modules loaded by kmod's
insmod are relinked by lkm at the kernel's addresses and compared with the kernel's memory.

The sample size is LKM_VERIFY_COUNT (default 40, to fit CI); scripts/vm_verify.py runs 200+.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from guestlib import fixture, kmod, lkm, load_sample, loaded, share, tree, unload_new, verify_loaded

from lkm.elf import ElfFile


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    tree()
    before = loaded()
    yield
    unload_new(before)


def test_verify_corpus_sample() -> None:
    t = tree()
    count = int(os.environ.get("LKM_VERIFY_COUNT", "40"))
    modules = load_sample(t, count)
    assert len(modules) >= min(count, 20), f"only {len(modules)} modules loaded"
    summary = verify_loaded(t, modules)
    (share() / f"verify-{t.name}.json").write_text(json.dumps(summary, indent=1))
    assert summary["errors"] == []
    assert summary["layout"] == []
    assert summary["bytes"] == []
    assert summary["kallsyms"] == []
    assert summary["modules"] == len(modules)


def _quiet_text_offset(path: Path) -> tuple[int, int]:
    """(file offset, .text offset) of a .text byte no relocation or patch site touches."""
    elf = ElfFile(path.read_bytes())
    text = elf.section(".text")
    assert text is not None
    touched: set[int] = set()
    for rs in elf.sections:
        if rs.type == 4 and rs.info == text.number:
            for r in elf.relocations(rs):
                touched.update(range(r.offset - 8, r.offset + 8))
    k = next(i for i in range(16, text.size) if i not in touched)
    return text.offset + k, k


def test_verify_reports_altered_text_byte(tmp_path: Path) -> None:
    src = fixture("chardev")
    assert kmod("insmod", str(src)).rc == 0
    ok = lkm("verify", "--config", str(tree().config), str(src))
    assert ok.rc == 0, ok
    bad = tmp_path / "chardev.ko"
    shutil.copyfile(src, bad)
    file_off, k = _quiet_text_offset(bad)
    data = bytearray(bad.read_bytes())
    data[file_off] ^= 0x5A
    bad.write_bytes(bytes(data))
    r = lkm("verify", "--config", str(tree().config), str(bad))
    text_addr = int(Path("/sys/module/chardev/sections/.text").read_text(), 16)
    assert r.rc == 1
    assert f".text+{k:#x} ({text_addr + k:#x})" in r.out, r.out

"""arm64 module PLTs against the real kernel: Debian's arm64 6.1 kernel boots under TCG with
KASLR on (scripts/guest_snapshot.py), so its modules land out of direct branch range of the
kernel and their calls go through the PLT that module_emit_plt_entry fills.

The kernel writes plt[i] before checking whether it duplicates plt[i-1], so the entry of the
last duplicate stays one slot past the count.  lkm's linker does the same; lkm verify compares
the PLT (it is not masked), so a run without differences shows lkm's PLT is the kernel's byte
for byte, and a byte altered in that spare slot must be reported, as must a byte of a branch
in .text.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from testing.vm import alter_saved_byte

from support import ROOT, lkm_cmd, require

pytestmark = [pytest.mark.corpus, pytest.mark.vm]

# Small modules whose PLT (6.1 corpus kernel, modules out of branch range) ends with a
# duplicate entry in the spare slot (found by a 156-module capture); with dependencies.
MODULES = ("libpoly1305", "lz4_compress", "quota_v2", "stp", "xfrm_algo", "tunnel4")
ENTRY = 12


def _plt_target(entry: bytes, pc: int) -> int | None:
    """Where a PLT entry (adrp x16; add x16, x16, #lo12; br x16) at *pc* jumps; None if it is
    not one."""
    adrp, add, br = struct.unpack("<III", entry)
    if adrp & 0x9F00001F != 0x90000010 or add & 0xFFC003FF != 0x91000210 or br != 0xD61F0200:
        return None
    imm = ((adrp >> 5) & 0x7FFFF) << 2 | (adrp >> 29) & 3
    imm -= (imm & 1 << 20) << 1
    return (pc & ~0xFFF) + (imm << 12) + ((add >> 10) & 0xFFF)


def _plt_entries(memory: object, start: int) -> list[tuple[int, int | None]]:
    """(address, target) of the consecutive PLT entries from *start* in the kernel's memory."""
    out = []
    while True:
        at = start + len(out) * ENTRY
        try:
            raw = memory.read(at, ENTRY)  # type: ignore[attr-defined]
        except Exception:
            return out
        target = _plt_target(raw, at)
        if target is None:
            return out
        out.append((at, target))


def test_arm64_plt_spare_slot(tmp_path: Path) -> None:
    from lkm.kernel.load import module_name
    from lkm.kernel.snapshot import SnapshotKernel, SnapshotMemory
    from testing.corpus import load_trees, module_files

    require(shutil.which("qemu-system-aarch64"), "qemu-system-aarch64 missing (qemu-system-arm)")
    trees = {t.name: t for t in load_trees()}
    require("arm64-6.1" in trees, "corpus tree arm64-6.1 missing")
    snap = tmp_path / "snap"
    args = [arg for m in MODULES for arg in ("--module", m)]
    cap = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "guest_snapshot.py"), "--tree", "arm64-6.1", *args,
         "--out", str(snap)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert cap.returncode == 0, cap.stderr
    kernel = SnapshotKernel(str(snap))
    files = {module_name(str(p)): p for p in module_files(trees["arm64-6.1"])}
    loaded = [m.name for m in kernel.modules() if m.name in files]
    assert set(MODULES) <= set(loaded), loaded
    r = subprocess.run(
        [*lkm_cmd(), "verify", "--snapshot", str(snap), *(str(files[n]) for n in loaded)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (r.returncode, r.stderr) == (0, ""), r.stdout + r.stderr

    # In the kernel's memory: PLTs in use, and a duplicate entry in a spare slot.
    memory = SnapshotMemory(str(snap))
    stext = next(int(ln.split()[0], 16) for ln in kernel.kallsyms().splitlines() if ln.endswith(" _stext"))
    spare: list[tuple[str, int]] = []
    used = 0
    for name in MODULES:
        entries = _plt_entries(memory, kernel.sections(name)[".plt"])
        used += len(entries)
        if len(entries) >= 2 and entries[-1][1] == entries[-2][1]:
            spare.append((name, entries[-1][0]))
    # A branch in .text altered in the saved memory (a relocated BL, never a patch site):
    # reported at its address.
    text = kernel.sections(MODULES[0])[".text"]
    bl = next(text + i for i in range(0, 4096, 4) if memory.read(text + i, 4)[3] & 0xFC == 0x94)
    alter_saved_byte(snap, bl, 0x01)
    bad = _verify(snap, files[MODULES[0]])
    assert bad.returncode == 1 and f".text+{bl - text:#x} ({bl:#x})" in bad.stdout, bad.stdout

    if abs(text - stext) < 128 << 20:
        return  # this boot's KASLR seed put modules within branch range: no PLT to check
    assert used and spare, f"no PLT entries ({used}) or no spare-slot duplicate in {MODULES}"
    # The spare slot is compared, not masked: alter it and verify reports its address.
    name, at = spare[0]
    alter_saved_byte(snap, at, 0x01)
    bad = _verify(snap, files[name])
    assert bad.returncode == 1 and f"({at:#x})" in bad.stdout and ".plt+" in bad.stdout, bad.stdout


def _verify(snap: Path, path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [*lkm_cmd(), "verify", "-q", "--snapshot", str(snap), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)

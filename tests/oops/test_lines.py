"""file:line with inlined frames, compared with binutils' addr2line -i -f on the same file, one
address per run (as the kernel's scripts/faddr2line runs it)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lkm.elf import ElfFile
from lkm.elf.constants import SHF_EXECINSTR
from lkm.oops.lines import DebugInfo

from support import FIX6, oops_capture, require


def _compare(ko: Path) -> tuple[int, list[tuple[str, int, list[str], list[str]]], int]:
    """(addresses compared, differences, addresses where addr2line shows inlined frames)"""
    require(shutil.which("addr2line"), "binutils addr2line missing: apt-get install binutils")
    elf = ElfFile(ko.read_bytes())
    secs = [(s.name, s.size) for s in elf.sections if s.flags & SHF_EXECINSTR and s.size]
    bases = {n: 0x100000 * (i + 1) for i, (n, _) in enumerate(secs)}
    di = DebugInfo(str(ko), bases)
    n, bad, inlined = 0, [], 0
    def addr2line(sec: str, off: int) -> list[str]:
        # one address per run, as the kernel's scripts/faddr2line calls it: bfd keeps state
        # between the addresses of one run (a unit whose line table an earlier address decoded
        # answers later addresses outside its ranges), so a batch's answers depend on its order
        return subprocess.run(
            ["addr2line", "-j", sec, "-i", "-f", "-e", str(ko), hex(off)],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip

    for sec, size in secs:
        offs = list(range(size + 2))
        with ThreadPoolExecutor(4) as pool:
            wants = list(pool.map(lambda off: addr2line(sec, off), offs))  # noqa: B023
        for off, want in zip(offs, wants, strict=True):
            got = [x for f in di.frames(bases[sec] + off) for x in (f.function or "??", f.location())]
            n += 1
            inlined += len(want) > 2
            if (got or ["??", "??:0"]) != want:
                bad.append((sec, off, want, got))
    return n, bad, inlined


@pytest.mark.oracle
def test_fixture_module() -> None:
    n, bad, _inlined = _compare(FIX6 / "dwarfmod.ko")
    assert n > 50 and bad == []


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.oracle
@pytest.mark.parametrize("tree", ["amd64-6.1", "amd64-6.12"])
def test_guest_modules(tree: str) -> None:
    n, bad, inlined = 0, [], 0
    for mod in ("oopsmod", "pcsym"):
        got = _compare(oops_capture(tree) / "modules" / f"{mod}.ko")
        n, bad, inlined = n + got[0], bad + got[1], inlined + got[2]
    assert n > 1000 and inlined > 20 and bad == [], bad[:5]


def test_compressed_module(tmp_path: Path) -> None:
    import lzma

    xz = tmp_path / "dwarfmod.ko.xz"
    xz.write_bytes(lzma.compress((FIX6 / "dwarfmod.ko").read_bytes(), format=lzma.FORMAT_XZ))
    plain = DebugInfo(str(FIX6 / "dwarfmod.ko"), {".init.text": 0x3000})
    packed = DebugInfo(str(xz), {".init.text": 0x3000})
    assert [f.asdict() for f in packed.frames(0x3008)] == [f.asdict() for f in plain.frames(0x3008)] != []

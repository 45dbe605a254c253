"""lkm faddr2line against binutils' addr2line -f -i -p (what scripts/faddr2line runs) on the
fixture modules: every function, offsets through each one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.elf import ElfFile
from lkm.oops.faddr2line import _comp_dirs, _relative, faddr2line
from lkm.oops.lines import DebugInfo

from support import FIX6, oops_capture, require


def _compare(ko: Path, step: int = 1) -> tuple[int, list[tuple[str, list[str], list[str]]]]:
    require(shutil.which("addr2line"), "binutils addr2line missing: apt-get install binutils")
    elf = ElfFile(ko.read_bytes())
    comp = _comp_dirs(DebugInfo(str(ko)))
    specs: list[tuple[str, str, int]] = []
    for sym in elf.symbols():
        # __pfx_ padding (6.2+, no line rows of its own): addr2line falls back to "file:?", we
        # give the row of the next function; those 16 bytes are never a frame's address
        if (
            sym.type == 2
            and sym.size
            and 0 < sym.shndx < len(elf.sections)
            and not sym.name.startswith("__pfx_")
        ):
            sec = elf.sections[sym.shndx].name
            same = [s for s in elf.symbols() if s.name == sym.name and s.type == 2]
            if len(same) == 1:
                specs += [
                    (f"{sym.name}+{off:#x}/{sym.size:#x}", sec, sym.value + off)
                    for off in range(0, sym.size, step)
                ]
    out, notes = faddr2line(str(ko), [s for s, _sec, _a in specs])
    assert notes == []
    blocks = out.split("\n")
    got: dict[str, list[str]] = {}
    cur = None
    for ln in blocks:
        if ln.endswith(":") and "+0x" in ln and " at " not in ln:
            cur = ln[:-1]
            got[cur] = []
        elif ln and cur is not None:
            got[cur].append(ln)
    bad = []
    for spec, sec, addr in specs:
        a2l = subprocess.run(["addr2line", "-f", "-i", "-p", "-j", sec, "-e", str(ko), hex(addr)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        want = []
        for ln in a2l.splitlines():
            ln = ln.strip()
            head, _, where = ln.rpartition(" at ")
            want.append(f"{head} at {_relative(where, comp)}")
        if got.get(spec) != want:
            bad.append((spec, want, got.get(spec, [])))
    return len(specs), bad


@pytest.mark.oracle
def test_fixture_module() -> None:
    n, bad = _compare(FIX6 / "dwarfmod.ko")
    assert n > 50 and bad == [], bad[:3]


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.oracle
@pytest.mark.parametrize("tree", ["amd64-6.1", "amd64-6.12"])
def test_guest_modules(tree: str) -> None:
    n, bad = 0, []
    for mod in ("oopsmod", "pcsym"):
        got = _compare(oops_capture(tree) / "modules" / f"{mod}.ko", step=1)
        n, bad = n + got[0], bad + got[1]
    assert n >= 500 and bad == [], bad[:3]


def test_cli_not_found(tmp_path: Path) -> None:
    from support import lkm_cmd, run

    r = run([*lkm_cmd(), "faddr2line", str(FIX6 / "dwarfmod.ko"), "no_such_function+0x1/0x2"])
    assert r.returncode == 1 and b"no match for no_such_function+0x1/0x2" in r.stderr
    r = run([*lkm_cmd(), "faddr2line", str(tmp_path / "missing.ko"), "f+0x1"])
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1

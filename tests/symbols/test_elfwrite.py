"""`lkm kallsyms --from-image IMAGE --elf OUT` (lkm.symbols.elfwrite): the ELF file gdb opens.

The oracles are binutils' readelf (the file's headers and symbol table as the ELF
specification reads them) and gdb: `info symbol ADDR` and `info address NAME` answer as the
kallsyms text does (the image's own /proc/kallsyms lines, as `lkm kallsyms --from-image`
prints them and as the guests' test in test_image_kallsyms.py checks them)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from lkm.symbols.elfwrite import ImageSection, kernel_elf
from lkm.symbols.symbol import KernelSymbol

from support import lkm_cmd, require

GDB = {"x86_64": "gdb", "i386": "gdb", "arm64": "gdb-multiarch"}  # Debian's gdb lacks aarch64


def gdb_answers(gdb: str, elf: Path, addrs: list[int], names: list[str]) -> tuple[list[str], list[str]]:
    """gdb's `info symbol` line per address and `info address` line per name, in order."""
    cmds = []
    for a in addrs:
        cmds += ["-ex", "echo @@\\n", "-ex", f"info symbol {a:#x}"]
    for n in names:
        cmds += ["-ex", "echo @@\\n", "-ex", f"info address {n}"]
    p = subprocess.run(
        [gdb, "-nx", "-batch", "-ex", "set print demangle off", *cmds, str(elf)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    parts = [x.strip() for x in p.stdout.split("@@\n")[1:]]
    assert len(parts) == len(addrs) + len(names), p.stderr[-500:]
    return parts[: len(addrs)], parts[len(addrs) :]


def check_with_gdb(gdb: str, elf: Path, kallsyms: list[tuple[int, str, str]], sample: int, seed: int) -> None:
    """A sample of symbols alone at their address with a unique name: gdb places an address
    inside each at that symbol (+ offset) and gives each name its kallsyms address.  gdb's
    demangling is off: it would print GCC's clones its own way (``f.cold`` as ``f[cold]``) and
    read ``a__b`` as Ada's ``a.b``."""
    by_addr: dict[int, int] = {}
    by_name: dict[str, int] = {}
    for a, _t, n in kallsyms:
        by_addr[a] = by_addr.get(a, 0) + 1
        by_name[n] = by_name.get(n, 0) + 1
    alone = [(a, t, n) for a, t, n in kallsyms if by_addr[a] == 1 and by_name[n] == 1 and t not in "aA"]
    addrs_sorted = sorted(by_addr)
    rng = random.Random(seed)
    picked = rng.sample(alone, min(sample, len(alone)))
    probes = []
    for a, _t, n in picked:
        i = addrs_sorted.index(a)
        nxt = addrs_sorted[i + 1] if i + 1 < len(addrs_sorted) else a + 1
        probes.append((a + rng.randrange(0, max(1, min(nxt - a, 64))), a, n))
    infos, addresses = gdb_answers(gdb, elf, [p for p, _a, _n in probes], [n for _a, _t, n in picked])
    for (probe, a, n), line in zip(probes, infos, strict=True):
        off = probe - a
        want = n if off == 0 else f"{n} + {off}"
        assert re.fullmatch(rf"{re.escape(want)} in section \S+", line), (hex(probe), n, line)
    for (a, _t, n), line in zip(picked, addresses, strict=True):
        assert line == f'Symbol "{n}" is at {a:#x} in a file compiled without debugging.', line


# --------------------------------------------------------------------------------------
# Small files built here, read by readelf and gdb


def _symbols(rng: random.Random, base: int, count: int) -> list[KernelSymbol]:
    out = []
    addr = base
    for i in range(count):
        addr += rng.choice((0x10, 0x20, 0x40, 0x100))
        out.append(KernelSymbol(f"f{i}_{rng.randrange(1000)}", addr, rng.choice("TtDdBbRrWw")))
    return out


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("arch", "base", "klass"),
    [
        ("x86_64", 0xFFFFFFFF81000000, "ELF64"),
        ("i386", 0xC1000000, "ELF32"),
        ("arm64", 0xFFFF800008000000, "ELF64"),
    ],
)
def test_kernel_elf_read_by_readelf_and_gdb(tmp_path: Path, arch: str, base: int, klass: str) -> None:
    require(shutil.which("readelf"), "readelf (binutils) missing")
    gdb = GDB[arch]
    require(shutil.which(gdb), f"{gdb} missing (Debian package {gdb})")
    rng = random.Random(7)
    syms = _symbols(rng, base, 300)
    text_end = syms[-1].address + 0x80  # type: ignore[operator]
    sections = [
        ImageSection(".text", base, 0x3000, 0x6, 4096, rng.randbytes(0x3000)),
        ImageSection(
            ".data",
            base + 0x3000,
            text_end - base - 0x3000,
            0x3,
            4096,
            rng.randbytes(text_end - base - 0x3000),
        ),
        ImageSection(".bss", text_end, 0x2000, 0x3, 64, None),
    ]
    syms.append(KernelSymbol("exported_data", text_end + 0x100, None, None, True))  # an export kallsyms lacks
    syms.append(KernelSymbol("percpu_thing", 0x40, "A"))
    elf = tmp_path / "k.elf"
    elf.write_bytes(kernel_elf(arch, sections, syms))
    head = subprocess.run(
        ["readelf", "-hSs", "-W", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert f"Class:                             {klass}" in head
    assert "EXEC (Executable file)" in head
    rows = [ln.split() for ln in head.splitlines() if re.match(r"\s+\d+: [0-9a-f]+ ", ln)]
    got = {r[7]: (int(r[1], 16), int(r[2], 0), r[3], r[4], r[6]) for r in rows if len(r) == 8}
    ordered = sorted({s.address for s in syms if s.address is not None})
    for s in syms:
        assert s.address is not None
        value, size, typ, bind, ndx = got[s.name]
        assert value == s.address
        letter = s.type
        # nm's letters: t/T/w/W code, the rest data; lower case local, W/w weak; no letter: an
        # export kallsyms does not list (global data)
        want = (
            "FUNC" if letter and letter in "tTwW" else "OBJECT",
            "WEAK" if letter and letter in "wW" else "LOCAL" if letter and letter.islower() else "GLOBAL",
        )
        assert (typ, bind) == want, (s.name, letter)
        if letter in ("A", "a"):
            assert (ndx, size) == ("ABS", 0)
            continue
        nxt = next((a for a in ordered if a > s.address), None)
        sec = next(x for x in sections if x.addr <= s.address < x.addr + x.size)
        end = sec.addr + sec.size
        assert size == (min(nxt, end) if nxt is not None else end) - s.address
    check_with_gdb(
        gdb, elf, [(s.address or 0, s.type or "D", s.name) for s in syms if s.type not in ("A",)], 60, 1
    )


# --------------------------------------------------------------------------------------
# The four corpus images

TREES = ("amd64-6.1", "amd64-6.12", "arm64-6.1", "i386-6.1")


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", TREES)
def test_image_elf_opened_by_gdb(corpus_trees, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trees = {t.name: t for t in corpus_trees}
    require(name in trees and trees[name].vmlinuz is not None, f"corpus tree {name} missing")
    tree = trees[name]
    arch = {"amd64": "x86_64", "i386": "i386", "arm64": "arm64"}[tree.arch]
    gdb = GDB[arch]
    require(shutil.which(gdb), f"{gdb} missing (Debian package {gdb})")
    elf = tmp_path / "vmlinux.elf"
    p = subprocess.run(
        [*lkm_cmd(), "kallsyms", "--from-image", str(tree.vmlinuz), "--elf", str(elf)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    kallsyms = []
    for line in p.stdout.splitlines():
        a, t, n = line.split()
        kallsyms.append((int(a, 16), t, n))
    assert len(kallsyms) > 30000
    check_with_gdb(gdb, elf, kallsyms, 150, zlib.crc32(name.encode()))
    head = subprocess.run(["readelf", "-h", str(elf)], capture_output=True, text=True, check=True).stdout
    machine = {"x86_64": "Advanced Micro Devices X86-64", "i386": "Intel 80386", "arm64": "AArch64"}[arch]
    assert machine in head and "EXEC (Executable file)" in head
    assert not list(tmp_path.glob(".*")), "a temporary was left beside the output"

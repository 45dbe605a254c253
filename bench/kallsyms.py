#!/usr/bin/env python3
"""Benchmark: ``lkm kallsyms --from-image IMAGE --elf OUT`` against vmlinux-to-elf (PyPI) on the
corpus kernel images: symbols recovered (count, and equality of name -> address) and time, as a
ratio lkm / vmlinux-to-elf.

    python3 bench/kallsyms.py [--trees amd64-6.1,...] [--v2e PATH] [--python PYTHON] [--symvers TREE=FILE]

vmlinux-to-elf is never a dependency of lkm: install it into a virtualenv of its own, outside
the checkout (``python3 -m venv /tmp/v2e && /tmp/v2e/bin/pip install vmlinux-to-elf``), and
name its script with ``--v2e`` (default: ``vmlinux-to-elf`` on PATH).  Without it the
benchmark says so and exits 0 (skipped); without the corpus likewise.

Each tool runs once per image, cold (lkm with ``LKM_CACHE=off``: no cached symbols), its wall
time (perf_counter) and CPU time (user + system of the process, getrusage(RUSAGE_CHILDREN))
measured; then the ``.symtab`` of both ELF files is read (lkm's own ELF reader) and compared:
symbols with a name and an address, names, (name, address) pairs in both, in one only, and for
names each lists once, how many give the same address.  When the tree has a guest capture
(``<tree>/proc-kallsyms.txt``, a nokaslr boot's /proc/kallsyms), each side's pairs are also
checked against it.  ``--symvers TREE=FILE`` compares the exports lkm finds (``lkm kallsyms
--json``) with a Module.symvers of that kernel (e.g. from Debian's linux-headers package).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # testing/
sys.path.insert(0, str(HERE.parent / "src"))

TREES = ("amd64-6.1", "amd64-6.12", "arm64-6.1", "i386-6.1")


def timed(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p


def elf_pairs(path: Path) -> list[tuple[str, int]]:
    """(name, value) of every named symbol of the file's .symtab."""
    from lkm.elf.file import ElfFile

    elf = ElfFile(path.read_bytes())
    return [(s.name, s.value) for s in elf.symbols()[1:] if s.name and s.type in (0, 1, 2)]


def compare(mine: list[tuple[str, int]], theirs: list[tuple[str, int]]) -> dict[str, int]:
    a, b = set(mine), set(theirs)
    count_a: dict[str, int] = {}
    count_b: dict[str, int] = {}
    for n, _v in mine:
        count_a[n] = count_a.get(n, 0) + 1
    for n, _v in theirs:
        count_b[n] = count_b.get(n, 0) + 1
    one_a = {n: v for n, v in mine if count_a[n] == 1}
    one_b = {n: v for n, v in theirs if count_b[n] == 1}
    both = one_a.keys() & one_b.keys()
    return {
        "lkm symbols": len(mine),
        "v2e symbols": len(theirs),
        "lkm names": len(count_a),
        "v2e names": len(count_b),
        "pairs in both": len(a & b),
        "pairs only lkm": len(a - b),
        "pairs only v2e": len(b - a),
        "unique names in both": len(both),
        "same address": sum(one_a[n] == one_b[n] for n in both),
    }


def against_guest(pairs: list[tuple[str, int]], capture: Path) -> tuple[int, int]:
    """(pairs the guest's /proc/kallsyms lists, pairs not in it) of a side's symbols."""
    guest = set()
    for line in capture.read_text(encoding="latin-1").splitlines():
        f = line.split()
        if len(f) >= 3 and not line.endswith("]"):
            guest.add((f[2], int(f[0], 16)))
    s = set(pairs)
    return len(s & guest), len(s - guest)


def symvers_check(python: str, image: Path, symvers: Path) -> str:
    p = subprocess.run(
        [python, "-m", "lkm", "kallsyms", "--from-image", str(image), "--json"],
        capture_output=True,
        text=True,
    )
    if p.returncode:
        return f"lkm failed: {p.stderr.strip()[-200:]}"
    mine = {}
    for line in p.stdout.splitlines():
        d = json.loads(line)
        if d.get("exported"):
            mine[d["name"]] = (d.get("crc"), bool(d.get("gpl_only")), d.get("namespace"))
    theirs = {}
    for line in symvers.read_text().splitlines():
        crc, name, module, kind, *ns = line.split("\t")
        if module == "vmlinux":
            theirs[name] = (crc, kind.endswith("_GPL"), (ns[0] if ns else "") or None)
    same_names = mine.keys() == theirs.keys()
    crcs = sum(
        1
        for n in mine.keys() & theirs.keys()
        if mine[n][0] is not None and int(str(mine[n][0]), 0) == int(theirs[n][0], 16)
    )
    gpl = sum(1 for n in mine.keys() & theirs.keys() if mine[n][1] == theirs[n][1])
    ns = sum(1 for n in mine.keys() & theirs.keys() if mine[n][2] == theirs[n][2])
    return (
        f"exports: lkm {len(mine)}, Module.symvers {len(theirs)}, same names: {same_names}, "
        f"same CRC {crcs}, same GPL flag {gpl}, same namespace {ns}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trees", default=",".join(TREES))
    ap.add_argument("--v2e", default="vmlinux-to-elf", help="the vmlinux-to-elf script")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the lkm measured")
    ap.add_argument("--symvers", action="append", default=[], metavar="TREE=FILE")
    a = ap.parse_args()

    v2e = shutil.which(a.v2e) or (a.v2e if os.access(a.v2e, os.X_OK) else None)
    if v2e is None:
        print(f"kallsyms: skipped: {a.v2e} not found (pip install vmlinux-to-elf into a venv of its own)")
        return 0
    from testing.corpus import find_tree

    symvers = dict(x.split("=", 1) for x in a.symvers)
    env = {**os.environ, "LKM_CACHE": "off", "PYTHONPATH": str(HERE.parent / "src")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="lkm-bench-kallsyms-") as tmp:
        for name in a.trees.split(","):
            try:
                tree = find_tree(name)
            except Exception as exc:
                print(f"{name}: skipped: {exc}")
                continue
            if tree.vmlinuz is None:
                print(f"{name}: skipped: no vmlinuz")
                continue
            out_lkm, out_v2e = Path(tmp) / f"{name}.lkm.elf", Path(tmp) / f"{name}.v2e.elf"
            lw, lc, lp = timed(
                [a.python, "-m", "lkm", "kallsyms", "--from-image", str(tree.vmlinuz), "--elf", str(out_lkm)],
                env,
            )
            vw, vc, vp = timed([v2e, str(tree.vmlinuz), str(out_v2e)])
            if lp.returncode or not out_lkm.is_file():
                print(f"{name}: lkm failed: {lp.stderr.decode(errors='replace').strip()[-300:]}")
                continue
            if vp.returncode or not out_v2e.is_file():
                print(f"{name}: vmlinux-to-elf failed: {vp.stdout.decode(errors='replace').strip()[-300:]}")
                continue
            mine, theirs = elf_pairs(out_lkm), elf_pairs(out_v2e)
            row: dict[str, object] = {"tree": name, **compare(mine, theirs)}
            row.update(
                lkm_wall=lw, v2e_wall=vw, lkm_cpu=lc, v2e_cpu=vc, wall_ratio=lw / vw, cpu_ratio=lc / vc
            )
            capture = tree.root / "proc-kallsyms.txt"
            if capture.is_file():
                row["lkm in guest kallsyms"], row["lkm not in guest"] = against_guest(mine, capture)
                row["v2e in guest kallsyms"], row["v2e not in guest"] = against_guest(theirs, capture)
            if name in symvers:
                row["symvers"] = symvers_check(a.python, tree.vmlinuz, Path(symvers[name]))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if rows:
        print()
        keys = [k for k in rows[0] if k not in ("tree", "symvers")]
        width = max(len(k) for k in keys)
        print(" " * width + "".join(f"  {r['tree']!s:>12}" for r in rows))
        for k in keys:
            cells = "".join(
                f"  {v:>12.2f}" if isinstance(v := r.get(k), float) else f"  {v!s:>12}" for r in rows
            )
            print(f"{k:<{width}}{cells}")
        for r in rows:
            if "symvers" in r:
                print(f"{r['tree']}: {r['symvers']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""lkm depmod -b and lkm modprobe -a --show-depends against kmod's, side by side in one run.

    python3 bench/depmod.py [--trees amd64-6.1,amd64-6.12] [--repeat N] [--jobs N]

For each corpus tree: a scratch root of links to the tree's inputs per tool, a warm-up of
each command, then N interleaved timed runs; medians and ratio lkm/kmod printed, and whether
the outputs are identical.  Targets (issue 6): depmod <= 1.0 on the uncompressed 6.1 tree,
<= 0.5 on the .ko.xz 6.12 tree.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/ (the corpus)

TARGETS = {"amd64-6.1": 1.0, "amd64-6.12": 0.5}


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all processes) of one run."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def side_by_side(cmds: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) per command."""
    for cmd in cmds.values():
        timed(cmd)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, cmd in cmds.items():
            samples[k].append(timed(cmd))
    return {
        k: (statistics.median(w for w, _c in v), statistics.median(c for _w, c in v))
        for k, v in samples.items()
    }


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="amd64-6.1,amd64-6.12")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0, help="lkm depmod --jobs (0: every core)")
    a = ap.parse_args()
    from testing.corpus import depmod_root, find_tree

    depmod = shutil.which("depmod", path="/usr/sbin:/sbin") or "depmod"
    modprobe = shutil.which("modprobe", path="/usr/sbin:/sbin") or "modprobe"
    lkm = [sys.executable, "-m", "lkm"]
    work = Path(tempfile.mkdtemp(prefix="lkm-bench-depmod-"))
    try:
        for name in a.trees.split(","):
            tree = find_tree(name)
            kd = depmod_root(tree, work / name / "kmod")
            ld = depmod_root(tree, work / name / "lkm")
            jobs = ["--jobs", str(a.jobs)] if a.jobs else []
            k_cmd = [depmod, "-b", str(work / name / "kmod"), tree.release]
            l_cmd = [*lkm, "depmod", *jobs, "-b", str(work / name / "lkm"), tree.release]
            med = side_by_side({"lkm": l_cmd, "kmod": k_cmd}, a.repeat)
            written = [p.name for p in kd.iterdir() if p.name.startswith("modules.") and not p.is_symlink()]
            same = all((kd / f).read_bytes() == (ld / f).read_bytes() for f in written)
            ratio = med["lkm"][0] / med["kmod"][0]
            target = TARGETS.get(name, 1.0)
            print(
                f"depmod -b {name}: lkm {med['lkm'][0]:.3f} s, kmod {med['kmod'][0]:.3f} s, "
                f"ratio {ratio:.2f} "
                f"(target <= {target}: {'MET' if ratio <= target else 'NOT MET'}); "
                f"CPU lkm {med['lkm'][1]:.3f} s, kmod {med['kmod'][1]:.3f} s; outputs identical: {same}; "
                f"load average {load()}"
            )
            names = [
                line.partition(":")[0].rsplit("/", 1)[-1].split(".")[0].replace("-", "_")
                for line in (kd / "modules.dep").read_text().splitlines()
            ]
            common = ["-d", str(work / name / "kmod"), "-S", tree.release, "-a", "--show-depends", *names]
            pk = subprocess.run([modprobe, *common], capture_output=True, check=False)
            pl = subprocess.run([*lkm, "modprobe", *common], capture_output=True, check=False)
            med = side_by_side({"lkm": [*lkm, "modprobe", *common], "kmod": [modprobe, *common]}, a.repeat)
            print(
                f"modprobe -a --show-depends {len(names)} names ({name}): lkm {med['lkm'][0]:.3f} s, "
                f"kmod {med['kmod'][0]:.3f} s, ratio {med['lkm'][0] / med['kmod'][0]:.2f}; "
                f"outputs identical: {pk.stdout == pl.stdout and pk.stderr == pl.stderr}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

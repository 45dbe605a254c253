#!/usr/bin/env python3
"""lkm depmod and lkm modprobe against kmod's, side by side in one run: full runs, incremental
runs after N changed modules, and modprobe --show-depends over every name.

    python3 bench/depmod.py [--trees amd64-6.1,amd64-6.12] [--repeat N] [--jobs N]
                            [--touch 1,10,100] [--only full,incremental,modprobe]
                            [--reference PYTHON]

``--reference PYTHON``: another lkm (the ``lkm`` script beside that interpreter, e.g. a venv
with the commit before a change installed) timed in the same rounds, interleaved with the
two others on roots of its own; each row then also gives its medians and ratios to kmod, so
that a before/after comparison sees the same machine load.

For each corpus tree:

* full: a scratch root of links to the tree's inputs per tool; ``depmod -b ROOT RELEASE``
  (kmod) and ``lkm depmod --no-cache -b ROOT RELEASE`` run once each as a warm-up, then N
  times interleaved; targets (issue 6): wall ratio <= 1.0 on the uncompressed 6.1 tree, <= 0.5
  on the .ko.xz 6.12 tree;
* incremental: two scratch roots whose module files are linked one by one; lkm's cache is
  filled by one run, then for each count T (1, 10, 100): T modules are changed in both roots
  (the link replaced by a copy, or a copy's mtime moved), then kmod's ``depmod`` (always a full
  run) and ``lkm depmod`` (cached) are timed; N rounds, interleaved, new modules each round;
  target (issue 18): wall and CPU ratio <= 0.1.  After the last round every output file of
  lkm's root is compared with kmod's (kmod's full run on the same files);
* modprobe: ``modprobe -d ROOT -S RELEASE -a --show-depends <every module name>`` in one
  process on each side; target (issue 18) <= 1.5.

Every row gives medians of wall time and CPU time (user + system of the process and its
children, from getrusage(RUSAGE_CHILDREN)), and both ratios lkm/kmod.  Nothing is asserted.
The machine's load matters: the load average is printed with each row.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/ (the corpus)

FULL_TARGETS = {"amd64-6.1": 1.0, "amd64-6.12": 0.5}
INCREMENTAL_TARGET = 0.1
MODPROBE_TARGET = 1.5
CACHE_NAME = "modules.lkm-cache"


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its children) of one run."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def side_by_side(
    cmds: dict[str, list[str]], repeat: int, before: Callable[[], None] | None = None, warm: bool = True
) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) per command; ``before`` runs (untimed) before each round."""
    if warm:
        for cmd in cmds.values():
            timed(cmd)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    for _ in range(repeat):
        if before is not None:
            before()
        for k, cmd in cmds.items():
            samples[k].append(timed(cmd))
    return {
        k: (statistics.median(w for w, _c in v), statistics.median(c for _w, c in v))
        for k, v in samples.items()
    }


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def row(label: str, med: dict[str, tuple[float, float]], target: float, same: bool | None) -> str:
    (lw, lc), (kw, kc) = med["lkm"], med["kmod"]
    wall, cpu = lw / kw, lc / kc
    verdict = "MET" if wall <= target and cpu <= target else "NOT MET"
    text = (
        f"{label}: wall lkm {lw:.3f} s / kmod {kw:.3f} s = {wall:.2f}; "
        f"CPU lkm {lc:.3f} s / kmod {kc:.3f} s = {cpu:.2f} (target <= {target}: {verdict})"
    )
    if "ref" in med:
        rw, rc = med["ref"]
        text += f"; reference: wall {rw:.3f} s = {rw / kw:.2f}, CPU {rc:.3f} s = {rc / kc:.2f}"
    if same is not None:
        text += f"; outputs identical: {same}"
    return text + f"; load {load()}"


def written(kd: Path) -> list[str]:
    return sorted(p.name for p in kd.iterdir() if p.name.startswith("modules.") and not p.is_symlink())


def identical(kd: Path, ld: Path) -> bool:
    names = written(kd)
    return names == [n for n in written(ld) if n != CACHE_NAME] and all(
        (kd / f).read_bytes() == (ld / f).read_bytes() for f in names
    )


def change(dirs: list[Path], rels: list[str]) -> None:
    """Make ``rels`` changed files in every root: a link becomes a copy of what it points at
    (new inode, times); a copy gets a new mtime.  The corpus is never written."""
    now = time.time_ns()
    for d in dirs:
        for rel in rels:
            p = d / rel
            if p.is_symlink():
                target = os.readlink(p)
                tmp = p.with_name(p.name + ".bench-new")
                shutil.copyfile(target, tmp)
                os.replace(tmp, p)
            else:
                os.utime(p, ns=(now, now))


def changer(dirs: list[Path], rels: list[str], rng: random.Random, count: int) -> Callable[[], None]:
    def before() -> None:
        change(dirs, rng.sample(rels, count))

    return before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default="amd64-6.1,amd64-6.12")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0, help="lkm depmod --jobs (0: every core)")
    ap.add_argument("--touch", default="1,10,100", help="module counts changed before incremental runs")
    ap.add_argument("--only", default="full,incremental,modprobe")
    ap.add_argument("--reference", help="another interpreter whose lkm is timed in the same rounds")
    a = ap.parse_args()
    from testing.corpus import depmod_root, find_tree

    only = set(a.only.split(","))
    depmod = shutil.which("depmod", path="/usr/sbin:/sbin") or "depmod"
    modprobe = shutil.which("modprobe", path="/usr/sbin:/sbin") or "modprobe"
    script = Path(sys.executable).parent / "lkm"  # the console script, as users run it
    lkm = [str(script)] if script.exists() else [sys.executable, "-m", "lkm"]
    ref: list[str] | None = None
    if a.reference:
        rscript = Path(a.reference).parent / "lkm"
        ref = [str(rscript)] if rscript.exists() else [a.reference, "-m", "lkm"]
    jobs = ["--jobs", str(a.jobs)] if a.jobs else []
    work = Path(tempfile.mkdtemp(prefix="lkm-bench-depmod-"))
    print(f"python {sys.executable}; load average at start {load()}; {os.cpu_count()} CPUs", flush=True)
    try:
        for name in a.trees.split(","):
            tree = find_tree(name)
            kroot, lroot = work / name / "kmod", work / name / "lkm"
            kd = depmod_root(tree, kroot)
            ld = depmod_root(tree, lroot)
            k_cmd = [depmod, "-b", str(kroot), tree.release]
            if "full" in only:
                l_cmd = [*lkm, "depmod", "--no-cache", *jobs, "-b", str(lroot), tree.release]
                cmds = {"lkm": l_cmd, "kmod": k_cmd}
                if ref is not None:
                    rroot = work / name / "ref"
                    rd = depmod_root(tree, rroot)
                    cmds["ref"] = [*ref, "depmod", "--no-cache", *jobs, "-b", str(rroot), tree.release]
                med = side_by_side(cmds, a.repeat)
                same = identical(kd, ld) and (ref is None or identical(kd, rd))
                print(row(f"depmod -b {name}, full run", med, FULL_TARGETS.get(name, 1.0), same), flush=True)
            if "incremental" in only:
                ikroot, ilroot = work / name / "kmod-inc", work / name / "lkm-inc"
                ikd = depmod_root(tree, ikroot, per_file=True)
                ild = depmod_root(tree, ilroot, per_file=True)
                rels = sorted(str(p.relative_to(ild)) for p in ild.rglob("*.ko*"))
                ik_cmd = [depmod, "-b", str(ikroot), tree.release]
                il_cmd = [*lkm, "depmod", *jobs, "-b", str(ilroot), tree.release]
                cmds = {"lkm": il_cmd, "kmod": ik_cmd}
                roots = [ikd, ild]
                if ref is not None:
                    irroot = work / name / "ref-inc"
                    ird = depmod_root(tree, irroot, per_file=True)
                    roots.append(ird)
                    cmds["ref"] = [*ref, "depmod", *jobs, "-b", str(irroot), tree.release]
                for cmd in cmds.values():
                    timed(cmd)  # kmod's warm-up; each lkm fills its cache
                rng = random.Random(18)
                for count in (int(x) for x in a.touch.split(",")):
                    med = side_by_side(cmds, a.repeat, before=changer(roots, rels, rng, count), warm=False)
                    same = identical(ikd, ild) and (ref is None or identical(ikd, ird))
                    label = f"depmod -b {name}, {count} modules changed"
                    print(row(label, med, INCREMENTAL_TARGET, same), flush=True)
            if "modprobe" in only:
                if not (kd / "modules.dep").exists():
                    timed(k_cmd)
                names = [
                    line.partition(":")[0].rsplit("/", 1)[-1].split(".")[0].replace("-", "_")
                    for line in (kd / "modules.dep").read_text().splitlines()
                ]
                common = ["-d", str(kroot), "-S", tree.release, "-a", "--show-depends", *names]
                pk = subprocess.run([modprobe, *common], capture_output=True, check=False)
                pl = subprocess.run([*lkm, "modprobe", *common], capture_output=True, check=False)
                same = pk.stdout == pl.stdout and pk.stderr == pl.stderr
                cmds = {"lkm": [*lkm, "modprobe", *common], "kmod": [modprobe, *common]}
                if ref is not None:
                    cmds["ref"] = [*ref, "modprobe", *common]
                med = side_by_side(cmds, a.repeat)
                label = f"modprobe -a --show-depends, {len(names)} names ({name})"
                print(row(label, med, MODPROBE_TARGET, same), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

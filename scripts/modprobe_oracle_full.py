#!/usr/bin/env python3
"""lkm modprobe --show-depends vs kmod's, over every module name of a corpus tree and a
concrete device string made from every alias pattern of its modules.alias.

    python3 scripts/modprobe_oracle_full.py [--tree amd64-6.1] [--sample N] [--root DIR]

Needs a depmod'ed root (``--root``, as ``depmod -b`` writes it); without one it builds a
scratch root with kmod's depmod.  Runs each side in one process over all queries (kmod's
modprobe once per query, lkm through its library in one process, which is what the CLI
runs) and prints cases compared and mismatches.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/ (the corpus)


def concrete(pattern: str) -> str:
    """A device string the alias pattern matches: '*' -> '', '?' -> '0', '[..]' -> its first
    member."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            pass
        elif c == "?":
            out.append("0")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(c)
            else:
                body = pattern[i + 1 : j]
                out.append(body[1] if body.startswith("!") is False and body[:1] == "^" else body[0])
                i = j
        else:
            out.append(c)
        i += 1
    return "".join(out)


def queries(modules_dir: Path) -> list[str]:
    names = []
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        base = line.partition(":")[0].rsplit("/", 1)[-1]
        names.append(re.sub(r"\..*", "", base).replace("-", "_"))
    aliases = []
    for line in (modules_dir / "modules.alias").read_text().splitlines()[1:]:
        pat = line.split(" ")[1]
        s = concrete(pat)
        if s and " " not in s:
            aliases.append(s)
    return names + sorted(set(aliases))


def lkm_outputs(root: str, release: str, qs: list[str]) -> list[str]:
    from lkm.moddir import ModulesDir
    from lkm.modprobe import Resolver, load_config

    dirname = f"{root}/lib/modules/{release}"
    cfg = load_config(dirname)
    out = []
    for q in qs:
        res = Resolver(ModulesDir(dirname), cfg)  # a fresh context per query, as one modprobe run
        mods = res.lookup(q)
        if not mods:
            out.append(f"modprobe: FATAL: Module {q} not found in directory {dirname}\n")
            continue
        out.append("".join(step.show() for m in mods for step in res.plan(m)))
    return out


def kmod_output(root: str, release: str, q: str) -> str:
    p = subprocess.run(
        ["modprobe", "-d", root, "-S", release, "--show-depends", q],
        capture_output=True,
        text=True,
        check=False,
    )
    return p.stdout + p.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--sample", type=int, default=0, help="a deterministic sample of N queries (0: all)")
    ap.add_argument("--root")
    a = ap.parse_args()
    from testing.corpus import depmod_root, find_tree

    tree = find_tree(a.tree)
    root = a.root
    if root is None:
        root = tempfile.mkdtemp(prefix="lkm-modprobe-")
        depmod_root(tree, Path(root))
        subprocess.run(["depmod", "-b", root, tree.release], check=True)
    qs = queries(Path(root) / "lib" / "modules" / tree.release)
    if a.sample:
        qs = random.Random(0).sample(qs, min(a.sample, len(qs)))
    t0 = time.perf_counter()
    mine = lkm_outputs(root, tree.release, qs)
    t1 = time.perf_counter()
    theirs = [kmod_output(root, tree.release, q) for q in qs]
    t2 = time.perf_counter()
    bad = [(q, m, k) for q, m, k in zip(qs, mine, theirs, strict=True) if m != k]
    print(
        f"{a.tree}: {len(qs)} queries, {len(bad)} mismatches; lkm {t1 - t0:.2f} s (one process), "
        f"kmod {t2 - t1:.2f} s ({len(qs)} processes)"
    )
    for q, m, k in bad[:10]:
        print(f"--- {q}\nlkm:\n{m}kmod:\n{k}")
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
    sys.exit(main())

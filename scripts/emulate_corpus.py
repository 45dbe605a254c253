#!/usr/bin/env python3
"""Run every module's init routine of a corpus tree in the emulator (one fresh booted kernel
per module, imports bound to the tree's kallsyms; other modules' symbols get synthetic
slots: dependencies are not loaded) and report how the runs ended.

Usage: python3 scripts/emulate_corpus.py [--tree amd64-6.1] [--limit N] [--json OUT]
Prints: the share whose init ran to its return within the budget (and with what values),
failures by cause with examples, the most frequent unimplemented kernel functions, time.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from lkm.emulate.survey import DEFAULT_INSNS, DEFAULT_SECONDS, ModuleRun, run_modules
from lkm.parallel import map_chunks
from testing.captures import tree_symbols
from testing.corpus import find_tree, module_files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--budget", type=int, default=DEFAULT_INSNS)
    ap.add_argument("--timeout", type=float, default=DEFAULT_SECONDS)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args()
    paths = sorted(str(p) for p in module_files(find_tree(a.tree)))
    if a.limit:
        paths = paths[: a.limit]
    symbols = tree_symbols(find_tree(a.tree))
    t0 = time.monotonic()
    runs: list[ModuleRun] = []
    for chunk in map_chunks(
        lambda ps: run_modules(ps, symbols, insn_budget=a.budget, time_budget=a.timeout), paths
    ):
        runs.extend(chunk)
    took = time.monotonic() - t0
    n = len(runs)
    by = collections.Counter(r.result for r in runs)
    returned = by["returned"]
    print(f"{a.tree}: {n} modules, {took:.1f} s ({n / took:.1f} inits/s)")
    print(f"budget per init: {a.budget} instructions, {a.timeout} s")
    print(f"init ran to its return: {returned} ({100 * returned / n:.2f}%)")
    values = collections.Counter(r.value for r in runs if r.result == "returned")
    print("  returned values: " + ", ".join(f"{v}: {c}" for v, c in values.most_common(12)))
    print("did not return, by cause:")
    for cause, count in by.most_common():
        if cause == "returned":
            continue
        examples = [f"{r.name} ({r.detail[:90]})" for r in runs if r.result == cause][:4]
        print(f"  {cause}: {count} ({100 * count / n:.2f}%)")
        for e in examples:
            print(f"      e.g. {e}")
    unimpl = collections.Counter(u for r in runs for u in r.unimplemented)
    print("most frequent unimplemented kernel functions (modules calling them during init):")
    for name, count in unimpl.most_common(40):
        print(f"  {count:5d}  {name}")
    if a.json:
        Path(a.json).write_text(json.dumps([r.asdict() for r in runs], indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Strict-mode survey of a corpus tree: which module inits call only kernel functions lkm
implements, by subsystem.

Each module's init runs in a fresh booted kernel (imports bound to the tree's kallsyms), in
strict mode by default: the first call to a kernel function lkm does not implement ends the
run.  A module is "clean" when its init made no such call.  Prints the overall share, a table
by subsystem (modules, % clean, most frequent missing functions) and the most frequent missing
functions overall (modules whose first missing call it was).

The modules a module depends on (its modinfo depends=) are loaded and initialised first, as
modprobe does, so calls into them run their code (--no-deps: they are unimplemented calls).

Usage: python3 scripts/emulate_calls.py [--tree amd64-6.1] [--sample N --seed S] [--lenient]
       [--no-deps] [--json OUT] [--jsonl OUT [--batch N]] [--min-modules N]
       python3 scripts/emulate_calls.py --from-jsonl OUT
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from lkm.emulate.survey import (
    DEFAULT_INSNS,
    DEFAULT_SECONDS,
    ModuleRun,
    by_subsystem,
    driver_core,
    run_modules,
    tree_modules,
)
from lkm.parallel import map_chunks
from testing.captures import tree_symbols
from testing.corpus import find_tree, module_files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--sample", type=int, default=0, help="a random sample of N modules (0: all)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--lenient", action="store_true", help="default mode: every missing call, not the first")
    ap.add_argument("--no-deps", action="store_true", help="do not load the modules it depends on first")
    ap.add_argument("--budget", type=int, default=DEFAULT_INSNS)
    ap.add_argument("--timeout", type=float, default=DEFAULT_SECONDS)
    ap.add_argument("--min-modules", type=int, default=10, help="table rows: subsystems with this many")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument(
        "--jsonl",
        metavar="OUT",
        help="also run the rest of the tree in random order after the --sample, appending each "
        "batch's runs to OUT as it finishes (what is there when stopped is a random sample)",
    )
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--from-jsonl", metavar="FILE", help="only print the table of a --jsonl file's runs")
    a = ap.parse_args()
    if a.from_jsonl:
        rows = [json.loads(line) for line in Path(a.from_jsonl).read_text().splitlines() if line.strip()]
        done = [ModuleRun(**{k: v for k, v in r.items() if k != "batch"}) for r in rows]
        for r in done:
            r.unimplemented = tuple(r.unimplemented)
        a.sample = 0 if len(done) >= len(module_files(find_tree(a.tree))) else len(done)
        report(a, done, sum(r.seconds for r in done) / 2, not a.lenient)  # 2 workers' CPU time
        return 0
    tree = find_tree(a.tree)
    paths = sorted(str(p) for p in module_files(tree))
    deps = None if a.no_deps else tree_modules(paths)
    batches = [paths]
    if a.sample and a.sample < len(paths):
        first = sorted(random.Random(a.seed).sample(paths, a.sample))
        batches = [first]
        if a.jsonl:  # the sample, then the rest of the tree in random order
            chosen = set(first)
            rest = [p for p in paths if p not in chosen]
            random.Random(a.seed).shuffle(rest)
            batches += [rest[i : i + a.batch] for i in range(0, len(rest), a.batch)]
    symbols = tree_symbols(tree)
    strict = not a.lenient
    t0 = time.monotonic()
    runs: list[ModuleRun] = []
    took = 0.0
    for i, batch in enumerate(batches):
        for chunk in map_chunks(
            lambda ps: run_modules(
                ps, symbols, strict=strict, deps=deps, insn_budget=a.budget, time_budget=a.timeout
            ),
            batch,
        ):
            if a.jsonl:
                with open(a.jsonl, "a") as f:
                    f.write("".join(json.dumps({"batch": i, **r.asdict()}) + "\n" for r in chunk))
            if i == 0:
                runs.extend(chunk)
        if i == 0:
            took = time.monotonic() - t0
            report(a, runs, took, strict)
    return 0


def report(a: argparse.Namespace, runs: list[ModuleRun], took: float, strict: bool) -> None:
    """The survey's text: overall share, table by subsystem, most frequent missing functions."""
    n = len(runs)
    clean = sum(r.clean for r in runs)
    mode = "strict" if strict else "default"
    what = f"random sample of {n} (seed {a.seed})" if a.sample else f"all {n} modules"
    loaded = "dependencies not loaded" if a.no_deps else "dependencies loaded first"
    print(f"{a.tree}: {what}, {mode} mode, {loaded}, {took:.0f} s ({n / took:.1f} inits/s)")
    print(f"inits with no unimplemented kernel call: {clean}/{n} ({100 * clean / n:.1f}%)")
    core = sum(all(driver_core(u) for u in r.unimplemented) for r in runs)
    print(f"  ... or whose only missing calls are driver-core/bus/device/IRQ/timer/DMA ones: {core}/{n} "
          f"({100 * core / n:.1f}%)")  # fmt: skip
    causes = collections.Counter(r.result for r in runs)
    print("how the runs ended: " + ", ".join(f"{c}: {k}" for c, k in causes.most_common()))
    missing = collections.Counter(u for r in runs for u in r.unimplemented)
    print(f"distinct missing functions: {len(missing)}")
    print()
    rows = by_subsystem(runs)
    big = [r for r in rows if r.modules >= a.min_modules]
    rest = [r for r in rows if r.modules < a.min_modules]
    print(f"{'subsystem':24} {'modules':>7} {'clean':>7}  top missing (modules)")
    for r in big:
        top = ", ".join(f"{f} ({c})" for f, c in r.missing)
        print(f"{r.name:24} {r.modules:7d} {100 * r.share:6.1f}%  {top}")
    if rest:
        m, c = sum(r.modules for r in rest), sum(r.clean for r in rest)
        print(f"{f'({len(rest)} smaller ones)':24} {m:7d} {100 * c / m:6.1f}%")
    print()
    print("most frequent missing functions (modules calling them):")
    for name, count in missing.most_common(40):
        print(f"  {count:5d}  {name}{'  (driver core)' if driver_core(name) else ''}")
    if a.json:
        Path(a.json).write_text(json.dumps([r.asdict() for r in runs], indent=0) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: decode a 40-frame oops report with source lines, lkm against the kernel tree's
decode_stacktrace.sh approach (for each frame: ``nm`` of the object for the symbol's base,
cached per symbol, then one ``addr2line -i`` process) on the same inputs.

Inputs: a guest capture of scripts/guest_oops.py (``<corpus>/oops/<tree>``: the report's
kernel, its /proc/kallsyms, /proc/modules, sections and the module files with DWARF).  The
report is the guest's WARN report with its call trace replaced by 40 frames spread over the
functions of the modules that carry DWARF (oopsmod, oopsinit, pcsym), printed as the kernel
prints them (%pB).  lkm's time is the whole in-process decode, cold (parse, module files,
DWARF), median of --repeat runs; the anchor's likewise.  Prints both medians and
the ratio (target <= 0.2).  Never asserts.

    python3 bench/ksymoops.py [--tree amd64-6.12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/ (the corpus)

FRAMES = 40
DWARF_MODULES = ("oopsmod", "oopsinit", "pcsym")


def make_report(d: Path, tree_version: str) -> str:
    from lkm.oops import modmap
    from lkm.oops.report import parse
    from lkm.oops.symbolize import symbolizer_from_kallsyms
    from lkm.symbols.sources import parse_kallsyms

    maps = modmap.from_snapshot(
        (d / "proc-modules.txt").read_text(), (d / "sections.txt").read_text(),
        rules=modmap.kernel_rules(tree_version),
    )  # fmt: skip
    kallsyms = (d / "proc-kallsyms.txt").read_text(encoding="latin-1")
    sym = symbolizer_from_kallsyms(kallsyms, maps)
    funcs = [s for s in parse_kallsyms(kallsyms) if s.module in DWARF_MODULES and s.type in ("t", "T")]
    rng = random.Random(7)
    lines = []
    for s in rng.sample(funcs, min(FRAMES, len(funcs))) + rng.sample(funcs, max(0, FRAMES - len(funcs))):
        hit = sym.lookup(s.address or 0)
        size = hit.size if hit else 16
        addr = (s.address or 0) + rng.randrange(1, max(2, size))
        lines.append(f"[    3.450000]  {sym.format_backtrace(addr)}\n")
    log = parse((d / "dmesg.txt").read_text(encoding="latin-1"))
    warn = log.reports[0]
    head = [
        log.lines[i].prefix + log.lines[i].text + "\n" for i in warn.lines if log.lines[i].kind != "frame"
    ]
    cut = next(i for i, t in enumerate(head) if "<TASK>" in t) + 1
    return "".join(head[:cut] + lines[:FRAMES] + head[cut:])


def run_lkm(d: Path, report: str) -> tuple[float, int]:
    from lkm.oops.inputs import Inputs, decode_text

    # the anchor's inputs: the report and the module files (no kernel symbols needed for lines)
    t0 = time.perf_counter()
    out, _notes = decode_text(report, Inputs(objects=str(d / "modules")), "decode-stacktrace")
    took = time.perf_counter() - t0
    return took, out.count(".c:")


def run_anchor(d: Path, report: str) -> tuple[float, int]:
    """decode_stacktrace.sh's work for each frame line: nm (cached per module and name) for the
    symbol's base, then one addr2line -i process for base + offset."""
    from lkm.oops.report import parse

    log = parse(report)
    t0 = time.perf_counter()
    nm_cache: dict[tuple[str, str], str] = {}
    found = 0
    for r in log.reports:
        for f in r.frames:
            if f.module not in DWARF_MODULES or f.symbol is None or f.offset is None:
                continue
            ko = d / "modules" / f"{f.module}.ko"
            key = (f.module, f.symbol)
            if key not in nm_cache:
                nm = subprocess.run(["nm", str(ko)], capture_output=True, text=True, check=True).stdout
                nm_cache[key] = next(
                    (
                        ln.split()[0]
                        for ln in nm.splitlines()
                        if ln.endswith(" " + f.symbol) and ln.split()[1] in "tT"
                    ),
                    "",
                )
            base = nm_cache[key]
            if not base:
                continue
            addr = int(base, 16) + f.offset
            out = subprocess.run(
                ["addr2line", "-i", "-e", str(ko), f"{addr:x}"], capture_output=True, text=True, check=True
            ).stdout
            found += out.count(".c:")
    return time.perf_counter() - t0, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.12")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from testing.corpus import corpus_dir

    d = corpus_dir() / "oops" / args.tree
    if not (d / "pcsym.txt").is_file():
        print(f"no guest capture in {d}: run scripts/guest_oops.py --tree {args.tree}", file=sys.stderr)
        return 1
    report = make_report(d, args.tree.split("-")[-1])
    from lkm.oops.report import parse

    frames = sum(len(r.frames) for r in parse(report).reports)
    lkm_times, anchor_times = [], []
    lkm_found = anchor_found = 0
    for _ in range(args.repeat):
        t, lkm_found = run_lkm(d, report)
        lkm_times.append(t)
        t, anchor_found = run_anchor(d, report)
        anchor_times.append(t)
    lk, an = statistics.median(lkm_times), statistics.median(anchor_times)
    print(
        f"report: {frames} frames ({args.tree}); source lines found: lkm {lkm_found}, anchor {anchor_found}"
    )
    print(f"lkm (parse + module files + DWARF, in process): {lk * 1000:.1f} ms")
    print(f"decode_stacktrace approach (nm per symbol, addr2line per frame): {an * 1000:.1f} ms")
    verdict = "met" if lk / an <= 0.2 else "NOT MET"
    print(f"ratio lkm / anchor: {lk / an:.3f} (target <= 0.2: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

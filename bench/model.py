#!/usr/bin/env python3
"""The model kernel's speed and its module memory under load.

    python3 bench/model.py [--module fat] [--cycles 200] [--ops 10000] [--seed 1]

1. insmod + rmmod cycles per second of a corpus module (amd64 6.1 tree; default fat.ko) on the
   6.1 profile model: finit_module (checks, layout, resolution against the state, relocation,
   one transaction) then delete_module.  Anchor, measured in the same run: the link alone
   (layout_module + link_module against an in-memory SymbolTable of the same profile), i.e.
   what any loader must do; ratio = cycle time / link time is the model's own overhead
   (SQLite state, allocation, kallsyms and export rows, the module's memory stored).
2. The allocator under OPS create_module/delete_module calls on the 2.4 model (sizes drawn
   log-uniformly from 512 bytes to 256 KiB, about 60% loads while fewer than 300 modules are
   loaded), vmalloc-only vs kmalloc-first (modules up to 4 KiB from the kmalloc pool):
   ops/s, bytes reserved (page rounding, guard pages, size classes) against bytes asked for,
   vmalloc fragmentation (1 - largest hole / free space below the highest area) averaged over
   the run and at its end, holes, refusals.  Anchor: vmalloc-only.

Nothing is asserted; numbers go to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # testing/
sys.path.insert(0, str(ROOT / "src"))

from lkm.kernel.interface import KernelError  # noqa: E402
from lkm.kernel.model import ModelKernel  # noqa: E402
from lkm.kernel.model.vmalloc import fragmentation  # noqa: E402


def cycles(module: str, n: int, tmp: str) -> None:
    from lkm.kernel.model.profile import load_profile
    from lkm.link import link as link_module
    from lkm.link.resolve import kernel_resolver
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import SymbolTable
    from testing.corpus import find_tree, module_files

    tree = find_tree("amd64-6.1")
    path = str(next(p for p in module_files(tree) if os.path.basename(p).split(".")[0] == module))
    k = ModelKernel.boot("linux-6.1-amd64", os.path.join(tmp, "k61.db"))
    name = ModuleFile.open(path).name
    k.finit_module(path)
    k.delete_module(name)  # warm-up
    t = time.perf_counter()
    for _ in range(n):
        k.finit_module(path)
        k.delete_module(name)
    model = (time.perf_counter() - t) / n
    table = SymbolTable(load_profile("linux-6.1-amd64").symbols)
    mod = ModuleFile.open(path)
    t = time.perf_counter()
    for _ in range(n):
        mod = ModuleFile.open(path)
        at = dict.fromkeys(("core", "init"), 0xFFFFFFFFC0000000)  # 6.1's two regions
        link_module(mod, kernel_resolver(mod, table), "linux-6.1", bases=at)
    link = (time.perf_counter() - t) / n
    print(f"1. {module}.ko insmod+rmmod on the model: {1 / model:8.1f} cycles/s ({model * 1e3:.2f} ms)")
    print(f"   anchor, link alone:               {1 / link:8.1f} links/s  ({link * 1e3:.2f} ms)")
    print(f"   ratio model cycle / link:         {model / link:8.2f}")


def allocator(policy: str, ops: int, seed: int, tmp: str) -> dict[str, float]:
    rng = random.Random(seed)
    k = ModelKernel.boot("linux-2.4-i386", os.path.join(tmp, f"{policy}.db"), policy=policy, kmalloc_max=4096)
    live: list[str] = []
    asked = refused = 0
    frag: list[float] = []
    serial = 0
    t = time.perf_counter()
    for _ in range(ops):
        if live and (rng.random() < 0.4 or len(live) >= 300):
            name = live.pop(rng.randrange(len(live)))
            k.delete_module_24(name)
        else:
            size = int(math.exp(rng.uniform(math.log(512), math.log(256 * 1024))))
            serial += 1
            name = f"m{serial}"
            try:
                k.create_module(name, size)
                live.append(name)
                asked += size
            except KernelError:
                refused += 1
        if _ % 100 == 0:
            v = [(a.start, a.span) for a in k.areas() if a.pool == "vmalloc"]
            frag.append(_below_top(k, v))
    took = time.perf_counter() - t
    areas = k.areas()
    v = [(a.start, a.span) for a in areas if a.pool == "vmalloc"]
    f = fragmentation(k.arenas["vmalloc"], v)
    live_asked = sum(a.size for a in areas)
    reserved = sum(a.span for a in areas)
    return {
        "ops/s": ops / took, "modules": len(areas), "asked": live_asked, "reserved": reserved,
        "overhead": reserved / live_asked - 1 if live_asked else 0.0, "frag_mean": statistics.mean(frag),
        "frag_end": _below_top(k, v), "holes": f.holes, "refused": refused,
        "kmalloc": sum(1 for a in areas if a.pool == "kmalloc"),
    }  # fmt: skip


def _below_top(k: ModelKernel, used: list[tuple[int, int]]) -> float:
    """Fragmentation of the part of the vmalloc area in use (up to the highest area)."""
    if not used:
        return 0.0
    top = max(s + n for s, n in used)
    from lkm.kernel.model.vmalloc import Arena

    a = k.arenas["vmalloc"]
    f = fragmentation(Arena(a.name, a.start, top, a.granule, a.guard), used)
    return f.ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", default="fat")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cycles(a.module, a.cycles, tmp)
        rows = {p: allocator(p, a.ops, a.seed, tmp) for p in ("vmalloc", "kmalloc-first")}
    print(f"2. allocator, {a.ops} create_module/delete_module calls, sizes 512 B .. 256 KiB (log-uniform)")
    print(f"   {'':<22}{'vmalloc-only':>14}{'kmalloc-first':>15}{'ratio':>8}")
    labels = (
        ("ops/s", "calls/s"),
        ("modules", "modules loaded at end"),
        ("asked", "bytes asked (end)"),
        ("reserved", "bytes reserved (end)"),
        ("overhead", "reserve overhead"),
        ("frag_mean", "fragmentation, mean"),
        ("frag_end", "fragmentation, end"),
        ("holes", "vmalloc holes (end)"),
        ("kmalloc", "in kmalloc (end)"),
        ("refused", "ENOMEM refusals"),
    )
    for key, label in labels:
        v, km = rows["vmalloc"][key], rows["kmalloc-first"][key]
        ratio = f"{km / v:8.2f}" if v else "       -"
        fmt = "{:14.3f}{:15.3f}" if isinstance(v, float) and v < 10 else "{:14.0f}{:15.0f}"
        print(f"   {label:<22}" + fmt.format(v, km) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())

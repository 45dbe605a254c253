#!/usr/bin/env python3
"""The model kernel's speed and its module memory under load.

    python3 bench/model.py [--only cycles,allocator,tree] [--module fat] [--cycles 200]
                           [--ops 10000] [--seed 1] [--tree amd64-6.1] [--limit N] [--json FILE]

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

3. The whole tree (issue 18, "model kernel throughput"): every module of the corpus tree
   loaded into a model kernel in dependency order, then unloaded, against lkm's linker alone
   on the same modules.  Untimed set-up: the model profile of the corpus's own build
   (testing.captures.corpus_profile, addresses from its vmlinuz) written to a file, a scratch
   modules root with lkm depmod's indexes, ``lkm model boot PROFILE --state S --modules-root
   ROOT``.  Timed, each one subprocess (wall, and CPU from RUSAGE_CHILDREN):
   * load: ``lkm modprobe --state S -a NAME...`` with every module name of modules.order in
     one call (modprobe follows modules.dep, so dependencies go first);
   * unload: ``lkm modprobe --state S -r -a NAME...`` with the loaded modules newest first
     (modprobe -r also drops dependencies nobody uses any more);
   * anchor, link alone: ``python bench/model.py --link-plan PLAN``, which opens each module
     the model loaded, in the model's order, and links it (``lkm.link.link``: layout,
     kernel_resolver's binding with CRC and namespace checks, relocation) at the very bases the
     model gave it, against the same profile's exports plus the exports of the modules linked
     before it (a dict lookup per symbol), then registers its exports.
   The ratio is (load + unload) / link.  Then, untimed: how many modules loaded, the errors of
   the others as modprobe printed them (with the kernel log's "Unknown symbol" lines), what is
   left after the unload (modules without an exit routine cannot be unloaded, as in a real
   kernel) and ``lkm model check``.

Nothing is asserted; numbers go to stdout (and ``--json``).  Run it with the interpreter of a
non-editable install (bench/README.md): the lkm next to it is the one measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # testing/
try:
    import lkm  # (the installed lkm, when there is one: that is what is measured)
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))
    import lkm

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


def timed(cmd: Sequence[str], stderr: Path | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child: user + system, exit status) of one command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(stderr or os.devnull, "wb") as err:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.returncode


class FlatExports:
    """The cheapest symbol table a linker can have: one dict of every export (the kernel's,
    then each linked module's; names are unique, the kernel refuses duplicates), with
    find_symbol's GPL rule.  Duck-types the part of SymbolTable kernel_resolver uses."""

    def __init__(self, symbols: Sequence[object]) -> None:
        self.by_name: dict[str, object] = {s.name: s for s in symbols}  # type: ignore[attr-defined]

    def find_export(self, name: str, *, gpl_ok: bool) -> object | None:
        s = self.by_name.get(name)
        if s is None or (s.gpl_only and not gpl_ok):  # type: ignore[attr-defined]
            return None
        return s

    def lookup(self, name: str, *, module: str | None = None) -> object | None:
        return None


def link_plan(plan_path: str) -> int:
    """The anchor of the tree benchmark (its own process): link every module of the plan, in
    order, at its bases, against the profile's exports and those linked before it."""
    from lkm.kernel.model.profile import load_profile
    from lkm.kernels import KernelConfig
    from lkm.link import link
    from lkm.link.resolve import kernel_resolver
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import KernelSymbol

    plan = json.loads(Path(plan_path).read_text())
    prof = load_profile(plan["profile"])
    table = FlatExports(prof.symbols)
    cfg = KernelConfig(page_size=int(prof.fields.get("page_size", "4096")), kallsyms_all=True)
    failed = 0
    for path, bases in plan["modules"]:
        mod = ModuleFile.open(path)
        try:
            image = link(mod, kernel_resolver(mod, table), prof.fields["layout"], cfg, bases=bases)  # type: ignore[arg-type]
        except Exception as exc:  # counted and reported, the rest still links
            failed += 1
            print(f"{path}: {exc}", file=sys.stderr)
            continue
        values = image.symbol_values
        defined = {s.name: values[s.number] for s in mod.elf.symbols() if s.name and s.shndx}
        for e in mod.exports:
            address = defined.get(e.symbol or e.name, defined.get(e.name, 0))
            table.by_name[e.name] = KernelSymbol(
                e.name, address, None, mod.name, True, e.gpl, e.crc, e.namespace
            )
    return 1 if failed else 0


def depends_differ(listed: Sequence[object], paths: dict[str, str]) -> list[str]:
    """Loaded modules whose references (the modules they hold, i.e. whose exports they bound)
    are not exactly modpost's ``depends=``: the modules a real kernel binds them to, computed at
    build time from Module.symvers."""
    from lkm.modname import alias_normalize as normalize
    from lkm.module.file import ModuleFile

    uses: dict[str, set[str]] = {}
    for m in listed:
        for h in m.holders:  # type: ignore[attr-defined]
            uses.setdefault(h, set()).add(m.name)  # type: ignore[attr-defined]
    out = []
    for m in listed:
        name = m.name  # type: ignore[attr-defined]
        depends = ModuleFile.open(paths[name]).get("depends") or ""
        want = {normalize(d) for d in depends.split(",") if d}
        if uses.get(name, set()) != want:
            out.append(f"{name}: holds {sorted(uses.get(name, set()))}, depends= {sorted(want)}")
    return out


def tree(tree_name: str, limit: int | None, tmp: str) -> dict[str, object]:
    """Benchmark 3: the whole tree into a model kernel and out again, against the link alone."""
    from lkm.kernel.model import ModelKernel
    from lkm.modname import alias_normalize as normalize
    from testing.captures import corpus_profile
    from testing.corpus import depmod_root, find_tree

    lkm_cmd = [str(Path(sys.executable).parent / "lkm")]
    t = find_tree(tree_name)
    work = Path(tmp)
    profile = work / "tree.profile"
    profile.write_text(
        corpus_profile(tree_name, "headers-" + tree_name.split("-")[1], addresses="image").to_text()
    )
    root = work / "root"
    depmod_root(t, root)
    r = subprocess.run([*lkm_cmd, "depmod", "-b", str(root), t.release], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"lkm depmod failed: {r.stderr.strip()}")
    moddir = root / "lib" / "modules" / t.release
    order = [line.strip() for line in (moddir / "modules.order").read_text().splitlines() if line.strip()]
    paths = {normalize(os.path.basename(rel).split(".")[0]): str(moddir / rel) for rel in order}
    names = list(paths)[:limit]
    state = work / "tree.db"
    boot = [*lkm_cmd, "model", "boot", str(profile), "--state", str(state), "--modules-root", str(root)]
    r = subprocess.run(boot, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"lkm model boot failed: {r.stderr.strip()}")
    print(f"3. {tree_name}: {len(names)} modules into the model (lkm modprobe -a), out again (-r -a)")
    load_err = work / "load.err"
    load = timed([*lkm_cmd, "modprobe", "--state", str(state), "-a", *names], load_err)
    k = ModelKernel(state, readonly=True)
    listed = k.modules()
    loaded = [m.name for m in reversed(listed)]  # load order
    wrong = depends_differ(listed, paths)
    plan = {"profile": str(profile), "modules": [[paths.get(n) or n, k.regions(n)] for n in loaded]}
    log = k.dmesg()
    k.close()
    (work / "plan.json").write_text(json.dumps(plan))
    unload_err = work / "unload.err"
    unload = timed([*lkm_cmd, "modprobe", "--state", str(state), "-r", "-a", *reversed(loaded)], unload_err)
    k = ModelKernel(state, readonly=True)
    left = [m.name for m in k.modules()]
    k.close()
    check = subprocess.run(
        [*lkm_cmd, "model", "check", "--state", str(state)], capture_output=True, text=True
    )
    link_err = work / "link.err"
    link = timed(
        [sys.executable, str(Path(__file__).resolve()), "--link-plan", str(work / "plan.json")], link_err
    )
    errors = [line for line in load_err.read_text(errors="replace").splitlines() if line]
    kinds = Counter(line.rsplit(": ", 1)[-1] for line in errors if "could not insert" in line)
    unknown = Counter(
        line.split("Unknown symbol ")[1].split()[0] for line in log if "Unknown symbol " in line
    )
    model_wall, model_cpu = load[0] + unload[0], load[1] + unload[1]
    print(f"   load:   {load[0]:8.1f} s wall {load[1]:8.1f} s CPU  (exit {load[2]})")
    print(f"   unload: {unload[0]:8.1f} s wall {unload[1]:8.1f} s CPU  (exit {unload[2]})")
    print(f"   link alone (anchor): {link[0]:8.1f} s wall {link[1]:8.1f} s CPU  (exit {link[2]})")
    print(f"   ratio (load + unload) / link: CPU {model_cpu / link[1]:.2f}  wall {model_wall / link[0]:.2f}  "
          f"target <= 2.0: {'MET' if model_cpu / link[1] <= 2.0 else 'NOT MET'} (CPU)")  # fmt: skip
    print(f"   loaded {len(loaded)} of {len(names)}; failed inserts {sum(kinds.values())}: {dict(kinds)}")
    for line in errors[:40]:
        print(f"     {line}")
    if unknown:
        print(f"   unknown symbols in the kernel log: {dict(unknown.most_common(20))}")
    print(f"   references unlike modpost's depends= (a real kernel's, from Module.symvers): {len(wrong)}")
    for line in wrong[:20]:
        print(f"     {line}")
    print(f"   left after unload: {len(left)} {left[:20]}")
    said = f"{check.stdout.strip()[:200]} {check.stderr.strip()[:200]}"
    print(f"   lkm model check: exit {check.returncode} {said}")
    link_errors = link_err.read_text(errors="replace").splitlines()
    if link_errors:
        print(f"   anchor link errors: {len(link_errors)}: {link_errors[:5]}")
    return {
        "tree": tree_name, "modules": len(names), "loaded": len(loaded), "left": left,
        "load": load, "unload": unload, "link": link, "ratio_cpu": model_cpu / link[1],
        "ratio_wall": model_wall / link[0], "errors": errors, "depends_differ": wrong,
        "unknown_symbols": dict(unknown),
        "check": check.returncode, "load_average": os.getloadavg(),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", default="fat")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="cycles,allocator,tree", help="benchmarks to run")
    ap.add_argument("--tree", default="amd64-6.1", help="corpus tree of benchmark 3")
    ap.add_argument("--limit", type=int, default=None, help="benchmark 3: the first N modules only")
    ap.add_argument("--json", default=None, help="benchmark 3's numbers as JSON")
    ap.add_argument("--link-plan", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.link_plan:
        return link_plan(a.link_plan)
    only = set(a.only.split(","))
    print(f"lkm from {lkm.__file__}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if "tree" in only:
            result = tree(a.tree, a.limit, tmp)
            if a.json:
                Path(a.json).write_text(json.dumps(result, indent=1))
        if "cycles" in only:
            cycles(a.module, a.cycles, tmp)
        if "allocator" not in only:
            return 0
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

#!/usr/bin/env python3
"""Benchmark: the emulator's speed on module code, and init runs over a corpus sample.

Measures, for the lkm under test and (``--reference SRC``) another lkm source tree such as
main's checkout, each in its own process, one after the other in the same run:

* **init runs/s**: a deterministic sample of a corpus tree, each module loaded into a fresh
  booted kernel and its init run (``BaseKernel`` + ``load`` + ``run_init``), CPU and wall
  seconds; the same without init (link + map: the anchor for what init adds);
* **instructions/s of init code**: the instructions init executed, counted in a separate
  pass with a per-instruction hook, divided by the un-hooked time init added over loading;
* **compute loop**: the fixture ``tests/fixtures/6x/perfloop.ko`` (a bitwise CRC-32 over
  4 KiB, ``rounds`` passes, no kernel calls and no data-dependent branches in the loop) run
  with a large ``rounds``; instructions are counted with a hook at rounds 1, 2 and 3 (the
  same instructions every pass: count = fixed + rounds x per-pass, checked) and its
  checksum is checked against zlib's;
* **probe + remove runs/s**: PCI drivers of the corpus with ``--device auto`` (by default
  the four QEMU device models' drivers of the record/replay work: e1000, e100, 8139cp,
  ne2k-pci) and the fixture ``netdemo.ko`` with its device (a MAC in its registers), each
  run ``--probe-runs`` times in a fresh harness (``Harness`` + ``load``: init and probe,
  ``unload``: exit and remove); instructions/s: the module instructions of one run (counted
  in a separate pass with a per-instruction hook) over the seconds of an un-hooked run;
  each run's kernel log and probe() value are listed (and compared between the sides);
* **same results**: each module's printk log, init's return value or fault, and the
  unimplemented kernel functions it called, compared between the two trees (any difference
  is listed and makes the exit status 1).

Anchors measured in the same run: unicorn's own speed on a tight register loop (add; dec;
jnz) with an instruction count per slice as the emulator runs it, and without any hook (the
JIT alone: the ceiling for emulated code).  Apart from a difference in results, never fails
on a number.

    python3 bench/emulate.py [--tree amd64-6.1] [--sample 200] [--rounds 100]
                             [--probe e1000,e100,8139cp,ne2k-pci] [--probe-runs 20]
                             [--reference /path/to/main/src] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERFLOOP = ROOT / "tests" / "fixtures" / "6x" / "perfloop.ko"
PERFLOOP_LEN = 4096
NETDEMO = ROOT / "tests" / "fixtures" / "6x" / "netdemo.ko"
# netdemo's device: BAR 0 with a valid MAC (52:54:00:12:34:56) in MAC_LO/MAC_HI, the link up
NETDEMO_DEVICE = "pci:v1234d4E44,bar0=mem:0x1000,irq=11,bar0+0x0=0x12005452,bar0+0x4=0x5634,bar0+0xc=1"
PROBE_DRIVERS = "e1000,e100,8139cp,ne2k-pci"


def perfloop_sum(rounds: int) -> int:
    """The fixture's checksum by zlib (its oracle): CRC-32 of its buffer ``rounds`` times."""
    buf = bytes((i * 7 + 3) & 0xFF for i in range(PERFLOOP_LEN))
    value = 0
    for _ in range(rounds):
        value = zlib.crc32(buf, value)
    return value


# -- the measuring process (one lkm source tree) -------------------------------------------
def probe_bench(
    symbols: object, tree: object, drivers: str, runs: int, count_hooked: Callable[[object], list[int]]
) -> dict[str, dict[str, object]]:
    """Probe + remove of each driver: with ``--device auto`` (registers that read 0), with its
    QEMU recording (``replay:``, when the corpus cache has one: the driver's full probe against
    the device's recorded answers, its dependencies loaded first), and the netdemo fixture
    with its device.  Per case: runs/s, instructions per run, kernel log, probe() value and,
    replayed, whether the driver made the recorded accesses to the end."""
    from lkm.emulate.harness import Harness
    from testing.captures import corpus_dir, replay_is_current
    from testing.corpus import module_files
    from testing.vm import with_dependencies

    files = {p.name[: -len(".ko")]: str(p) for p in module_files(tree)}  # type: ignore[arg-type]
    cases: list[tuple[str, list[str], str]] = []
    for drv in (d for d in drivers.split(",") if d in files):
        cases.append((f"{drv} (auto)", [files[drv]], "auto"))
        rec = corpus_dir() / "replay" / tree.name / drv  # type: ignore[attr-defined]
        if replay_is_current(rec, tree.release):  # type: ignore[attr-defined]
            mods = [str(p) for p in with_dependencies(tree, [drv.replace("-", "_")])]  # type: ignore[arg-type]
            cases.append((f"{drv} (replay)", mods, f"replay:{rec / 'trace.json'}"))
    cases.append(("netdemo (fixture)", [str(NETDEMO)], NETDEMO_DEVICE))
    out: dict[str, dict[str, object]] = {}
    for name, paths, device in cases:

        def one(counting: bool, paths: list[str] = paths, device: str = device) -> tuple[Harness, int]:
            h = Harness([device], symbols=symbols, time_budget=600)  # type: ignore[arg-type]
            counter = count_hooked(h.kernel) if counting else [0]
            for p in paths:
                h.load(p, check=False)
            h.unload()
            return h, counter[0]

        h, insns = one(True)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(runs):
            one(False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        d = next((d for d in h.devices if d.probed), h.devices[0])
        replay = [r.ok for r in h.replay()] if device.startswith("replay:") else []
        out[name] = {
            "runs": runs, "cpu": cpu, "wall": wall, "insns": insns, "probe": d.probe_result,
            "log": list(h.dmesg), "unimplemented": h.unimplemented, "replay_ok": replay,
        }  # fmt: skip
    return out


def worker(
    src: str, tree_name: str, sample_size: int, rounds: int, count: bool, probe: str = "", probe_runs: int = 0
) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))  # testing/
    sys.path.insert(0, src)  # the lkm measured (first on the path)

    import unicorn

    import lkm
    from lkm.emulate.kernel import BaseKernel
    from lkm.emulate.module import load, run_init
    from lkm.emulate.state import KernelState
    from lkm.module.file import ModuleFile
    from testing.captures import tree_symbols
    from testing.corpus import find_tree, module_files

    tree = find_tree(tree_name)
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: max(1, len(paths) // sample_size)][:sample_size]
    symbols = tree_symbols(tree)  # its guest kallsyms, else its vmlinuz
    mods = [ModuleFile.open(p) for p in sample]
    out: dict[str, object] = {"lkm": str(Path(lkm.__file__).parent), "modules": len(mods)}

    def timed(fn: object) -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()  # type: ignore[operator]
        return time.process_time() - c0, time.perf_counter() - t0

    def load_only() -> None:
        for mod in mods:
            load(BaseKernel("x86_64", symbols, KernelState.booted()), mod)

    results: dict[str, dict[str, object]] = {}

    def load_init() -> None:
        for mod in mods:
            k = BaseKernel("x86_64", symbols, KernelState.booted())
            em = load(k, mod)
            res = run_init(k, em)
            fault = res.fault
            results[mod.path] = {
                "value": res.value,
                "state": res.state,
                "fault": None if fault is None else [fault.kind, fault.reason],
                "log": [f"{e.level} {e.module} {e.text}" for e in k.state.log],
                "unimplemented": sorted(k.state.unimplemented),
                "trace": [t.name if t.implemented else f"{t.name} (unimplemented) {t.site}" for t in k.trace],
            }

    load_init()  # warm-up: imports, caches, page cache
    out["load_cpu"], out["load_wall"] = timed(load_only)
    out["init_cpu"], out["init_wall"] = timed(load_init)
    out["results"] = results

    def count_hooked(k: object) -> list[int]:
        counter = [0]

        def hook(uc: object, addr: int, size: int, data: object, c: list[int] = counter) -> None:
            c[0] += 1

        k.machine.uc.hook_add(unicorn.UC_HOOK_CODE, hook)  # type: ignore[attr-defined]
        return counter

    if count:
        insns = 0
        for mod in mods:
            k = BaseKernel("x86_64", symbols, KernelState.booted())
            em = load(k, mod)
            counter = count_hooked(k)
            run_init(k, em)
            insns += counter[0]
        out["init_insns"] = insns

    # The compute loop.
    def perfloop(n: int, counting: bool) -> tuple[int, int, float, float, str]:
        k = BaseKernel("x86_64", symbols, KernelState.booted(), insn_budget=0, time_budget=3600.0)
        em = load(k, ModuleFile.open(str(PERFLOOP)))
        addr = em.symbol("rounds")
        assert addr is not None
        k.machine.write_int(addr, 4, n)
        counter = count_hooked(k) if counting else [0]
        c0, t0 = time.process_time(), time.perf_counter()
        res = run_init(k, em)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        text = "".join(e.text for e in k.state.log)
        if res.fault is not None:
            text += f"fault: {res.fault.reason}"
        return counter[0], res.value, cpu, wall, text

    if probe_runs:
        out["probe"] = probe_bench(symbols, tree, probe, probe_runs, count_hooked)

    one = perfloop(1, True)[0]
    two = perfloop(2, True)[0]
    three = perfloop(3, True)[0]
    out["loop_exact"] = three - two == two - one
    out["loop_insns"] = one + (rounds - 1) * (two - one)
    _, _, out["loop_cpu"], out["loop_wall"], out["loop_log"] = perfloop(rounds, False)
    return out


# -- the driver ----------------------------------------------------------------------------
def run_side(src: str, a: argparse.Namespace, count: bool) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # leave the reference tree as it is
        cmd = [sys.executable, __file__, "--worker", src, "--out", f.name, "--tree", a.tree]
        cmd += ["--sample", str(a.sample), "--rounds", str(a.rounds)] + (["--count"] if count else [])
        cmd += ["--probe", a.probe, "--probe-runs", str(a.probe_runs)]
        subprocess.run(cmd, check=True, env=env)
        data: dict[str, object] = json.loads(Path(f.name).read_text())
        return data


def anchors() -> dict[str, float]:
    """unicorn alone on 30M instructions of add; dec; jnz: with the emulator's per-slice
    instruction count (TICK_INSNS per emu_start), and with no hook at all."""
    import unicorn
    from unicorn import x86_const as x86

    n = 30_000_000
    code = bytes.fromhex("48c7c1") + (n // 3).to_bytes(4, "little") + bytes.fromhex("4801c848ffc975f8f4")
    out: dict[str, float] = {}
    for label, count in (("counted", 100_000), ("plain", 0)):
        uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        base = 0x1000000
        uc.mem_map(base, 0x1000)
        uc.mem_write(base, code)
        end = base + len(code) - 1
        c0, t0 = time.process_time(), time.perf_counter()
        pc = base
        while pc != end:
            uc.emu_start(pc, end, count=count)
            pc = uc.reg_read(x86.UC_X86_REG_RIP)
        out[f"{label}_cpu"] = n / (time.process_time() - c0)
        out[f"{label}_wall"] = n / (time.perf_counter() - t0)
    return out


def compare(before: dict[str, dict[str, object]], after: dict[str, dict[str, object]]) -> list[str]:
    diffs = []
    for path in sorted(set(before) | set(after)):
        b, a = before.get(path), after.get(path)
        if b is None or a is None:
            diffs.append(f"{path}: run by one side only")
            continue
        for key in ("value", "state", "fault", "log", "unimplemented", "trace"):
            if b.get(key) != a.get(key):
                what = f"{Path(path).name}: {key} differs:"
                diffs.append(f"{what}\n    before {b.get(key)!r}\n    after  {a.get(key)!r}")
    return diffs


def print_probe(sides: dict[str, dict[str, object]]) -> None:
    """The probe + remove table: runs/s and instructions/s per driver and side (CPU, wall)."""
    probes = {side: d.get("probe") for side, d in sides.items() if isinstance(d.get("probe"), dict)}
    if not probes:
        return
    print()
    print(f"{'probe + remove (fresh kernel each run)':34s} {'side':>6s} {'probe()':>8s} {'insns/run':>10s} "
          f"{'runs/s CPU':>11s} {'wall':>8s} {'insns/s CPU':>12s} {'wall':>12s}")  # fmt: skip
    names = list(next(iter(probes.values())))  # type: ignore[arg-type]
    for name in names:
        for side, table in probes.items():
            r = table.get(name)  # type: ignore[union-attr]
            if r is None:
                continue
            runs, insns, cpu, wall = r["runs"], r["insns"], r["cpu"], r["wall"]
            rep = tuple(r["replay_ok"])
            ok = "" if not rep else "  replay followed to the end" if all(rep) else "  REPLAY DIVERGED"
            print(f"{name:34s} {side:>6s} {r['probe']!s:>8s} {insns:>10,d} {runs / cpu:11.1f} "
                  f"{runs / wall:8.1f} {insns * runs / cpu:12,.0f} {insns * runs / wall:12,.0f}"
                  f"{ok}")  # fmt: skip
    if len(probes) == 2:
        b, a = probes["before"], probes["after"]
        for name in names:
            rb, ra = b.get(name), a.get(name)  # type: ignore[union-attr]
            if rb and ra and (rb["log"], rb["probe"]) != (ra["log"], ra["probe"]):
                print(f"probe results differ for {name}: before {rb['probe']} {rb['log'][-2:]}, "
                      f"after {ra['probe']} {ra['log'][-2:]}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=100, help="perfloop passes (about 254k instructions each)")
    ap.add_argument("--reference", metavar="SRC", help="another lkm's src directory to compare with")
    ap.add_argument("--json", metavar="FILE", help="also write every number and result as JSON")
    ap.add_argument("--probe", default=PROBE_DRIVERS, help="corpus PCI drivers for probe + remove runs")
    ap.add_argument("--probe-runs", type=int, default=20, help="probe + remove runs per driver (0: none)")
    ap.add_argument("--worker", metavar="SRC", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        data = worker(a.worker, a.tree, a.sample, a.rounds, a.count, a.probe, a.probe_runs)
        Path(a.out).write_text(json.dumps(data))
        return 0

    print(f"load average at start: {os.getloadavg()}")
    sides: dict[str, dict[str, object]] = {}
    if a.reference:
        sides["before"] = run_side(a.reference, a, count=True)
    sides["after"] = run_side(str(ROOT / "src"), a, count=True)
    anchor = anchors()
    print(f"load average at end: {os.getloadavg()}")

    after = sides["after"]
    n = int(after["modules"])  # type: ignore[call-overload]
    expect = perfloop_sum(a.rounds)
    for side, d in sides.items():
        i = int(d["init_insns"])  # type: ignore[call-overload]
        print(f"[{side}] {n} modules of {a.tree}: init executed {i} instructions ({i / n:.0f} per module)")
    print(f"compute loop: perfloop.ko rounds={a.rounds}, {after['loop_insns']:,} instructions "
          f"(the same count every pass: {after['loop_exact']}); zlib's crc32={expect:08x}")  # fmt: skip
    rows: list[tuple[str, dict[str, float]]] = []
    for side, d in sides.items():
        f = {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        ok = f"crc32={expect:08x}" in str(d["loop_log"])
        verdict = "matches zlib" if ok else f"WRONG: {d['loop_log']}"
        print(f"[{side}] lkm from {d['lkm']}; perfloop checksum {verdict}")
        m = {}
        for clock in ("cpu", "wall"):
            init_s, load_s = f[f"init_{clock}"], f[f"load_{clock}"]
            m[f"runs_{clock}"] = n / init_s
            m[f"load_{clock}"] = load_s
            m[f"init_{clock}"] = init_s
            mine = f["init_insns"]  # each side's own count (the kernel's calls into module code may differ)
            m[f"ips_{clock}"] = mine / (init_s - load_s) if init_s > load_s else float("nan")
            m[f"loop_{clock}"] = float(after["loop_insns"]) / f[f"loop_{clock}"]  # type: ignore[arg-type]
        rows.append((side, m))
    print()
    print(f"{'':44s} " + "  ".join(f"{s + ' ' + c:>16s}" for s, _ in rows for c in ("CPU", "wall")))
    for key, label, fmt in (
        ("runs", "init runs/s (load + init, sample)", "{:16.1f}"),
        ("load", "seconds, load only (anchor)", "{:16.2f}"),
        ("init", "seconds, load + init", "{:16.2f}"),
        ("ips", "init instructions/s (time beyond loading)", "{:16,.0f}"),
        ("loop", "compute loop instructions/s (perfloop)", "{:16,.0f}"),
    ):
        cells = [fmt.format(m[f"{key}_{c}"]) for _, m in rows for c in ("cpu", "wall")]
        print(f"{label:44s} " + "  ".join(cells))
    if len(rows) == 2:
        b, af = rows[0][1], rows[1][1]
        labels = (("runs", "init runs/s"), ("ips", "init instructions/s"), ("loop", "compute loop ips"))
        for key, label in labels:
            print(f"ratio after/before {label:24s} CPU {af[key + '_cpu'] / b[key + '_cpu']:8.2f}x   "
                  f"wall {af[key + '_wall'] / b[key + '_wall']:8.2f}x")  # fmt: skip
    print(f"anchor: unicorn tight loop, counted per slice as the emulator runs: "
          f"{anchor['counted_cpu']:,.0f}/s CPU, {anchor['counted_wall']:,.0f}/s wall")  # fmt: skip
    print(f"anchor: unicorn tight loop, no hook (the JIT's ceiling): "
          f"{anchor['plain_cpu']:,.0f}/s CPU, {anchor['plain_wall']:,.0f}/s wall")  # fmt: skip
    print_probe(sides)
    status = 0
    if "before" in sides:
        diffs = compare(sides["before"]["results"], after["results"])  # type: ignore[arg-type]
        if diffs:
            status = 1
            print(f"RESULTS DIFFER for {len(diffs)} items:")
            for d in diffs:
                print("  " + d)
        else:
            print(f"results identical before/after for all {n} modules (printk log, init's value or "
                  f"fault, state, unimplemented calls, the trace of kernel calls)")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps({"sides": sides, "anchors": anchor, "rows": dict(rows)}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())

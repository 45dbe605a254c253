#!/usr/bin/env python3
"""Benchmark: module init routines in the emulator over a deterministic corpus sample.

Prints init runs per second, emulated instructions per second (instructions counted in a
separate pass with a per-instruction hook, divided by the un-hooked run time), and two
anchors measured in the same run: loading without init (link + map: what init adds on top),
and unicorn's own speed on a tight register loop (the ceiling for emulated code).  Never asserts.

    python3 bench/emulate.py [--tree amd64-6.1] [--sample 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--sample", type=int, default=200)
    a = ap.parse_args()

    import unicorn

    from lkm.emulate.arch import X86_64
    from lkm.emulate.kernel import Kernel
    from lkm.emulate.machine import EmulationFault, Machine
    from lkm.emulate.module import load, run_init
    from lkm.emulate.state import KernelState
    from lkm.module.file import ModuleFile
    from testing.captures import tree_symbols
    from testing.corpus import find_tree, module_files

    tree = find_tree(a.tree)
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: max(1, len(paths) // a.sample)][: a.sample]
    symbols = tree_symbols(tree)  # its guest kallsyms, else its vmlinuz
    mods = [ModuleFile.open(p) for p in sample]

    def runs(init: bool, count: bool) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        insns = ok = 0
        for mod in mods:
            k = Kernel("x86_64", symbols, KernelState.booted())
            em = load(k, mod)
            if not init:
                continue
            counter = [0]
            if count:

                def hook(uc: object, addr: int, size: int, data: object, c: list[int] = counter) -> None:
                    c[0] += 1

                k.machine.uc.hook_add(unicorn.UC_HOOK_CODE, hook)
            res = run_init(k, em)
            ok += res.fault is None
            insns += counter[0]
        return time.perf_counter() - t0, insns, ok

    load_time, _, _ = runs(False, False)
    init_time, _, ok = runs(True, False)
    _, insns, _ = runs(True, True)

    # Anchors: a tight loop of register arithmetic, 10M instructions (add; dec; jnz), with the
    # per-call instruction budget the module runs have (counted) and without (unicorn's JIT alone).
    count = (10_000_000 // 3).to_bytes(4, "little")
    code = bytes.fromhex("48c7c1") + count + bytes.fromhex("4801c848ffc975f8c3")
    loop: dict[str, float] = {}
    for label, budget in (("with an instruction budget", 20_000_000), ("unlimited (timer slices only)", 0)):
        m = Machine(X86_64, insn_budget=budget, time_budget=60.0)
        m.map(0xFFFFFFFFC0000000, 0x1000, "code", code)
        t0 = time.perf_counter()
        try:
            m.call(0xFFFFFFFFC0000000)
        except EmulationFault as exc:
            print(f"anchor loop failed: {exc}")
            return 1
        loop[label] = 10_000_000 / (time.perf_counter() - t0)

    n = len(mods)
    emu = init_time - load_time
    print(f"sample: {n} modules of {a.tree} ({ok} inits returned)")
    print(f"load + init: {init_time:.2f} s = {n / init_time:.1f} init runs/s")
    print(f"load only (anchor): {load_time:.2f} s; init adds {emu:.2f} s")
    print(f"ratio load+init / load: {init_time / load_time:.2f}")
    print(f"instructions emulated in init: {insns} ({insns / n:.0f} per module)")
    rate = insns / emu if emu > 0 else float("nan")
    print(f"emulated instructions/s in init (time beyond loading): {rate:,.0f}")
    for label, loop_rate in loop.items():
        print(f"unicorn tight loop {label} (anchor): {loop_rate:,.0f} instructions/s")
        print(f"  ratio init instructions/s / anchor: {rate / loop_rate:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

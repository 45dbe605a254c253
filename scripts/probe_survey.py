#!/usr/bin/env python3
"""Probe survey: run corpus PCI, USB and platform drivers with ``--device auto`` (one emulated
device per driver registration, made from the first entry of its id table) and report whether
each driver's probe() was reached and returned, the split of the values it returned, and, for
the rest, how the run ended and the first unimplemented kernel call it made.

Usage: python3 scripts/probe_survey.py [--tree amd64-6.1] [--sample N] [--seed S] [--json OUT]
Drivers are the tree's modules with a pci:, usb: or platform: alias (their MODULE_DEVICE_TABLE
or MODULE_ALIAS); --sample draws N of them at random (seeded).  One fresh booted kernel per
module, imports bound to the tree's kallsyms; dependencies are not loaded.  After a probe that
returned 0 the module is unloaded (remove() runs) when its init succeeded.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from lkm.emulate.base.bus import attach
from lkm.emulate.hw import hw_of
from lkm.emulate.kernel import FUNCTIONS, BaseKernel, SymbolSpace
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import arch_for, load, run_exit, run_init
from lkm.emulate.state import KernelState
from lkm.errors import LkmError
from lkm.module.file import ModuleFile
from testing.captures import tree_symbols
from testing.corpus import find_tree, module_files

BUSES = ("pci", "usb", "platform")
# the calls of the emulated bus cores (lkm.emulate.base.bus/pci/usb): a dependency exporting one
# (usbcore) is the real core the emulated one stands in for, so it is not loaded
BUS_CORE = frozenset(
    n for n, f in FUNCTIONS.items() if f.fn.__module__.rsplit(".", 1)[-1] in ("bus", "pci", "usb")
)


DEPENDS: dict[str, tuple[str, list[str]]] = {}  # module name -> (path, its depends=)


def drivers(tree: str) -> list[tuple[str, str]]:
    """(path, bus) of the tree's modules with an alias on one of BUSES (the first such)."""
    out = []
    for p in sorted(str(x) for x in module_files(find_tree(tree))):
        try:
            mf = ModuleFile.open(p)
            aliases = mf.aliases
        except LkmError:
            continue
        DEPENDS[mf.name] = (p, [d for d in (mf.get("depends") or "").split(",") if d])
        bus = next((a.split(":", 1)[0] for a in aliases if a.split(":", 1)[0] in BUSES), None)
        if bus is not None:
            out.append((p, bus))
    return out


def load_order(name: str) -> list[str]:
    """``name`` and its dependencies, dependencies first (each once)."""
    out: list[str] = []

    def visit(n: str, depth: int) -> None:
        if n in out or n not in DEPENDS or depth > 32:
            return
        for d in DEPENDS[n][1]:
            visit(d, depth + 1)
        out.append(n)

    visit(name, 0)
    return out if out and out[-1] == name else [*out, name]


def run_one(
    path: str, bus: str, symbols: SymbolSpace | None, insns: int, seconds: float
) -> dict[str, object]:
    t0 = time.monotonic()
    rec: dict[str, object] = {"path": path, "bus": bus, "name": Path(path).name}
    k: BaseKernel | None = None
    try:
        mod = ModuleFile.open(path)
        rec["name"] = mod.name
        k = BaseKernel(arch_for(mod), symbols, KernelState.booted(), insn_budget=insns, time_budget=seconds)
        deps = load_order(mod.name)[:-1]
        rec["deps"] = len(deps)
        for dep in deps:  # as modprobe loads them: each dependency's init first
            dm = ModuleFile.open(DEPENDS[dep][0])
            if any(x.name in BUS_CORE for x in dm.exports):
                continue  # a bus core (usbcore...) whose calls the base kernel emulates itself
            with contextlib.suppress(LkmError, EmulationFault):
                run_init(k, load(k, dm))
        attach(k, ["auto"])  # devices for the driver's own registrations only
        em = load(k, mod)
        res = run_init(k, em)
        rec["init"] = res.value if res.fault is None else f"fault:{res.fault.kind}"
        if res.fault is not None:
            rec["detail"] = res.fault.reason[:160]
        devs = [d for d in hw_of(k).devices if d.auto_for or d.probed]
        probed = [d for d in devs if d.probed]
        rec["devices"] = len(devs)
        rec["probe_reached"] = bool(probed)
        returned = [d for d in probed if d.probe_result is not None]
        rec["probe_returned"] = bool(returned)
        rec["probe_value"] = returned[0].probe_result if returned else None
        rec["bus_probed"] = probed[0].bus if probed else None
        if returned and res.ok and em.state == "Live" and em.symbol("cleanup_module") is not None:
            fault = run_exit(k, em)
            rec["exit"] = "ok" if fault is None else f"fault:{fault.kind}"
            rec["removed"] = any(d.removed for d in devs)
    except EmulationFault as exc:
        rec["init"] = f"fault:{exc.kind}"
        rec["detail"] = exc.reason[:160]
    except LkmError as exc:
        rec["init"] = "link"
        rec["detail"] = str(exc)[:160]
    except Exception as exc:  # the emulator's own failure: counted, never hidden
        rec["init"] = "error"
        rec["detail"] = f"{type(exc).__name__}: {exc}"[:160]
    if k is not None:
        first = next((t.name for t in k.trace if not t.implemented), None)
        rec["first_unimplemented"] = first
        rec["unimplemented"] = sorted(k.state.unimplemented)
        hw = k.__dict__.get("hw")
        rec["accesses"] = len(hw.trace) if hw is not None else 0
    rec.setdefault("probe_reached", False)
    rec.setdefault("probe_returned", False)
    rec["seconds"] = round(time.monotonic() - t0, 3)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--sample", type=int, default=0, help="drivers drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--budget", type=int, default=4_000_000)
    ap.add_argument("--timeout", type=float, default=4.0)
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args()
    found = drivers(a.tree)
    by_bus = collections.Counter(b for _p, b in found)
    print(f"{a.tree}: {len(found)} drivers with a pci/usb/platform alias ({dict(by_bus)})", flush=True)
    if a.sample and a.sample < len(found):
        found = sorted(random.Random(a.seed).sample(found, a.sample))
    symbols = tree_symbols(find_tree(a.tree))
    t0 = time.monotonic()
    recs = []
    for i, (p, bus) in enumerate(found):
        recs.append(run_one(p, bus, symbols, a.budget, a.timeout))
        if (i + 1) % 50 == 0:
            ok = sum(1 for r in recs if r["probe_returned"])
            print(f"  {i + 1}/{len(found)}: {ok} probes returned", flush=True)
    took = time.monotonic() - t0
    n = len(recs)
    reached = [r for r in recs if r["probe_reached"]]
    returned = [r for r in recs if r["probe_returned"]]
    print(f"{n} drivers run in {took:.0f} s ({n / took:.2f}/s)")
    print(f"probe reached: {len(reached)} ({100 * len(reached) / n:.1f}%)")
    print(f"probe reached and returned: {len(returned)} ({100 * len(returned) / n:.1f}%)")
    for bus in BUSES:
        sub = [r for r in recs if r["bus"] == bus]
        if sub:
            ret = sum(1 for r in sub if r["probe_returned"])
            print(f"  {bus}: {ret}/{len(sub)} returned")
    values = collections.Counter(r["probe_value"] for r in returned)
    print("probe return values: " + ", ".join(f"{v}: {c}" for v, c in values.most_common()))
    clean = sum(1 for r in returned if not r.get("unimplemented"))
    print(f"  of which with no unimplemented call in init+probe: {clean}")
    removed = sum(1 for r in returned if r.get("removed"))
    print(f"remove() run at exit: {removed}")
    rest = [r for r in recs if not r["probe_returned"]]
    print(f"the rest ({len(rest)}), by how the run ended:")
    ends = collections.Counter(
        ("probe faulted: " if r["probe_reached"] else "") + str(r.get("init")) for r in rest
    )
    for what, c in ends.most_common(12):
        print(f"  {what}: {c}")
    firsts = collections.Counter(str(r.get("first_unimplemented")) for r in rest)
    print(
        "  first unimplemented call of the rest: " + ", ".join(f"{f}: {c}" for f, c in firsts.most_common(25))
    )
    firsts_ret = collections.Counter(str(r.get("first_unimplemented")) for r in returned)
    print(
        "first unimplemented call of the probes that returned: "
        + ", ".join(f"{f}: {c}" for f, c in firsts_ret.most_common(15))
    )
    if a.json:
        Path(a.json).write_text(json.dumps(recs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

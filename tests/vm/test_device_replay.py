"""Recorded hardware against a real kernel: scripts/guest_replay.py boots the corpus 6.1 amd64
kernel in QEMU with one of QEMU's device models, loads and removes the driver, and records the
device's accesses (QEMU's trace) and the kernel log (the oracle: a real kernel driving the
same driver binary).  Replayed in lkm, the driver must make the recorded accesses one for one
to the end, its config accesses must be among the recorded ones, and its kernel log of probe
and of remove must be the guest's lines."""

from __future__ import annotations

import pytest

from lkm.emulate.harness import Harness
from lkm.kernel.load import module_name

from support import corpus_symbols, replay_capture

pytestmark = [pytest.mark.corpus, pytest.mark.vm]

#: driver -> (BAR accesses at least, guest log lines of probe at least)
DRIVERS = {"e1000": (10000, 4), "8139cp": (400, 2), "ne2k-pci": (50, 1), "8139too": (0, 2)}


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_replay_matches_the_guest(driver: str, corpus_trees) -> None:  # type: ignore[no-untyped-def]
    from testing.vm import with_dependencies

    tree = next(t for t in corpus_trees if t.name == "amd64-6.1")
    trace = replay_capture(driver) / "trace.json"
    h = Harness([f"replay:{trace}"], symbols=corpus_symbols())
    *deps, mod = with_dependencies(tree, [module_name(driver)])
    for dep in deps:
        h.load(str(dep))
    h.load(str(mod))
    h.unload(module_name(driver))
    (rep,) = h.replay()
    least_accesses, least_lines = DRIVERS[driver]
    assert rep.recorded >= least_accesses and len(rep.dmesg["probe"][0]) >= least_lines
    assert rep.ok, "\n".join(rep.lines())
    assert rep.matched == rep.recorded == rep.made and rep.divergence is None

"""Recorded hardware against a real kernel: scripts/guest_replay.py boots the corpus 6.1 amd64
kernel in QEMU with one of QEMU's device models, loads and removes the driver, and records the
device's accesses (QEMU's trace) and the kernel log (the oracle: a real kernel driving the
same driver binary).  Replayed in lkm, the driver must make the recorded accesses one for one
to the end, its config accesses must be among the recorded ones, and its kernel log of probe
and of remove must be the guest's lines."""

from __future__ import annotations

import pytest

from lkm.emulate.harness import Harness
from lkm.emulate.replay import DeviceTrace, ReplayReport
from lkm.kernel.load import module_name

from support import corpus_symbols, replay_capture

pytestmark = [pytest.mark.corpus, pytest.mark.vm]

#: driver -> (BAR accesses at least, guest log lines of probe at least)
DRIVERS = {
    "e1000": (10000, 4),
    "8139cp": (400, 2),
    "ne2k-pci": (50, 1),
    "8139too": (0, 2),
    "e100": (10000, 3),
}


def replayed(driver: str, trees) -> ReplayReport:  # type: ignore[no-untyped-def]
    from testing.vm import with_dependencies

    tree = next(t for t in trees if t.name == "amd64-6.1")
    trace = replay_capture(driver) / "trace.json"
    h = Harness([f"replay:{trace}"], symbols=corpus_symbols(), time_budget=600)  # a busy machine
    *deps, mod = with_dependencies(tree, [module_name(driver)])
    for dep in deps:
        h.load(str(dep))
    h.load(str(mod))
    h.unload(module_name(driver))
    (rep,) = h.replay()
    return rep


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_replay_matches_the_guest(driver: str, corpus_trees) -> None:  # type: ignore[no-untyped-def]
    rep = replayed(driver, corpus_trees)
    least_accesses, least_lines = DRIVERS[driver]
    assert rep.recorded >= least_accesses and len(rep.dmesg["probe"][0]) >= least_lines
    assert rep.ok, "\n".join(rep.lines())
    assert rep.matched == rep.recorded == rep.made and rep.divergence is None


def test_replay_divergence_at_a_dma_address(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """pcnet32_probe1 tells the chip where its init block is: CSR1 and CSR2 get the low and
    high halves of init_dma_addr (RAP at 0x12 selects the CSR, RDP at 0x10 takes the value).
    A coherent buffer's bus address in lkm is not the guest's, so the replay must diverge
    exactly there: the RDP write after RAP=1, its value the low half of the two addresses --
    or, where the guest's buffer happened to share lkm's low 16 bits (a fresh capture can),
    the RDP write after RAP=2, the high half, with the CSR1 write before it matched."""
    rep = replayed("pcnet32", corpus_trees)
    d = rep.divergence
    assert d is not None and d.expected is not None
    trace = DeviceTrace.load(replay_capture("pcnet32") / "trace.json")
    bars = [a for a in trace.accesses if a.kind != "cfg"]
    rap = bars[rep.matched - 1].row()
    assert rap[:5] == ["pio", "w", 0, 0x12, 2] and rap[5] in (1, 2)  # RAP = CSR1 or CSR2
    if rap[5] == 2:  # the low halves agreed: RAP = CSR1 and its RDP write were replayed as recorded
        assert bars[rep.matched - 3].row() == ["pio", "w", 0, 0x12, 2, 1]
        assert bars[rep.matched - 2].row()[:5] == ["pio", "w", 0, 0x10, 2]
    assert d.expected.row()[:5] == d.got.row()[:5] == ["pio", "w", 0, 0x10, 2]
    assert d.expected.value != d.got.value and d.site.startswith("pcnet32_wio_write_csr+")
    assert rep.dmesg["probe"][0] == rep.dmesg["probe"][1]  # its log does not depend on the address

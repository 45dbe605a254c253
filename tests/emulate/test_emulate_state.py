"""KernelState is plain data the model kernel can keep: it pickles, and /proc views come back
the same; the booted tables are the captured real ones."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from support import FIX6

BOOT = Path(__file__).parents[2] / "src" / "lkm" / "emulate" / "boot-6.1-amd64.json"


def test_state_round_trips_through_pickle() -> None:
    from lkm.emulate.session import Session

    s = Session(None)
    s.base_dir = str(FIX6)
    s.execute("insmod chardev.ko")
    assert s.kernel is not None
    st = s.kernel.state
    back = pickle.loads(pickle.dumps(st))
    assert back.proc_devices() == st.proc_devices() and back.dmesg() == st.dmesg()


def test_booted_tables_are_the_captured_ones() -> None:
    from lkm.emulate.state import KernelState

    data = json.loads(BOOT.read_text())
    st = KernelState.booted()
    devices = st.proc_devices().splitlines()
    assert devices[0] == "Character devices:"
    assert [f"{m:3d} {n}" for m, n in data["chrdevs"]] == devices[1 : 1 + len(data["chrdevs"])]
    assert st.proc_misc().splitlines() == [f"{m:3d} {n}" for m, n in data["misc"]]


def test_unimplemented_calls_are_recorded_or_fail_in_strict_mode() -> None:
    from lkm.emulate.session import Session

    # importer without exporter loaded: lkm_fixture_add & co. have no implementation anywhere.
    s = Session(None)
    s.base_dir = str(FIX6)
    res, out = s.insmod("importer.ko")
    assert res.ok
    missing = [t.name for t in out.trace if not t.implemented]
    assert missing == ["lkm_fixture_add", "lkm_fixture_gpl_mul", "lkm_fixture_ns_answer"]
    assert out.log[-1] == "importer: sum=0 product=0 answer=0 calls=0"
    strict = Session(None, strict=True)
    strict.base_dir = str(FIX6)
    res, out = strict.insmod("importer.ko")
    assert res.fault is not None and res.fault.kind == "unimplemented"
    assert "lkm_fixture_add" in res.fault.reason
    assert res.state == "Loading"  # as after an oops in init: the module stays, stuck

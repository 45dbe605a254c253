"""KernelState is plain data the model kernel can keep: it pickles, and /proc views come back
the same; the booted tables are the captured real ones."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from conftest import FIX6

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

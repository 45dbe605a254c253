"""The emulator as the model kernel's executor: insmod/rmmod through the model (6.1 through
finit_module, 2.4 through modutils' insmod/rmmod) run the modules' real init and exit code."""

from __future__ import annotations

import json
from pathlib import Path

from support import FIX6, FIX24

DATA = Path(__file__).parent / "data" / "dmesg-6.1-amd64.json"


def _real(guest: str) -> list[str]:
    steps = json.loads(DATA.read_text())["steps"]
    return next(s["dmesg"] for s in steps if s["guest"] == guest)  # type: ignore[no-any-return]


def test_61_model_kernel_runs_chardev(tmp_path: Path) -> None:
    from lkm.emulate.executor import for_profile
    from lkm.kernel.model import ModelKernel

    ex = for_profile("linux-6.1-amd64")
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db", executor=ex)
    k.finit_module(str(FIX6 / "chardev.ko"))
    assert ex.faults == []
    assert ex.kernel.state.dmesg() == _real("$B insmod /m/chardev.ko")
    k.delete_module("chardev")
    assert ex.kernel.state.dmesg()[-1:] == _real("$B rmmod chardev")


def test_24_model_kernel_runs_hello_and_chardev(tmp_path: Path) -> None:
    from lkm.emulate.executor import for_profile
    from lkm.kernel.model import ModelKernel
    from lkm.modutils.insmod import insmod
    from lkm.modutils.rmmod import rmmod

    ex = for_profile("linux-2.4-i386")
    assert ex.kernel.arch.name == "i386"
    k = ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", executor=ex)
    insmod(k, str(FIX24 / "hello24.o"), ["sticky=5"])
    insmod(k, str(FIX24 / "chardev24.o"), [])
    rmmod(k, ["hello24", "chardev24"])
    assert ex.faults == []
    log = ex.kernel.state.dmesg()
    assert log == [
        "hello24: Hello, world! (level 1, sticky 5)",  # hello24.c's printk with its defaults
        "chardev24: I was assigned major number 254.",
        "hello24: Goodbye, world.",
    ]

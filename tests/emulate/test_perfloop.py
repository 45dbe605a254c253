"""The perfloop fixture (fixtures/src/6x/perfloop): a compute loop in module code, CRC-32 over
a 4 KiB buffer ``rounds`` times, whose result zlib computes independently.  The emulator's
answer must be zlib's (the loop runs on the CPU without Python between kernel calls)."""

from __future__ import annotations

import zlib

import pytest

from lkm.emulate.kernel import BaseKernel
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import load, run_init
from lkm.emulate.state import KernelState
from lkm.module.file import ModuleFile

from support import FIX6

BUF = bytes((i * 7 + 3) & 0xFF for i in range(4096))


def _run(rounds: int, **budgets: int) -> tuple[list[str], EmulationFault | None]:
    k = BaseKernel("x86_64", None, KernelState.booted(), **budgets)  # type: ignore[arg-type]
    em = load(k, ModuleFile.open(str(FIX6 / "perfloop.ko")))
    addr = em.symbol("rounds")
    assert addr is not None
    k.machine.write_int(addr, 4, rounds)
    res = run_init(k, em)
    return [r.text for r in k.state.log if r.text.startswith("perfloop:")], res.fault


@pytest.mark.parametrize("rounds", [1, 3, 20])
def test_crc32_is_zlibs(rounds: int) -> None:
    lines, fault = _run(rounds, insn_budget=0)
    assert fault is None
    assert lines == [f"perfloop: crc32={zlib.crc32(BUF * rounds):08x} rounds={rounds}"]


def test_instruction_budget_stops_the_loop() -> None:
    # about 254k instructions a pass: 20 passes cannot fit in a budget of 1M
    lines, fault = _run(20, insn_budget=1_000_000)
    assert fault is not None and fault.kind == "budget"
    assert "perfloop_crc32" in fault.reason
    assert lines == []

"""The executor on hand-made code: the kernel's page-fault oops lines (arch/x86/mm/fault.c
show_fault_oops wording), and the instruction and wall-clock budgets."""

from __future__ import annotations

import pytest

from lkm.emulate.arch import X86_64
from lkm.emulate.machine import EmulationFault, Machine

CODE = 0xFFFFFFFFC0000000


def _machine(code: bytes, **kw: float) -> Machine:
    m = Machine(X86_64, **kw)  # type: ignore[arg-type]
    m.map(CODE, 0x1000, "code", code)
    return m


def test_null_dereference_is_reported_like_the_kernel() -> None:
    m = _machine(bytes.fromhex("488b042508000000c3"))  # mov rax, [8]; ret
    with pytest.raises(EmulationFault) as exc:
        m.call(CODE)
    f = exc.value
    assert f.kind == "oops" and f.address == 8 and f.pc == CODE
    lines = f.report.splitlines()
    assert lines[:3] == [
        "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "#PF: supervisor read access in kernel mode",
        "#PF: error_code(0x0000) - not-present page",
    ]
    assert lines[4] == f"RIP: 0010:{CODE:#x}"


def test_write_fault_above_the_first_page() -> None:
    m = _machine(bytes.fromhex("48c7042500200000010000 00c3".replace(" ", "")))  # mov qword [0x2000], 1
    with pytest.raises(EmulationFault) as exc:
        m.call(CODE)
    assert exc.value.report.splitlines()[:2] == [
        "BUG: unable to handle page fault for address: 0000000000002000",
        "#PF: supervisor write access in kernel mode",
    ]


def test_instruction_budget() -> None:
    m = _machine(b"\xeb\xfe", insn_budget=10_000)  # jmp .
    with pytest.raises(EmulationFault) as exc:
        m.call(CODE)
    assert exc.value.kind == "budget" and "10000" in exc.value.reason


def test_wall_clock_budget() -> None:
    m = _machine(b"\xeb\xfe", insn_budget=0, time_budget=0.2)  # count 0: no instruction limit
    with pytest.raises(EmulationFault) as exc:
        m.call(CODE)
    assert exc.value.kind == "timeout"


def test_arguments_and_return_value() -> None:
    m = _machine(bytes.fromhex("4889f8 4801f0 4c01c8 c3"))  # rax = rdi + rsi + r9
    assert m.call(CODE, (1, 2, 3, 4, 5, 40)) == 43


def test_oops_text_reads_back_through_the_oops_parser() -> None:
    """The oops decoder (lkm.oops, its own branch) parses what the emulator prints."""
    report = pytest.importorskip("lkm.oops.report")
    m = _machine(bytes.fromhex("488b042508000000c3"))
    m.symbolize = lambda a: "demo_init+0x0/0x9 [demo]" if a == CODE else f"{a:#x}"
    with pytest.raises(EmulationFault) as exc:
        m.call(CODE, (0x1234,))
    (r,) = report.parse(exc.value.report).reports
    assert r.arch == "x86_64" and r.facts["fault_address"] == 8
    ip = r.facts["ip"]
    assert (ip["symbol"], ip["offset"], ip["size"], ip["module"]) == ("demo_init", 0, 9, "demo")
    assert r.facts["registers"]["RDI"] == 0x1234

"""Code: disassembly: the marked instruction, as GNU objdump decodes the same bytes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.oops.code import code_bytes, disassemble
from lkm.oops.report import parse

from support import require

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"


def _objdump_first(data: bytes, machine: str, tmp: Path) -> str:
    require(shutil.which("objdump"), "binutils objdump missing")
    f = tmp / "code.bin"
    f.write_bytes(data)
    out = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-m", machine, "-M", "intel", str(f)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("0:"))
    return line.split("\t")[-1]


def _norm(text: str) -> str:
    return "".join(text.lower().replace("ptr", "").split()).replace(",", "")


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["vm-6.12-gpf.txt", "vm-6.1-fault.txt", "spec-x86-6.1-irq-warn.txt"])
def test_x86_trapping_instruction(name: str, tmp_path: Path) -> None:
    r = parse((DATA / name).read_text()).reports[0]
    code = r.facts["code"]
    assert isinstance(code, dict)
    data, mark = code_bytes(code["units"], code["unit_bytes"], code["marker"])
    insns = disassemble("x86_64", data, mark, 0x1000)
    (trap,) = [i for i in insns if i.trapping]
    assert trap.address == 0x1000
    assert _norm(trap.text) == _norm(_objdump_first(data[mark:], "i386:x86-64", tmp_path))


def test_arm64_trapping_instruction() -> None:
    r = parse((DATA / "spec-arm64-6.12-bug.txt").read_text()).reports[0]
    code = r.facts["code"]
    assert isinstance(code, dict)
    data, mark = code_bytes(code["units"], code["unit_bytes"], code["marker"])
    (trap,) = [i for i in disassemble("arm64", data, mark) if i.trapping]
    assert trap.text == "brk #0x800"  # BUG() on arm64

"""Disassembly of a report's ``Code:`` bytes (capstone), the trapping instruction marked.

x86 prints bytes with the faulting one in ``<xx>`` (scripts/decodecode disassembles from the
start and, when that does not land on the marked byte, again from the mark); arm64 prints
32-bit words with the faulting one in ``(xxxxxxxx)``; 2.4 printed bytes starting at EIP with
no mark.  Addresses are given when the faulting pc is known (the mark is at pc).
"""

from __future__ import annotations

from dataclasses import dataclass

from lkm.arch import by_name as arch_by_name
from lkm.errors import LkmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ARCHES", "Insn", "code_bytes", "disassemble"]

#: arch -> (capstone arch, mode names, unit byte order)
ARCHES: dict[str, tuple[str, str, str]] = {
    "x86_64": ("CS_ARCH_X86", "CS_MODE_64", "little"),
    "i386": ("CS_ARCH_X86", "CS_MODE_32", "little"),
    "arm64": ("CS_ARCH_ARM64", "CS_MODE_ARM", "little"),
}


@dataclass(frozen=True, slots=True)
class Insn:
    """One disassembled instruction; ``trapping`` for the one at the marked byte."""

    address: int
    bytes: bytes
    text: str
    trapping: bool

    def format(self) -> str:
        mark = "\t\t<-- trapping instruction" if self.trapping else ""
        return f"{self.address:16x}:\t{self.bytes.hex(' '):<24}\t{self.text}{mark}"


def code_bytes(units: Sequence[int], unit_bytes: int, marker: int | None) -> tuple[bytes, int]:
    """The Code: units as bytes (arm64 words little-endian) and the byte offset of the mark."""
    mask = (1 << (8 * unit_bytes)) - 1  # a damaged log's over-long unit keeps its low bytes
    data = b"".join((u & mask).to_bytes(unit_bytes, "little") for u in units)
    return data, (marker or 0) * unit_bytes


def disassemble(
    arch: str, data: bytes, mark: int, pc: int | None = None, *, syntax: str = "intel"
) -> list[Insn]:
    """Instructions of ``data``, whose byte ``mark`` is at ``pc`` (0-based addresses without
    a pc).  x86: decoded from the start; if no instruction starts at the mark, the part before
    it is dropped and decoding restarts there, as decodecode does.  ``syntax`` "att" gives
    x86 in objdump's default (AT&T) syntax."""
    try:
        import capstone
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise LkmError("disassembly needs capstone: install lkm[debug]") from exc
    spec = ARCHES.get(arch)
    if spec is None:
        raise LkmError(f"no disassembler for architecture {arch!r}; known: {', '.join(ARCHES)}")
    md = capstone.Cs(getattr(capstone, spec[0]), getattr(capstone, spec[1]))
    if syntax == "att" and spec[0] == "CS_ARCH_X86":
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    base = (pc - mark) if pc is not None else 0

    def run(start: int) -> list[Insn]:
        out = []
        for ins in md.disasm(data[start:], base + start):
            text = f"{ins.mnemonic} {ins.op_str}".strip()
            out.append(Insn(ins.address, bytes(ins.bytes), text, ins.address - base == mark))
        return out

    insns = run(0)
    machine = arch_by_name(arch)
    marks_trap = machine is not None and machine.code_marks_trap
    if marks_trap and not any(i.trapping for i in insns) and mark < len(data):
        insns = run(mark)
    return insns

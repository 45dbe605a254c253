"""The kernel's console text for a fault in module code, as arch/x86/mm/fault.c
(show_fault_oops), arch/x86/kernel/dumpstack.c (__die, show_ip, show_opcodes) and
process_64.c (__show_regs) print it, so that the oops decoder reads it like a real one.
The call trace is the kernel's unreliable kind: text addresses found on the stack, with "? "."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as x86

if TYPE_CHECKING:
    from lkm.emulate.machine import Machine

__all__ = ["PAGE", "invalid_opcode_report", "page_fault_report", "panic_report"]


PAGE = 0x1000
_REGS64 = (
    ("RAX", "RAX"), ("RBX", "RBX"), ("RCX", "RCX"), ("RDX", "RDX"), ("RSI", "RSI"), ("RDI", "RDI"),
    ("RBP", "RBP"), ("R08", "R8"), ("R09", "R9"), ("R10", "R10"), ("R11", "R11"), ("R12", "R12"),
    ("R13", "R13"), ("R14", "R14"), ("R15", "R15"),
)  # fmt: skip
_REGS32 = (("EAX", "EAX"), ("EBX", "EBX"), ("ECX", "ECX"), ("EDX", "EDX"),
           ("ESI", "ESI"), ("EDI", "EDI"), ("EBP", "EBP"), ("ESP", "ESP"))  # fmt: skip


def page_fault_report(m: Machine, access: str, present: bool, address: int, pc: int) -> str:
    w = 2 * m.arch.word
    lines = []
    if address < PAGE:
        lines.append(f"BUG: kernel NULL pointer dereference, address: {address:0{w}x}")
    else:
        lines.append(f"BUG: unable to handle page fault for address: {address:0{w}x}")
    what = {"read": "read access", "write": "write access", "fetch": "instruction fetch"}[access]
    lines.append(f"#PF: supervisor {what} in kernel mode")
    code = (1 if present else 0) | (2 if access == "write" else 0) | (0x10 if access == "fetch" else 0)
    lines.append(
        f"#PF: error_code({code:#06x}) - {'permissions violation' if present else 'not-present page'}"
    )
    lines.append(f"Oops: {code:04x} [#1] PREEMPT SMP NOPTI")
    return "\n".join(lines + _machine_state(m, pc)) + "\n"


def invalid_opcode_report(m: Machine, pc: int) -> str:
    lines = ["invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"]
    return "\n".join(lines + _machine_state(m, pc)) + "\n"


def panic_report(m: Machine, message: str) -> str:
    return f"Kernel panic - not syncing: {message}\n"


def _machine_state(m: Machine, pc: int) -> list[str]:
    if not m.arch.base.code_marks_trap:  # arm64: "pc : sym+off/size [mod]", no Code: line here
        return [f"{m.arch.base.pc_name} : {m.symbolize(pc)}"]
    lines = []
    if m.arch.word == 8:
        lines.append(f"RIP: 0010:{m.symbolize(pc)}")
        lines.append(_code_line(m, pc))
        sp = m.reg(x86.UC_X86_REG_RSP)
        lines.append(f"RSP: 0018:{sp:016x} EFLAGS: {m.reg(x86.UC_X86_REG_EFLAGS):08x}")
        vals = [(label, m.reg(getattr(x86, f"UC_X86_REG_{reg}"))) for label, reg in _REGS64]
        for i in range(0, len(vals), 3):
            lines.append(" ".join(f"{label}: {v:016x}" for label, v in vals[i : i + 3]))
    else:
        lines.append(f"EIP: {m.symbolize(pc)}")
        lines.append(_code_line(m, pc))
        sp = m.reg(x86.UC_X86_REG_ESP)
        vals = [(label, m.reg(getattr(x86, f"UC_X86_REG_{reg}"))) for label, reg in _REGS32]
        for i in range(0, len(vals), 4):
            lines.append(" ".join(f"{label}: {v:08x}" for label, v in vals[i : i + 4]))
    lines.append("Call Trace:")
    lines.append(" <TASK>")
    lines.extend(f" ? {s}" for s in _stack_text(m, sp))
    lines.append(" </TASK>")
    return lines


def _code_line(m: Machine, pc: int) -> str:
    """show_opcodes: 42 bytes before the faulting instruction, 21 from it, <xx> marking it."""
    start = pc - 42
    if not m.is_mapped(start, 64):
        return f"Unable to access opcode bytes at {pc:#x}."
    data = m.read(start, 64)
    return "Code: " + " ".join(f"<{b:02x}>" if i == 42 else f"{b:02x}" for i, b in enumerate(data))


def _stack_text(m: Machine, sp: int) -> list[str]:
    out = []
    top = m.stack_top
    w = m.arch.word
    for addr in range(sp, top, w):
        v = m.read_word(addr)
        if v < 0x10000:
            continue
        name = m.symbolize(v)
        if "+" in name and v != m.return_address:
            out.append(name)
    return out[:16]

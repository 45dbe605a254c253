"""get_user()/put_user() (arch/x86/lib/getuser.S, putuser.S, 6.1): out-of-line helpers with
their own register convention.  __get_user_N: the address in %rax; the value comes back in
%rdx, 0 or -EFAULT in %rax.  __put_user_N: the value in %rax, the address in %rcx; 0 or
-EFAULT in %ecx (%rax kept).  An address outside the mapped user memory faults (-EFAULT)."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = ["EFAULT"]


EFAULT = 14
_SIZES = {"1": 1, "2": 2, "4": 4, "8": 8}


def _regs(k: BaseKernel) -> tuple[int, int, int]:
    from unicorn import x86_const as x86

    return x86.UC_X86_REG_RAX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX


@kfunc(*(f"__get_user_{n}" for n in _SIZES), *(f"__get_user_nocheck_{n}" for n in _SIZES), nargs=-1)
def _get_user(k: BaseKernel, c: TrapCall) -> int:
    rax, _rcx, rdx = _regs(k)
    m = k.machine
    size = _SIZES[c.name[-1]]
    addr = m.reg(rax)
    if addr >= 1 << 47 or not m.is_mapped(addr, size):
        m.set_reg(rdx, 0)
        return -EFAULT
    m.set_reg(rdx, m.read_int(addr, size))
    return 0


@kfunc(*(f"__put_user_{n}" for n in _SIZES), *(f"__put_user_nocheck_{n}" for n in _SIZES), nargs=-1)
def _put_user(k: BaseKernel, c: TrapCall) -> int:
    rax, rcx, _rdx = _regs(k)
    m = k.machine
    size = _SIZES[c.name[-1]]
    addr, value = m.reg(rcx), m.reg(rax)
    if addr >= 1 << 47 or not m.is_mapped(addr, size):
        m.set_reg(rcx, -EFAULT)
    else:
        m.write_int(addr, size, value)
        m.set_reg(rcx, 0)
    return value

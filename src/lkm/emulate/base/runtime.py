"""What compiled code calls without the source saying so: the x86 thunks, __fentry__, the
stack protector and fortify checks, module references, user copies, time, randomness, and
the boot values of the kernel data symbols modules read."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from lkm.emulate.kernel import BaseKernel, kdata, kfunc
from lkm.emulate.machine import HANDLED, EmulationFault, TrapCall
from lkm.emulate.oops import panic_report

__all__ = ["HZ", "X86_REGS"]


HZ = 250
X86_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
            "r15")  # fmt: skip


@kfunc("__x86_return_thunk", nargs=-1)
def _return_thunk(k: BaseKernel, c: TrapCall) -> int:
    k.machine.do_return()  # the thunk *is* the ret
    return HANDLED


@kfunc("__fentry__", "mcount", "_mcount", "__gnu_mcount_nc", nargs=-1)
def _fentry(k: BaseKernel, c: TrapCall) -> int:
    k.machine.do_return()  # a call site ftrace did not NOP: return to the function
    return HANDLED


def _indirect(reg: str) -> None:
    from unicorn import x86_const as x86

    uc_reg = getattr(x86, f"UC_X86_REG_{reg.upper()}")

    @kfunc(f"__x86_indirect_thunk_{reg}", f"__x86_indirect_jump_thunk_{reg}", nargs=-1)
    def thunk(k: BaseKernel, c: TrapCall) -> int:
        k.machine.set_reg(k.arch.pc, k.machine.reg(uc_reg))  # jmp *%reg
        return HANDLED


for _r in X86_REGS:
    _indirect(_r)


@kfunc("__stack_chk_fail", nargs=0)
def _stack_chk_fail(k: BaseKernel, c: TrapCall) -> int:
    caller = k.machine.read_word(k.machine.reg(k.arch.sp))
    msg = f"stack-protector: Kernel stack is corrupted in: {k.symbolize(caller, False)}"
    raise EmulationFault("panic", msg, pc=caller, report=panic_report(k.machine, msg))


@kfunc("fortify_panic", nargs=1)
def _fortify_panic(k: BaseKernel, c: TrapCall) -> int:
    msg = f"detected buffer overflow in {k.cstring(c.arg(0))}"
    raise EmulationFault("bug", msg, report=f"{msg}\nkernel BUG at lib/string_helpers.c:1027!\n")


@kfunc("panic", nargs=1, varargs=True)
def _panic(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.printk import fmt_call

    msg = fmt_call(k, c, 0).decode("utf-8", "replace").rstrip("\n")
    raise EmulationFault("panic", msg, report=f"Kernel panic - not syncing: {msg}\n")


@kfunc("try_module_get", nargs=1)
def _try_module_get(k: BaseKernel, c: TrapCall) -> int:
    k.state.module_refs[k.current or ""] += 1
    return 1


@kfunc("__module_get", nargs=1)
def __module_get(k: BaseKernel, c: TrapCall) -> int:
    """__module_get(module): a reference taken unconditionally (kernel/module/main.c)."""
    k.state.module_refs[k.current or ""] += 1
    return 0


@kfunc("module_put", "__module_put_and_kthread_exit", nargs=1)
def _module_put(k: BaseKernel, c: TrapCall) -> int:
    k.state.module_refs[k.current or ""] -= 1
    return 0


def _user_ok(k: BaseKernel, addr: int, n: int) -> bool:
    return k.machine.is_mapped(addr, n)


@kfunc("_copy_to_user", "copy_to_user", "__copy_to_user", "__generic_copy_to_user", nargs=3)
def _copy_to_user(k: BaseKernel, c: TrapCall) -> int:
    to, frm, n = c.arg(0), c.arg(1), c.arg(2)
    if not _user_ok(k, to, n):
        return n  # bytes not copied
    k.machine.write(to, k.machine.read(frm, n))
    return 0


@kfunc("_copy_from_user", "copy_from_user", "__copy_from_user", "__generic_copy_from_user", nargs=3)
def _copy_from_user(k: BaseKernel, c: TrapCall) -> int:
    to, frm, n = c.arg(0), c.arg(1), c.arg(2)
    if not _user_ok(k, frm, n):
        k.machine.write(to, bytes(n))
        return n
    k.machine.write(to, k.machine.read(frm, n))
    return 0


@kfunc("simple_read_from_buffer", "simple_write_to_buffer", nargs=5)
def _simple_buffer(k: BaseKernel, c: TrapCall) -> int:
    """fs/libfs.c: read copies kernel ``from[*ppos:available]`` to user ``to``; write copies
    user ``from`` to kernel ``to[*ppos:available]``; both advance *ppos."""
    reading = c.name == "simple_read_from_buffer"
    if reading:
        to, count, ppos, frm, available = (c.arg(i) for i in range(5))
    else:
        to, available, ppos, frm, count = (c.arg(i) for i in range(5))
    m = k.machine
    pos = m.read_int(ppos, 8, signed=True)
    if pos < 0:
        return -22
    if pos >= available or not count:
        return 0
    n = min(count, available - pos)
    if not _user_ok(k, to if reading else frm, n):
        return -14  # -EFAULT
    if reading:
        m.write(to, m.read(frm + pos, n))
    else:
        m.write(to + pos, m.read(frm, n))
    m.write_int(ppos, 8, pos + n)
    return n


@kfunc("capable", "ns_capable", "file_ns_capable", nargs=1)
def _capable(k: BaseKernel, c: TrapCall) -> int:
    return 1  # insmod runs as root


@kfunc("msleep", "msleep_interruptible", "ssleep", nargs=1)
def _msleep(k: BaseKernel, c: TrapCall) -> int:
    ms = c.arg(0) * (1000 if c.name == "ssleep" else 1)
    k.advance_jiffies((ms * HZ + 999) // 1000)
    return 0


@kfunc("usleep_range_state", "__const_udelay", "__udelay", "__ndelay", "__delay", nargs=2)
def _udelay(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("__msecs_to_jiffies", "msecs_to_jiffies", nargs=1)
def _msecs_to_jiffies(k: BaseKernel, c: TrapCall) -> int:
    return (c.arg(0) * HZ + 999) // 1000


@kfunc("__usecs_to_jiffies", "usecs_to_jiffies", nargs=1)
def _usecs_to_jiffies(k: BaseKernel, c: TrapCall) -> int:
    return (c.arg(0) * HZ + 999_999) // 1_000_000


@kfunc("jiffies_to_msecs", nargs=1)
def _jiffies_to_msecs(k: BaseKernel, c: TrapCall) -> int:
    return (c.arg(0) * 1000 // HZ) & 0xFFFFFFFF


@kfunc("jiffies_to_usecs", nargs=1)
def _jiffies_to_usecs(k: BaseKernel, c: TrapCall) -> int:
    return (c.arg(0) * 1_000_000 // HZ) & 0xFFFFFFFF


@kfunc("ktime_get", "ktime_get_real", "ktime_get_boottime", "ktime_get_mono_fast_ns", "ktime_get_raw",
       "ktime_get_with_offset", "ktime_get_real_seconds", "ktime_get_seconds", nargs=0)  # fmt: skip
def _ktime_get(k: BaseKernel, c: TrapCall) -> int:
    ns = (k.state.jiffies - 0xFFFEDB08) * (1_000_000_000 // HZ)
    return ns // 1_000_000_000 if c.name.endswith("seconds") else ns


@kfunc("get_random_bytes", nargs=2)
def _get_random_bytes(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(1)
    k.machine.write(c.arg(0), hashlib.shake_128(b"lkm-emulate").digest(n) if n else b"")
    return 0


@kfunc("get_random_u32", "get_random_u64", "get_random_u16", "get_random_u8", "prandom_u32", nargs=0)
def _get_random(k: BaseKernel, c: TrapCall) -> int:
    return 0x2545F491


@kfunc("__request_module", nargs=2, varargs=True)
def _request_module(k: BaseKernel, c: TrapCall) -> int:
    """__request_module(wait, fmt, ...): the name formatted as vsnprintf would, handed to the
    kernel the emulator runs in (the model kernel's request_module, which loads through
    modprobe); emulating alone there is no modprobe: -ENOENT."""
    from lkm.emulate.base.printk import fmt_call

    name = fmt_call(k, c, 1).decode("utf-8", "surrogateescape")
    return _request(k, name, bool(c.arg(0) & 0xFF))


@kfunc("request_module", nargs=1)
def _request_module_24(k: BaseKernel, c: TrapCall) -> int:
    """2.4's request_module(name): no format, always waits."""
    return _request(k, k.cstring(c.arg(0)), True)


def _request(k: BaseKernel, name: str, wait: bool) -> int:
    if k.request_module is None:
        return -2  # -ENOENT
    return k.request_module(name, wait)


@kfunc("__check_object_size", "check_object_size", "__warn_printk_once", nargs=3)
def _check_object_size(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("__list_add_valid", "__list_del_entry_valid", nargs=3)
def _list_valid(k: BaseKernel, c: TrapCall) -> int:
    return 1  # CONFIG_DEBUG_LIST: the list is taken as consistent


@kfunc("refcount_warn_saturate", nargs=2)
def _refcount_warn(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("___ratelimit", "net_ratelimit", "printk_ratelimit", nargs=2)
def _ratelimit(k: BaseKernel, c: TrapCall) -> int:
    return 1


# -- boot values of data symbols -----------------------------------------------------------------
def _word(value: int) -> Callable[[BaseKernel, int, int], None]:
    def init(k: BaseKernel, addr: int, size: int) -> None:
        k.machine.write_word(addr, value)

    return init


@kdata("jiffies", "jiffies_64")
def _jiffies(k: BaseKernel, addr: int, size: int) -> None:
    k.machine.write_int(addr, 8 if k.arch.word == 8 else 4, k.state.jiffies)


kdata("page_offset_base")(_word(0xFFFF888000000000))
kdata("vmemmap_base")(_word(0xFFFFEA0000000000))
kdata("vmalloc_base")(_word(0xFFFFC90000000000))
kdata("nr_cpu_ids")(_word(1))
kdata("__cpu_online_mask", "__cpu_possible_mask", "__cpu_present_mask", "__cpu_active_mask")(_word(1))


@kdata("__per_cpu_offset")
def _per_cpu_offset(k: BaseKernel, addr: int, size: int) -> None:
    k.machine.write_word(addr, k.percpu_base)


@kdata("system_wq", "system_long_wq", "system_unbound_wq", "system_freezable_wq", "system_power_efficient_wq",
       "system_highpri_wq", "system_freezable_power_efficient_wq")  # fmt: skip
def _wq(k: BaseKernel, addr: int, size: int) -> None:
    k.machine.write_word(addr, k.alloc(0x200))


@kdata("pv_ops")
def _pv_ops(k: BaseKernel, addr: int, size: int) -> None:
    """Paravirt calls left as indirect calls through pv_ops: each slot a trap that answers
    as native hardware would for the common ones (save_fl: interrupts on)."""
    trap = k.add_function("__lkm_pv_op")
    for off in range(0, min(size, 0x400), k.arch.word):
        k.machine.write_word(addr + off, trap)


@kfunc("__lkm_pv_op", nargs=1)
def _pv_op(k: BaseKernel, c: TrapCall) -> int:
    return 0x200

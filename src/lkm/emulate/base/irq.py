"""Interrupts and deferred work on a virtual clock: request_irq's handlers (raised by
:func:`raise_irq`), timers (kernel/time/timer.c), work items (kernel/workqueue.c) and tasklets
(kernel/softirq.c).  Nothing runs behind the module's back: queued work and tasklets run at
:func:`run_pending` (after an interrupt, or when the harness asks), timers when
:func:`advance` moves jiffies past their expiry.  Struct offsets: lkm.emulate.devlayouts."""

from __future__ import annotations

from lkm.emulate.base.bus import L
from lkm.emulate.hw import Hardware, IrqAction, hw_of
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "EBUSY",
    "EINVAL",
    "ENOTCONN",
    "HZ",
    "IRQF_SHARED",
    "IRQ_HANDLED",
    "IRQ_NONE",
    "IRQ_WAKE_THREAD",
    "MAX_RUNS",
    "TASKLET_STATE_SCHED",
    "WORK_STRUCT_PENDING",
    "advance",
    "raise_irq",
    "run_pending",
]


HZ = 250  # Debian's CONFIG_HZ
EINVAL, EBUSY, ENOTCONN = 22, 16, 107
IRQF_SHARED = 0x80
IRQ_NONE, IRQ_HANDLED, IRQ_WAKE_THREAD = 0, 1, 2
WORK_STRUCT_PENDING = 1
TASKLET_STATE_SCHED = 1
MAX_RUNS = 10000  # work items/tasklets run by one run_pending (a self-requeueing item ends)


# -- interrupts ----------------------------------------------------------------------------------
def _request(
    k: BaseKernel, irq: int, handler: int, thread_fn: int, flags: int, name: int, dev_id: int, devm: int = 0
) -> int:
    hw = hw_of(k)
    if not handler and not thread_fn:
        return -EINVAL
    on_line = [a for a in hw.irqs if a.irq == irq]
    if on_line and not (flags & IRQF_SHARED and all(a.flags & IRQF_SHARED for a in on_line)):
        return -EBUSY
    hw.irqs.append(IrqAction(irq, handler, thread_fn, flags, k.cstring(name, 64), dev_id, k.current, devm))
    return 0


@kfunc("request_threaded_irq", nargs=6)
def _request_threaded_irq(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(0) & 0xFFFFFFFF, c.arg(1), c.arg(2), c.arg(3), c.arg(4), c.arg(5))


@kfunc("request_any_context_irq", nargs=5)
def _request_any_context_irq(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(0) & 0xFFFFFFFF, c.arg(1), 0, c.arg(2), c.arg(3), c.arg(4))  # IRQC_IS_HARDIRQ


@kfunc("devm_request_threaded_irq", nargs=7)
def _devm_request_threaded_irq(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(1) & 0xFFFFFFFF, c.arg(2), c.arg(3), c.arg(4), c.arg(5), c.arg(6), c.arg(0))


@kfunc("devm_request_any_context_irq", nargs=6)
def _devm_request_any_context_irq(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(1) & 0xFFFFFFFF, c.arg(2), 0, c.arg(3), c.arg(4), c.arg(5), c.arg(0))


@kfunc("free_irq", nargs=2)
def _free_irq(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    irq, dev_id = c.arg(0) & 0xFFFFFFFF, c.arg(1)
    for a in hw.irqs:
        if a.irq == irq and a.dev_id == dev_id:
            hw.irqs.remove(a)
            return k.new_string(a.name.encode())
    k.state.printk(4, False, f"Trying to free already-free IRQ {irq}\n", None)
    return 0


@kfunc("devm_free_irq", nargs=3)
def _devm_free_irq(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    irq, dev_id = c.arg(1) & 0xFFFFFFFF, c.arg(2)
    hw.irqs = [a for a in hw.irqs if not (a.irq == irq and a.dev_id == dev_id)]
    return 0


@kfunc(
    "enable_irq",
    "disable_irq",
    "disable_irq_nosync",
    "synchronize_irq",
    "irq_set_irq_wake",
    "irq_set_affinity_hint",
    "irq_modify_status",
    "disable_hardirq",
    nargs=1,
)
def _irq_noop(k: BaseKernel, c: TrapCall) -> int:
    return 0


def raise_irq(k: BaseKernel, irq: int) -> int:
    """The interrupt line ``irq`` fires: each handler on it (and its thread when it asks for
    one), then the tasklets and work they scheduled.  Returns how many handlers said
    IRQ_HANDLED."""
    hw = hw_of(k)
    handled = 0
    for a in [a for a in hw.irqs if a.irq == irq]:
        ret = IRQ_WAKE_THREAD
        if a.handler:
            ret = k.call(a.handler, (irq, a.dev_id), a.module) & 0xFFFFFFFF
        if ret & IRQ_WAKE_THREAD and a.thread_fn:
            ret = k.call(a.thread_fn, (irq, a.dev_id), a.module) & 0xFFFFFFFF
        handled += bool(ret & IRQ_HANDLED)
    from lkm.emulate.base.skbuff import net_softirq  # imported after irq (the base's order)

    net_softirq(k)  # irq_exit: the NET_RX (NAPI polls) and NET_TX softirqs
    run_pending(k)
    return handled


# -- timers --------------------------------------------------------------------------------------
def _arm(k: BaseKernel, hw: Hardware, timer: int, expires: int) -> bool:
    lay = L(k)
    m = k.machine
    was = timer in hw.timers
    m.write_word(timer + lay["timer_list_expires"], expires)
    m.write_word(timer + lay["timer_list_entry"] + 8, timer)  # entry.pprev: timer_pending()
    hw.timers[timer] = expires & k.arch.mask
    hw.timer_order[timer] = hw.next_seq()
    return was


def _disarm(k: BaseKernel, hw: Hardware, timer: int) -> bool:
    was = hw.timers.pop(timer, None) is not None
    hw.timer_order.pop(timer, None)
    hw.delayed.pop(timer, None)
    if was:
        k.machine.write_word(timer + L(k)["timer_list_entry"] + 8, 0)
    return was


@kfunc("init_timer_key", nargs=5)
def _init_timer_key(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    timer = c.arg(0)
    m.write(timer, bytes(lay["timer_list_size"]))
    m.write_word(timer + lay["timer_list_function"], c.arg(1))
    m.write_int(timer + lay["timer_list_flags"], 4, c.arg(2))
    return 0


@kfunc("mod_timer", "timer_reduce", nargs=2)
def _mod_timer(k: BaseKernel, c: TrapCall) -> int:
    return int(_arm(k, hw_of(k), c.arg(0), c.arg(1)))


@kfunc("add_timer", nargs=1)
def _add_timer(k: BaseKernel, c: TrapCall) -> int:
    t = c.arg(0)
    _arm(k, hw_of(k), t, k.machine.read_word(t + L(k)["timer_list_expires"]))
    return 0


@kfunc("add_timer_on", nargs=2)
def _add_timer_on(k: BaseKernel, c: TrapCall) -> int:
    t = c.arg(0)
    _arm(k, hw_of(k), t, k.machine.read_word(t + L(k)["timer_list_expires"]))
    return 0


@kfunc(
    "del_timer",
    "del_timer_sync",
    "timer_delete",
    "timer_delete_sync",
    "try_to_del_timer_sync",
    "timer_shutdown_sync",
    "timer_shutdown",
    nargs=1,
)
def _del_timer(k: BaseKernel, c: TrapCall) -> int:
    return int(_disarm(k, hw_of(k), c.arg(0)))


def _jiffies(k: BaseKernel) -> int:
    return k.state.jiffies & k.arch.mask


def _due(k: BaseKernel, expires: int, now: int) -> bool:
    """time_after_eq(now, expires), wrapping as jiffies do."""
    bits = 8 * k.arch.word
    diff = (now - expires) & ((1 << bits) - 1)
    return diff < (1 << (bits - 1))


def advance(k: BaseKernel, ms: int) -> int:
    """Move the virtual clock ``ms`` milliseconds on, tick by tick: timers fire when jiffies
    reach their expiry (in expiry order), deferred work runs after each tick that fired
    something.  Returns the number of timer callbacks run."""
    hw = hw_of(k)
    ticks = max(0, (ms * HZ + 999) // 1000)
    fired = 0
    run_pending(k)
    end = k.state.jiffies + ticks
    while True:
        now = _jiffies(k)
        due = sorted(
            (t for t, exp in hw.timers.items() if _due(k, exp, now)),
            key=lambda t: (hw.timers[t], hw.timer_order.get(t, 0)),
        )
        if due:
            for t in due:
                if t not in hw.timers:
                    continue
                fired += 1
                _fire(k, hw, t)
            run_pending(k)
            continue
        if k.state.jiffies >= end:
            break
        pending = [exp for exp in hw.timers.values()]
        step = 1
        if pending:
            nearest = min(((exp - now) & k.arch.mask) for exp in pending)
            step = max(1, min(nearest, end - k.state.jiffies))
        else:
            step = end - k.state.jiffies
        k.advance_jiffies(step)
    return fired


def _fire(k: BaseKernel, hw: Hardware, timer: int) -> None:
    lay = L(k)
    hw.timers.pop(timer, None)
    hw.timer_order.pop(timer, None)
    k.machine.write_word(timer + lay["timer_list_entry"] + 8, 0)
    if timer in hw.delayed:
        work, _exp = hw.delayed.pop(timer)
        _queue(k, hw, work, force=True)
        return
    fn = k.machine.read_word(timer + lay["timer_list_function"])
    if fn:
        k.call(fn, (timer,), _owner(k, fn))


def _owner(k: BaseKernel, addr: int) -> str | None:
    for mod in k.modules.values():
        if mod.contains(addr):
            return mod.name
    return None


# -- work items ----------------------------------------------------------------------------------
def _queue(k: BaseKernel, hw: Hardware, work: int, *, force: bool = False) -> bool:
    lay = L(k)
    m = k.machine
    data = m.read_word(work + lay["work_struct_data"])
    if data & WORK_STRUCT_PENDING and not force:
        return False
    m.write_word(work + lay["work_struct_data"], data | WORK_STRUCT_PENDING)
    if work not in hw.work:
        hw.work.append(work)
    return True


@kfunc("queue_work_on", nargs=3)
def _queue_work_on(k: BaseKernel, c: TrapCall) -> int:
    return int(_queue(k, hw_of(k), c.arg(2)))


@kfunc("schedule_work", nargs=1)
def _schedule_work(k: BaseKernel, c: TrapCall) -> int:
    return int(_queue(k, hw_of(k), c.arg(0)))


def _delayed(k: BaseKernel, dwork: int, delay: int, modify: bool) -> bool:
    hw = hw_of(k)
    lay = L(k)
    m = k.machine
    work = dwork + lay["delayed_work_work"]
    timer = dwork + lay["delayed_work_timer"]
    data = m.read_word(work + lay["work_struct_data"])
    pending = bool(data & WORK_STRUCT_PENDING)
    if pending and not modify:
        return False
    if pending:
        _disarm(k, hw, timer)
        if work in hw.work:
            hw.work.remove(work)
    if delay == 0:
        m.write_word(work + lay["work_struct_data"], data & ~WORK_STRUCT_PENDING)
        _queue(k, hw, work)
    else:
        m.write_word(work + lay["work_struct_data"], data | WORK_STRUCT_PENDING)
        _arm(k, hw, timer, (_jiffies(k) + delay) & k.arch.mask)
        hw.delayed[timer] = (work, delay)
    return pending if modify else True


@kfunc("queue_delayed_work_on", nargs=4)
def _queue_delayed_work_on(k: BaseKernel, c: TrapCall) -> int:
    return int(_delayed(k, c.arg(2), c.arg(3), False))


@kfunc("mod_delayed_work_on", nargs=4)
def _mod_delayed_work_on(k: BaseKernel, c: TrapCall) -> int:
    return int(_delayed(k, c.arg(2), c.arg(3), True))


def _cancel(k: BaseKernel, work: int, timer: int = 0) -> bool:
    hw = hw_of(k)
    lay = L(k)
    m = k.machine
    was = False
    if timer:
        was = _disarm(k, hw, timer)
    if work in hw.work:
        hw.work.remove(work)
        was = True
    data = m.read_word(work + lay["work_struct_data"])
    m.write_word(work + lay["work_struct_data"], data & ~WORK_STRUCT_PENDING)
    return was


@kfunc("cancel_work_sync", "cancel_work", nargs=1)
def _cancel_work(k: BaseKernel, c: TrapCall) -> int:
    return int(_cancel(k, c.arg(0)))


@kfunc("cancel_delayed_work", "cancel_delayed_work_sync", nargs=1)
def _cancel_delayed_work(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    dw = c.arg(0)
    return int(_cancel(k, dw + lay["delayed_work_work"], dw + lay["delayed_work_timer"]))


def _run_work(k: BaseKernel, hw: Hardware, work: int) -> None:
    lay = L(k)
    m = k.machine
    if work in hw.work:
        hw.work.remove(work)
    data = m.read_word(work + lay["work_struct_data"])
    m.write_word(work + lay["work_struct_data"], data & ~WORK_STRUCT_PENDING)
    fn = m.read_word(work + lay["work_struct_func"])
    if fn:
        k.call(fn, (work,), _owner(k, fn))


@kfunc("flush_work", nargs=1)
def _flush_work(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    if c.arg(0) in hw.work:
        _run_work(k, hw, c.arg(0))
        return 1
    return 0


@kfunc("flush_delayed_work", nargs=1)
def _flush_delayed_work(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    lay = L(k)
    dw = c.arg(0)
    timer = dw + lay["delayed_work_timer"]
    work = dw + lay["delayed_work_work"]
    if timer in hw.delayed:
        _disarm(k, hw, timer)
        _queue(k, hw, work, force=True)
    if work in hw.work:
        _run_work(k, hw, work)
        return 1
    return 0


@kfunc("__flush_workqueue", "flush_workqueue", "drain_workqueue", "flush_scheduled_work", nargs=1)
def _flush_workqueue(k: BaseKernel, c: TrapCall) -> int:
    run_pending(k, tasklets=False)
    return 0


@kfunc("destroy_workqueue", nargs=1)
def _destroy_workqueue(k: BaseKernel, c: TrapCall) -> int:
    run_pending(k, tasklets=False)
    return 0


# -- tasklets ------------------------------------------------------------------------------------
@kfunc("tasklet_init", nargs=3)
def _tasklet_init(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    t = c.arg(0)
    m.write(t, bytes(lay["tasklet_struct_size"]))
    m.write_word(t + lay["tasklet_struct_func"], c.arg(1))
    m.write_word(t + lay["tasklet_struct_data"], c.arg(2))
    return 0


@kfunc("tasklet_setup", nargs=2)
def _tasklet_setup(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    t = c.arg(0)
    m.write(t, bytes(lay["tasklet_struct_size"]))
    m.write_int(t + lay["tasklet_struct_use_callback"], 1, 1)
    m.write_word(t + lay["tasklet_struct_callback"], c.arg(1))
    return 0


@kfunc("__tasklet_schedule", "__tasklet_hi_schedule", nargs=1)
def _tasklet_schedule(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    if c.arg(0) not in hw.tasklets:
        hw.tasklets.append(c.arg(0))
    return 0


@kfunc("tasklet_kill", nargs=1)
def _tasklet_kill(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    t = c.arg(0)
    if t in hw.tasklets:
        hw.tasklets.remove(t)
    lay = L(k)
    state = k.machine.read_word(t + lay["tasklet_struct_state"])
    k.machine.write_word(t + lay["tasklet_struct_state"], state & ~TASKLET_STATE_SCHED)
    return 0


def _run_tasklet(k: BaseKernel, t: int) -> bool:
    """tasklet_action_common for one tasklet: False while it is disabled (count != 0)."""
    lay = L(k)
    m = k.machine
    if m.read_int(t + lay["tasklet_struct_count"], 4):
        return False
    state = m.read_word(t + lay["tasklet_struct_state"])
    m.write_word(t + lay["tasklet_struct_state"], state & ~TASKLET_STATE_SCHED)
    if m.read_int(t + lay["tasklet_struct_use_callback"], 1):
        fn = m.read_word(t + lay["tasklet_struct_callback"])
        if fn:
            k.call(fn, (t,), _owner(k, fn))
    else:
        fn = m.read_word(t + lay["tasklet_struct_func"])
        if fn:
            k.call(fn, (m.read_word(t + lay["tasklet_struct_data"]),), _owner(k, fn))
    return True


def run_pending(k: BaseKernel, *, tasklets: bool = True) -> int:
    """Run scheduled tasklets, then queued work items, until none is left (bounded).  Returns
    how many ran."""
    hw = hw_of(k)
    ran = 0
    for _step in range(MAX_RUNS):
        if tasklets and hw.tasklets:
            t = hw.tasklets.pop(0)
            if _run_tasklet(k, t):
                ran += 1
                continue
            hw.tasklets.append(t)  # disabled: stays scheduled
            if not hw.work:
                break
        if hw.work:
            _run_work(k, hw, hw.work[0])
            ran += 1
            continue
        break
    return ran

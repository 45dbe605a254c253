"""Locks, RCU, wait queues, completions, work and timers: one CPU, nothing runs concurrently,
so they are no-ops; acquisitions and releases are counted per family (KernelState.locks) so
an unbalanced lock shows."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = ["IRQ_FLAGS"]


IRQ_FLAGS = 0x246  # what irqsave returns: IF set

_ACQUIRE = {
    "mutex_lock": "mutex", "mutex_lock_nested": "mutex", "mutex_lock_interruptible": "mutex",
    "mutex_lock_killable": "mutex", "mutex_trylock": "mutex", "_raw_spin_lock": "spin",
    "_raw_spin_lock_bh": "spin", "_raw_spin_lock_irq": "spin", "_raw_spin_lock_irqsave": "spin",
    "_raw_spin_trylock": "spin", "_raw_read_lock": "rwlock", "_raw_write_lock": "rwlock",
    "_raw_read_lock_irqsave": "rwlock", "_raw_write_lock_irqsave": "rwlock", "_raw_write_lock_bh": "rwlock",
    "_raw_read_lock_bh": "rwlock", "_raw_write_lock_irq": "rwlock", "_raw_read_lock_irq": "rwlock",
    "down_read": "rwsem", "down_write": "rwsem", "down_read_trylock": "rwsem", "down_write_trylock": "rwsem",
    "down": "semaphore", "down_interruptible": "semaphore", "down_trylock": "semaphore",
    "down_timeout": "semaphore", "__rcu_read_lock": "rcu", "rtnl_lock": "rtnl", "rtnl_lock_killable": "rtnl",
    "rt_mutex_lock": "rt_mutex", "console_lock": "console", "genl_lock": "genl",
}  # fmt: skip
_RELEASE = {
    "mutex_unlock": "mutex", "_raw_spin_unlock": "spin", "_raw_spin_unlock_bh": "spin",
    "_raw_spin_unlock_irq": "spin", "_raw_spin_unlock_irqrestore": "spin", "_raw_read_unlock": "rwlock",
    "_raw_write_unlock": "rwlock", "_raw_read_unlock_irqrestore": "rwlock",
    "_raw_write_unlock_irqrestore": "rwlock", "_raw_write_unlock_bh": "rwlock",
    "_raw_read_unlock_bh": "rwlock",
    "_raw_write_unlock_irq": "rwlock", "_raw_read_unlock_irq": "rwlock", "up_read": "rwsem",
    "up_write": "rwsem", "up": "semaphore", "__rcu_read_unlock": "rcu", "rtnl_unlock": "rtnl",
    "rt_mutex_unlock": "rt_mutex", "console_unlock": "console", "genl_unlock": "genl",
}  # fmt: skip


def _mark(k: BaseKernel, family: str, lock: int, held: bool) -> None:
    """What mutex_is_locked / spin_is_locked read: a mutex's owner word (the task), a
    spinlock's locked byte."""
    if not lock or not k.machine.is_mapped(lock, k.arch.word):
        return
    if family == "mutex":
        k.machine.write_word(lock, k.task if held else 0)
    elif family == "spin":
        k.machine.write_int(lock, 1, 1 if held else 0)


def _acquire(k: BaseKernel, c: TrapCall) -> int:
    family = _ACQUIRE[c.name]
    k.state.locks[family] += 1
    _mark(k, family, c.arg(0), True)
    if c.name.endswith("trylock") or c.name in (
        "_raw_spin_trylock",
        "down_read_trylock",
        "down_write_trylock",
    ):
        return 0 if c.name == "down_trylock" else 1  # down_trylock returns 0 on success
    return IRQ_FLAGS if c.name.endswith("irqsave") else 0


def _release(k: BaseKernel, c: TrapCall) -> int:
    family = _RELEASE[c.name]
    k.state.locks[family] -= 1
    _mark(k, family, c.arg(0), False)
    return 0


for _n in _ACQUIRE:
    kfunc(_n, nargs=1)(_acquire)
for _n in _RELEASE:
    kfunc(_n, nargs=1)(_release)

# Initialisers and waits that need nothing from one CPU with no other task.
for _n in ("__mutex_init", "__init_waitqueue_head", "__init_swait_queue_head", "__init_rwsem",
           "__raw_spin_lock_init", "__rwlock_init", "init_wait_entry", "finish_wait", "__wake_up",
           "__wake_up_sync_key", "complete", "complete_all", "init_timer_key", "synchronize_rcu",
           "synchronize_net", "rcu_barrier", "call_rcu", "kvfree_call_rcu", "__local_bh_enable_ip",
           "local_bh_enable", "preempt_schedule", "preempt_schedule_notrace", "__SCT__preempt_schedule",
           "__SCT__preempt_schedule_notrace", "__SCT__might_resched", "__SCT__cond_resched", "__might_sleep",
           "__might_fault", "__cond_resched", "_cond_resched", "lockdep_init_map_type", "flush_workqueue",
           "__flush_workqueue", "drain_workqueue", "destroy_workqueue", "__init_work", "add_timer",
           "wake_up_process"):  # fmt: skip

    @kfunc(_n, nargs=2)
    def _noop(k: BaseKernel, c: TrapCall) -> int:
        return 0


@kfunc("queue_work_on", "queue_delayed_work_on", "mod_timer", "mod_delayed_work_on", "schedule_work", nargs=3)
def _queue(k: BaseKernel, c: TrapCall) -> int:
    return 1  # queued (the work never runs: no worker threads here)


_CANCEL = ("cancel_work_sync", "cancel_delayed_work_sync", "cancel_delayed_work", "timer_delete_sync",
           "timer_delete", "del_timer", "del_timer_sync", "flush_work", "flush_delayed_work")  # fmt: skip


@kfunc(*_CANCEL, nargs=1)
def _cancel(k: BaseKernel, c: TrapCall) -> int:
    return 0  # nothing was pending


@kfunc("wait_for_completion_timeout", "wait_for_completion_interruptible_timeout",
       "wait_for_completion_killable_timeout", nargs=2)  # fmt: skip
def _wait_timeout(k: BaseKernel, c: TrapCall) -> int:
    k.advance_jiffies(c.arg(1) & 0x7FFFFFFF)
    return 0  # timed out: no interrupt or other task will complete it


@kfunc("prepare_to_wait_event", nargs=3)
def _prepare_to_wait_event(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("schedule_timeout", "schedule_timeout_interruptible", "schedule_timeout_uninterruptible",
       "schedule_timeout_killable", nargs=1)  # fmt: skip
def _schedule_timeout(k: BaseKernel, c: TrapCall) -> int:
    k.advance_jiffies(c.arg(0) & 0x7FFFFFFF)
    return 0


@kfunc("alloc_workqueue", nargs=3, varargs=True)
def _alloc_workqueue(k: BaseKernel, c: TrapCall) -> int:
    return k.alloc(0x200)  # an opaque struct workqueue_struct


@kfunc("mutex_is_locked", nargs=1)
def _mutex_is_locked(k: BaseKernel, c: TrapCall) -> int:
    return int(k.machine.read_word(c.arg(0)) != 0)  # the owner word mutex_lock set


# SRCU (kernel/rcu/srcutree.c): one CPU and no other reader, so a grace period is immediate.
@kfunc("init_srcu_struct", "__init_srcu_struct", nargs=1)
def _init_srcu_struct(k: BaseKernel, c: TrapCall) -> int:
    return 0  # its per-cpu counters start at zero in the module's (zeroed) srcu_struct


@kfunc("__srcu_read_lock", nargs=1)
def _srcu_read_lock(k: BaseKernel, c: TrapCall) -> int:
    k.state.locks["srcu"] += 1
    return 0  # the index of the (only) counter pair in use


@kfunc("__srcu_read_unlock", nargs=2)
def _srcu_read_unlock(k: BaseKernel, c: TrapCall) -> int:
    k.state.locks["srcu"] -= 1
    return 0


@kfunc("cleanup_srcu_struct", "synchronize_srcu", "synchronize_srcu_expedited", "srcu_barrier", nargs=1)
def _srcu_sync(k: BaseKernel, c: TrapCall) -> int:
    return 0

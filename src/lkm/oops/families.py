# ruff: noqa: E501
"""Crash-report families: which heading opens which kind of report, how that report ends,
and how the field names it (title, guilty frame, signature).

Every family below is recognised from the heading line the kernel prints; the table gives the
kernel source file of the printk site (paths as in 6.1/6.12 unless a version says otherwise)
and the kernel versions the format covers.  The titles follow the form fuzzing farms use
(syzbot: ``KASAN: use-after-free Read in foo``, ``WARNING in bar``, ...): a fixed text plus the
*guilty frame*, the first frame of the relevant stack that is not part of the kernel's
reporting machinery or a generic helper (:data:`SKIP`).

The table :data:`FAMILY_SITES` gives, for each family, the kernel versions, the kernel source file
and function of the printk site, and an example heading (docs/crash-families.md shows it with
the test data of each family).
"""

from __future__ import annotations

import hashlib
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CLOSING_PANICS",
    "FAMILIES",
    "FAMILY_SITES",
    "GAP",
    "JSON",
    "RULE_FRAMED",
    "SANITIZERS",
    "SKIP_PATTERNS",
    "STALLS",
    "STANDALONE_PANICS",
    "FrameView",
    "guilty_frame",
    "heading_family",
    "make_title",
    "normalize_name",
    "normalize_title",
    "signature",
    "skipped",
]

JSON = object

#: (family, kernel versions, printk site (kernel source file and function), example heading)
FAMILY_SITES: tuple[tuple[str, str, str, str], ...] = (
    ("kasan", "4.0-6.12", "mm/kasan/report.c (print_error_description)", "BUG: KASAN: use-after-free in f"),
    (
        "kfence",
        "5.12-6.12",
        "mm/kfence/report.c (kfence_report_error)",
        "BUG: KFENCE: out-of-bounds read in f",
    ),
    ("kmsan", "6.1-6.12", "mm/kmsan/report.c (kmsan_report)", "BUG: KMSAN: uninit-value in f"),
    ("kcsan", "5.8-6.12", "kernel/kcsan/report.c (print_report)", "BUG: KCSAN: data-race in f / g"),
    ("ubsan", "4.5-6.12", "lib/ubsan.c (ubsan_prologue)", "UBSAN: shift-out-of-bounds in x.c:1:2"),
    (
        "lockdep",
        "2.6-6.12",
        "kernel/locking/lockdep.c (print_*_bug)",
        "WARNING: possible circular locking ...",
    ),
    (
        "rcu_usage",
        "2.6-6.12",
        "kernel/locking/lockdep.c (lockdep_rcu_suspicious)",
        "WARNING: suspicious RCU usage",
    ),
    ("slub", "2.6-6.12", "mm/slub.c (slab_bug)", "BUG kmalloc-8 (Not tainted): Object already free"),
    ("kmemleak", "2.6-6.12", "mm/kmemleak.c (print_unreferenced)", "unreferenced object 0x... (size 32):"),
    (
        "hung_task",
        "2.6-6.12",
        "kernel/hung_task.c (check_hung_task)",
        "INFO: task x:1 blocked for more than 143 seconds.",
    ),
    (
        "rcu_stall",
        "2.6-6.12",
        "kernel/rcu/tree_stall.h (print_*_stall)",
        "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    ),
    (
        "soft_lockup",
        "2.6-6.12",
        "kernel/watchdog.c (watchdog_timer_fn)",
        "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [x:1]",
    ),
    (
        "hard_lockup",
        "2.6-6.12",
        "kernel/watchdog_hld.c (6.5+: kernel/watchdog.c)",
        "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
    ),
    (
        "workqueue",
        "4.5-6.12",
        "kernel/workqueue.c (wq_watchdog_timer_fn, process_one_work)",
        "BUG: workqueue lockup - pool ...",
    ),
    (
        "null_deref",
        "2.4-6.12",
        "arch/x86/mm/fault.c (show_fault_oops), arch/arm64/mm/fault.c (die_kernel_fault)",
        "BUG: kernel NULL pointer dereference, address: 0",
    ),
    (
        "paging",
        "2.4-6.12",
        "arch/x86/mm/fault.c, arch/arm64/mm/fault.c",
        "BUG: unable to handle page fault for address: x",
    ),
    (
        "gpf",
        "2.6-6.12",
        "arch/x86/kernel/traps.c (exc_general_protection)",
        "general protection fault, probably for ...: 0000",
    ),
    (
        "trap",
        "2.4-6.12",
        "arch/x86/kernel/traps.c (do_error_trap), dumpstack.c (__die_header)",
        "divide error: 0000 [#1] SMP",
    ),
    (
        "double_fault",
        "2.6-6.12",
        "arch/x86/kernel/traps.c (exc_double_fault)",
        "PANIC: double fault, error_code: 0x0",
    ),
    (
        "stack_guard",
        "4.x-6.12",
        "arch/x86/kernel/traps.c (handle_stack_overflow)",
        "BUG: TASK stack guard page was hit at ...",
    ),
    ("kernel_bug", "2.4-6.12", "lib/bug.c (report_bug)", "kernel BUG at mm/x.c:12!"),
    (
        "internal_error",
        "3.x-6.12",
        "arch/arm64/kernel/traps.c (__die)",
        "Internal error: synchronous external abort: ...",
    ),
    (
        "warning",
        "2.6-6.12",
        "kernel/panic.c (__warn), lib/bug.c",
        "WARNING: CPU: 0 PID: 1 at x.c:4 f+0x1/0x2",
    ),
    (
        "sleep_in_atomic",
        "2.6-6.12",
        "kernel/sched/core.c (__might_resched)",
        "BUG: sleeping function called from invalid context at x.c:1",
    ),
    (
        "sched_atomic",
        "2.6-6.12",
        "kernel/sched/core.c (__schedule_bug)",
        "BUG: scheduling while atomic: x/1/0x00000002",
    ),
    (
        "preemptible",
        "2.6-6.12",
        "lib/smp_processor_id.c (check_preemption_disabled)",
        "BUG: using smp_processor_id() in preemptible ...",
    ),
    (
        "spinlock",
        "2.6-6.12",
        "kernel/locking/spinlock_debug.c (spin_dump)",
        "BUG: spinlock bad magic on CPU#0, x/1",
    ),
    (
        "bad_page",
        "2.6-6.12",
        "mm/page_alloc.c (bad_page), mm/memory.c (print_bad_pte), kernel/fork.c (check_mm)",
        "BUG: Bad page state in process x  pfn:01234",
    ),
    (
        "netdev_wait",
        "2.6-6.12",
        "net/core/dev.c (netdev_wait_allrefs)",
        "unregister_netdevice: waiting for lo to become free. Usage count = 2",
    ),
    (
        "busy_inodes",
        "2.6-6.0",
        "fs/super.c (generic_shutdown_super)",
        "VFS: Busy inodes after unmount of sda. Self-destruct ...",
    ),
    ("panic", "2.4-6.12", "kernel/panic.c (vpanic)", "Kernel panic - not syncing: ..."),
    ("bug", "2.4-6.12", "any other BUG: line", "BUG: ..."),
)

#: Families whose report is framed by two rules of ``=`` (the second ends it).
RULE_FRAMED = frozenset({"kasan", "kfence", "kmsan", "kcsan", "ubsan"})
#: Families whose report dumps other CPUs' stacks from NMI/IRQ context (``[  C1]`` lines).
STALLS = frozenset({"rcu_stall", "soft_lockup", "hard_lockup", "hung_task", "workqueue"})
SANITIZERS = frozenset({"kasan", "kfence", "kmsan", "kcsan"})
#: How many lines in a row a report of the family may hold that the parser cannot classify.
GAP = {
    "lockdep": 80, "rcu_usage": 40, "hung_task": 80, "rcu_stall": 80, "kasan": 60, "kfence": 40,
    "kmsan": 40, "kcsan": 40, "slub": 60, "kmemleak": 40, "bad_page": 30, "ubsan": 20,
    "soft_lockup": 30, "hard_lockup": 30, "workqueue": 80,
}  # fmt: skip

_ADDR = r"(?:0x)?[0-9a-fA-F]+"

#: (family, heading pattern (re.match on the heading text), title format, guilty strategy)
#: ``{g}`` in the title is the guilty frame's function; other ``{name}`` are pattern groups.
FAMILIES: tuple[tuple[str, str, str, str], ...] = (
    ("kasan", r"BUG: KAS[Aa][Nn]: (?P<type>double-free or invalid-free|double-free|invalid-free)", "KASAN: invalid-free in {g}", "stack"),
    ("kasan", r"BUG: KAS[Aa][Nn]: (?P<type>[\w -]+?) (?:in|on address|on) ", "KASAN: {type} {access}in {g}", "stack"),
    ("kasan", r"BUG: KAS[Aa][Nn]: (?P<type>[\w-]+)", "KASAN: {type} {access}in {g}", "stack"),
    ("kfence", r"BUG: KFENCE: (?P<type>.+?) in ", "KFENCE: {type} in {g}", "stack"),
    ("kmsan", r"BUG: KMSAN: (?P<type>\S+)", "KMSAN: {type} in {g}", "stack"),
    ("kcsan", r"BUG: KCSAN: (?P<rest>.*)", "KCSAN: {rest}", "stack"),
    ("ubsan", r"UBSA[Nn]: Undefined behaviour in", "UBSAN: undefined-behaviour in {g}", "stack"),
    ("ubsan", r"UBSAN: (?P<type>.+?) (?:in|at) \S", "UBSAN: {type} in {g}", "stack"),
    ("ubsan", r"UBSAN: (?P<type>.+)", "UBSAN: {type} in {g}", "stack"),
    ("lockdep", r"(?:WARNING: |\[ INFO: )(?:possible circular locking dependency|possible recursive locking|possible irq lock inversion dependency|\w+-safe -> \w+-unsafe lock order)", "possible deadlock in {g}", "lockdep"),
    ("lockdep", r"(?:WARNING: |\[ INFO: )inconsistent lock state", "inconsistent lock state in {g}", "lockdep"),
    ("rcu_usage", r"(?:WARNING: |\[ INFO: |INFO: )suspicious RCU usage", "WARNING: suspicious RCU usage in {g}", "stack"),
    ("lockdep", r"\[ BUG: Invalid wait context \]", "BUG: Invalid wait context in {g}", "lockdep"),
    ("lockdep", r"(?P<lvl>WARNING: |\[ BUG: )(?:\S+ )?(?P<what>bad unlock balance|held lock freed|still has locks held|lock held when returning to user space)", "{lvlname}: {what} in {g}", "lockdep"),
    ("lockdep", r"(?:WARNING: |\[ BUG: )(?:Nested lock was not taken|bad contention detected|chain_key collision)", "WARNING: locking bug in {g}", "lockdep"),
    ("lockdep", r"INFO: trying to register non-static key", "INFO: trying to register non-static key in {g}", "lockdep"),
    ("lockdep", r"BUG: (?P<what>MAX_\w+) too low", "BUG: {what} too low!", "none"),
    ("kmemleak", r"(?:kmemleak: )?unreferenced object|BUG: memory leak", "memory leak in {g}", "leak"),
    ("hung_task", r"INFO: task .*:\d+ can't die", "INFO: task can't die in {g}", "hang"),
    ("hung_task", r"INFO: task .*:\d+ blocked", "INFO: task hung in {g}", "hang"),
    ("rcu_stall", r"(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall", "INFO: rcu detected stall in {g}", "stall"),
    ("rcu_stall", r"(?:rcu: )?INFO: rcu_tasks\w* detected stall", "INFO: rcu detected stall in {g}", "stall"),
    ("soft_lockup", r"(?:(?:NMI )?watchdog: )?BUG: soft lockup", "BUG: soft lockup in {g}", "stall"),
    ("hard_lockup", r"(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP", "BUG: hard lockup in {g}", "stall"),
    ("workqueue", r"BUG: workqueue lockup", "BUG: workqueue lockup", "none"),
    ("workqueue", r"BUG: workqueue leaked", "BUG: workqueue leaked lock or atomic in {lastfn}", "none"),
    ("stack_guard", r"BUG: (?:\w+ )?stack guard page was hit", "BUG: stack guard page was hit in {g}", "ip"),
    ("null_deref", r"(?:BUG: (?:unable to handle )?kernel NULL pointer dereference|Unable to handle kernel NULL pointer dereference)", "BUG: unable to handle kernel NULL pointer dereference in {g}", "ip"),
    ("paging", r"(?:BUG: unable to handle |Unable to handle kernel )", "BUG: unable to handle kernel paging request in {g}", "ip"),
    ("kernel_bug", r"[Kk]ernel BUG at (?P<file>lib/list_debug\.c)", "BUG: corrupted list in {g}", "ip"),
    ("kernel_bug", r"[Kk]ernel BUG at (?P<file>mm/usercopy\.c)", "BUG: bad usercopy in {g}", "ip"),
    ("kernel_bug", r"[Kk]ernel BUG at ", "kernel BUG in {g}", "ip"),
    ("double_fault", r"PANIC: double fault", "PANIC: double fault in {g}", "ip"),
    ("gpf", r"(?:Oops: )?(?:segment-related )?general protection fault", "general protection fault in {g}", "ip"),
    ("trap", r"(?:Oops: )?(?P<trap>divide[ _]error|invalid opcode|stack segment|int3|overflow|bounds|invalid TSS|segment not present|alignment check|coprocessor segment overrun|Split lock detected|Bad pagetable|SIMD coprocessor error): ", "{trapname} in {g}", "ip"),
    ("ubsan", r"Internal error: UBSAN: (?P<type>[^:]+):", "UBSAN: {type} in {g}", "ip"),
    ("internal_error", r"Internal error: ", "Internal error in {g}", "ip"),
    ("internal_error", r"(?:Unhandled fault|Synchronous External Abort): |SError Interrupt on CPU|Insufficient stack space to handle exception", "Internal error in {g}", "ip"),
    ("oops", r"(?:Oops: )?Oops", "Oops in {g}", "ip"),
    ("warning", r"WARNING: .*\b(?P<file>lib/refcount\.c):", "WARNING: refcount bug in {g}", "warn"),
    ("warning", r"WARNING: .*\b(?P<file>lib/debugobjects\.c):", "WARNING: ODEBUG bug in {g}", "warn"),
    ("warning", r"WARNING: .*\b(?P<file>kernel/locking/lockdep\.c):", "WARNING: locking bug in {g}", "warn"),
    ("warning", r"WARNING: kernel stack (?P<what>regs|frame pointer) at", "WARNING: kernel stack {what} has bad value", "none"),
    ("warning", r"WARNING: ", "WARNING in {g}", "warn"),
    ("sleep_in_atomic", r"BUG: sleeping function called from invalid context", "BUG: sleeping function called from invalid context in {g}", "stack"),
    ("sleep_in_atomic", r"BUG: assuming (?P<what>atomic|non migratable) context", "BUG: assuming {what} context in {g}", "stack"),
    ("sched_atomic", r"BUG: scheduling while atomic", "BUG: scheduling while atomic in {g}", "stack"),
    ("preemptible", r"BUG: using (?P<fn>[\w_]+\(\)|__this_cpu_\w+\(\)|\w+) in preemptible", "BUG: using {fn} in preemptible code in {g}", "stack"),
    ("spinlock", r"BUG: (?P<lock>spinlock|rwlock) (?P<what>.+?) on CPU#", "BUG: {lock} {what} in {g}", "stack"),
    ("bad_page", r"BUG: Bad page state", "BUG: Bad page state in {g}", "stack"),
    ("bad_page", r"BUG: Bad page map", "BUG: Bad page map in {g}", "stack"),
    ("bad_page", r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state", "none"),
    ("bad_page", r"BUG: non-zero (?P<what>\w+)", "BUG: non-zero {what} on freeing mm", "none"),
    ("slub", r"BUG (?P<cache>\S+) \([^)]*\): (?P<reason>.*)", "BUG: {reason}", "stack"),
    ("netdev_wait", r"unregister_netdevice: waiting for", "unregister_netdevice: waiting for DEV to become free", "none"),
    ("busy_inodes", r"VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)", "none"),
    ("panic", r"Kernel panic - not syncing: (?:stack-protector: )?Kernel stack is corrupted in: (?P<fn>\S+)", "kernel panic: stack is corrupted in {fn}", "none"),
    ("panic", r"Kernel panic - not syncing: (?P<msg>.*)", "kernel panic: {msg}", "none"),
    ("bug", r"BUG: (?P<msg>.*)", "BUG: {msg}", "stack"),
)  # fmt: skip
_FAMILY_RX = tuple((fam, re.compile(p), title, how) for fam, p, title, how in FAMILIES)

#: Panics that only close the report before them (kernel/panic.c callers).
CLOSING_PANICS = re.compile(
    r"(?:\S+: )?(?:Fatal exception(?: in interrupt)?|panic_on_warn set|\S+: panic_on_warn set|.*system warned too often"
    r"|kasan\.fault=panic|kmsan\.panic set|hung_task: blocked tasks|softlockup: hung tasks|Hard LOCKUP"
    r"|RCU Stall|Machine halted|kernel stack overflow|Asynchronous SError Interrupt|\w+ stack guard hit"
    r"|Oops - BUG: Fatal exception|UBSAN: panic_on_warn|KASAN: panic_on_warn|KFENCE: panic_on_warn"
    r"|KCSAN: panic_on_warn|Out of memory|can't return from __builtin_unreachable)"
)


#: Panics that are crashes of their own (never the end of the report before them).
STANDALONE_PANICS = re.compile(
    r"(?:stack-protector: |Kernel stack is corrupted|Attempted to kill init|corrupted stack end|VFS: Unable to mount"
    r"|No working init|sysrq triggered crash)"
)


def heading_family(text: str) -> tuple[str, re.Match[str], str, str] | None:
    """(family, match, title format, guilty strategy) of a heading's text, or None."""
    t = text.strip()
    for fam, rx, title, how in _FAMILY_RX:
        m = rx.match(t)
        if m:
            return fam, m, title, how
    return None


# -- frames to skip ------------------------------------------------------------------------

#: Frames that never name a crash (crash-families.md §11), matched on the normalised name.
SKIP_PATTERNS: tuple[str, ...] = (
    # report machinery
    r"dump_stack\w*", r"__dump_stack", r"show_stack", r"show_regs\w*", r"show_trace_log_lvl",
    r"dump_backtrace", r"walk_stack\w*", r"arch_stack_walk", r"stack_trace_\w+", r"print_\w+",
    r"panic", r"vpanic", r"__warn\w*", r"warn_slowpath\w*", r"report_bug", r"fixup_bug", r"handle_bug",
    r"(?:asm_)?exc_\w+", r"invalid_op", r"do_error_trap", r"do_trap", r"\w+_trap", r"bug_brk_handler",
    r"brk_handler", r"do_debug_exception", r"die", r"__die\w*", r"die_kernel_fault", r"__do_kernel_fault",
    r"do_page_fault", r"__do_page_fault", r"do_translation_fault", r"do_mem_abort", r"do_tag_check_fault",
    r"el1_\w+", r"el1h_\w+", r"page_fault_oops", r"(?:asm_)?exc_page_fault", r"page_fault", r"no_context",
    r"__bad_area\w*", r"bad_area\w*", r"kernelmode_fixup_or_oops", r"do_user_addr_fault",
    r"do_kern_addr_fault", r"oops_\w+", r"check_panic_on_warn", r"end_report", r"start_report",
    r"report_\w+", r"nmi_cpu_backtrace\w*", r"nmi_trigger_cpumask_backtrace", r"arch_trigger_\w+",
    r"trigger_\w+_backtrace", r"lapic_\w+", r"rcu_dump_cpu_stacks", r"print_cpu_stall\w*",
    r"check_cpu_stall", r"rcu_pending", r"rcu_sched_clock_irq", r"rcu_\w+_stall\w*",
    r"debug_\w+", r"__debug_\w+", r"should_fail\w*", r"fail_dump",
    # sanitizers
    r"(?:__)?kasan_\w+", r"\w+_kasan(?:_\w+)?", r"__asan_\w+", r"check_memory_region\w*", r"kmsan_\w+", r"__msan_\w+",
    r"kcsan_\w+", r"__kcsan_\w+", r"__tsan_\w+", r"kfence_\w+", r"__kfence_\w+", r"__ubsan_\w+",
    r"ubsan_\w+", r"handle_overflow", r"__sanitizer_\w+", r"check_object\w*", r"check_heap_object",
    r"__check_object_size", r"check_object_size", r"usercopy_\w+", r"__fortify_\w+", r"fortify_\w+",
    r"__stack_chk_fail",
    # refcount / kref / list / rbtree
    r"refcount_\w+", r"__refcount_\w+", r"kref_\w+", r"list_add\w*", r"list_del\w*", r"__list_\w+",
    r"hlist_\w+", r"rb_\w+", r"__rb_\w+", r"ref_tracker\w*",
    # locks
    r"lock_acquire\w*", r"lock_release", r"__lock_acquire", r"lock_acquired", r"lock_contended",
    r"lockdep_\w+", r"__lockdep_\w+", r"mark_lock\w*", r"validate_chain", r"check_prev?_add\w*",
    r"check_noncircular", r"check_deadlock", r"check_irq_usage", r"_raw_\w+", r"do_raw_\w+",
    r"__raw_\w+", r"spin_\w+", r"queued_\w+", r"native_queued_\w+", r"__pv_queued_\w+",
    r"mutex_\w+", r"__mutex_\w+", r"rt_mutex_\w+", r"__rt_mutex_\w+", r"down_\w+", r"down",
    r"__down\w*", r"up_\w+", r"up", r"rwsem_\w+", r"__rwsem_\w+", r"percpu_down_\w+",
    r"percpu_up_\w+", r"osq_lock", r"__might_sleep", r"__might_resched", r"___might_sleep",
    r"might_fault", r"__might_fault", r"lock_sock\w*", r"release_sock", r"lock_timer_base",
    r"read_lock\w*", r"write_lock\w*", r"read_unlock\w*", r"write_unlock\w*",
    # memory / string / user copy
    r"mem(?:cpy|move|set|cmp|chr|dup\w*|scan)\w*", r"__mem\w+",
    r"str(?:n?len|[ls]?cpy|n?cpy|[ln]?cat|n?cmp|n?casecmp|[nr]?chr|n?str|n?dup|sep|c?spn|pbrk|_\w+)\w*", r"__str\w+",
    r"copy_to_user\w*", r"copy_from_user\w*", r"_copy_\w+", r"__copy_\w+", r"raw_copy_\w+",
    r"copy_user_\w+", r"rep_movs_\w+", r"copy_\w+_iter\w*", r"get_user\w*", r"put_user\w*",
    r"__get_user\w*", r"__put_user\w*", r"\w*printf", r"vsnprintf", r"string", r"pointer",
    r"print_hex_dump\w*", r"kvasprintf\w*",
    # allocators
    r"kmalloc\w*", r"__kmalloc\w*", r"kmem_cache_\w+", r"kfree\w*", r"kvfree\w*", r"kzalloc\w*",
    r"kvmalloc\w*", r"kvzalloc\w*", r"krealloc\w*", r"kcalloc\w*", r"kmemdup\w*", r"kstrdup\w*",
    r"slab_\w+", r"__slab_\w+", r"___slab_\w+", r"alloc_pages\w*", r"__alloc_pages\w*",
    r"folio_alloc\w*", r"vmalloc\w*", r"__vmalloc\w*", r"vfree", r"vunmap", r"__kmem_cache_\w+",
    r"kmemleak_\w+", r"\w*alloc_node\w*", r"free_debug_processing", r"slob_\w+", r"___cache_free",
    r"__cache_free", r"cache_\w+_debugcheck", r"slab_free\w*", r"__free_pages\w*", r"free_pages\w*",
    # atomics / bits
    r"atomic\w*_(?:inc|dec|add|sub|read|set|xchg|cmpxchg|try\w*|fetch\w*|and|or)\w*",
    r"arch_atomic\w*", r"raw_atomic\w*", r"(?:__)?(?:set|clear|test|change)_bit\w*",
    # compiler / arch / entry noise
    r"__pfx_\w+", r"__x86_indirect_\w+", r"__x86_return_thunk", r"srso_\w+", r"ret_from_fork\w*",
    r"entry_SYSCALL\w*", r"entry_SYSENTER\w*", r"do_syscall_\w+", r"do_fast_syscall_\w+",
    r"el0_\w+", r"el0t_\w+", r"invoke_syscall", r"return_to_handler", r"__sanitizer_cov_\w+",
    r"write_comp_data", r"x64_sys_call", r"syscall_\w+", r"do_int80_\w+",
)  # fmt: skip
_SKIP = re.compile("(?:" + "|".join(SKIP_PATTERNS) + r")\Z")

#: Extra frames skipped for hung tasks: the scheduler and waiting primitives.
_HANG_SKIP = re.compile(
    r"(?:__schedule|schedule\w*|io_schedule\w*|preempt_schedule\w*|__wait\w*|wait_\w+|\w+_wait"
    r"|\w+_wait_\w+|do_wait\w*|\w*completion\w*|kthread\w*|rwsem\w*|\w*_(?:try)?lock(?:_\w+)?"
    r"|\w*_timeout\w*|synchronize_\w+|__synchronize_\w+|rcu_barrier\w*|flush_\w*work\w*"
    r"|__flush_\w+|msleep\w*|usleep\w*|__\w+_slowpath\w*|\w+_killable|\w+_interruptible|\w+_sync"
    r"|finish_task_switch\w*|context_switch|__switch_to\w*|__d_lookup\w*|io_\w+_wait\w*)\Z"
)
#: Frames a stall's interesting frame sits just above (the dispatcher that called it).
_STALL_ANCHORS = re.compile(
    r"(?:do_syscall_\w+|__do_sys_\w+|process_one_work|worker_thread|kthread|ret_from_fork\w*"
    r"|__do_softirq|handle_softirqs|run_ksoftirqd|irq_exit\w*|smp_call_function\w*"
    r"|generic_handle_irq\w*|__sysvec_\w+|sysvec_\w+|asm_sysvec_\w+|el0_\w+|invoke_syscall"
    r"|entry_SYSCALL\w*|call_timer_fn|expire_timers|__run_timers\w*|run_timer_softirq"
    r"|rcu_core\w*|rcu_do_batch|napi_poll|net_rx_action|do_idle|cpu_startup_entry|cpuidle_\w+"
    r"|vfs_(?:read|write|ioctl|readv|writev|iter_read|iter_write)|__vfs_(?:read|write)|do_iter_\w+"
    r"|sock_(?:sendmsg|recvmsg|write_iter|read_iter|ioctl)|__sys_\w+|ksys_\w+|__x64_sys_\w+|__se_sys_\w+"
    r"|__ia32_sys_\w+|__arm64_sys_\w+|SyS_\w+)\Z"
)
_SYSCALL_PREFIX = re.compile(
    r"^(?:__x64_sys_|__ia32_sys_|__arm64_sys_|__se_sys_|__do_sys_|__sys_|ksys_|SyS_|SYSC_|__se_compat_sys_"
    r"|__do_compat_sys_|__x64_compat_sys_|__arm64_compat_sys_|compat_SyS_)"
)


def normalize_name(name: str) -> str:
    """The function name as titles use it: cut at the first ``.`` or ``+`` (``.isra.0``,
    ``.constprop.0``, ``.cold``), without syscall-wrapper prefixes."""
    name = re.split(r"[.+]", name, maxsplit=1)[0]
    stripped = _SYSCALL_PREFIX.sub("", name)
    return stripped or name


def skipped(name: str) -> bool:
    """Whether a frame of function ``name`` never names a crash (:data:`SKIP_PATTERNS`)."""
    return bool(_SKIP.match(re.split(r"[.+]", name, maxsplit=1)[0]))


# -- titles -------------------------------------------------------------------------------------

_NORMALIZE = (
    (re.compile(r"\b[0-9a-f]+\.[0-9a-f]+\b(?=\])"), "NUM"),
    (re.compile(r"\b(\w[\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+"), r"\1"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "ADDR"),
    (re.compile(r"\b[0-9a-f]{8,16}\b"), "ADDR"),
    (re.compile(r"(\b[\w./-]+\.[chS]):\d+(?::\d+)?"), r"\1:LINE"),
    (re.compile(r"CPU#\d+"), "CPU"),
    (re.compile(r"\b\d+\b"), "NUM"),
)


def normalize_title(text: str) -> str:
    """Addresses, numbers, line numbers and symbol offsets replaced as the field does
    (``ADDR``, ``NUM``, ``file.c:LINE``), whitespace squeezed, at most 120 characters."""
    for rx, rep in _NORMALIZE:
        text = rx.sub(rep, text)
    return " ".join(text.split())[:120]


class FrameView:
    """What title selection needs of a frame: function, whether reliable, stack number, and the
    label of its stack (the line before it: ``Call Trace:``, ``Allocated by task 1:``...)."""

    __slots__ = ("name", "reliable", "stack", "label", "context", "inline")

    def __init__(
        self, name: str, reliable: bool, stack: int, label: str, context: str | None, inline: bool = False
    ) -> None:
        self.name = name
        self.reliable = reliable
        self.stack = stack
        self.label = label.strip()
        self.context = context
        self.inline = inline


def _first(frames: Sequence[FrameView], extra: re.Pattern[str] | None = None) -> str | None:
    for f in frames:
        if not f.reliable:
            continue
        base = re.split(r"[.+]", f.name, maxsplit=1)[0]
        if _SKIP.match(base) or (extra is not None and extra.match(base)):
            continue
        return normalize_name(f.name)
    return None


def _stacks(frames: Sequence[FrameView]) -> list[list[FrameView]]:
    out: list[list[FrameView]] = []
    last = None
    for f in frames:
        if f.stack != last:
            out.append([])
            last = f.stack
        out[-1].append(f)
    return out


_SECONDARY_STACK = re.compile(
    r"(?:Allocated by|Freed by|allocated by|freed by|rcu freeing by|Last potentially|Second to last|Last call_rcu"
    r"|Uninit was|Local variable|Memory state|The buggy|page last|page_owner|Showing|kfence-#|INFO: (?:Alloc|Free))"
)


def guilty_frame(
    how: str,
    frames: Sequence[FrameView],
    ip: str | None,
    warn_at: str | None,
    lockdep_at: str | None,
) -> str | None:
    """The function that names the crash (see the module docstring), or None."""
    stacks = _stacks(frames)
    primary = [f for s in stacks if not _SECONDARY_STACK.match(s[0].label) for f in s]
    if how == "ip":
        if ip and not skipped(ip):
            return normalize_name(ip)
        return _first(primary)
    if how == "warn":
        for cand in (warn_at, ip):
            if cand and not skipped(cand):
                return normalize_name(cand)
        return _first(primary)
    if how == "lockdep":
        if lockdep_at and not skipped(lockdep_at):
            return normalize_name(lockdep_at)
        for s in stacks:  # the "-> #0" chain, else the backtrace
            if s[0].label.startswith("-> #0"):
                got = _first(s)
                if got:
                    return got
        tail = [
            f
            for s in stacks
            if s[0].label.startswith(("stack backtrace", "Call Trace", "Call trace"))
            for f in s
        ]
        return _first(tail) or _first(primary)
    if how == "hang":
        return _first(primary, _HANG_SKIP) or _first(primary)
    if how == "leak":
        return _first(frames)
    if how == "stall":
        # the task part of the stack (after the IRQ section) if any, the frame just above the
        # first dispatcher anchor; else the first frame that is not noise
        for s in stacks:
            task = [f for f in s if f.context not in ("IRQ", "SOFTIRQ", "NMI")]
            for k, f in enumerate(task):
                if f.reliable and _STALL_ANCHORS.match(re.split(r"[.+]", f.name, maxsplit=1)[0]):
                    above = _first(list(reversed(task[:k])))
                    if above:
                        return above
            if ip and not skipped(ip):
                return normalize_name(ip)
            got = _first(task)
            if got:
                return got
        return _first(primary)
    if how == "stack":
        if stacks:
            return _first(stacks[0]) or _first(primary)
        return None
    return None


def make_title(
    family: str,
    match: re.Match[str],
    fmt: str,
    guilty: str | None,
    access: str | None = None,
    lastfn: str | None = None,
) -> str:
    """The title of a report (before :func:`normalize_title`)."""
    groups = {k: (v or "") for k, v in match.groupdict().items()}
    if family == "kasan":
        groups["type"] = (
            groups.get("type", "").replace(" ", "-").replace("use-after-free-access", "use-after-free")
        )
        groups["type"] = {"out-of-bounds-access": "out-of-bounds", "use-after-free": "use-after-free"}.get(
            groups["type"], groups["type"]
        )
        groups["access"] = f"{access} " if access else ""
    if "lvl" in groups:
        groups["lvlname"] = "WARNING" if groups["lvl"].startswith("WARNING") else "BUG"
    if "trap" in groups:
        trap = groups["trap"].replace("divide_error", "divide error")
        groups["trapname"] = "stack segment fault" if trap == "stack segment" else trap
    if "rest" in groups:
        groups["rest"] = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", groups["rest"]).strip()
    if "reason" in groups:
        groups["reason"] = groups["reason"].strip()
    if groups.get("fn"):
        groups["fn"] = normalize_name(groups["fn"])
    if "msg" in groups:
        groups["msg"] = groups["msg"].strip()
    groups["lastfn"] = lastfn or "?"
    g = guilty
    if g is None:
        fmt = re.sub(r" in \{g\}$", "", fmt)
        if "{g}" in fmt:
            fmt = fmt.replace("{g}", "?")
    groups["g"] = g or ""
    try:
        return fmt.format(**groups)
    except (KeyError, IndexError, ValueError):
        return match.group(0)


def signature(title: str) -> str:
    """A short stable key of a normalised title (reports with one title are one crash)."""
    return hashlib.sha1(title.encode("utf-8", "surrogateescape")).hexdigest()[:16]

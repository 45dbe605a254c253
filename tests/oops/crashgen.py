# ruff: noqa: E501
"""Synthetic kernel console logs with ground truth, written from the kernel's printk formats
(see lkm.oops.families and docs/crash-families.md for the source file of each format).

``report(family, ...)`` gives the lines of one report and the title the field gives it;
``log(rng, ...)`` a whole console log: boot noise, user-space text that looks like a heading
(``WARNING: /etc/ssh/moduli does not exist``), dropped-message notes glued in front of
headings, optional printk caller ids with interleaved tasks, and its reports' titles.
Nothing here is taken from any other project's test data.
"""

from __future__ import annotations

import random
from collections.abc import Callable

FUNCS = [
    "ext4_fill_super", "tcp_sendmsg_locked", "nf_tables_newrule", "bpf_prog_load", "sock_sendmsg",
    "io_uring_setup", "blk_mq_submit_bio", "usb_hcd_submit_urb", "vfs_write", "ntfs_read_inode",
    "hfsplus_find_cat", "l2cap_chan_close", "nbd_ioctl", "fuse_dev_do_write", "xfrm_state_find",
    "btrfs_search_slot", "kvm_vcpu_ioctl", "snd_pcm_hw_params", "v4l2_ioctl", "gfs2_fill_super",
]  # fmt: skip
CALLERS = ["do_syscall_64", "__x64_sys_ioctl", "ksys_write", "__do_sys_sendmsg", "process_one_work"]

Lines = list[str]


def _frames(rng: random.Random, guilty: str, noise: Lines, depth: int = 5, mod: str = "") -> Lines:
    out = [f" {n}+0x{rng.randrange(16, 400):x}/0x{rng.randrange(400, 900):x}" for n in noise]
    out.append(f" {guilty}+0x{rng.randrange(16, 400):x}/0x{rng.randrange(400, 900):x}{mod}")
    for _ in range(depth):
        out.append(f" {rng.choice(FUNCS)}+0x{rng.randrange(16, 400):x}/0x{rng.randrange(400, 900):x}")
    out.append(f" {rng.choice(CALLERS)}+0x5d/0xb0")
    out.append(" entry_SYSCALL_64_after_hwframe+0x6e/0xd8")
    return out


def _cpu(rng: random.Random, release: str, comm: str = "syz-executor.0") -> Lines:
    pid = rng.randrange(100, 30000)
    return [
        f"CPU: {rng.randrange(2)} PID: {pid} Comm: {comm} Not tainted {release} #1",
        "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
    ]


def _regs(rng: random.Random, fn: str, arch: str) -> Lines:
    if arch == "arm64":
        return [
            "pstate: 80400005 (Nzcv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)",
            f"pc : {fn}+0x{rng.randrange(16, 200):x}/0x240",
            "lr : el1h_64_sync_handler+0x60/0xac",
            "sp : ffff80000a2bbb80",
            "x29: ffff80000a2bbb80 x28: ffff0000c1a8e000 x27: 0000000000000000",
            "x2 : 0000000000000000 x1 : 0000000000000000 x0 : 0000000000000000",
        ]
    return [
        f"RIP: 0010:{fn}+0x{rng.randrange(16, 200):x}/0x{rng.randrange(300, 600):x}",
        "Code: 48 89 df e8 4b 2c 00 00 48 8b 45 00 <48> 8b 40 08 48 85 c0 74 0a 48 89 ef ff d0 0f 1f 00",
        "RSP: 0018:ffffc90000a3fd28 EFLAGS: 00010246",
        "RAX: 0000000000000000 RBX: ffff888012345678 RCX: 0000000000000000",
        "RDX: 0000000000000000 RSI: 0000000000000000 RDI: 0000000000000000",
        "FS:  00007f0000000000(0000) GS:ffff88807ec00000(0000) knlGS:0000000000000000",
        "CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033",
    ]


def _trace(rng: random.Random, guilty: str, noise: Lines, arch: str, era: str) -> Lines:
    if arch == "arm64":
        return ["Call trace:", *[f.replace(" ", " ", 1) for f in _frames(rng, guilty, noise)[:-1]]]
    body = _frames(rng, guilty, noise)
    if era in ("4.x",):
        return ["Call Trace:", *[f" [<ffffffff8{rng.randrange(1 << 27):07x}>]{f}" for f in body]]
    if era == "5.x":
        return ["Call Trace:", *body]
    return ["Call Trace:", " <TASK>", *body, " </TASK>"]


def _end() -> str:
    return "---[ end trace 0000000000000000 ]---"


R = 66 * "="


def kasan(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    kind = rng.choice(["use-after-free", "slab-out-of-bounds", "global-out-of-bounds", "stack-out-of-bounds"])
    acc = rng.choice(["Read", "Write"])
    if era == "4.x":
        head = [R, f"BUG: KASAN: {kind} in {g}+0x670/0x690 at addr ffff88006a1b2c40",
                f"{acc} of size 8 by task syz-executor/1234"]  # fmt: skip
    else:
        if kind == "use-after-free" and era == "6.12":
            kind = "slab-use-after-free"
        head = [
            R,
            f"BUG: KASAN: {kind} in {g}+0x1a/0x90",
            f"{acc} of size 8 at addr ffff88801e2f3a40 by task syz/4242",
            "",
        ]
    noise = [
        "dump_stack_lvl+0x49/0x63",
        "print_report+0x171/0x4a8",
        "kasan_report+0xb1/0x140",
        f"? {g}+0x1a/0x90",
    ]
    lines = [*head, *_cpu(rng, "6.1.0"), *_trace(rng, g, noise, arch, era), "",
             "Allocated by task 1234:", " kasan_save_stack+0x1e/0x40", " __kasan_kmalloc+0x7a/0x90",
             f" {rng.choice(FUNCS)}+0x3b/0x80", "",
             "Freed by task 1234:", " kasan_save_stack+0x1e/0x40", " kfree+0x90/0x1a0",
             f" {rng.choice(FUNCS)}+0x3b/0x80", "",
             "The buggy address belongs to the object at ffff88801e2f3a00",
             " which belongs to the cache kmalloc-128 of size 128",
             "Memory state around the buggy address:",
             " ffff88801e2f3900: fa fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb",
             ">ffff88801e2f3a00: fa fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb",
             "                                           ^", R]  # fmt: skip
    return lines, f"KASAN: {kind} {acc} in {g}"


def kasan_free(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    word = (
        "double-free or invalid-free"
        if era in ("4.x", "5.x")
        else rng.choice(["double-free", "invalid-free"])
    )
    lines = [R, f"BUG: KASAN: {word} in kfree+0x90/0x1a0", "", *_cpu(rng, "5.10.0"),
             *_trace(rng, g, ["dump_stack+0x107/0x163", "print_address_description.constprop.0+0x1c/0x210",
                              "kasan_report_invalid_free+0x51/0x80", "kfree+0x90/0x1a0"], arch, era), R]  # fmt: skip
    return lines, f"KASAN: invalid-free in {g}"


def kfence(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = [R, f"BUG: KFENCE: use-after-free read in {g}+0x2c/0x80", "",
             "Use-after-free read at 0x00000000a1b2c3d4 (in kfence-#17):",
             f" {g}+0x2c/0x80", f" {rng.choice(FUNCS)}+0x11/0x40", " do_syscall_64+0x5d/0xb0", "",
             "kfence-#17: 0x00000000a1b2c3d4-0x00000000e5f60718, size=32, cache=kmalloc-32", "",
             "allocated by task 77 on cpu 1 at 12.345678s (0.100000s ago):", " __kmalloc+0x1a/0x40",
             f" {rng.choice(FUNCS)}+0x11/0x40", "", *_cpu(rng, "6.1.0")[:1], R]  # fmt: skip
    return lines, f"KFENCE: use-after-free read in {g}"


def kmsan(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    r53 = 53 * "="
    lines = [r53, f"BUG: KMSAN: uninit-value in {g}+0x2c/0x80", f" {g}+0x2c/0x80",
             f" {rng.choice(FUNCS)}+0x11/0x40", " do_syscall_64+0x5d/0xb0", "", "Uninit was created at:",
             " __kmalloc+0x1a/0x40", f" {rng.choice(FUNCS)}+0x11/0x40", "",
             *_cpu(rng, "6.1.0")[:1], r53]  # fmt: skip
    return lines, f"KMSAN: uninit-value in {g}"


def kcsan(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    h = rng.choice(FUNCS)
    a, b = sorted([g, h])
    lines = [R, f"BUG: KCSAN: data-race in {a} / {b}", "",
             "write to 0xffff888012345678 of 8 bytes by task 123 on cpu 0:", f" {a}+0x2c/0x80",
             " do_syscall_64+0x5d/0xb0", "", "read to 0xffff888012345678 of 8 bytes by task 456 on cpu 1:",
             f" {b}+0x11/0x40", " do_syscall_64+0x5d/0xb0", "", "value changed: 0x00000000 -> 0x00000001", "",
             "Reported by Kernel Concurrency Sanitizer on:", *_cpu(rng, "5.15.0")[:1], R]  # fmt: skip
    return lines, f"KCSAN: data-race in {a} / {b}"


def ubsan(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    kind = rng.choice(["shift-out-of-bounds", "array-index-out-of-bounds"])
    desc = "shift exponent 64 is too large for 64-bit type 'long unsigned int'"
    noise = [
        "dump_stack_lvl+0x49/0x63",
        "ubsan_epilogue+0x5/0x40",
        "__ubsan_handle_shift_out_of_bounds+0x1e7/0x208",
    ]
    if era == "4.x":
        body = [80 * "=", "UBSAN: Undefined behaviour in fs/x.c:12:3", desc, *_cpu(rng, "4.19.0"),
                *_trace(rng, g, noise, arch, era), 80 * "="]  # fmt: skip
        return body, f"UBSAN: undefined-behaviour in {g}"
    if era == "6.12":
        body = ["------------[ cut here ]------------", f"UBSAN: {kind} in fs/x.c:12:3", desc,
                *_cpu(rng, "6.12.0"), *_trace(rng, g, noise, arch, era), "---[ end trace ]---"]  # fmt: skip
    else:
        body = [80 * "=", f"UBSAN: {kind} in fs/x.c:12:3", desc, *_cpu(rng, "6.1.0"),
                *_trace(rng, g, noise, arch, era), 80 * "="]  # fmt: skip
    return body, f"UBSAN: {kind} in {g}"


def lockdep(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    title = "possible circular locking dependency detected"
    t = f"[ INFO: {title} ]" if era == "4.x" else f"WARNING: {title}"
    rule = "=" * len(t)
    lines = ["", rule, t, "6.1.0 #1 Not tainted", "-" * len(t), "syz-executor/1234 is trying to acquire lock:",
             f"ffff888012345678 (&mm->mmap_lock){{++++}}-{{3:3}}, at: {g}+0x1a/0x90", "",
             "but task is already holding lock:",
             "ffff888087654321 (&sb->s_type->i_mutex_key#12){+.+.}-{3:3}, at: inode_lock+0x1a/0x20", "",
             "which lock already depends on the new lock.", "", "",
             "the existing dependency chain (in reverse order) is:", "",
             "-> #1 (&sb->s_type->i_mutex_key#12){+.+.}-{3:3}:", "       down_write+0x3a/0x50",
             f"       {rng.choice(FUNCS)}+0x11/0x40", "",
             "-> #0 (&mm->mmap_lock){++++}-{3:3}:", "       __lock_acquire+0x1a5/0x520",
             "       lock_acquire+0xd3/0x2e0", f"       {g}+0x1a/0x90", "",
             "other info that might help us debug this:", "", " Possible unsafe locking scenario:", "",
             "       CPU0                    CPU1", "       ----                    ----",
             "  lock(&sb->s_type->i_mutex_key#12);", "                               lock(&mm->mmap_lock);",
             "  lock(&mm->mmap_lock);", "", " *** DEADLOCK ***", "",
             "1 lock held by syz-executor/1234:",
             " #0: ffff888087654321 (&sb->s_type->i_mutex_key#12){+.+.}-{3:3}, at: inode_lock+0x1a/0x20", "",
             "stack backtrace:", *_cpu(rng, "6.1.0"),
             *_trace(rng, g, ["dump_stack_lvl+0x49/0x63", "check_noncircular+0x25/0x30",
                              "__lock_acquire+0x1a5/0x520", "lock_acquire+0xd3/0x2e0"], arch, era)]  # fmt: skip
    return lines, f"possible deadlock in {g}"


def bad_unlock(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    t = "[ BUG: bad unlock balance detected! ]" if era == "4.x" else "WARNING: bad unlock balance detected!"
    lines = ["", "=" * len(t), t, "5.10.0 #1 Not tainted", "-" * len(t),
             "syz-executor/99 is trying to release lock (&lock) at:", f"[<ffffffff81234567>] {g}+0x1a/0x90",
             "but there are no more locks to release!", "", "other info that might help us debug this:",
             "no locks held by syz-executor/99.", "", "stack backtrace:", *_cpu(rng, "5.10.0"),
             *_trace(rng, g, ["dump_stack+0x107/0x163", "lock_release+0x3a/0x50", "_raw_spin_unlock+0x1a/0x30"], arch, era)]  # fmt: skip
    lvl = "BUG" if era == "4.x" else "WARNING"
    return lines, f"{lvl}: bad unlock balance in {g}"


def wait_context(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    t = "[ BUG: Invalid wait context ]"
    lines = ["", "=" * len(t), t, "6.1.0 #1 Not tainted", "-" * len(t), "swapper/0/1 is trying to lock:",
             f"ffff888012345678 (&lock){{+.+.}}-{{3:3}}, at: {g}+0x1a/0x90",
             "other info that might help us debug this:", "context-{4:4}", "no locks held by swapper/0/1.",
             "stack backtrace:", *_cpu(rng, "6.1.0"),
             *_trace(rng, g, ["dump_stack_lvl+0x49/0x63", "__lock_acquire+0x1a5/0x520", "mutex_lock_nested+0x1a/0x30"], arch, era)]  # fmt: skip
    return lines, f"BUG: Invalid wait context in {g}"


def slub(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = [77 * "=", "BUG kmalloc-64 (Not tainted): Object already free", 77 * "-", "",
             f"Allocated in {g}+0x1a/0x90 age=12 cpu=0 pid=1", "Slab 0xffffea0000123400 objects=32 used=30 fp=0x0000000000000000 flags=0x100000000000200(slab|node=0|zone=1)",
             "Object 0xffff888012345600 @offset=1536 fp=0x0000000000000000", "", *_cpu(rng, "6.1.0"),
             *_trace(rng, g, ["dump_stack_lvl+0x49/0x63", "free_debug_processing+0x1f0/0x2a0", "__slab_free+0x8c/0x3a0", "kfree+0x90/0x1a0"], arch, era),
             "FIX kmalloc-64: Object at 0xffff888012345600 not freed"]  # fmt: skip
    return lines, "BUG: Object already free"


def kmemleak(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = ["BUG: memory leak", "unreferenced object 0xffff888012345600 (size 32):",
             '  comm "syz-executor.0", pid 4242, jiffies 4294945173 (age 14.310s)', "  hex dump (first 32 bytes):",
             "    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................",
             "  backtrace:" if era != "6.12" else "  backtrace (crc 1a2b3c4d):",
             "    [<ffffffff81234567>] kmalloc_trace+0x26/0x60" if era != "6.12" else "    kmalloc_trace+0x26/0x60",
             f"    [<ffffffff81234567>] {g}+0x1a/0x90" if era != "6.12" else f"    {g}+0x1a/0x90",
             "    [<ffffffff81234567>] do_syscall_64+0x5d/0xb0" if era != "6.12" else "    do_syscall_64+0x5d/0xb0",
             ""]  # fmt: skip
    return lines, f"memory leak in {g}"


def hung(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = ["INFO: task syz-executor.3:4242 blocked for more than 143 seconds.",
             "      Not tainted 6.1.0 #1", '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
             "task:syz-executor.3 state:D stack:0     pid:4242  ppid:1      flags:0x00004004",
             "Call Trace:", " <TASK>", " __schedule+0x2e5/0x870", " schedule+0x5d/0xe0",
             " rwsem_down_write_slowpath+0x2a0/0x5a0", " down_write+0x3a/0x50", f" {g}+0x1a/0x90",
             " do_syscall_64+0x5d/0xb0", " entry_SYSCALL_64_after_hwframe+0x6e/0xd8", " </TASK>", "",
             "Showing all locks held in the system:", "1 lock held by khungtaskd/27:",
             " #0: ffffffff8b12c0a0 (rcu_read_lock){....}-{1:2}, at: debug_show_all_locks+0x53/0x1d0",
             "", "============================================="]  # fmt: skip
    return lines, f"INFO: task hung in {g}"


def soft_lockup(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    pre = "NMI watchdog: " if era == "4.x" else "watchdog: "
    lines = [f"{pre}BUG: soft lockup - CPU#0 stuck for {rng.randrange(22, 200)}s! [syz-executor.1:4242]",
             "Modules linked in:", *_cpu(rng, "6.1.0"), *_regs(rng, g, arch),
             "Call Trace:" if arch != "arm64" else "Call trace:", " <IRQ>", " __run_hrtimer+0x1a/0x90",
             " hrtimer_interrupt+0x11/0x40", " </IRQ>", " <TASK>", f" {g}+0x1a/0x90",
             " do_syscall_64+0x5d/0xb0", " entry_SYSCALL_64_after_hwframe+0x6e/0xd8", " </TASK>"]  # fmt: skip
    return lines, f"BUG: soft lockup in {g}"


def rcu_stall(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    pre = "" if era == "4.x" else "rcu: "
    lines = [f"{pre}INFO: rcu_preempt self-detected stall on CPU",
             f"{pre}\t0-....: (10500 ticks this GP) idle=6a4/1/0x4000000000000000 softirq=1/1 fqs=5000",
             "\t(t=10502 jiffies g=1234 q=56 ncpus=2)", "NMI backtrace for cpu 0", *_cpu(rng, "6.1.0"),
             *_regs(rng, g, arch), "Call Trace:", " <IRQ>", " rcu_sched_clock_irq+0x1a/0x90",
             " update_process_times+0x11/0x40", " </IRQ>", " <TASK>", f" {g}+0x1a/0x90",
             " do_syscall_64+0x5d/0xb0", " entry_SYSCALL_64_after_hwframe+0x6e/0xd8", " </TASK>"]  # fmt: skip
    return lines, f"INFO: rcu detected stall in {g}"


def null_deref(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    if arch == "arm64":
        head = ["Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
                "Mem abort info:", "  ESR = 0x0000000096000005", "  EC = 0x25: DABT (current EL), IL = 32 bits",
                "Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP"]  # fmt: skip
    elif era == "4.x":
        head = ["BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
                f"IP: {g}+0x1a/0x90", "PGD 0 P4D 0 ", "Oops: 0000 [#1] SMP KASAN"]  # fmt: skip
    else:
        head = ["BUG: kernel NULL pointer dereference, address: 0000000000000008",
                "#PF: supervisor read access in kernel mode", "#PF: error_code(0x0000) - not-present page",
                "PGD 0 P4D 0 ", ("Oops: " if era == "6.12" else "") + "Oops: 0000 [#1] PREEMPT SMP NOPTI"]  # fmt: skip
    lines = [*head, "Modules linked in:", *_cpu(rng, "6.1.0"), *_regs(rng, g, arch),
             *_trace(rng, rng.choice(FUNCS), [], arch, era), _end()]  # fmt: skip
    return lines, f"BUG: unable to handle kernel NULL pointer dereference in {g}"


def gpf(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    head = ("Oops: " if era == "6.12" else "") + (
        "general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN"
        if era != "4.x" else "general protection fault: 0000 [#1] SMP KASAN")  # fmt: skip
    lines = [head, "KASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]", "Modules linked in:",
             *_cpu(rng, "5.15.0"), *_regs(rng, g, "x86_64"), *_trace(rng, rng.choice(FUNCS), [], "x86_64", era),
             _end()]  # fmt: skip
    return lines, f"general protection fault in {g}"


def divide(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    word = "divide_error" if era == "5.x" else "divide error"
    lines = [f"{word}: 0000 [#1] PREEMPT SMP KASAN", *_cpu(rng, "5.10.0"), *_regs(rng, g, "x86_64"),
             *_trace(rng, rng.choice(FUNCS), [], "x86_64", era), _end()]  # fmt: skip
    return lines, f"divide error in {g}"


def kernel_bug(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    trap = (
        "Internal error: Oops - BUG: 00000000f2000800 [#1] PREEMPT SMP"
        if arch == "arm64"
        else "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"
    )
    lines = ["------------[ cut here ]------------", "kernel BUG at fs/ext4/inode.c:1234!", trap,
             "Modules linked in:", *_cpu(rng, "6.1.0"), *_regs(rng, g, arch),
             *_trace(rng, rng.choice(FUNCS), [], arch, era), _end()]  # fmt: skip
    return lines, f"kernel BUG in {g}"


def ext_abort(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = ["Internal error: synchronous external abort: 0000000096000210 [#1] PREEMPT SMP", "Modules linked in:",
             *_cpu(rng, "6.1.0"), *_regs(rng, g, "arm64"), *_trace(rng, rng.choice(FUNCS), [], "arm64", era),
             "Code: d65f03c0 d503233f a9be7bfd 910003fd (b9400000) ", _end()]  # fmt: skip
    return lines, f"Internal error in {g}"


def warning(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    at = f"WARNING: CPU: 1 PID: 4242 at fs/ext4/inode.c:1234 {g}+0x1a/0x90"
    msg = "ext4: something odd happened"
    if era == "4.x":
        core = ["------------[ cut here ]------------", at, msg]
    else:
        core = ["------------[ cut here ]------------", msg, at]
    lines = [*core, "Modules linked in: ext4 mbcache jbd2", *_cpu(rng, "6.1.0"), *_regs(rng, g, arch),
             *_trace(rng, rng.choice(FUNCS), [], arch, era), _end()]  # fmt: skip
    return lines, f"WARNING in {g}"


def refcount(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = ["------------[ cut here ]------------", "refcount_t: underflow; use-after-free.",
             "WARNING: CPU: 0 PID: 42 at lib/refcount.c:28 refcount_warn_saturate+0x1a/0x90",
             "Modules linked in:", *_cpu(rng, "6.1.0"), *_regs(rng, "refcount_warn_saturate", arch),
             *_trace(rng, g, ["__refcount_sub_and_test+0x1a/0x30"], arch, era), _end()]  # fmt: skip
    return lines, f"WARNING: refcount bug in {g}"


def sleeping(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = ["BUG: sleeping function called from invalid context at mm/slab.h:741",
             "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 4242, name: syz-executor.0",
             "preempt_count: 1, expected: 0", "RCU nest depth: 0, expected: 0", *_cpu(rng, "6.1.0"),
             *_trace(rng, g, ["dump_stack_lvl+0x49/0x63", "__might_resched+0x1a/0x90", "kmem_cache_alloc+0x1a/0x90"], arch, era)]  # fmt: skip
    return lines, f"BUG: sleeping function called from invalid context in {g}"


def stack_protector(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
    lines = [f"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {g}+0x1a/0x90",
             *_cpu(rng, "6.1.0"), *_trace(rng, "__stack_chk_fail", ["dump_stack_lvl+0x49/0x63", "panic+0x1a/0x300"], arch, era),
             "Kernel Offset: disabled", f"---[ end Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {g}+0x1a/0x90 ]---"]  # fmt: skip
    return lines, f"kernel panic: stack is corrupted in {g}"


Maker = Callable[[random.Random, str, str, str], tuple[Lines, str]]


def _simple(head: Lines, title: str, with_stack: bool = True) -> Maker:
    def make(rng: random.Random, g: str, era: str, arch: str) -> tuple[Lines, str]:
        body = [h.format(g=g) for h in head]
        if with_stack:
            body += [*_cpu(rng, "6.1.0"), *_trace(rng, g, ["dump_stack_lvl+0x49/0x63"], arch, era)]
        return body, title.format(g=g)

    return make


paging = _simple(
    [
        "BUG: unable to handle page fault for address: ffffc90000a3f000",
        "#PF: supervisor write access in kernel mode",
        "#PF: error_code(0x0002) - not-present page",
        "PGD 100000067 P4D 100000067 PUD 0 ",
        "Oops: 0002 [#1] PREEMPT SMP NOPTI",
        "Modules linked in:",
        "CPU: 0 PID: 1 Comm: syz Not tainted 6.1.0 #1",
        "RIP: 0010:{g}+0x1a/0x90",
        "Call Trace:",
        " <TASK>",
        " vfs_write+0x1a/0x90",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ],
    "BUG: unable to handle kernel paging request in {g}",
    False,
)
arm64_paging = _simple(
    [
        "Unable to handle kernel paging request at virtual address ffff800012345678",
        "Mem abort info:",
        "  ESR = 0x0000000096000007",
        "Internal error: Oops: 0000000096000007 [#1] PREEMPT SMP",
        "Modules linked in:",
        "CPU: 1 PID: 9 Comm: syz Not tainted 6.1.0 #1",
        "pc : {g}+0x1a/0x90",
        "lr : vfs_read+0x1a/0x90",
        "Call trace:",
        " {g}+0x1a/0x90",
        " vfs_read+0x1a/0x90",
        "Code: d65f03c0 d503233f a9be7bfd 910003fd (b9400000) ",
        "---[ end trace 0000000000000000 ]---",
    ],
    "BUG: unable to handle kernel paging request in {g}",
    False,
)
rcu_usage = _simple(
    [
        "",
        "=============================",
        "WARNING: suspicious RCU usage",
        "6.1.0 #1 Not tainted",
        "-----------------------------",
        "include/linux/rcupdate.h:737 rcu_read_lock() used illegally while idle!",
        "",
        "other info that might help us debug this:",
        "",
        "rcu_scheduler_active = 2, debug_locks = 1",
        "stack backtrace:",
    ],
    "WARNING: suspicious RCU usage in {g}",
)
hard_lockup = _simple(
    ["NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", "Modules linked in:",
     "CPU: 1 PID: 42 Comm: syz Not tainted 5.10.0 #1", "RIP: 0010:native_queued_spin_lock_slowpath+0x1a/0x90",
     "Call Trace:", " <TASK>", " _raw_spin_lock+0x1a/0x30", " {g}+0x1a/0x90", " do_syscall_64+0x5d/0xb0",
     " entry_SYSCALL_64_after_hwframe+0x6e/0xd8", " </TASK>"],
    "BUG: hard lockup in {g}", False,
)  # fmt: skip
wq_lockup = _simple(
    [
        "BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 34s!",
        "Showing busy workqueues and worker pools:",
        "workqueue events: flags=0x0",
    ],
    "BUG: workqueue lockup",
    False,
)
double_fault = _simple(
    [
        "PANIC: double fault, error_code: 0x0",
        "CPU: 0 PID: 1 Comm: syz Not tainted 6.1.0 #1",
        "RIP: 0010:{g}+0x1a/0x90",
        "Call Trace:",
        " <#DF>",
        " </#DF>",
        " <TASK>",
        " vfs_read+0x1/0x2",
        " </TASK>",
        "Kernel panic - not syncing: Machine halted.",
    ],
    "PANIC: double fault in {g}",
    False,
)
stack_guard = _simple(
    [
        "BUG: TASK stack guard page was hit at ffffc90000a3ff78 (stack is ffffc90000a40000..ffffc90000a48000)",
        "stack guard page: 0000 [#1] PREEMPT SMP KASAN",
        "CPU: 0 PID: 1 Comm: syz Not tainted 6.1.0 #1",
        "RIP: 0010:{g}+0x1a/0x90",
        "Call Trace:",
        " <TASK>",
        " vfs_read+0x1/0x2",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ],
    "BUG: stack guard page was hit in {g}",
    False,
)
sched_atomic = _simple(
    [
        "BUG: scheduling while atomic: syz-executor.2/4242/0x00000002",
        "1 lock held by syz-executor.2/4242:",
        "Modules linked in:",
    ],
    "BUG: scheduling while atomic in {g}",
)
preemptible = _simple(
    ["BUG: using smp_processor_id() in preemptible [00000000] code: syz/4242", "caller is {g}+0x1a/0x90"],
    "BUG: using smp_processor_id() in preemptible code in {g}",
)
spinlock = _simple(
    [
        "BUG: spinlock bad magic on CPU#0, syz/4242",
        " lock: 0xffff888012345678, .magic: 00000000, .owner: <none>/-1, .owner_cpu: 0",
    ],
    "BUG: spinlock bad magic in {g}",
)
bad_page = _simple(
    [
        "BUG: Bad page state in process syz  pfn:01234",
        "page:00000000a1b2c3d4 refcount:0 mapcount:1 mapping:0000000000000000 index:0x0 pfn:0x1234",
        "flags: 0x100000000000000(node=0|zone=1)",
        "page dumped because: nonzero mapcount",
        "Modules linked in:",
    ],
    "BUG: Bad page state in {g}",
)
netdev = _simple(
    ["unregister_netdevice: waiting for lo to become free. Usage count = 2"],
    "unregister_netdevice: waiting for DEV to become free",
    False,
)
busy_inodes = _simple(
    ["VFS: Busy inodes after unmount of sda1. Self-destruct in 5 seconds.  Have a nice day..."],
    "VFS: Busy inodes after unmount (use-after-free)",
    False,
)
invalid_opcode = _simple(
    [
        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
        "CPU: 0 PID: 1 Comm: syz Not tainted 6.1.0 #1",
        "RIP: 0010:{g}+0x1a/0x90",
        "Call Trace:",
        " <TASK>",
        " vfs_read+0x1/0x2",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ],
    "invalid opcode in {g}",
    False,
)
ubsan_trap = _simple(
    [
        "Internal error: UBSAN: array index out of bounds: 00000000f2005512 [#1] PREEMPT SMP",
        "Modules linked in:",
        "CPU: 1 PID: 9 Comm: syz Not tainted 6.1.0 #1",
        "pc : {g}+0x1a/0x90",
        "lr : vfs_read+0x1a/0x90",
        "Call trace:",
        " {g}+0x1a/0x90",
        " vfs_read+0x1a/0x90",
        "---[ end trace 0000000000000000 ]---",
    ],
    "UBSAN: array index out of bounds in {g}",
    False,
)

#: family name -> (maker, eras it exists in, arches)
MAKERS: dict[str, tuple[Maker, tuple[str, ...], tuple[str, ...]]] = {
    "kasan": (kasan, ("4.x", "5.x", "6.1", "6.12"), ("x86_64",)),
    "kasan_free": (kasan_free, ("5.x", "6.1", "6.12"), ("x86_64",)),
    "kfence": (kfence, ("6.1", "6.12"), ("x86_64", "arm64")),
    "kmsan": (kmsan, ("6.1", "6.12"), ("x86_64",)),
    "kcsan": (kcsan, ("5.x", "6.1", "6.12"), ("x86_64",)),
    "ubsan": (ubsan, ("4.x", "6.1", "6.12"), ("x86_64", "arm64")),
    "lockdep": (lockdep, ("4.x", "5.x", "6.1", "6.12"), ("x86_64", "arm64")),
    "bad_unlock": (bad_unlock, ("4.x", "5.x", "6.1"), ("x86_64",)),
    "wait_context": (wait_context, ("6.1", "6.12"), ("x86_64",)),
    "slub": (slub, ("6.1",), ("x86_64",)),
    "kmemleak": (kmemleak, ("5.x", "6.1", "6.12"), ("x86_64",)),
    "hung": (hung, ("5.x", "6.1", "6.12"), ("x86_64",)),
    "soft_lockup": (soft_lockup, ("4.x", "6.1", "6.12"), ("x86_64",)),
    "rcu_stall": (rcu_stall, ("4.x", "6.1", "6.12"), ("x86_64",)),
    "null_deref": (null_deref, ("4.x", "5.x", "6.1", "6.12"), ("x86_64", "arm64")),
    "gpf": (gpf, ("4.x", "5.x", "6.1", "6.12"), ("x86_64",)),
    "divide": (divide, ("5.x", "6.1"), ("x86_64",)),
    "kernel_bug": (kernel_bug, ("5.x", "6.1", "6.12"), ("x86_64", "arm64")),
    "ext_abort": (ext_abort, ("6.1",), ("arm64",)),
    "warning": (warning, ("4.x", "5.x", "6.1", "6.12"), ("x86_64", "arm64")),
    "refcount": (refcount, ("5.x", "6.1"), ("x86_64",)),
    "sleeping": (sleeping, ("5.x", "6.1", "6.12"), ("x86_64",)),
    "stack_protector": (stack_protector, ("6.1",), ("x86_64",)),
    "paging": (paging, ("6.1", "6.12"), ("x86_64",)),
    "arm64_paging": (arm64_paging, ("6.1", "6.12"), ("arm64",)),
    "rcu_usage": (rcu_usage, ("5.x", "6.1"), ("x86_64",)),
    "hard_lockup": (hard_lockup, ("5.x", "6.1"), ("x86_64",)),
    "wq_lockup": (wq_lockup, ("5.x", "6.1"), ("x86_64",)),
    "double_fault": (double_fault, ("6.1",), ("x86_64",)),
    "stack_guard": (stack_guard, ("6.1",), ("x86_64",)),
    "sched_atomic": (sched_atomic, ("5.x", "6.1"), ("x86_64",)),
    "preemptible": (preemptible, ("5.x", "6.1"), ("x86_64",)),
    "spinlock": (spinlock, ("5.x",), ("x86_64",)),
    "bad_page": (bad_page, ("6.1",), ("x86_64",)),
    "netdev_wait": (netdev, ("5.x", "6.1"), ("x86_64",)),
    "busy_inodes": (busy_inodes, ("4.x",), ("x86_64",)),
    "invalid_opcode": (invalid_opcode, ("6.1",), ("x86_64",)),
    "ubsan_trap": (ubsan_trap, ("6.1",), ("arm64",)),
}

NOISE = [
    "systemd[1]: Started Journal Service.",
    "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
    "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex",
    "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
    'audit: type=1400 audit(1700000000.123:42): apparmor="STATUS" operation="profile_load"',
    "random: crng init done",
    "WARNING: The following packages cannot be authenticated!",
    "BUG_ON is not a heading",
]


def report(
    rng: random.Random,
    family: str,
    guilty: str | None = None,
    era: str | None = None,
    arch: str | None = None,
) -> tuple[Lines, str]:
    """The lines (without prefixes) of one report of ``family`` and its expected title."""
    maker, eras, arches = MAKERS[family]
    return maker(rng, guilty or rng.choice(FUNCS), era or rng.choice(eras), arch or rng.choice(arches))


def log(
    rng: random.Random, n_reports: int = 1, *, callers: bool = False, interleave: bool = False,
    families: list[str] | None = None, glue: bool = True, panic_tail: bool = True,
    garbage: bool = False,
) -> tuple[str, list[str]]:  # fmt: skip
    """A console log holding ``n_reports`` reports and noise; and the expected titles in order
    of their headings.  ``interleave`` (needs ``callers``) mixes a second task's noise lines
    into each report, as two CPUs printing at once do.  ``garbage`` puts serial-line garbage
    between reports: lines of random bytes (not UTF-8; the text carries them as surrogate
    escapes, so write it with ``encode("utf-8", "surrogateescape")``) and half lines."""
    fams = families or list(MAKERS)
    t = rng.uniform(1, 100)
    out: list[str] = []
    titles: list[str] = []

    def emit(text: str, caller: str) -> None:
        nonlocal t
        t += rng.uniform(0, 0.01)
        stamp = f"[{t:12.6f}]"
        out.append(f"{stamp}[{caller:>6}] {text}" if callers else f"{stamp} {text}")

    def junk() -> None:
        if garbage and rng.random() < 0.5:
            raw = bytes(b for b in rng.randbytes(rng.randrange(1, 120)) if b not in b"\r\n")
            if rng.random() < 0.5:  # a line cut short: the start of a timestamp, no text
                raw = f"[{t:12.6f}"[: rng.randrange(1, 10)].encode() + raw[:4]
            out.append(raw.decode("utf-8", "surrogateescape"))

    for _ in range(rng.randrange(3, 8)):
        emit(rng.choice(NOISE), f"T{rng.randrange(1, 99)}")
    junk()
    for _ in range(n_reports):
        lines, title = report(rng, rng.choice(fams))
        titles.append(title)
        me = f"T{rng.randrange(100, 9999)}"
        other = f"T{rng.randrange(10000, 20000)}"
        first = True
        for ln in lines:
            if (
                first
                and glue
                and rng.random() < 0.2
                and ln
                and not ln.startswith("=")
                and not ln.startswith("-")
            ):
                t += 0.001
                cid = f"[{me:>6}]" if callers else ""
                out.append(f"** {rng.randrange(1, 50)} printk messages dropped ** [{t:12.6f}]{cid} {ln}")
                first = False
                continue
            first = first and not ln
            emit(ln, me)
            if interleave and callers and rng.random() < 0.2:
                emit(rng.choice(NOISE[:1] + NOISE[2:6]), other)
        report_end = len(out)
        for _ in range(rng.randrange(1, 5)):
            emit(rng.choice(NOISE), f"T{rng.randrange(1, 99)}")
        junk()
    if panic_tail and titles and rng.random() < 0.5:  # panic_on_warn / oops=panic: the end of the log
        last = titles[-1]
        why = "KASAN: panic_on_warn set ..." if last.startswith("KASAN") else "Fatal exception"
        if last.startswith(("KASAN", "WARNING", "KFENCE", "UBSAN", "KCSAN")):
            why = last.split(":")[0].split(" ")[0] + ": panic_on_warn set ..."
        if last.startswith("kernel panic") or last.startswith(("INFO", "BUG: soft", "memory leak")):
            return "\n".join(out) + "\n", titles
        del out[report_end:]
        emit("Disabling lock debugging due to kernel taint", me)
        emit(f"Kernel panic - not syncing: {why}", me)
        for ln in [*_cpu(rng, "6.1.0"), *_trace(rng, "panic", ["dump_stack_lvl+0x49/0x63"], "x86_64", "6.1")]:
            emit(ln, me)
        emit("Kernel Offset: disabled", me)
        emit(f"---[ end Kernel panic - not syncing: {why} ]---", me)
    return "\n".join(out) + "\n", titles

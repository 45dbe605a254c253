# ruff: noqa: E501
"""Report families, titles and guilty frames against reports built from the kernel's printk
formats (tests/oops/crashgen.py: each report with the title the field gives it), the bugs of
issue 17 one by one, and hypothesis over generated and interleaved logs."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.oops.families import FAMILIES as FAMILY_TABLE
from lkm.oops.report import parse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crashgen

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"
CASES = [
    (fam, era, arch) for fam, (_m, eras, arches) in crashgen.MAKERS.items() for era in eras for arch in arches
]


def _stamp(lines: list[str], caller: str | None = None) -> str:
    cid = f"[{caller:>6}]" if caller else ""
    return "".join(f"[{100 + i * 0.001:12.6f}]{cid} {ln}\n" for i, ln in enumerate(lines))


def _frames_outside(log) -> list[str]:  # type: ignore[no-untyped-def]
    return [ln.text for ln in log.lines if ln.kind == "frame" and ln.report is None]


@pytest.mark.parametrize(("family", "era", "arch"), CASES, ids=lambda v: str(v))
def test_family(family: str, era: str, arch: str) -> None:
    rng = random.Random(hash((family, era, arch)) & 0xFFFF)
    lines, title = crashgen.report(rng, family, era=era, arch=arch)
    text = _stamp(lines)
    log = parse(text)
    assert log.text() == text
    assert [r.title for r in log.reports] == [title]
    assert _frames_outside(log) == []
    (r,) = log.reports
    assert not r.corrupted and r.signature
    assert r.guilty or "{g}" not in next(f[2] for f in FAMILY_TABLE if f[0] == r.family and r.title.startswith(f[2][:4]))


# -- the bugs of issue 17 -------------------------------------------------------------------------


def test_warning_heading_sets_warn_at() -> None:
    log = parse((DATA / "vm-6.1-warn.txt").read_text())
    (r,) = log.reports
    warn = r.facts["warn_at"]
    assert isinstance(warn, dict) and warn["symbol"] == "oopsmod_do_warn.constprop.0.isra.0"
    head = next(ln for ln in log.lines if ln.kind == "warning")
    assert head.fields["where"] == "oopsmod.c" and head.fields["line"] == 44
    assert r.title == "WARNING in oopsmod_do_warn"


def test_truncated_code_byte_decodes() -> None:
    from lkm.oops.inputs import Inputs, decode_text

    text = (DATA / "vm-6.1-gpf.txt").read_text()
    lines = text.splitlines(True)
    i = next(n for n, ln in enumerate(lines) if "Code: " in ln)
    lines[i] = lines[i].rstrip("\n")[:-1] + "\n"  # "... 72 f0" -> "... 72 f"
    cut = "".join(lines)
    for fmt in ("ksymoops", "decode-stacktrace", "json"):
        out, _notes = decode_text(cut, Inputs(), fmt)
        assert out
    code = parse(cut).reports[0].facts["code"]
    assert isinstance(code, dict) and code.get("truncated") is True and code["marker"] is not None


def test_user_space_warning_is_not_a_report() -> None:
    text = _stamp(["WARNING: /etc/ssh/moduli does not exist, using fixed modulus", "WARNING: no swap", "ok"])
    assert parse(text).reports == []


def test_lockdep_keeps_stack_backtrace() -> None:
    lines, _t = crashgen.report(random.Random(1), "lockdep", era="6.1", arch="x86_64")
    log = parse(_stamp(lines))
    (r,) = log.reports
    assert r.lines[-1] == len(log.lines) - 1  # through the last frame of "stack backtrace:"
    assert r.title.startswith("possible deadlock in ")


def test_panic_after_kasan_rule_belongs_to_it() -> None:
    lines, title = crashgen.report(random.Random(2), "kasan", era="6.1", arch="x86_64")
    tail = ["Disabling lock debugging due to kernel taint", "Kernel panic - not syncing: KASAN: panic_on_warn set ...",
            "CPU: 0 PID: 1 Comm: syz Not tainted 6.1.0 #1", "Call Trace:", " <TASK>", " dump_stack_lvl+0x49/0x63",
            " panic+0x1a/0x300", " end_report+0x1a/0x90", " </TASK>", "Kernel Offset: disabled",
            "---[ end Kernel panic - not syncing: KASAN: panic_on_warn set ... ]---"]  # fmt: skip
    log = parse(_stamp(lines + tail))
    assert [r.title for r in log.reports] == [title]
    assert _frames_outside(log) == [] and log.reports[0].lines[-1] == len(log.lines) - 1


@pytest.mark.parametrize("prefix", ["watchdog: ", "NMI watchdog: "])
def test_soft_lockup_prefixes(prefix: str) -> None:
    text = _stamp([f"{prefix}BUG: soft lockup - CPU#0 stuck for 134s! [syz:42]", "Modules linked in:",
                   "CPU: 0 PID: 42 Comm: syz Not tainted 5.4.0 #1", "RIP: 0010:spin_loop+0x1a/0x90",
                   "Call Trace:", " foo_ioctl+0x1a/0x90", " do_syscall_64+0x5d/0xb0"])  # fmt: skip
    (r,) = parse(text).reports
    assert r.family == "soft_lockup" and r.title == "BUG: soft lockup in foo_ioctl"


def test_dropped_messages_and_garbage_before_heading() -> None:
    text = (
        "** 12 printk messages dropped ** [  100.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
        "[  100.000100] Oops: 0000 [#1] PREEMPT SMP\n[  100.000200] RIP: 0010:foo_read+0x1a/0x90\n"
        "[  100.000300] Call Trace:\n[  100.000400]  vfs_read+0x1/0x2\n"
        "syzkaller login: [  101.000000] general protection fault: 0000 [#2] SMP\n"
        "[  101.000100] RIP: 0010:bar_write+0x1a/0x90\n[  101.000200] Call Trace:\n[  101.000300]  vfs_write+0x1/0x2\n"
    )  # fmt: skip
    log = parse(text)
    assert log.text() == text
    assert [r.title for r in log.reports] == [
        "BUG: unable to handle kernel NULL pointer dereference in foo_read",
        "general protection fault in bar_write",
    ]
    assert log.lines[0].fields["glued"] == "** 12 printk messages dropped ** "


def test_caller_ids_separate_interleaved_tasks() -> None:
    rng = random.Random(3)
    a, ta = crashgen.report(rng, "warning", guilty="ext4_fill_super", era="6.1", arch="x86_64")
    b, tb = crashgen.report(rng, "gpf", guilty="tcp_sendmsg_locked", era="6.1", arch="x86_64")
    text = ""
    t = 100.0
    for i in range(max(len(a), len(b))):  # line by line, as two CPUs print at once
        for caller, lines in (("T6792", a), ("T81", b)):
            if i < len(lines):
                t += 0.0001
                text += f"[{t:12.6f}][{caller:>6}] {lines[i]}\n"
    log = parse(text)
    assert sorted(r.title for r in log.reports) == sorted([ta, tb])
    assert _frames_outside(log) == [] and not any(r.corrupted for r in log.reports)


def test_stall_takes_other_cpus_nmi_backtraces() -> None:
    text = (
        "[  50.000000][    C0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
        "[  50.000001][    C0] rcu: \t1-....: (10500 ticks this GP) idle=6a4/1/0x4000000000000000\n"
        "[  50.000002][    C0] \t(detected by 0, t=10502 jiffies, g=1234, q=56 ncpus=2)\n"
        "[  50.000003][    C0] Sending NMI from CPU 0 to CPUs 1:\n"
        "[  50.000004][    C1] NMI backtrace for cpu 1\n"
        "[  50.000005][    C1] CPU: 1 PID: 77 Comm: syz Not tainted 6.1.0 #1\n"
        "[  50.000006][    C1] RIP: 0010:loop_forever+0x1a/0x90\n"
        "[  50.000007][    C1] Call Trace:\n"
        "[  50.000008][    C1]  <TASK>\n"
        "[  50.000009][    C1]  loop_forever+0x1a/0x90\n"
        "[  50.000010][    C1]  do_syscall_64+0x5d/0xb0\n"
        "[  50.000011][    C1]  </TASK>\n"
    )
    log = parse(text)
    (r,) = log.reports
    assert r.title == "INFO: rcu detected stall in loop_forever" and _frames_outside(log) == []


def test_symbolised_frames() -> None:
    text = _stamp([
        "BUG: KASAN: use-after-free in vfs_read+0x2d4/0x448 fs/read_write.c:470",
        "Read of size 8 at addr ffff88801e2f3a40 by task syz/4242", "", "Call Trace:",
        " __dump_stack lib/dump_stack.c:88 [inline]", " dump_stack_lvl+0xd9/0x1b0 lib/dump_stack.c:106",
        " call_read_iter include/linux/fs.h:2193 [inline]", " vfs_read+0x2d4/0x448 fs/read_write.c:470",
        "pc : f+0x18/0xb8 mm/x.c:20", " g+0x12/0x40 (fs/x.c:12 include/linux/y.h:3)",
        " h (fs/z.c:9 (discriminator 2))",
    ])  # fmt: skip
    log = parse(text)
    assert log.text() == text
    frames = {f.symbol: f for f in log.reports[0].frames}
    assert frames["__dump_stack"].inline and frames["__dump_stack"].source == "lib/dump_stack.c:88"
    assert frames["vfs_read"].source == "fs/read_write.c:470" and frames["vfs_read"].offset == 0x2D4
    assert frames["g"].source == "fs/x.c:12 include/linux/y.h:3" and frames["g"].size == 0x40
    assert frames["h"].offset is None and "fs/z.c:9" in str(frames["h"].source)
    ip = log.reports[0].facts["ip"]
    assert isinstance(ip, dict) and ip["source"] == "mm/x.c:20"
    assert log.reports[0].title == "KASAN: use-after-free Read in call_read_iter"


def test_guilty_skips_helpers() -> None:
    from lkm.oops.families import skipped

    for name in ("dump_stack_lvl", "__warn", "refcount_warn_saturate", "memcpy", "strncpy", "kasan_report",
                 "__asan_load8", "_raw_spin_lock_irqsave", "mutex_lock_nested", "kmem_cache_alloc",
                 "__ubsan_handle_out_of_bounds", "kmsan_internal_check", "__pfx_vfs_read", "do_syscall_64"):  # fmt: skip
        assert skipped(name), name
    for name in ("vfs_read", "ext4_fill_super", "kasanmod_oob", "tcp_sendmsg_locked", "stream_open"):
        assert not skipped(name), name


# -- generated and interleaved logs ---------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.booleans(), st.booleans())
def test_generated_logs(seed: int, n: int, callers: bool, interleave: bool) -> None:
    text, titles = crashgen.log(random.Random(seed), n, callers=callers, interleave=interleave and callers)
    log = parse(text)
    assert log.text() == text
    assert _frames_outside(log) == []
    assert [r.title for r in log.reports] == titles


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2000), max_size=6), st.binary(max_size=40))
def test_damaged_logs(seed: int, cuts: list[int], junk: bytes) -> None:
    """Logs with lines dropped and bytes spliced in: never an exception, round trip exact."""
    text, _titles = crashgen.log(random.Random(seed), 3, callers=seed % 2 == 0, interleave=True)
    lines = text.splitlines(True)
    for c in cuts:
        if lines:
            del lines[c % len(lines)]
    raw = "".join(lines).encode() + junk
    log = parse(raw)
    assert log.text().encode("utf-8", "surrogateescape") == raw
    for r in log.reports:
        assert r.title and r.signature

"""Oops report parser: every line of a kernel log classified, reports found among them.

A log is split into :class:`Line` records.  Each keeps its text exactly: ``prefix`` (syslog /
journal header, ``<N>`` level, dmesg ``[ time]`` and printk caller id, as present) + ``text``
+ ``eol`` is the line as read, so :meth:`Log.text` gives the input back byte for byte.  The
text is classified by the first pattern of :data:`LINE_KINDS` that matches it all, and the
pattern's named groups become the line's ``fields`` (plain str/int/list/dict values, so a
parsed log is JSON-able through :meth:`Log.asdict`).

Lines are grouped into :class:`Report` records: a report starts at a heading (``cut here``,
``BUG:``, ``WARNING:``, ``Oops``/trap lines, ``Kernel panic``, a KASAN rule, 2.4's
``Unable to handle kernel ...``) unless the report being read has not reached its body yet
(so "BUG: unable to handle page fault" + "#PF:" + "Oops:" is one report), and ends at
``---[ end trace ]---`` (the register dump and panic lines printed right after it still
belong to it), at 2.4's ``Code:`` line, or after a run of lines it cannot use.  Lines of other
messages printed in the middle of a report stay in it, classified ``other``.

The formats are those of lib/dump_stack.c, arch/x86/kernel/dumpstack.c + process_64.c,
arch/x86/mm/fault.c, arch/arm64/kernel/traps.c + process.c, kernel/panic.c (6.1 and 6.12),
mm/kasan/report.c, and 2.4's arch/i386/kernel/traps.c as ksymoops read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lkm.oops import families as F
from lkm.oops.families import (
    CLOSING_PANICS,
    GAP,
    RULE_FRAMED,
    SANITIZERS,
    STALLS,
    STANDALONE_PANICS,
    heading_family,
)
from lkm.record import Fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

__all__ = [
    "BODY",
    "HEADINGS",
    "JSON",
    "LINE_KINDS",
    "LINE_MAX",
    "STARTS",
    "SYMBOL",
    "TAIL",
    "TAIL_GAP",
    "USEFUL_GAP",
    "Frame",
    "Line",
    "Log",
    "Report",
    "classify",
    "parse",
    "parse_code",
    "parse_line",
    "parse_modules",
    "parse_registers",
    "split_prefix",
    "symbolised_addresses",
]

JSON = object  # the values in ``fields``: str, int, bool, None, list and dict of those

_HEX = r"[0-9a-fA-F]"
# "%pS"/"%pB" as lib/vsprintf.c prints them: name+0xoff/0xsize, then " [module]" or, with
# CONFIG_STACKTRACE_BUILD_ID ("%pSb"), " [module build-id]".
SYMBOL = (
    r"(?P<symbol>[^\s+\[\]()<>]+)\+0x(?P<offset>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?: \[(?P<module>[^\s\]]+)(?: (?P<build_id>[0-9a-f]+))?\])?"
)
_TRAPS = (
    r"Oops(?: - [\w ]+)?|general protection fault|invalid opcode|divide error|overflow|bounds"
    r"|stack segment|segment not present|invalid TSS|alignment check|double fault|int3"
    r"|coprocessor segment overrun|SIMD coprocessor error|kernel stack overflow|Kernel stack overflow"
    r"|divide_error|segment-related general protection fault|Split lock detected|stack guard page"
    r"|Bad pagetable|SP/PC alignment exception"
)
_LOCKDEP_WARNINGS = (
    r"possible circular locking dependency detected|possible recursive locking detected"
    r"|inconsistent lock state|possible irq lock inversion dependency detected"
    r"|\w+-safe -> \w+-unsafe lock order detected|bad unlock balance detected!|held lock freed!"
    r"|\S+ still has locks held!|lock held when returning to user space!|Nested lock was not taken"
    r"|bad contention detected!|chain_key collision|suspicious RCU usage\.?"
)
# Headings of report families that are not BUG:/WARNING:/trap lines (see lkm.oops.families).
_HEADINGS = (
    r"(?:INFO: task (?P<task>.*):(?P<pid>\d+) (?:blocked for more than|blocked in I/O wait for more than"
    r"|can't die for more than) \d+ seconds\.\s*"
    r"|(?:rcu: )?INFO: (?P<rcu>rcu_\w+) (?:detected stalls on CPUs/tasks:|self-detected stall on CPU"
    r"|detected expedited stalls on CPUs/tasks:|detected stalls on tasks:).*"
    r"|INFO: trying to register non-static key\.\s*|INFO: suspicious RCU usage\.?\s*"
    r"|UBSA[Nn]: .*"
    r"|(?:kmemleak: )?unreferenced object 0x(?P<object>[0-9a-f]+) \(size (?P<size>\d+)\):\s*"
    r"|(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+).*"
    r"|PANIC: double fault.*"
    r"|unregister_netdevice: waiting for (?P<device>\S+) to become free\. Usage count = -?\d+\s*"
    r"|VFS: Busy inodes after unmount of .*"
    r"|(?:Unhandled fault|Synchronous External Abort): .* at 0x[0-9a-f]+\s*"
    r"|SError Interrupt on CPU\d+.*|Insufficient stack space to handle exception!\s*)"
)
_REG = rf"(?:[A-Za-z][A-Za-z0-9_]{{0,7}} ?: *(?:{_HEX}{{4}}:)?{_HEX}{{4,16}}(?:\({_HEX}{{4}}\))?)"

#: (kind, pattern matching the whole text after the prefix), first match wins.
LINE_KINDS: tuple[tuple[str, str], ...] = (
    ("blank", r"\s*"),
    ("cut_here", r"-+\[ cut here \]-+\s*"),
    ("end_trace", r"-+\[ end (?P<what>.*?) \]-+\s*"),
    ("separator", r"={20,}\s*"),
    ("bug", rf"BUG: kernel NULL pointer dereference, address: (?P<address>{_HEX}+)\s*"),
    (
        "bug",
        rf"BUG: unable to handle (?:page fault for address|kernel paging request at) (?P<address>{_HEX}+)\s*",
    ),
    ("bug", rf"BUG: KASAN: (?P<kasan>[\w-]+) in {SYMBOL}\s*"),
    ("bug", rf"BUG: KAS[Aa][Nn]: (?P<kasan>[\w -]+?) in {SYMBOL} at addr (?P<address>{_HEX}+)\s*"),
    ("bug", r"[Kk]ernel BUG at (?P<file>[^:\s]+):(?P<line>\d+)!\s*"),
    (
        "bug",
        r"(?:(?:NMI )?watchdog: )?BUG: soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<seconds>\d+)s!"
        r"(?: \[(?P<comm>.*):(?P<pid>\d+)\])?\s*",
    ),
    ("bug", r"(?:(?:NMI )?watchdog: )?BUG: (?P<message>.*)"),
    ("bug", r"BUG (?P<cache>[^\s():]+) \((?P<taint>[^()]*)\): (?P<message>.*)"),
    ("bug", r"Kernel BUG at (?P<message>.*) \[verbose debug info unavailable\]\s*"),
    (
        "bug",
        r"Unable to handle kernel (?P<message>NULL pointer dereference|paging request|\w[\w ]*?)"
        rf" at virtual address (?P<address>{_HEX}+)\s*",
    ),
    (
        "kasan_access",
        rf"(?P<access>Read|Write) of size (?P<size>\d+) at addr (?P<address>{_HEX}+) by task (?P<task>.*)",
    ),
    (
        "kasan_info",
        r"(?:(?:Allocated|Freed) by task \d+(?: on cpu \d+ at [\d.]+s)?:"
        r"|Last potentially related work creation:|Second to last potentially related work creation:"
        r"|The buggy address .*|Memory state around the buggy address:"
        r"|Disabling lock debugging due to kernel taint|page: ?.*|flags: .*|raw: .*|head: .*"
        r"|page dumped because: .*|addr \S+ is located in stack of task .*"
        r"|\s*>?[0-9a-f]{16}: (?:[0-9a-f]{2}[ >]?)+\s*|\s+\^\s*| which belongs to the cache .*"
        r"| (?:freed )?\d+-byte region \[.*)",
    ),
    ("pf", r"#PF: (?P<message>.*)"),
    ("pgd", rf"(?:PGD {_HEX}+ .*|PGD 0\s*|\*pde = (?P<pde>{_HEX}+).*|\*pte = {_HEX}+\s*)"),
    ("oops_flags", r"(?:(?:PREEMPT|SMP|DEBUG_PAGEALLOC|KASAN|PTI|NOPTI|PREEMPT_RT|THUMB2|ARM) ?)+\s*"),
    (
        "fault_info",
        r"(?:Mem abort info:|Data abort info:|  (?:ESR|EC|SET|FnV|EA|S1PTW|FSC|ISV|ISS|ISS2|CM|WnR|TnD"
        r"|TagAccess|GCS|Overlay|DirtyBit|Xs|LST) = .*|(?:user|swapper) pgtable: .*|\[[0-9a-f]+\] pgd=.*)",
    ),
    (
        "oops",
        rf"(?P<internal>Internal error: )?(?:Oops: )?(?P<trap>{_TRAPS})(?:,? (?P<detail>[^:]*?))?: "
        r"(?P<code>[0-9a-f]{4,16})(?: \[#(?P<count>\d+)\])?(?P<flags>(?: [A-Z][A-Z0-9_]*)*)\s*",
    ),
    (
        "oops",
        r"(?P<internal>Internal error: )(?P<trap>(?:UBSAN: )?[^:]*): (?P<code>[0-9a-f]{1,16})"
        r"(?: \[#(?P<count>\d+)\])?(?P<flags>(?: [A-Z][A-Z0-9_]*)*)\s*",
    ),
    (
        "warning",
        r"WARNING: CPU: (?P<cpu>\d+) PID: (?P<pid>\d+) at (?:(?P<where>[^\s:]+):(?P<line>\d+)(?: |$))?"
        rf"(?:{SYMBOL}|0x(?P<raw>[0-9a-f]+))?(?P<rest>.*)",
    ),
    ("warning", rf"WARNING: at (?:(?P<where>[^\s:]+):(?P<line>\d+))?(?: ?{SYMBOL})?(?P<rest>.*)"),
    ("warning", r"WARNING: (?P<where>[^\s:]+):(?P<line>\d+) at (?P<rest>.*)"),
    ("warning", rf"WARNING: (?P<lockdep>{_LOCKDEP_WARNINGS})\s*"),
    ("warning", r"WARNING: kernel stack (?:regs|frame pointer) at .*"),
    ("heading", r"\[ (?:INFO|BUG): (?P<lockdep>.*?) \]\s*"),
    ("heading", _HEADINGS),
    ("panic", r"Kernel panic - not syncing: (?P<message>.*)"),
    (
        "kernel_offset",
        r"Kernel Offset: (?:0x(?P<offset>[0-9a-f]+) from 0x(?P<base>[0-9a-f]+)"
        r"(?: \(relocation range: (?P<range>[^)]*)\))?|(?P<disabled>disabled))\s*",
    ),
    ("modules", r"Modules linked in:(?P<list>.*)"),
    (
        "cpu",
        r"CPU: (?P<cpu>\d+) (?:UID: (?P<uid>\d+) )?PID: (?P<pid>\d+) Comm: (?P<comm>.{1,16}?) "
        r"(?P<taint>Not tainted|Tainted: (?P<taint_flags>[A-Z ]*?)) +(?P<release>\d\S*)"
        r"(?: (?P<version>.*?))?\s*",
    ),
    ("cpu", r"CPU:\s+(?P<cpu>\d+)\s*"),
    ("tainted", r"Tainted: (?P<list>\[\w\]=\w+(?:, \[\w\]=\w+)*)\s*"),
    ("hardware", r"Hardware name: (?P<name>.*)"),
    ("workqueue", r"Workqueue: (?P<name>.*)"),
    (
        "ip",
        r"(?P<reg>RIP|EIP):\s*(?P<cs>[0-9a-f]{4}):(?:\[<(?P<address>[0-9a-f]+)>\]\s*(?:\[<[0-9a-f]+>\] )?)?"
        rf"(?:{SYMBOL}|0x(?P<raw>[0-9a-f]+))?(?P<rest>.*)",
    ),
    ("ip", rf"(?P<reg>EIP|RIP|PC|LR) is at {SYMBOL}\s*"),
    (
        "ip",
        rf"(?P<reg>pc|lr) : (?:{SYMBOL}(?: (?P<source>[^\s()]+:\d+))?|0x(?P<raw>[0-9a-f]+)"
        r"|(?P<address>[0-9a-f]{8,16}))\s*",
    ),
    ("ip", rf"(?P<reg>IP): *(?:\[<(?P<address>{_HEX}+)>\] *)?(?:{SYMBOL}|\(null\)|0x(?P<raw>[0-9a-f]+))\s*"),
    ("pstate", rf"pstate: (?P<value>{_HEX}+) .*"),
    ("regs", rf"\s*{_REG}(?:\s+{_REG})*\s*"),
    ("regs", rf"EFLAGS: {_HEX}+\s+\((?P<release>\S+) #.*\)\s*"),
    ("code", r"Code: ?(?P<bytes>.*)"),
    ("call_trace", r"Call [Tt]race:(?P<inline>.*)"),
    ("call_trace", r"(?:stack backtrace:|\s*backtrace(?: \(crc [0-9a-f]+\))?:)\s*"),
    ("nmi", r"NMI backtrace for cpu (?P<cpu>\d+)(?P<rest>.*)"),
    (
        "lockdep",
        r"(?:-> #\d+ .*|\s*#\d+: .*|\d+ locks? held by .*|no locks held by .*|\S+/\d+ is trying to .*"
        r"|but task is already holding lock:|which lock already depends on the new lock\.\s*"
        r"|the existing dependency chain \(in reverse order\) is:|other info that might help us debug this:"
        r"|Chain exists of:|\s*Possible unsafe locking scenario:|\s*\*\*\* DEADLOCK \*\*\*\s*"
        r"|\s+CPU0\s+(?:CPU1)?\s*|\s+----\s+(?:----)?\s*|\s+(?:lock|rlock|wlock)\(.*|\s+<Interrupt>\s*"
        r"|.*-->.*|Showing all locks held in the system:|\s*\S+ \(.*\)\{.*\}-\{\d+:\d+\}, at: .*"
        r"|\s*\S+ \(.*\)\{.*\}, at: .*|\{[A-Z_-]+\} state was registered at:|.*-irq-(?:un)?safe.*"
        r"|irq event stamp: \d+|(?:hardirqs|softirqs) last .*|rcu_scheduler_active = .*)",
    ),
    ("stack", r"Stack:(?P<inline>.*)"),
    ("context", r"\s*<(?P<tag>/?[A-Z#_]{2,20})>\s*"),
    (
        "frame",
        rf"\s*(?:\[<(?P<address>{_HEX}+)>\]\s*)?(?P<unreliable>\? )?(?:{SYMBOL}|0x(?P<raw>[0-9a-f]+))"
        r"(?: \([A-Z]\)| (?P<source>[^\s()\[\]]+:\d+)(?P<inline> \[inline\])?)?\s*",
    ),
    (  # syzbot's symbolizer: an inlined frame, no offset
        "frame",
        r"\s*(?P<unreliable>\? )?(?P<symbol>[A-Za-z_][\w.]*) (?P<source>[^\s()\[\]]+:\d+)"
        r"(?P<inline> \[inline\])\s*",
    ),
    (  # scripts/decode_stacktrace.sh: "name[+off/size] (file:line file:line ...) [module]"
        "frame",
        r"\s*(?:\[<(?P<address>[0-9a-fA-F]+)>\]\s*)?(?P<unreliable>\? )?(?P<symbol>[A-Za-z_][\w.]*)"
        r"(?:\+0x(?P<offset>[0-9a-f]+)/0x(?P<size>[0-9a-f]+))? \((?P<sources>[^()\s]+:(?:\d+|\?)"
        r"(?: \(discriminator \d+\))?(?: [^()\s]+:(?:\d+|\?)(?: \(discriminator \d+\))?)*)\)"
        r"(?: \[?(?P<module>[\w-]+)(?: (?P<build_id>[0-9a-f]+))?\]?)?\s*",
    ),
    ("code_cont", r"\s*(?:<?[0-9a-f]{2}>? ){4,}(?:<?[0-9a-f]{2}>?)?\s*"),
    ("frames24", rf"\s*(?:\[<{_HEX}+>\]\s*)+"),
    ("stack_words", rf"\s+(?:(?:{_HEX}{{8}}|{_HEX}{{16}}|<{_HEX}+>)\s*)+"),
    (
        "process",
        r"Process (?P<comm>.*?) \(pid: (?P<pid>\d+), (?:stackpage|threadinfo|ti)=(?P<stack>[0-9a-f]+)"
        r"(?: task=(?P<task>[0-9a-f]+))?.*\)\s*",
    ),
    ("printing_eip", r"\s*printing eip:\s*"),
    ("eip_value", rf"(?P<address>{_HEX}{{8}}|{_HEX}{{16}})\s*"),
)
_COMPILED = tuple((kind, re.compile(p)) for kind, p in LINE_KINDS)


def _first_chars(pattern: str) -> frozenset[str] | None:
    """The ASCII characters a match of ``pattern`` can start with (None: any, or unknown),
    from the parsed pattern: what lets :func:`classify` try only the kinds a line can be."""
    try:
        import re._parser as sre  # type: ignore[import-not-found]
        from re._constants import (  # type: ignore[import-not-found]
            BRANCH,
            IN,
            LITERAL,
            MAX_REPEAT,
            MIN_REPEAT,
            SUBPATTERN,
        )
    except ImportError:  # Python 3.10
        import sre_parse as sre  # type: ignore[no-redef, unused-ignore]
        from sre_constants import (  # type: ignore[no-redef, unused-ignore]
            BRANCH,
            IN,
            LITERAL,
            MAX_REPEAT,
            MIN_REPEAT,
            SUBPATTERN,
        )

    ascii_chars = [chr(c) for c in range(128)]

    def seq(items: list[tuple[Any, Any]]) -> tuple[set[str] | None, bool]:
        """(first chars, can be empty)"""
        out: set[str] = set()
        for op, av in items:
            got, empty = one(op, av)
            if got is None:
                return None, False
            out |= got
            if not empty:
                return out, False
        return out, True

    def one(op: Any, av: Any) -> tuple[set[str] | None, bool]:
        if op is LITERAL:
            return {chr(av)}, False
        if op is IN:
            return {c for c in ascii_chars if in_class(av, c)}, False
        if op is SUBPATTERN:
            return seq(list(av[-1]))
        if op is BRANCH:
            out: set[str] = set()
            empty = False
            for alt in av[1]:
                got, e = seq(list(alt))
                if got is None:
                    return None, False
                out |= got
                empty = empty or e
            return out, empty
        if op in (MAX_REPEAT, MIN_REPEAT):
            lo, _hi, sub = av
            got, e = seq(list(sub))
            return got, e or lo == 0
        return None, False

    def word(c: str) -> bool:
        return c.isalnum() or c == "_"

    cats: dict[str, Callable[[str], bool]] = {
        "CATEGORY_DIGIT": str.isdigit,
        "CATEGORY_SPACE": str.isspace,
        "CATEGORY_WORD": word,
    }

    def in_class(av: Any, c: str) -> bool:
        neg = False
        hit = False
        for op, v in av:
            name = str(op)
            if name == "NEGATE":
                neg = True
            elif name == "LITERAL":
                hit = hit or chr(v) == c
            elif name == "RANGE":
                hit = hit or v[0] <= ord(c) <= v[1]
            elif name == "CATEGORY":
                cat = str(v)
                test = cats.get(cat.replace("NOT_", ""))
                if test is None:
                    return True
                hit = hit or (test(c) != cat.startswith("CATEGORY_NOT_"))
            else:
                return True
        return hit != neg

    try:
        parsed = sre.parse(pattern)
        got, _empty = seq(list(parsed))
    except Exception:
        return None
    return frozenset(got) if got is not None else None


def _buckets() -> dict[str, tuple[tuple[str, re.Pattern[str]], ...]]:
    firsts = [_first_chars(p) for _k, p in LINE_KINDS]
    out = {}
    for c in [chr(i) for i in range(128)]:
        out[c] = tuple(kp for kp, f in zip(_COMPILED, firsts, strict=True) if f is None or c in f)
    return out


_BY_FIRST = _buckets()

# dmesg / journal / syslog prefixes, applied in this order (each at most once).
_SYSLOG = re.compile(
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ kernel: ?"
)
_LEVEL = re.compile(r"<\d>")
_TIME = re.compile(r"\[ *(?P<time>\d+\.\d+)\](?:\[ *(?P<caller>[TC]\d+)\])? ?")
_JOURNAL_HOST = re.compile(r"\S+ kernel: ")

#: Kinds that name a report; kinds that open one; kinds a report accepts after its end line.
HEADINGS = frozenset({"bug", "warning", "oops", "panic", "heading"})
STARTS = HEADINGS | {"cut_here", "separator"}
TAIL = frozenset(
    {"ip", "code", "code_cont", "regs", "pstate", "panic", "kernel_offset", "end_trace", "frame", "context",
     "call_trace", "cpu", "hardware", "tainted"}
)  # fmt: skip
# What a report has once it has reached its body (a heading after it opens a new report).
BODY = frozenset({"cpu", "frame", "call_trace", "ip", "regs", "end_trace", "modules", "process", "nmi"})
USEFUL_GAP = 12  # a report ends after this many lines in a row that it cannot use
TAIL_GAP = 4  # lines after a report's end before a closing panic no longer belongs to it
_STACK_KINDS = frozenset({"frame", "context", "ip", "regs", "code", "code_cont", "pstate", "blank"})


@dataclass(slots=True, unsafe_hash=True)
class Line(Fields):
    """One line of a log; ``prefix + text + eol`` is the line as read.  ``caller`` is the
    printk caller id (``T123`` task, ``C1`` CPU in interrupt context) when the log has them;
    text glued in front of a heading (``** 3 printk messages dropped **``, a login prompt) is
    part of the prefix and also in ``fields["glued"]``."""

    prefix: str
    text: str
    eol: str
    kind: str
    fields: dict[str, JSON]
    time: float | None = None
    report: int | None = None
    caller: str | None = None

    @property
    def raw(self) -> str:
        return self.prefix + self.text + self.eol


@dataclass(frozen=True, slots=True)
class Frame(Fields):
    """A frame of a call trace (or the faulting ip / arm64 lr), as printed.  Frames printed
    already symbolised carry ``source`` (``file:line``; decode_stacktrace.sh's form keeps its
    whole parenthesised list) and ``inline`` (syzbot's ``[inline]`` lines).  ``stack`` numbers
    the stacks of a report (access, allocation, free, lock chains...) in order."""

    line: int
    symbol: str | None
    offset: int | None
    size: int | None
    module: str | None
    build_id: str | None
    address: int | None
    reliable: bool
    context: str | None
    pc: bool = False
    source: str | None = None
    inline: bool = False
    stack: int = 0


@dataclass(slots=True, unsafe_hash=True)
class Report(Fields):
    """One crash report: its line indices and what they say.  ``heading`` is the heading's
    text, ``family`` its family (:mod:`lkm.oops.families`), ``title`` the crash's name as the
    field writes it (``KASAN: use-after-free Read in foo``), ``guilty`` the function in it,
    ``signature`` the key grouping duplicates; ``corrupted`` says why the report cannot be
    trusted (truncated, interleaved, no usable frame), "" when it can."""

    lines: list[int]
    kind: str
    title: str
    arch: str | None
    facts: dict[str, JSON]
    frames: list[Frame]
    heading: str = ""
    family: str = ""
    guilty: str | None = None
    signature: str = ""
    corrupted: str = ""


@dataclass(frozen=True, slots=True)
class Log:
    lines: list[Line]
    reports: list[Report]

    def text(self) -> str:
        """The input, exactly."""
        return "".join(ln.prefix + ln.text + ln.eol for ln in self.lines)

    def asdict(self) -> dict[str, object]:
        return {
            "lines": [ln.asdict() for ln in self.lines],
            "reports": [{**r.asdict(), "frames": [f.asdict() for f in r.frames]} for r in self.reports],
        }


# -- one line ---------------------------------------------------------------------------------


def _split(line: str) -> tuple[str, str, float | None, str | None]:
    pos = 0
    c = line[:1]
    if c.isalnum():  # each prefix pattern starts with a letter, a digit, "<" or "[" (fast path)
        m = _SYSLOG.match(line)
        if m:
            pos = m.end()
    if line.startswith("<", pos):
        m = _LEVEL.match(line, pos)
        if m:
            pos = m.end()
    time = None
    caller = None
    m = _TIME.match(line, pos) if line.startswith("[", pos) else None
    if m:
        pos = m.end()
        time = float(m.group("time"))
        caller = m.group("caller")
        j = _JOURNAL_HOST.match(line, pos)  # journalctl -o short-monotonic
        if j:
            pos = j.end()
    return line[:pos], line[pos:], time, caller


def split_prefix(line: str) -> tuple[str, str, float | None]:
    """(prefix, text, dmesg time) of one line without its end-of-line."""
    prefix, text, time, _caller = _split(line)
    return prefix, text, time


def classify(text: str) -> tuple[str, dict[str, JSON]]:
    """(kind, fields) of a line's text (after its prefix)."""
    for kind, rx in _BY_FIRST.get(text[:1], _COMPILED):
        m = rx.fullmatch(text)
        if m:
            fields: dict[str, JSON] = {k: v for k, v in m.groupdict().items() if v is not None}
            _refine(kind, fields, text)
            return kind, fields
    return "other", {}


_HEX_FIELDS = frozenset(("offset", "size", "address", "raw", "code", "pde", "value", "base", "object"))
_DEC_FIELDS = frozenset(("cpu", "pid", "uid", "count", "line", "seconds"))


def _refine(kind: str, f: dict[str, JSON], text: str) -> None:
    """Numbers as numbers; structured fields (module lists, code bytes, registers) split."""
    decimal_size = kind in ("kasan_access", "heading")
    for k, v in f.items():  # the fields a line matched (a few): numbers converted in place
        if k in _HEX_FIELDS:
            if isinstance(v, str):
                f[k] = int(v, 10 if k == "size" and decimal_size else 16)
        elif k in _DEC_FIELDS and isinstance(v, str) and v.isdigit():
            f[k] = int(v)
    if "unreliable" in f:
        f["unreliable"] = True
    if "inline" in f and kind == "frame":
        f["inline"] = True
    if kind == "ip" and f.get("reg") in ("PC", "LR"):
        f["reg"] = str(f["reg"]).lower()
    if kind == "modules":
        f.update(parse_modules(str(f.pop("list"))))
    elif kind == "code":
        f.update(parse_code(str(f["bytes"])))
    elif kind == "regs":
        f["registers"] = parse_registers(text)
    elif kind == "tainted":
        f["taints"] = re.findall(r"\[(\w)\]=(\w+)", str(f.pop("list")))
    elif kind == "call_trace" and str(f.get("inline", "")).strip():
        f["addresses"] = [int(a, 16) for a in re.findall(r"\[<([0-9a-fA-F]+)>\]", str(f["inline"]))]
    elif kind == "frames24":
        f["addresses"] = [int(a, 16) for a in re.findall(r"\[<([0-9a-fA-F]+)>\]", text)]


def parse_registers(text: str) -> dict[str, int]:
    """NAME: value pairs of a register dump line (segment prefixes and "(0000)" selectors dropped)."""
    out: dict[str, int] = {}
    for name, val in re.findall(
        rf"([A-Za-z][A-Za-z0-9_]{{0,7}}) ?: *(?:{_HEX}{{4}}:)?({_HEX}{{4,16}})(?:\({_HEX}{{4}}\))?", text
    ):
        out[name] = int(val, 16)
    return out


def parse_modules(text: str) -> dict[str, JSON]:
    """ "Modules linked in:" list: [name, taint flags] pairs and the last unloaded module."""
    last = None
    m = re.search(r"\s*\[last unloaded: ([^\]]*)\]\s*$", text)
    if m:
        last = m.group(1)
        text = text[: m.start()]
    mods: list[JSON] = []
    for tok in text.split():
        mm = re.fullmatch(r"(.+?)(?:\(([A-Z+\-]+)\))?", tok)
        assert mm is not None  # ".+?" matches any token
        mods.append([mm.group(1), mm.group(2) or ""])
    return {"modules": mods, "last_unloaded": last}


# tokens separated by one space; each token's digits end at a bracket, a space or the end, so
# the match is linear (the old "(?:[<(]?[0-9a-f]{1,8}[>)]? ?)+" backtracked exponentially on a
# long run of glued digits: a fuzzed Code: line hung ksymoops)
_CODE_UNITS = re.compile(
    r"(?:(?:[<(][0-9a-f]+[>)]|[0-9a-f]+) )*(?:[<(][0-9a-f]+[>)]|[0-9a-f]+|[<(][0-9a-f]+)"
)  # a mark is bracketed on both sides; only the last unit may be cut before its closing bracket


def parse_code(text: str) -> dict[str, JSON]:
    """A Code: line: its bytes (x86: hex bytes; arm64: 32-bit words, hex) and the marked one.

    x86 marks the faulting byte ``<xx>``; arm64 the faulting word ``(xxxxxxxx)``; 2.4 x86
    printed no mark and started at EIP.  "Unable to access opcode bytes at 0x..." and
    "Bad RIP value." keep only ``unavailable``."""
    t = text.strip()
    if not t or not _CODE_UNITS.fullmatch(t):
        return {"unavailable": t}
    units: list[JSON] = []
    marker = None
    width = None
    toks = t.split()
    for i, tok in enumerate(toks):
        bracket = tok[0] in "<("
        digits = tok[1:-1] if bracket else tok
        if width is None and len(digits) % 2 == 0 and digits:
            width = len(digits) // 2
        if width is None or len(digits) != 2 * width or (bracket and tok[-1] not in ">)"):
            if i == len(toks) - 1 and units:  # the last unit cut short by the console: dropped
                return {"units": units, "unit_bytes": width, "marker": marker, "truncated": True}
            return {"unavailable": t}
        if bracket:
            marker = i
        units.append(int(digits, 16))
    return {"units": units, "unit_bytes": width, "marker": marker}


# -- the whole log ----------------------------------------------------------------------------


def _split_lines(text: str) -> Iterator[tuple[str, str]]:
    """(line, end-of-line) pairs; the last line may have no end."""
    pos = 0
    n = len(text)
    while pos < n:
        e = text.find("\n", pos)
        if e < 0:
            yield text[pos:], ""
            return
        if e > pos and text[e - 1] == "\r":
            yield text[pos : e - 1], "\r\n"
        else:
            yield text[pos:e], "\n"
        pos = e + 1


# Where a heading may start after text glued in front of it (dropped-messages notes, login
# prompts, serial garbage): a printk time or the first words of a heading.
_GLUE = re.compile(
    r"\[ *\d+\.\d+\]|(?:BUG|WARNING|INFO|UBSAN|PANIC): |BUG [^\s():]+ \(|[Kk]ernel BUG at |Kernel panic - "
    r"|general protection fault|divide.error: |invalid opcode: |Oops: |Internal error: "
    r"|Unable to handle kernel |-+\[ cut here \]-|unreferenced object 0x|(?:NMI )?watchdog: |rcu: INFO: "
    r"|={20,}"
)


def _glued(text: str) -> tuple[int, str, str, float | None, str | None, str, dict[str, JSON]] | None:
    """A heading found after other text on one line: (where, its prefix, its text, time,
    caller, kind, fields)."""
    for n, m in enumerate(_GLUE.finditer(text, 1)):
        if n >= 4:
            break
        prefix, body, time, caller = _split(text[m.start() :])
        kind, fields = classify(body)
        if kind not in STARTS:
            continue
        if kind == "bug" and "message" in fields:  # any "BUG: ..." only when a family knows it
            fam = heading_family(body)
            if fam is None or fam[0] == "bug":
                continue
        return m.start(), prefix, body, time, caller, kind, fields
    return None


# printk never prints a line longer than 1024 bytes (CONSOLE_LOG_MAX / LOG_LINE_MAX in
# kernel/printk/printk.c); a console capture may glue a few together.  A longer line is text:
# kept, never matched (so a hostile log's megabyte lines cost one scan, not one per pattern).
LINE_MAX = 8192


# The kind of recent line texts that have no fields (console noise, blank lines, "Call Trace:"
# ...): a third of a console log's lines repeat one seen before (the prefix with the time is not
# part of the text), and an unknown line costs every pattern of its bucket and the glue search.
# Bounded: cleared when full.  A pure memo: the same text has the same kind whatever came before.
_PLAIN: dict[str, str] = {}
_PLAIN_MAX = 8192


def parse_line(raw: str, eol: str = "") -> Line:
    prefix, body, time, caller = _split(raw)
    if len(body) > LINE_MAX:
        return Line(prefix, body, eol, "other", {}, time, None, caller)
    known = _PLAIN.get(body)
    if known is not None:
        return Line(prefix, body, eol, known, {}, time, None, caller)
    kind, fields = classify(body)
    if kind == "other" and len(body) > 8:
        got = _glued(body)
        if got is not None:
            at, p2, body2, t2, c2, kind, fields = got
            fields["glued"] = body[:at]
            prefix, body = prefix + body[:at] + p2, body2
            time = t2 if t2 is not None else time
            caller = c2 or caller
    if not fields:
        if len(_PLAIN) >= _PLAIN_MAX:
            _PLAIN.clear()
        _PLAIN[body] = kind
    return Line(prefix, body, eol, kind, fields, time, None, caller)


def parse(text: str | bytes) -> Log:
    """Every line of ``text`` classified and grouped into reports.  Never raises on any text
    (bytes are decoded as UTF-8 with surrogate escapes, so they round-trip too)."""
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8", "surrogateescape")
    lines = [parse_line(raw, eol) for raw, eol in _split_lines(text)]
    groups = _group(lines)
    reports = []
    for idx, members in enumerate(groups):
        for i in members:
            lines[i].report = idx
        reports.append(_summarize(lines, members))
    return Log(lines, reports)


class _Open:
    """A report being read."""

    __slots__ = ("members", "family", "rule", "body", "gap", "oops", "process", "panic", "caller", "heads")

    def __init__(self, first: int, family: str | None, rule: bool, caller: str | None) -> None:
        self.members = [first]
        self.family = family
        self.rule = rule  # opened by a rule of "=": a sanitizer report ends at the next one
        self.body = False
        self.gap = 0
        self.oops = False
        self.process = False
        self.panic = False
        self.caller = caller
        self.heads = 0  # heading lines in it


class _Stream:
    """The reports of one printk caller (or of the whole log without caller ids)."""

    __slots__ = ("cur", "closed", "pending", "closed_gap")

    def __init__(self) -> None:
        self.cur: _Open | None = None
        self.closed: _Open | None = None  # ended, but a tail (executive summary, panic) may follow
        self.pending: list[int] = []
        self.closed_gap = 0

    def finish(self) -> None:
        self.cur = None
        self.closed = None
        self.pending = []

    def close(self) -> None:
        self.closed, self.cur = self.cur, None
        self.pending = []
        self.closed_gap = 0


def _opens_report(lines: list[Line], i: int) -> bool:
    """Whether the rule of ``=`` at ``i`` opens a report: the next line that is not blank is a
    heading (KASAN, KCSAN, KFENCE, KMSAN, UBSAN, lockdep and SLUB print theirs right after)."""
    for ln in lines[i + 1 : i + 3]:
        if ln.kind == "blank":
            continue
        return ln.kind in HEADINGS and ln.kind != "panic"
    return False


# Families whose heading the die header ("Oops: ...", "invalid opcode: ...") follows.
_OOPS_AFTER = frozenset(
    {"null_deref", "paging", "kernel_bug", "stack_guard", "double_fault", "internal_error", "bug"}
)


def _joins(cur: _Open, kind: str, family: str | None, ln: Line) -> bool:
    """Whether heading ``ln`` continues the open report ``cur`` rather than starting one."""
    if not cur.body:
        if cur.family is None:  # "cut here" or an opening rule: the heading it announced
            return kind != "cut_here" or (len(cur.members) > 1 and False)
        if kind == "oops" and not cur.oops and cur.family in _OOPS_AFTER:  # "BUG: unable to ..." + "Oops:"
            return True
        if cur.family == "kmemleak" and family == "kmemleak" and cur.heads == 1:
            return True  # syzkaller's "BUG: memory leak" + the object
        if cur.family in RULE_FRAMED and cur.rule:
            return kind != "cut_here" and family not in SANITIZERS
        return False
    if cur.family in RULE_FRAMED and cur.rule:  # inside a sanitizer report until its closing rule
        return kind != "cut_here" and family not in SANITIZERS
    # 6.12 ends a SLUB report with WARN_ON(1)
    return cur.family == "slub" and (kind == "cut_here" or (kind == "warning" and "mm/slub.c" in ln.text))


def _group(lines: list[Line]) -> list[list[int]]:
    """Line indices of each report (see the module docstring)."""
    callers = any(ln.caller for ln in lines)
    streams: dict[str | None, _Stream] = {}
    opened: list[_Open] = []
    last_key: str | None = None
    stall: _Stream | None = None  # the stream of an open stall report (takes other CPUs' dumps)
    for i, ln in enumerate(lines):
        key = ln.caller if callers else None
        if callers and key is None and ln.time is None:  # a wrapped or unprefixed line
            key = last_key
        last_key = key
        st = streams.get(key)
        if st is None:
            st = streams[key] = _Stream()
        k = ln.kind
        if (
            callers
            and st.cur is None
            and key is not None
            and key[0] == "C"
            and stall is not None
            and stall is not st
            and stall.cur is not None
            and k not in STARTS
        ):
            st = stall
        cur = st.cur
        if k == "separator":
            if cur is not None and cur.rule and cur.family in RULE_FRAMED:
                cur.members.append(i)  # the closing rule
                st.close()
                continue
            if _opens_report(lines, i):
                st.finish()
                st.cur = _Open(i, None, True, key)
                opened.append(st.cur)
                continue
            k = "other"
        if k in HEADINGS or k == "cut_here":
            got = heading_family(ln.text) if k != "cut_here" else None
            family = got[0] if got is not None else None
            message = str(ln.fields.get("message", "")) if k == "panic" else ""
            if cur is not None:
                if k == "panic" and not STANDALONE_PANICS.match(message):  # it ends the report it follows
                    cur.members.append(i)
                    cur.panic = True
                    cur.gap = 0
                    continue
                if _joins(cur, k, family, ln):
                    cur.members.append(i)
                    cur.heads += k != "cut_here"
                    cur.gap = 0
                    cur.oops = cur.oops or k == "oops"
                    if cur.family is None and family is not None:
                        cur.family = family
                        cur.rule = cur.rule and family in RULE_FRAMED
                    continue
            elif k == "panic" and st.closed is not None and CLOSING_PANICS.match(message):
                cur = st.cur = st.closed
                cur.members.extend(st.pending)
                cur.members.append(i)
                cur.panic = True
                cur.gap = 0
                st.closed = None
                st.pending = []
                continue
            st.finish()
            st.cur = _Open(i, family, False, key)
            st.cur.oops = k == "oops"
            st.cur.heads = int(k != "cut_here")
            opened.append(st.cur)
            if family in STALLS:
                stall = st
            continue
        if cur is not None:
            if k in ("other", "blank"):
                if cur.family == "kmemleak" and k == "other" and not ln.text.startswith(" "):
                    st.finish()
                    continue
                cur.gap += 1
                if cur.gap > GAP.get(cur.family or "", USEFUL_GAP):
                    st.finish()
                    continue
            else:
                cur.gap = 0
            cur.members.append(i)
            cur.body = cur.body or (k in BODY and not (k == "ip" and ln.fields.get("reg") == "IP"))
            cur.process = cur.process or k == "process"
            if k == "end_trace":
                if str(ln.fields.get("what", "")).startswith("Kernel panic"):
                    st.finish()
                else:
                    st.close()
            elif k == "code" and cur.process:  # 2.4 ends with its Code: line
                st.close()
            continue
        closed = st.closed
        if closed is not None:
            if k in TAIL and st.closed_gap <= TAIL_GAP:
                closed.members.extend(st.pending)
                closed.members.append(i)
                st.pending = []
                st.closed_gap = 0
                if k == "end_trace" and str(ln.fields.get("what", "")).startswith("Kernel panic"):
                    st.closed = None
            elif k in ("blank", "other", "kasan_info", "lockdep", "modules"):
                st.pending.append(i)
                st.closed_gap += k != "blank"
                if st.closed_gap > TAIL_GAP:
                    st.closed = None
                    st.pending = []
            else:
                st.closed = None
                st.pending = []
    groups = []
    for o in opened:
        g = sorted(set(o.members))
        while len(g) > 1 and lines[g[-1]].kind in ("other", "blank"):  # lines it could not use
            g.pop()
        if o.family is None and not any(lines[j].kind in HEADINGS or lines[j].kind == "frame" for j in g):
            continue  # a "cut here" or a rule that announced nothing
        groups.append(g)
    groups.sort(key=lambda g: g[0])
    return groups


_ARCH_BY_REG = {"RIP": "x86_64", "RAX": "x86_64", "EIP": "i386", "eax": "i386", "pc": "arm64", "x29": "arm64"}
_AT = re.compile(rf", at: (?:\[<{_HEX}+>\] )?{SYMBOL}")
_OLD_ACCESS = re.compile(r"(Read|Write) of size \d+ by task|(Read|Write) at addr ")
_LASTFN = re.compile(r"\s*(?:last function|.*workfn)[:=] ?(\S+)")
_ACQUIRE = re.compile(r".*(?:is trying to acquire|is trying to lock|takes:|is trying to release)")


def _summarize(lines: list[Line], members: list[int]) -> Report:
    head = lines[members[0]]
    heading_line = next((lines[i] for i in members if lines[i].kind in HEADINGS), head)
    kind = heading_line.kind if heading_line.kind in HEADINGS else head.kind
    heading = heading_line.text.strip()
    facts: dict[str, JSON] = {}
    frames: list[Frame] = []
    arch: str | None = None
    context: str | None = None
    registers: dict[str, int] = {}
    regs_done = False
    code_text: str | None = None
    code_line = -1
    stack = 0
    prev_kind = ""
    labels: dict[int, str] = {}
    label = ""
    lockdep_at: str | None = None
    acquire = False
    lastfn: str | None = None
    callers: set[str] = set()
    for i in members:
        ln = lines[i]
        f = ln.fields
        k = ln.kind
        if ln.caller:
            callers.add(ln.caller)
        if k == "code" and "code" not in facts:
            code_line = i
        elif k != "code_cont":
            code_text = None
        if k == "bug" and "kasan" in f:
            facts.setdefault("kasan", f["kasan"])
        if k == "oops" and kind in ("bug", "cut_here", "heading"):
            facts.setdefault("oops", ln.text.strip())
        if k == "oops" and "count" in f:
            facts.setdefault("oops_count", f["count"])
        if k in ("bug", "kasan_access") and "address" in f:
            facts.setdefault("fault_address", f["address"])
        if k == "kasan_access":
            facts.setdefault("access", f["access"])
        elif k == "other" and "access" not in facts:
            m = _OLD_ACCESS.match(ln.text)
            if m:
                facts["access"] = m.group(1) or m.group(2)
        if k == "panic":
            facts.setdefault("panic", str(f.get("message", "")).strip())
        if k == "cpu":
            for key in ("cpu", "uid", "pid", "comm", "release", "version", "taint", "taint_flags"):
                if key in f:
                    facts.setdefault(key, f[key])
        elif k == "process":
            facts.setdefault("pid", f.get("pid"))
            facts.setdefault("comm", f.get("comm"))
        elif k == "tainted":
            facts.setdefault("taints", f["taints"])
        elif k == "hardware":
            facts.setdefault("hardware", f["name"])
        elif k == "modules":
            facts.setdefault("modules", f["modules"])
            facts.setdefault("last_unloaded", f["last_unloaded"])
        elif k == "kernel_offset":
            facts["kernel_offset"] = f.get("offset", 0)
            if "base" in f:
                facts["kernel_base"] = f["base"]
        elif k == "code" and "code" not in facts:
            facts["code"] = {**f, "line": i}
            code_text = str(f["bytes"])
        elif k == "code_cont" and code_text is not None:  # a Code: line wrapped by a log tool
            code_text += " " + ln.text.strip()
            facts["code"] = {**parse_code(code_text), "bytes": code_text, "line": code_line}
        elif k == "regs" and not regs_done:
            got = f.get("registers")
            if isinstance(got, dict):
                registers.update(got)
        elif k == "call_trace":
            regs_done = regs_done or bool(registers)
            for a in _ints(f.get("addresses")):
                frames.append(Frame(i, None, None, None, None, None, a, True, context, stack=stack + 1))
        elif k == "frames24":
            for a in _ints(f.get("addresses")):
                frames.append(Frame(i, None, None, None, None, None, a, True, context, stack=stack + 1))
        elif k == "context":
            tag = str(f["tag"])
            context = None if tag.startswith("/") else tag
        elif k == "frame":
            if prev_kind not in _STACK_KINDS:
                stack += 1
                labels[stack] = label  # the line before its first frame names the stack
            frames.append(_frame(i, f, context, pc=False, stack=stack))
        elif k == "ip" and f.get("cs") not in ("0033", "0023", "0073", "007b") and "ip" not in facts:
            frame = _frame(i, f, None, pc=f.get("reg") != "lr", stack=stack)
            if f.get("reg") == "lr":
                frames.append(frame)
            else:
                facts["ip"] = frame.asdict()
        elif k == "warning" and "symbol" in f and "ip" not in facts and "warn_at" not in facts:
            facts["warn_at"] = _frame(i, f, None, pc=True).asdict()
        if k == "lockdep" and lockdep_at is None:
            if acquire:
                m = _AT.search(ln.text)
                if m:
                    lockdep_at = m.group("symbol")
            acquire = bool(_ACQUIRE.match(ln.text))
        if lastfn is None:
            m = _LASTFN.match(ln.text) if "function" in ln.text or "workfn" in ln.text else None
            if m:
                lastfn = m.group(1)
        if k == "ip" and arch is None:
            arch = _ARCH_BY_REG.get(str(f.get("reg")))
        if k == "regs" and arch is None:
            regs = f.get("registers")
            if isinstance(regs, dict):
                arch = next((_ARCH_BY_REG[r] for r in regs if r in _ARCH_BY_REG), None)
        if k != "blank":
            prev_kind = k
            if k not in _STACK_KINDS and k not in ("cpu", "hardware", "modules", "tainted"):
                label = ln.text
    if registers:
        facts["registers"] = dict(registers)
    if callers:
        facts["callers"] = sorted(callers)
    report = Report(list(members), kind, heading, arch, facts, frames, heading)
    _describe(report, lines, labels, lockdep_at, lastfn)
    return report


def _describe(
    report: Report,
    lines: list[Line],
    labels: dict[int, str],
    lockdep_at: str | None,
    lastfn: str | None,
) -> None:
    """Family, title, guilty frame, signature and corrupted flag of a summarised report."""
    facts = report.facts
    got = None
    for i in report.lines:
        ln = lines[i]
        if ln.kind in HEADINGS:
            got = F.heading_family(ln.text)
            if got is not None:
                break
    views = [
        F.FrameView(f.symbol, f.reliable, f.stack, labels.get(f.stack, ""), f.context, f.inline)
        for f in report.frames
        if f.symbol is not None
    ]
    ip = facts.get("ip")
    ip_name = ip.get("symbol") if isinstance(ip, dict) else None
    warn = facts.get("warn_at")
    warn_name = warn.get("symbol") if isinstance(warn, dict) else None
    corrupted = ""
    if got is None:
        report.family = "unknown"
        report.title = F.normalize_title(report.heading)
        report.signature = F.signature(report.title)
        report.corrupted = "no known heading"
        return
    family, match, fmt, how = got
    if family == "panic" and F.CLOSING_PANICS.match(str(match.groupdict().get("msg") or "")):
        corrupted = "only the panic that ends a report was seen"
    guilty = F.guilty_frame(how, views, ip_name if isinstance(ip_name, str) else None,
                            warn_name if isinstance(warn_name, str) else None, lockdep_at)  # fmt: skip
    if guilty is None and match.groupdict().get("fn"):  # the stack-protector panic names it
        guilty = F.normalize_name(str(match.group("fn")))
    access = facts.get("access")
    title = F.make_title(family, match, fmt, guilty, access if isinstance(access, str) else None, lastfn)
    if "{g}" in fmt and guilty is None and not corrupted:
        corrupted = "no usable frame"
    if re.search(r"\[ *\d+\.\d+\]", report.heading):
        corrupted = "two lines merged into the heading"
    callers = facts.get("callers")
    if isinstance(callers, list) and len({c[0] for c in callers if isinstance(c, str) and c[:1] == "T"}) > 1:
        corrupted = corrupted or "lines of several tasks"
    report.family = family
    report.guilty = guilty
    report.title = F.normalize_title(title)
    report.signature = F.signature(report.title)
    report.corrupted = corrupted


def symbolised_addresses(report: Report, log: Log) -> list[tuple[int, str, int, int | None]]:
    """(address, symbol, offset, size) of the core-kernel frames printed with both (older
    kernels' "[<addr>] sym+off/size"), and of an x86 ip whose Code line could not be read
    ("Unable to access opcode bytes at" names ip - 42)."""
    out: list[tuple[int, str, int, int | None]] = []
    for f in report.frames:
        if f.address is not None and f.symbol is not None and f.offset is not None and f.module is None:
            # a return address printed with %pB: its symbol+offset is the address itself
            out.append((f.address, f.symbol, f.offset, f.size))
    ip = report.facts.get("ip")
    code = report.facts.get("code")
    if isinstance(ip, dict) and isinstance(code, dict) and ip.get("module") is None:
        m = re.fullmatch(
            r"Unable to access opcode bytes at 0x([0-9a-f]+)\.?", str(code.get("unavailable", ""))
        )
        sym, off = ip.get("symbol"), ip.get("offset")
        if m and isinstance(sym, str) and isinstance(off, int):
            size = ip.get("size")
            out.append((int(m.group(1), 16) + 42, sym, off, size if isinstance(size, int) else None))
    return out


def _ints(v: JSON) -> list[int]:
    return [a for a in v if isinstance(a, int)] if isinstance(v, list) else []


def _frame(i: int, f: dict[str, JSON], context: str | None, *, pc: bool, stack: int = 0) -> Frame:
    def num(key: str) -> int | None:
        v = f.get(key)
        return v if isinstance(v, int) else None

    address = num("address")
    if address is None:
        address = num("raw")
    sym = f.get("symbol")
    mod = f.get("module")
    bid = f.get("build_id")
    return Frame(
        i,
        sym if isinstance(sym, str) else None,
        num("offset"),
        num("size"),
        mod if isinstance(mod, str) else None,
        bid if isinstance(bid, str) else None,
        address,
        not f.get("unreliable"),
        context,
        pc,
        _source(f),
        bool(f.get("inline")),
        stack,
    )


def _source(f: dict[str, JSON]) -> str | None:
    v = f.get("source", f.get("sources"))
    return v if isinstance(v, str) else None

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

from lkm.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

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
    ("bug", r"kernel BUG at (?P<file>[^:]+):(?P<line>\d+)!\s*"),
    ("bug", r"BUG: (?P<message>.*)"),
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
        rf"(?P<internal>Internal error: )?(?:Oops: )?(?P<trap>{_TRAPS})(?:, (?P<detail>.*?))?: "
        r"(?P<code>[0-9a-f]{4,16})(?: \[#(?P<count>\d+)\])?(?P<flags>(?: [A-Z][A-Z0-9_]*)*)\s*",
    ),
    (
        "warning",
        r"WARNING: CPU: (?P<cpu>\d+) PID: (?P<pid>\d+) at (?P<where>\S+?)(?::(?P<line>\d+))?"
        rf"(?: {SYMBOL}|(?: 0x(?P<raw>[0-9a-f]+)))?(?P<rest>.*)",
    ),
    ("warning", r"WARNING: (?P<message>.*)"),
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
    ("ip", rf"(?P<reg>EIP|RIP) is at {SYMBOL}\s*"),
    ("ip", rf"(?P<reg>pc|lr) : (?:{SYMBOL}|0x(?P<raw>[0-9a-f]+)|(?P<address>[0-9a-f]{{8,16}}))\s*"),
    ("pstate", rf"pstate: (?P<value>{_HEX}+) .*"),
    ("regs", rf"\s*{_REG}(?:\s+{_REG})*\s*"),
    ("regs", rf"EFLAGS: {_HEX}+\s+\((?P<release>\S+) #.*\)\s*"),
    ("code", r"Code: ?(?P<bytes>.*)"),
    ("call_trace", r"Call [Tt]race:(?P<inline>.*)"),
    ("stack", r"Stack:(?P<inline>.*)"),
    ("context", r"\s*<(?P<tag>/?[A-Z#]{2,8})>\s*"),
    (
        "frame",
        rf"\s*(?:\[<(?P<address>{_HEX}+)>\]\s*)?(?P<unreliable>\? )?(?:{SYMBOL}|0x(?P<raw>[0-9a-f]+))"
        r"(?: \([A-Z]\))?\s*",
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

# dmesg / journal / syslog prefixes, applied in this order (each at most once).
_SYSLOG = re.compile(
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ kernel: ?"
)
_LEVEL = re.compile(r"<\d>")
_TIME = re.compile(r"\[ *(?P<time>\d+\.\d+)\](?:\[ *(?P<caller>[TC]\d+)\])? ?")
_JOURNAL_HOST = re.compile(r"\S+ kernel: ")

#: Kinds that open a report; kinds that a report accepts after its end line.
STARTS = frozenset({"cut_here", "bug", "warning", "oops", "panic", "separator"})
TAIL = frozenset({"ip", "code", "code_cont", "regs", "pstate", "panic", "kernel_offset", "end_trace"})
# What a report has once it has reached its body (a heading after it opens a new report).
BODY = frozenset({"cpu", "frame", "call_trace", "ip", "regs", "end_trace", "modules", "process"})
USEFUL_GAP = 12  # a report ends after this many lines in a row that it cannot use


class Line(Record):
    """One line of a log; ``prefix + text + eol`` is the line as read."""

    __slots__ = ("prefix", "text", "eol", "kind", "fields", "time", "report")

    def __init__(
        self,
        prefix: str,
        text: str,
        eol: str,
        kind: str,
        fields: dict[str, JSON],
        time: float | None = None,
        report: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.text = text
        self.eol = eol
        self.kind = kind
        self.fields = fields
        self.time = time  # the dmesg timestamp, seconds
        self.report = report  # index into Log.reports, None outside reports

    @property
    def raw(self) -> str:
        return self.prefix + self.text + self.eol


class Frame(Record):
    """A frame of a call trace (or the faulting ip / arm64 lr), as printed."""

    __slots__ = (
        "line",
        "symbol",
        "offset",
        "size",
        "module",
        "build_id",
        "address",
        "reliable",
        "context",
        "pc",
    )

    def __init__(
        self,
        line: int,
        symbol: str | None,
        offset: int | None,
        size: int | None,
        module: str | None,
        build_id: str | None,
        address: int | None,
        reliable: bool,
        context: str | None,
        pc: bool = False,
    ) -> None:
        self.line = line  # index into Log.lines
        self.symbol = symbol
        self.offset = offset
        self.size = size
        self.module = module
        self.build_id = build_id
        self.address = address  # printed address ([<...>] or a bare 0x...), if any
        self.reliable = reliable  # False for "? " frames
        self.context = context  # TASK, IRQ, NMI, ... (None outside such a section)
        self.pc = pc  # the faulting instruction itself (not a return address)


class Report(Record):
    """One oops/BUG/WARN/panic report: its line indices and what they say."""

    __slots__ = ("lines", "kind", "title", "arch", "facts", "frames")

    def __init__(
        self,
        lines: list[int],
        kind: str,
        title: str,
        arch: str | None,
        facts: dict[str, JSON],
        frames: list[Frame],
    ) -> None:
        self.lines = lines
        self.kind = kind  # bug, oops, warning, panic, kasan, ...: the heading's kind
        self.title = title  # the heading's text
        self.arch = arch  # x86_64, i386, arm64 or None when the report does not tell
        self.facts = facts  # cpu, pid, uid, comm, tainted, release, modules, code, registers, ...
        self.frames = frames


class Log(Record):
    __slots__ = ("lines", "reports")

    def __init__(self, lines: list[Line], reports: list[Report]) -> None:
        self.lines = lines
        self.reports = reports

    def text(self) -> str:
        """The input, exactly."""
        return "".join(ln.prefix + ln.text + ln.eol for ln in self.lines)

    def asdict(self) -> dict[str, object]:
        return {
            "lines": [ln.asdict() for ln in self.lines],
            "reports": [{**r.asdict(), "frames": [f.asdict() for f in r.frames]} for r in self.reports],
        }


# -- one line ---------------------------------------------------------------------------------


def split_prefix(line: str) -> tuple[str, str, float | None]:
    """(prefix, text, dmesg time) of one line without its end-of-line."""
    pos = 0
    m = _SYSLOG.match(line)
    if m:
        pos = m.end()
    m = _LEVEL.match(line, pos)
    if m:
        pos = m.end()
    time = None
    m = _TIME.match(line, pos)
    if m:
        pos = m.end()
        time = float(m.group("time"))
        j = _JOURNAL_HOST.match(line, pos)  # journalctl -o short-monotonic
        if j:
            pos = j.end()
    return line[:pos], line[pos:], time


def classify(text: str) -> tuple[str, dict[str, JSON]]:
    """(kind, fields) of a line's text (after its prefix)."""
    for kind, rx in _COMPILED:
        m = rx.fullmatch(text)
        if m:
            fields: dict[str, JSON] = {k: v for k, v in m.groupdict().items() if v is not None}
            _refine(kind, fields, text)
            return kind, fields
    return "other", {}


def _refine(kind: str, f: dict[str, JSON], text: str) -> None:
    """Numbers as numbers; structured fields (module lists, code bytes, registers) split."""
    for k in ("offset", "size", "address", "raw", "code", "pde", "value", "base"):
        v = f.get(k)
        if isinstance(v, str) and (k != "size" or kind != "kasan_access"):
            f[k] = int(v, 16)
    for k in ("cpu", "pid", "uid", "count", "line"):
        v = f.get(k)
        if isinstance(v, str) and v.isdigit():
            f[k] = int(v)
    if kind == "kasan_access" and isinstance(f.get("size"), str):
        f["size"] = int(str(f["size"]))
    if "unreliable" in f:
        f["unreliable"] = True
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


def parse_code(text: str) -> dict[str, JSON]:
    """A Code: line: its bytes (x86: hex bytes; arm64: 32-bit words, hex) and the marked one.

    x86 marks the faulting byte ``<xx>``; arm64 the faulting word ``(xxxxxxxx)``; 2.4 x86
    printed no mark and started at EIP.  "Unable to access opcode bytes at 0x..." and
    "Bad RIP value." keep only ``unavailable``."""
    t = text.strip()
    tokens = t.split()
    if not t or not all(
        re.fullmatch(r"<[0-9a-f]{2,8}>|\([0-9a-f]{2,8}\)|[0-9a-f]{2,8}", tok) for tok in tokens
    ):
        return {"unavailable": t}  # a damaged line (glued or half-marked units): no code bytes
    units: list[JSON] = []
    marker = None
    width = None
    for i, tok in enumerate(tokens):
        if tok[0] in "<(":
            marker = i
            tok = tok[1:-1]
        units.append(int(tok, 16))
        width = len(tok) // 2
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


def parse_line(raw: str, eol: str = "") -> Line:
    prefix, body, time = split_prefix(raw)
    kind, fields = classify(body)
    return Line(prefix, body, eol, kind, fields, time)


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


def _group(lines: list[Line]) -> list[list[int]]:
    """Line indices of each report (see the module docstring)."""
    groups: list[list[int]] = []
    cur: list[int] | None = None
    body = False
    gap = 0
    closed: list[int] | None = None  # the report just ended, which may take tail lines
    for i, ln in enumerate(lines):
        k = ln.kind
        if cur is not None and k == "separator" and lines[cur[0]].kind == "separator":
            cur.append(i)  # KASAN's closing rule
            closed, cur = cur, None
            continue
        if k in STARTS and (cur is None or body) and not (k == "panic" and closed is not None):
            cur = [i]
            groups.append(cur)
            body = False
            gap = 0
            closed = None
            continue
        if cur is not None:
            if k in ("other", "blank"):
                gap += 1
                if gap > USEFUL_GAP:
                    del cur[len(cur) - gap + 1 :]
                    closed, cur = cur, None
                    continue
            else:
                gap = 0
            cur.append(i)
            body = body or k in BODY
            if k == "end_trace" or (k == "code" and any(lines[j].kind == "process" for j in cur)):
                closed, cur = cur, None
        elif closed is not None and k in TAIL:
            closed.append(i)
        elif k not in ("blank",):
            closed = None
    for g in groups:  # trailing lines a report could not use are not its own
        while len(g) > 1 and lines[g[-1]].kind in ("other", "blank"):
            g.pop()
    return groups


_ARCH_BY_REG = {"RIP": "x86_64", "RAX": "x86_64", "EIP": "i386", "eax": "i386", "pc": "arm64", "x29": "arm64"}


def _summarize(lines: list[Line], members: list[int]) -> Report:
    head = lines[members[0]]
    title = head.text.strip()
    kind = head.kind
    facts: dict[str, JSON] = {}
    frames: list[Frame] = []
    arch: str | None = None
    context: str | None = None
    registers: dict[str, int] = {}
    regs_done = False
    code_text: str | None = None
    code_line = -1
    for i in members:
        ln = lines[i]
        f = ln.fields
        k = ln.kind
        if k == "code" and "code" not in facts:
            code_line = i
        elif k != "code_cont":
            code_text = None
        if k in ("bug", "oops", "warning", "panic") and k != kind and kind in ("cut_here", "separator"):
            kind, title = k, ln.text.strip()
        if k == "bug" and "kasan" in f:
            kind = "kasan"
        if k == "oops" and kind in ("bug", "cut_here"):
            facts.setdefault("oops", ln.text.strip())
        if k == "oops" and "count" in f:
            facts.setdefault("oops_count", f["count"])
        if k in ("bug", "kasan_access") and "address" in f:
            facts.setdefault("fault_address", f["address"])
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
                frames.append(Frame(i, None, None, None, None, None, a, True, context))
        elif k == "frames24":
            for a in _ints(f.get("addresses")):
                frames.append(Frame(i, None, None, None, None, None, a, True, context))
        elif k == "context":
            tag = str(f["tag"])
            context = None if tag.startswith("/") else tag
        elif k == "frame":
            frames.append(_frame(i, f, context, pc=False))
        elif k == "ip" and f.get("cs") not in ("0033", "0023", "0073", "007b") and "ip" not in facts:
            frame = _frame(i, f, None, pc=f.get("reg") != "lr")
            if f.get("reg") == "lr":
                frames.append(frame)
            else:
                facts["ip"] = frame.asdict()
        elif k == "warning" and "symbol" in f and "ip" not in facts:
            facts["warn_at"] = _frame(i, f, None, pc=True).asdict()
        if k == "ip" and arch is None:
            arch = _ARCH_BY_REG.get(str(f.get("reg")))
        if k == "regs" and arch is None:
            regs = f.get("registers")
            if isinstance(regs, dict):
                arch = next((_ARCH_BY_REG[r] for r in regs if r in _ARCH_BY_REG), None)
    if registers:
        facts["registers"] = dict(registers)
    return Report(list(members), kind, title, arch, facts, frames)


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


def _frame(i: int, f: dict[str, JSON], context: str | None, *, pc: bool) -> Frame:
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
    )

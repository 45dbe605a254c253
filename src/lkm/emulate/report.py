"""Text and JSON renderings of a session's outcomes (what ``lkm run`` / ``lkm dev`` print)."""

from __future__ import annotations

from lkm.emulate.hw import Access
from lkm.emulate.kernel import TraceEntry
from lkm.emulate.session import Outcome

__all__ = ["format_access", "format_call", "format_outcome", "outcome_json", "warnings"]


def format_call(t: TraceEntry) -> str:
    args = ", ".join(f"{a:#x}" if a > 9 else str(a) for a in t.args)
    mark = "" if t.implemented else f"  [not implemented: returned 0; called from {t.site}]"
    return f"{t.name}({args}) = {_value(t.result)}{mark}"


def format_access(a: Access) -> str:
    """``read 0000:00:03.0 bar0+0x8/4 = 0x80000000 at e1000_probe+0x1a/0x8c0 [e1000]``."""
    where = f"{a.space}+{a.offset:#x}" if a.device else f"{a.space} {a.address:#x}"
    return f"{a.op:<9} {a.device or '-'} {where}/{a.size} = {a.value:#x} at {a.site or hex(a.pc)}"


def warnings(o: Outcome) -> list[str]:
    """One line per distinct unimplemented call (function and call site) the command made;
    in strict mode the call that ended it."""
    seen: dict[tuple[str, str], None] = {}
    for t in o.trace:
        if not t.implemented:
            seen.setdefault((t.name, t.site), None)
    stopped = o.fault is not None and o.fault.kind == "unimplemented"
    last = list(seen)[-1] if stopped and seen else None
    return [
        f"strict: stopped at unimplemented kernel function {n} called from {s}"
        if (n, s) == last
        else f"warning: unimplemented kernel function {n} called from {s} (returned 0)"
        for n, s in seen
    ]


def _value(v: int) -> str:
    if v >= 1 << 63:
        v -= 1 << 64
    return str(v) if -4096 < v < 4096 else f"{v & ((1 << 64) - 1):#x}"


def format_outcome(o: Outcome, *, calls: bool = True) -> str:
    lines = [f"# {o.command}"]
    lines += o.log
    if o.output:
        lines += [f"| {x}" for x in o.output.splitlines()]
    if calls and o.trace:
        lines.append("## kernel calls")
        lines += [f"  {format_call(t)}" for t in o.trace]
    if o.accesses:
        lines.append("## device accesses")
        lines += [f"  {format_access(a)}" for a in o.accesses]
    lines += [f"## {w}" for w in warnings(o)]
    if o.fault is not None:
        lines.append(f"## did not return: {o.fault.kind}: {o.fault.reason}")
    else:
        lines.append(f"## returned {o.value}")
    return "\n".join(lines) + "\n"


def _hex(value: object) -> object:
    # register values and addresses as JSON carries them (schema lkm/1): hex strings
    return (
        f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"
        if isinstance(value, int) and not isinstance(value, bool)
        else value
    )


def outcome_json(o: Outcome) -> dict[str, object]:
    """One emulated command's outcome (schema lkm/1 fields; addresses and register values as
    hex strings)."""
    fault = None
    if o.fault is not None:
        fault = {"kind": o.fault.kind, "reason": o.fault.reason, "pc": _hex(o.fault.pc),
                 "address": _hex(o.fault.address), "report": o.fault.report.splitlines()}  # fmt: skip
    return {
        "command": o.command,
        "value": o.value,
        "output": o.output,
        "dmesg": o.log,
        "calls": [
            {
                "name": t.name,
                "args": [_hex(a) for a in t.args],
                "result": _hex(t.result),
                "implemented": t.implemented,
                "module": t.module,
                **({} if t.implemented else {"site": t.site}),
            }
            for t in o.trace
        ],
        "warnings": warnings(o),
        "fault": fault,
        "accesses": [a.json() for a in o.accesses],
    }

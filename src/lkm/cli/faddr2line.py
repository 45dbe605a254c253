"""``lkm faddr2line [--list] OBJECT func+0x12/0x40 ...``: source lines of functions plus
offsets, as the kernel's scripts/faddr2line (:mod:`lkm.oops.faddr2line`).  Exit status: 0 all
found, 1 some not found (said on stderr), 2 usage error or unreadable object."""

from __future__ import annotations

import sys

from lkm.cli.jsonout import line
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.oops.faddr2line import check_object, faddr2line

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "faddr2line",
    "source lines of func+0x12/0x40 (scripts/faddr2line)",
    usage=["[--list] OBJECT FUNC+OFFSET[/SIZE] ..."],
    usage_status=2,
    description="OBJECT: vmlinux or a module (.ko, .ko.xz, .ko.zst, .ko.gz) with debug information.",
    options=[
        Opt("l", "list", None, "also print the source lines around each location"),
        Opt("", "json", None, 'JSON Lines: one "faddr2line" document per location (schema lkm/1)'),
    ],
)


def run(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    flags = {f for f, _ in opts}
    list_source = bool(flags & {"-l", "--list"})
    records: list[dict[str, object]] | None = [] if "--json" in flags else None
    if len(operands) < 2:
        sys.stderr.write(f"{prog}: an OBJECT and at least one FUNC+OFFSET are needed\n")
        return 2
    try:
        check_object(operands[0])
        out, notes = faddr2line(operands[0], operands[1:], list_source=list_source, records=records)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    if records is not None:
        out = "".join(line("faddr2line", **r) for r in records)
    sys.stdout.write(out)
    for n in notes:
        sys.stderr.write(f"{prog}: {n}\n")
    return 1 if notes else 0

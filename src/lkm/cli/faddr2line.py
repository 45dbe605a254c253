"""``lkm faddr2line [--list] OBJECT func+0x12/0x40 ...``: source lines of functions plus
offsets, as the kernel's scripts/faddr2line (:mod:`lkm.oops.faddr2line`).  Exit status: 0 all
found, 1 some not found (said on stderr), 2 usage error or unreadable object."""

from __future__ import annotations

import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

HELP = """Usage: lkm faddr2line [--list] OBJECT FUNC+OFFSET[/SIZE] ...
  OBJECT: vmlinux or a module (.ko, .ko.xz, .ko.zst, .ko.gz) with debug information
  --list  also print the source lines around each location
"""


def run(prog: str, args: list[str]) -> int:
    from lkm.oops.faddr2line import check_object, faddr2line

    try:
        opts, operands = parse(args, "hl", ["help", "list"])
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{HELP}")
        return 2
    list_source = False
    for flag, _val in opts:
        if flag in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
        list_source = True
    if len(operands) < 2:
        sys.stderr.write(HELP)
        return 2
    try:
        check_object(operands[0])
        out, notes = faddr2line(operands[0], operands[1:], list_source=list_source)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    sys.stdout.write(out)
    for n in notes:
        sys.stderr.write(f"{prog}: {n}\n")
    return 1 if notes else 0

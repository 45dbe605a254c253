"""``lkm dev``: call a loaded driver's file_operations, as a process using /dev/NAME would.

lkm dev --state FILE open|release NAME
lkm dev --state FILE read NAME [COUNT]
lkm dev --state FILE write NAME TEXT       (C escapes such as \\n are understood)
lkm dev --state FILE ioctl NAME CMD [ARG]
lkm dev --state FILE cat /proc/devices|/proc/misc|/proc/filesystems|/proc/modules

The state file comes from ``lkm run MODULE --state FILE``.  It holds the session's command
history: emulation is deterministic, so each call replays the history into a fresh emulated
kernel, runs the new command and, when it could be carried out, appends it.
"""

from __future__ import annotations

import json
import shlex
import sys

from lkm.cli.getopt import UsageError
from lkm.cli.jsonout import document
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "dev",
    "call an emulated driver's file_operations (open, read, write, ioctl, release)",
    usage=[
        "--session FILE open|release NAME",
        "--session FILE read NAME [COUNT]",
        "--session FILE write NAME TEXT",
        "--session FILE ioctl NAME CMD [ARG]",
        "--session FILE cat /proc/devices|/proc/misc|/proc/filesystems|/proc/modules",
    ],
    description="The session file comes from `lkm run MODULE --session FILE`; each call replays its\n"
    "history into a fresh emulated kernel, runs the new command and appends it.  TEXT takes C\n"
    "escapes such as \\n.",
    options=[
        Opt("", "session", "FILE", "the emulation session (made by lkm run --session)", complete="file"),
        Opt("", "state", "FILE", "deprecated spelling of --session", hidden=True),
        Opt("", "json", None, "one JSON object (schema lkm/1)"),
    ],
)


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = TOOL.parse(prog, args)
        o = dict(opts)
        if "--state" in o:
            sys.stderr.write(
                f"{prog}: warning: --state is deprecated for the emulator's session: use --session\n"
            )
            o.setdefault("--session", o.pop("--state"))
        if "--session" not in o:
            raise UsageError("--session FILE is needed (made by lkm run MODULE --session FILE)")
        if len(operands) < 2:
            raise UsageError("an operation and a NAME are needed")
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1

    try:
        from lkm.emulate.report import format_outcome, outcome_json, warnings
        from lkm.emulate.session import load_state, save_state
    except ImportError as exc:
        sys.stderr.write(f"{prog}: install lkm[run] (the emulator needs {exc.name or 'unicorn'})\n")
        return 1

    verb = "cat" if operands[0] == "cat" else "dev"
    line = " ".join(
        shlex.quote(w) for w in ([verb] if verb == "cat" else ["dev"]) + operands[1 if verb == "cat" else 0 :]
    )
    try:
        session = load_state(o["--session"])
        out = session.execute(line)
        if verb == "dev":
            save_state(o["--session"], session)
    except (LkmError, OSError, ValueError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    if out is None:
        return 0
    sys.stderr.write("".join(f"{prog}: {w}\n" for w in warnings(out)))
    if "--json" in o:
        sys.stdout.write(json.dumps(document("dev", **outcome_json(out))) + "\n")
    else:
        sys.stdout.write(format_outcome(out) if verb == "dev" else out.output)
    return 1 if out.fault is not None else 0

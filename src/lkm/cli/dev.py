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
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

HELP = __doc__ or ""


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = parse(args, "h", ["state=", "json", "help"])
        o = dict(opts)
        if "-h" in o or "--help" in o:
            sys.stdout.write(HELP)
            return 0
        if "--state" not in o:
            raise UsageError("--state FILE is needed (made by lkm run MODULE --state FILE)")
        if len(operands) < 2:
            raise UsageError("an operation and a NAME are needed")
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    import shlex

    try:
        from lkm.emulate.report import format_outcome, outcome_json
        from lkm.emulate.session import load_state, save_state
    except ImportError as exc:
        sys.stderr.write(f"{prog}: install lkm[run] (the emulator needs {exc.name or 'unicorn'})\n")
        return 1

    verb = "cat" if operands[0] == "cat" else "dev"
    line = " ".join(
        shlex.quote(w) for w in ([verb] if verb == "cat" else ["dev"]) + operands[1 if verb == "cat" else 0 :]
    )
    try:
        session = load_state(o["--state"])
        out = session.execute(line)
        if verb == "dev":
            save_state(o["--state"], session)
    except (LkmError, OSError, ValueError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    if out is None:
        return 0
    if "--json" in o:
        sys.stdout.write(json.dumps(outcome_json(out), indent=1) + "\n")
    else:
        sys.stdout.write(format_outcome(out) if verb == "dev" else out.output)
    return 1 if out.fault is not None else 0

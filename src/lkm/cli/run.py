"""``lkm run``: load a module into a fresh emulated kernel, run its init (and exit).

lkm run MODULE [NAME=VALUE ...] [--exit] [--json] [--strict] [--with MODULE ...]
        [--kallsyms FILE | --synthetic] [--budget N] [--timeout SECONDS] [--memory BYTES]
        [--state FILE]
lkm run --script FILE [--json] [--strict] ...

Prints the kernel log the module produced and every kernel function it called (name,
arguments, result); --json prints the same as JSON.  --with loads (and initialises) other
modules first, --exit unloads MODULE after init.  --script runs a session script (insmod,
rmmod, dev open|read|write|ioctl|release, cat /proc/...; see lkm.emulate.session).
--state FILE saves the session for ``lkm dev --state FILE``.  Kernel symbols come from
--kallsyms FILE, else from $LKM_EMULATE_KALLSYMS (a /proc/kallsyms or System.map file), else
synthetic ones (--synthetic: always synthetic).
--memory caps the emulated heap (kmalloc, vmalloc, pages; default 256 MiB, or
$LKM_EMULATE_MEMORY): past it an allocation returns NULL, as the kernel's do.  --budget and
--timeout bound each call (instructions, wall-clock seconds).  Ctrl-C stops the run (exit 130).
Exit status 1 when an init fails or a call does not return.
"""

from __future__ import annotations

import json
import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError
from lkm.safeio import read_text

SHORT = "h"
LONG = [
    "exit",
    "json",
    "strict",
    "with=",
    "kallsyms=",
    "synthetic",
    "budget=",
    "timeout=",
    "memory=",
    "state=",
    "script=",
    "help",
]
HELP = __doc__ or ""


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = parse(args, SHORT, LONG)
        o = dict(opts)
        if "-h" in o or "--help" in o:
            sys.stdout.write(HELP)
            return 0
        script = o.get("--script")
        if script is None and not operands:
            raise UsageError("a MODULE (or --script FILE) is needed")
        budget = int(o["--budget"], 0) if "--budget" in o else None
        timeout = float(o["--timeout"]) if "--timeout" in o else None
        memory = int(o["--memory"], 0) if "--memory" in o else None
        if memory is not None and memory <= 0:
            raise ValueError(f"--memory must be a positive number of bytes, not {o['--memory']}")
        if budget is not None and budget < 0:
            raise ValueError(f"--budget must be a count of instructions, not {o['--budget']}")
        if timeout is not None and not 0 < timeout <= 86400:  # also refuses nan and inf
            raise ValueError(f"--timeout must be a number of seconds in (0, 86400], not {o['--timeout']}")
    except (UsageError, ValueError) as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    try:
        from lkm.emulate.kernel import SymbolSpace
        from lkm.emulate.report import format_outcome, outcome_json
        from lkm.emulate.session import DEFAULT, Session, save_state
    except ImportError as exc:
        sys.stderr.write(f"{prog}: install lkm[run] (the emulator needs {exc.name or 'unicorn'})\n")
        return 1

    try:
        symbols: SymbolSpace | str | None = None
        if "--synthetic" in o:
            symbols = None
        elif "--kallsyms" in o:
            from lkm.symbols.table import SymbolTable

            symbols = SymbolSpace(SymbolTable.from_files(o["--kallsyms"]))
        else:
            symbols = DEFAULT  # $LKM_EMULATE_KALLSYMS, else synthetic
        session = Session(
            symbols, strict="--strict" in o, insn_budget=budget, time_budget=timeout, memory_budget=memory
        )
        if script is not None:
            lines = read_text(script).splitlines()
            session.base_dir = os.path.dirname(os.path.abspath(script))
        else:
            withs = [v for f, v in opts if f == "--with"]
            lines = [f"insmod {_q(os.path.abspath(p))}" for p in withs]
            lines.append(" ".join(["insmod", _q(os.path.abspath(operands[0])), *map(_q, operands[1:])]))
        outcomes = []
        failed = False
        for line in lines:
            out = session.execute(line)
            if out is None:
                continue
            outcomes.append(out)
            failed |= out.fault is not None or (line.startswith("insmod") and out.value < 0)
            if failed and script is None:
                break
        if "--exit" in o and not failed and script is None:
            name = session.k.modules and list(session.k.modules)[-1]
            if name:
                out = session.execute(f"rmmod {name}")
                if out is not None:
                    outcomes.append(out)
                    failed |= out.fault is not None
        if "--state" in o:
            save_state(o["--state"], session)
    except (LkmError, OSError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    if "--json" in o:
        sys.stdout.write(json.dumps([outcome_json(x) for x in outcomes], indent=1) + "\n")
    else:
        sys.stdout.write("".join(format_outcome(x) for x in outcomes))
    return 1 if failed else 0


def _q(word: str) -> str:
    import shlex

    return shlex.quote(word)

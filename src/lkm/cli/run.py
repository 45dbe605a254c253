"""``lkm run``: load a module into a fresh emulated kernel, run its init (and exit).

lkm run MODULE [NAME=VALUE ...] [--exit] [--json] [--strict] [--with MODULE ...]
        [-k|--kernel FILE ... | --synthetic] [--budget N] [--timeout SECONDS] [--memory BYTES]
        [--session FILE] [--device SPEC ...] [--device-replay TRACE] [--irq N ...] [--advance MS]
lkm run --script FILE [--json] [--strict] ...

Prints the kernel log the module produced and every kernel function it called (name,
arguments, result); --json prints the same as JSON.  A call to a kernel function lkm does
not implement returns 0 and is a warning on stderr (function, call site); with --strict it
ends the run (exit status 1).  --with loads (and initialises) other
modules first, --exit unloads MODULE after init.  --script runs a session script (insmod,
rmmod, dev open|read|write|ioctl|release, cat /proc/...; see lkm.emulate.session).
--session FILE saves the session for ``lkm dev --session FILE`` (with the kernel symbol files
it used, so each replay binds the same symbols).  Kernel symbols come from every -k/--kernel
FILE (any format lkm.symbols reads; a kernel image's are recovered once and kept in lkm's
cache, lkm.cache), else from $LKM_EMULATE_KALLSYMS, else synthetic ones (--synthetic: always
synthetic).
--memory caps the emulated heap (kmalloc, vmalloc, pages; default 256 MiB, or
$LKM_EMULATE_MEMORY): past it an allocation returns NULL, as the kernel's do.  --budget and
--timeout bound each call (instructions, wall-clock seconds).  Ctrl-C stops the run (exit 130).
--device puts an emulated device on its bus before the module loads (pci:v8086d100E,
usb:v046DpC52B, platform:NAME, with ,barN=mem:SIZE / ,barN=io:SIZE / ,irq=N options; or auto:
one device per registered driver from the first entry of its id table): the driver's probe()
runs when it registers, remove() at --exit, and every MMIO, port and config-space access is
listed.  --irq N raises interrupt line N after init; --advance MS moves the virtual clock on
(timers fire, queued work and tasklets run).
--device-replay TRACE puts a PCI device recorded in QEMU on the bus (lkm.emulate.replay): its
reads return the recorded values in the recorded order, writes are checked against the
recorded ones; a ``## device replay`` section says how far the driver followed the recording
(the first divergence: access index, expected and got, the driver's instruction) and compares
the kernel log of probe (insmod) and remove (rmmod, with --exit) with the guest's.
Exit status 1 when an init fails or a call does not return, or a replay is not followed
exactly (a divergence, recorded accesses left, a config access or log line not as recorded).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import TYPE_CHECKING

from lkm.cli.getopt import UsageError
from lkm.cli.jsonout import document
from lkm.cli.progress import progress
from lkm.cli.tool import Opt, Tool
from lkm.emulate.hw import DeviceSpecError, hw_of
from lkm.emulate.replay import device_from_spec, replay_devices, report
from lkm.errors import LkmError
from lkm.safeio import read_text
from lkm.symbols.table import SymbolTable

if TYPE_CHECKING:
    from lkm.emulate.replay import ReplayReport
    from lkm.emulate.session import Outcome, Session

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "run",
    "run a module's init (and exit) in an emulated CPU, tracing its kernel calls",
    usage=["MODULE [NAME=VALUE ...] [options]", "--script FILE [options]"],
    description="Prints the kernel log the module produced and every kernel function it called (name,\n"
    "arguments, result).  Exit status 1 when an init fails or a call does not return.",
    options=[
        Opt("", "exit", None, "unload MODULE after its init (run its exit routine)"),
        Opt("", "json", None, "the same as one JSON document (schema lkm/1)"),
        Opt(
            "",
            "strict",
            None,
            "stop at the first unimplemented kernel call (exit 1);\n"
            "without --strict such a call returns 0 with a warning",
        ),
        Opt("", "with", "MODULE", "load (and initialise) MODULE first; repeatable", complete="file"),
        Opt(
            "k",
            ("kernel", "kallsyms"),
            "FILE",
            "kernel symbols (/proc/kallsyms, System.map, Module.symvers,\n"
            "vmlinux, a kernel image); repeatable; default:\n"
            "$LKM_EMULATE_KALLSYMS, else synthetic addresses",
            complete="file",
        ),
        Opt("", "synthetic", None, "no kernel symbol file: synthetic addresses"),
        Opt("", "budget", "N", "instructions per call"),
        Opt("", "timeout", "SECONDS", "wall-clock budget per call"),
        Opt(
            "",
            "memory",
            "BYTES",
            "the module's heap (kmalloc/vmalloc) cap; past it allocations\nreturn NULL (default 256 MiB)",
        ),
        Opt(
            "",
            "device",
            "SPEC",
            "an emulated device (pci:vVVVVdDDDD[,bar0=mem:SIZE,irq=N],\n"
            "usb:vVVVVpPPPP, platform:NAME, or auto); repeatable",
        ),
        Opt(
            "",
            "device-replay",
            "TRACE",
            "a PCI device answering from a device trace recorded in QEMU\n"
            "(scripts/guest_replay.py); divergences are reported",
            complete="file",
        ),
        Opt("", "irq", "N", "raise interrupt line N after init; repeatable"),
        Opt("", "advance", "MS", "move the virtual clock MS milliseconds on after init"),
        Opt("", "session", "FILE", "save the session for `lkm dev --session FILE`", complete="file"),
        Opt("", "state", "FILE", "deprecated spelling of --session", hidden=True),
        Opt(
            "",
            "script",
            "FILE",
            "run a session script (insmod, rmmod, dev open|read|write|ioctl|\nrelease, cat /proc/...)",
            complete="file",
        ),
    ],
)


def _session_option(prog: str, o: dict[str, str]) -> dict[str, str]:
    """--state (the old spelling of --session) still works, with a warning; -k/--kallsyms are --kernel."""
    if "--state" in o:
        sys.stderr.write(
            f"{prog}: warning: --state is deprecated for the emulator's session: use --session\n"
        )
        o.setdefault("--session", o.pop("--state"))
    for alias in ("-k", "--kallsyms"):
        if alias in o:
            o.setdefault("--kernel", o.pop(alias))
    return o


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = TOOL.parse(prog, args)
        o = _session_option(prog, dict(opts))
        kernels = [v for f, v in opts if f in ("-k", "--kernel", "--kallsyms")]
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
        devices = [v for f, v in opts if f == "--device"]
        devices += [f"replay:{os.path.abspath(v)}" for f, v in opts if f == "--device-replay"]

        for spec in devices:
            try:
                device_from_spec(spec)
            except DeviceSpecError as exc:
                raise UsageError(str(exc)) from None
        after = [f"irq {int(v, 0)}" for f, v in opts if f == "--irq"]
        if "--advance" in o:
            ms = int(o["--advance"], 0)
            if ms < 0:
                raise ValueError(f"--advance must be a number of milliseconds, not {o['--advance']}")
            after.append(f"advance {ms}")
    except (UsageError, ValueError) as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    try:
        from lkm.emulate.kernel import SymbolSpace
        from lkm.emulate.report import format_outcome, outcome_json, warnings
        from lkm.emulate.session import DEFAULT, Session, save_state
    except ImportError as exc:
        sys.stderr.write(f"{prog}: install lkm[run] (the emulator needs {exc.name or 'unicorn'})\n")
        return 1

    try:
        symbols: SymbolSpace | str | None = None
        if "--synthetic" in o:
            symbols = None
        elif kernels:
            with progress(f"{prog}: reading kernel symbols"):
                symbols = SymbolSpace(SymbolTable.from_files(*kernels))
        else:
            symbols = DEFAULT  # $LKM_EMULATE_KALLSYMS, else synthetic
        session = Session(
            symbols,
            strict="--strict" in o,
            insn_budget=budget,
            time_budget=timeout,
            memory_budget=memory,
            devices=devices,
        )
        session.kernel_files = [os.path.abspath(k) for k in kernels]
        if script is not None:
            lines = read_text(script).splitlines()
            session.base_dir = os.path.dirname(os.path.abspath(script))
        else:
            withs = [v for f, v in opts if f == "--with"]
            lines = [f"insmod {_q(os.path.abspath(p))}" for p in withs]
            lines.append(" ".join(["insmod", _q(os.path.abspath(operands[0])), *map(_q, operands[1:])]))
            lines += after
        outcomes = []
        failed = False
        with progress(f"{prog}: emulating", total=len(lines)) as shown:
            for line in lines:
                out = session.execute(line)
                shown.advance()
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
        if "--session" in o:
            save_state(o["--session"], session)
    except (LkmError, OSError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    # A call lkm does not implement: one line each on stderr (the report has them too).
    sys.stderr.write("".join(f"{prog}: {w}\n" for x in outcomes for w in warnings(x)))
    replays = _replays(session, outcomes)
    if "--json" in o:
        # JSON Lines: one document per command run (and one per replayed device)
        sys.stdout.write("".join(json.dumps(document("run", **outcome_json(x))) + "\n" for x in outcomes))
        sys.stdout.write("".join(json.dumps(document("run", replay=r.json())) + "\n" for r in replays))
    else:
        sys.stdout.write("".join(format_outcome(x) for x in outcomes))
        for r in replays:
            sys.stdout.write("## device replay\n" + "".join(f"  {ln}\n" for ln in r.lines()))
    for r in replays:
        if r.divergence is not None:
            sys.stderr.write(f"{prog}: replay {r.path}: divergence at {r.divergence.describe()}\n")
    return 1 if failed or not all(r.ok for r in replays) else 0


def _replays(session: Session, outcomes: list[Outcome]) -> list[ReplayReport]:
    """The replay report of each recorded device: probe's log is the last insmod's, remove's
    the rmmod's."""
    if session.kernel is None:
        return []
    hw = hw_of(session.kernel)
    logs: dict[str, list[str]] = {}
    for x in outcomes:
        if x.command.startswith("insmod"):
            logs["probe"] = x.log
        elif x.command.startswith("rmmod"):
            logs["remove"] = x.log
    return [report(d, hw, logs) for d in replay_devices(hw)]


def _q(word: str) -> str:
    return shlex.quote(word)

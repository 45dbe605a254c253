"""``lkm rmmod [options] MODULENAME...``: remove modules from the kernel, as kmod's rmmod.

Options as kmod 30's: -f (force: O_TRUNC, skips the in-use check), -s, -v, -V, -w, -h.
A module is named by its name or by the path of its file.  Exit 1 if any removal failed.
lkm's ``--json`` adds one JSON document per module on stdout (JSON Lines, kind ``rmmod``,
:mod:`lkm.cli.loadjson`); the messages on stderr and the exit status stay kmod's.
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.backend import choose
from lkm.cli.loadjson import Watch, loaded, rmmod_document
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.kernel import KernelError, open_kernel
from lkm.kernel.load import NotRemovable, check_removable, module_name, remove_module

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "rmmod",
    "remove modules from the running kernel (kmod-compatible)",
    usage=["[options] modulename ..."],
    kmod=True,
    width=18,
    options=[
        Opt(
            "f",
            "force",
            None,
            "forces a module unload and may crash your\nmachine. This requires Forced Module Removal\n"
            "option in your kernel. DANGEROUS",
        ),
        Opt("s", "syslog", None, "print to syslog, not stderr"),
        Opt("v", "verbose", None, "enables more messages"),
        Opt("V", "version", None, "show version"),
        Opt("h", "help", None, "show this help"),
        Opt("w", "wait", None, "(accepted, ignored)", hidden=True),
        *BACKEND,
        Opt(
            "",
            "json",
            None,
            "one JSON object per module on stdout saying what\n"
            "happened (JSON Lines, schema lkm/1, kind rmmod)",
            own=True,
        ),
    ],
)


def refusal(exc: KernelError) -> str:
    """The result word of a removal that failed (the JSON's ``result``)."""
    if exc.errno in (errno.EBUSY, errno.EAGAIN):
        return "in-use"
    if isinstance(exc, NotRemovable) and exc.reason.endswith(" is builtin."):
        return "builtin"
    if exc.errno == errno.ENOENT and (
        not isinstance(exc, NotRemovable) or "not currently loaded" in exc.reason
    ):
        return "not-loaded"
    return "failed"


def run(prog: str, args: list[str]) -> int:
    done, chosen, args = choose(prog, args, "rmmod")
    if done is not None:
        return done
    err = sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    force = as_json = False
    for flag, _ in opts:
        if flag in ("-f", "--force"):
            force = True
        elif flag == "--json":
            as_json = True
    if not operands:
        err(f"{prog}: ERROR: missing module name.\n")
        return 1

    kernel = chosen or open_kernel()
    failed = 0
    for arg in operands:
        name = module_name(arg) if os.path.exists(arg) else arg.replace("-", "_")
        watch = Watch(kernel) if as_json else None
        before = loaded(kernel, name) if as_json else {}
        logged: list[str] = []
        problem: KernelError | None = None
        message = ""
        if not force:
            try:
                check_removable(kernel, name, logged)
            except NotRemovable as exc:
                problem, message = exc, exc.reason
            for line in logged if problem is None else [*logged, message]:
                err(f"{prog}: ERROR: {line}\n")
        if problem is None:
            try:
                remove_module(kernel, name, force=force)
            except KernelError as exc:
                problem, message = exc, f"could not remove module {arg}: {exc.strerror}"
                err(f"{prog}: ERROR: {message}\n")
        if problem is not None:
            failed += 1
        if as_json:
            if problem is None:
                doc = rmmod_document(kernel, name, arg, "removed", None, None, before, logged, watch)
            else:
                result = refusal(problem)
                doc = rmmod_document(kernel, name, arg, result, problem.errno, message, before, logged, watch)
            sys.stdout.write(doc)
    return 1 if failed else 0

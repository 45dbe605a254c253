"""``lkm rmmod [options] MODULENAME...``: remove modules from the kernel, as kmod's rmmod.

Options as kmod 30's: -f (force: O_TRUNC, skips the in-use check), -s, -v, -V, -w, -h.
A module is named by its name or by the path of its file.  Exit 1 if any removal failed.
"""

from __future__ import annotations

import os
import sys

from lkm.cli.backend import choose
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
    ],
)


def run(prog: str, args: list[str]) -> int:
    done, chosen, args = choose(prog, args, "rmmod")
    if done is not None:
        return done
    err = sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    force = False
    for flag, _ in opts:
        if flag in ("-f", "--force"):
            force = True
    if not operands:
        err(f"{prog}: ERROR: missing module name.\n")
        return 1

    kernel = chosen or open_kernel()
    failed = 0
    for arg in operands:
        name = module_name(arg) if os.path.exists(arg) else arg.replace("-", "_")
        if not force:
            logged: list[str] = []
            refused = None
            try:
                check_removable(kernel, name, logged)
            except NotRemovable as exc:
                refused = exc.reason
            for line in logged if refused is None else [*logged, refused]:
                err(f"{prog}: ERROR: {line}\n")
            if refused is not None:
                failed += 1
                continue
        try:
            remove_module(kernel, name, force=force)
        except KernelError as exc:
            err(f"{prog}: ERROR: could not remove module {arg}: {exc.strerror}\n")
            failed += 1
    return 1 if failed else 0

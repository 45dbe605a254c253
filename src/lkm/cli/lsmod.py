"""``lkm lsmod``: the loaded modules, formatted as kmod's lsmod prints them."""

from __future__ import annotations

import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError
from lkm.kernel.interface import LoadedModule

HELP = (
    "Usage:\n\t{prog} [options]\nOptions:\n"
    "\t-s, --syslog      print to syslog, not stderr\n"
    "\t-v, --verbose     enables more messages\n"
    "\t-V, --version     show version\n"
    "\t-h, --help        show this help\n"
)
HEADER = "Module                  Size  Used by\n"


def format_lsmod(modules: list[LoadedModule]) -> str:
    rows = [HEADER]
    for m in modules:
        used = " " + ",".join(m.holders) if m.holders else ""
        rows.append(f"{m.name:<19} {m.size:8d}  {m.refcount}{used}\n")
    return "".join(rows)


def run(prog: str, args: list[str]) -> int:
    from lkm.cli.backend import open_backend, split_backend

    model, state, args = split_backend(args)
    chosen = None
    if model:
        try:
            chosen = open_backend(True, state)
        except LkmError as exc:
            sys.stderr.write(f"{prog}: ERROR: {exc}\n")
            return 1
        from lkm.kernel.model import ModelKernel

        if isinstance(chosen, ModelKernel) and chosen.is_24:
            from lkm.cli import modutils24

            return modutils24.lsmod(prog, args, chosen)
    err = sys.stderr.write
    try:
        opts, operands = parse(args, "svVh", ["syslog", "verbose", "version", "help"])
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    for flag, _ in opts:
        if flag in ("-h", "--help"):
            sys.stdout.write(HELP.format(prog=prog))
            return 0
        if flag in ("-V", "--version"):
            from lkm import __version__

            sys.stdout.write(f"lkm version {__version__}\n")
            return 0
    if operands:
        err(f"{prog}: ERROR: too many arguments provided.\n")
        return 1
    from lkm.kernel import KernelError, open_kernel

    try:
        modules = (chosen or open_kernel()).modules()
    except KernelError as exc:
        # kmod 30's lsmod words this one without its program name.
        err(f"Error: could not get list of modules: {exc.strerror}\n")
        return 1
    sys.stdout.write(format_lsmod(modules))
    return 0

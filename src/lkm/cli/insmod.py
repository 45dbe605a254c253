"""``lkm insmod [options] FILENAME [ARGS...]``: insert a module into the kernel, as kmod's insmod.

Options as kmod 30's: -f (force: ignore symbol versions and vermagic), -p and -s (accepted,
ignored), -V, -h.  Messages and exit status as kmod's.
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.backend import choose
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.kernel import KernelError, open_kernel
from lkm.kernel.load import insert_module, join_options

__all__ = ["MOD_STRERROR", "TOOL", "mod_strerror", "run"]


TOOL = Tool(
    "insmod",
    "insert a module into the running kernel (kmod-compatible)",
    usage=["[options] filename [args]"],
    kmod=True,
    width=18,
    options=[
        Opt("f", "force", None, "ignore symbol versions and version magic", hidden=False),
        Opt("p", "", None, "(accepted, ignored)", hidden=True),
        Opt("s", "", None, "(accepted, ignored)", hidden=True),
        Opt("V", "version", None, "show version"),
        Opt("h", "help", None, "show this help"),
        *BACKEND,
    ],
)
# kmod's insmod words these errnos its own way (tools/insmod.c mod_strerror).
MOD_STRERROR = {
    errno.ENOEXEC: "Invalid module format",
    errno.ENOENT: "Unknown symbol in module",
    errno.ESRCH: "Module has wrong symbol version",
    errno.EINVAL: "Invalid parameters",
}


def mod_strerror(err: int) -> str:
    return MOD_STRERROR.get(err) or os.strerror(err)


def run(prog: str, args: list[str]) -> int:
    done, chosen, args = choose(prog, args, "insmod")
    if done is not None:
        return done
    err = sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    force = False
    for flag, _ in opts:
        if flag in ("-f", "--force"):
            force = True
    if not operands:
        err(f"{prog}: ERROR: missing filename.\n")
        return 1
    filename = operands[0]
    if filename == "-":
        err(f"{prog}: ERROR: this tool does not support loading from stdin!\n")
        return 1

    try:
        os.stat(filename)
    except OSError as exc:
        err(f"{prog}: ERROR: could not load module {filename}: {exc.strerror}\n")
        return 1
    try:
        insert_module(chosen or open_kernel(), filename, join_options(operands[1:]), force=force)
    except KernelError as exc:
        err(f"{prog}: ERROR: could not insert module {filename}: {mod_strerror(exc.errno)}\n")
        return 1
    except LkmError as exc:
        err(f"{prog}: ERROR: could not insert module {filename}: {exc.reason}\n")
        return 1
    return 0

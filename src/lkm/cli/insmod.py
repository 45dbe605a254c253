"""``lkm insmod [options] FILENAME [ARGS...]``: insert a module into the kernel, as kmod's insmod.

Options as kmod 30's: -f (force: ignore symbol versions and vermagic), -p and -s (accepted,
ignored), -V, -h.  Messages and exit status as kmod's.  lkm's ``--json`` adds one JSON
document on stdout saying what happened (kind ``insmod``, :mod:`lkm.cli.loadjson`); the
messages on stderr and the exit status stay kmod's.
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.backend import choose
from lkm.cli.loadjson import Watch, insmod_document
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.kernel import KernelError, open_kernel
from lkm.kernel.interface import Kernel
from lkm.kernel.load import insert_module, join_options, module_name

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
        Opt(
            "",
            "json",
            None,
            "one JSON object on stdout saying what happened\n(schema lkm/1, kind insmod)",
            own=True,
        ),
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


def _names(kernel: Kernel) -> set[str]:
    try:
        return {m.name for m in kernel.modules()}
    except LkmError:
        return set()


def run(prog: str, args: list[str]) -> int:
    done, chosen, args = choose(prog, args, "insmod")
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
        err(f"{prog}: ERROR: missing filename.\n")
        return 1
    filename = operands[0]
    if filename == "-":
        err(f"{prog}: ERROR: this tool does not support loading from stdin!\n")
        return 1

    def failed(errno_: int | None, message: str, kernel: Kernel | None, watch: Watch | None) -> int:
        err(f"{prog}: ERROR: {message}\n")
        if as_json:
            name = module_name(filename)
            sys.stdout.write(insmod_document(kernel, name, filename, errno_, message, watch))
        return 1

    try:
        os.stat(filename)
    except OSError as exc:
        return failed(exc.errno or errno.EIO, f"could not load module {filename}: {exc.strerror}", None, None)
    kernel = chosen or open_kernel()
    watch = Watch(kernel) if as_json else None
    before = _names(kernel) if as_json else set()
    try:
        insert_module(kernel, filename, join_options(operands[1:]), force=force)
    except KernelError as exc:
        return failed(
            exc.errno, f"could not insert module {filename}: {mod_strerror(exc.errno)}", kernel, watch
        )
    except LkmError as exc:
        return failed(exc.errno, f"could not insert module {filename}: {exc.reason}", kernel, watch)
    if as_json:
        new = sorted(_names(kernel) - before)
        name = new[0] if len(new) == 1 else module_name(filename)
        sys.stdout.write(insmod_document(kernel, name, filename, None, None, watch))
    return 0

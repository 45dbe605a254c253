"""``lkm why NAME``: why a module is (or would be) loaded, and why it would not be.

lkm why [--json] [-d ROOT] [-S RELEASE] [-C CONFIG]... [-b] [--log FILE] [--model | --state PATH] NAME

NAME is a module name or anything modprobe takes (an alias, a device's modalias, symbol:NAME).
-d/-S/-C are modprobe's (modules directory ROOT/lib/modules/RELEASE, modprobe.d files); -b asks
as ``modprobe -b`` (udev) does; --log FILE reads the kernel's module requests from a kernel log
or trace (``module_request: NAME wait=...``); --model/--state ask a model kernel what is loaded
(else the running kernel, when RELEASE is its release).  The work is :func:`lkm.why.why`.
"""

from __future__ import annotations

import os
import sys

from lkm.cli.backend import open_backend, split_backend
from lkm.cli.getopt import UsageError
from lkm.cli.jsonout import line
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.moddir import ModulesDir
from lkm.modprobe import Resolver, load_config
from lkm.safeio import read_text
from lkm.why import parse_requests, why

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "why",
    "why a module is (or would be) loaded, and why it would not be",
    usage=["[options] NAME"],
    description="NAME is a module name or anything modprobe takes (an alias, a device's modalias,\n"
    "symbol:NAME).  With a model kernel (--model/--state) it is asked what is loaded, else the\n"
    "running kernel when RELEASE is its release.",
    options=[
        Opt("d", "dirname", "DIR", "modules directory root (DIR/lib/modules/RELEASE), as modprobe -d"),
        Opt("S", "set-version", "RELEASE", "kernel release instead of `uname -r`, as modprobe -S"),
        Opt("C", "config", "FILE", "modprobe.d file or directory; repeatable", complete="file"),
        Opt("b", "", None, "apply the blacklist as modprobe -b (udev) does"),
        Opt("", "log", "FILE", "the kernel's module requests from a kernel log or trace", complete="file"),
        Opt("", "json", None, "one JSON object"),
        *BACKEND,
    ],
)


def run(prog: str, args: list[str]) -> int:
    model, state, args = split_backend(args)
    try:
        opts, operands = TOOL.parse(prog, args)
        if len(operands) != 1:
            raise UsageError("exactly one NAME is needed")
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    root = release = log = None
    configs: list[str] | None = None
    as_json = blacklist = False
    for f, v in opts:
        if f in ("-d", "--dirname"):
            root = v
        elif f in ("-S", "--set-version"):
            release = v
        elif f in ("-C", "--config"):
            configs = [*(configs or []), v]
        elif f == "-b":
            blacklist = True
        elif f == "--json":
            as_json = True
        elif f == "--log":
            log = v

    running = os.uname().release
    rel = release or running
    dirname = f"{root or ''}/lib/modules/{rel}"
    try:
        requests = None
        if log is not None:
            try:
                requests = parse_requests(read_text(log))
            except OSError as exc:
                raise LkmError(exc.strerror or "cannot read", path=log) from None
        kernel = None
        if model:
            kernel = open_backend(True, state)
        elif rel == running and root is None:
            try:
                kernel = open_backend(False, None)
            except (LkmError, OSError):
                kernel = None
        if not os.path.isdir(dirname):
            raise LkmError("no such modules directory", path=dirname)
        cfg = load_config(dirname, configs)
        res = Resolver(ModulesDir(dirname), cfg)
        rep = why(res, operands[0], kernel=kernel, requests=requests, blacklist_all=blacklist, release=rel)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    if as_json:
        sys.stdout.write(line("why", **rep.as_json()))
    else:
        sys.stdout.write(rep.as_text())
    return 0 if rep.modules else 1

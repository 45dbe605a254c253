"""``lkm lsmod``: the loaded modules, formatted as kmod's lsmod prints them.

kmod 30's lsmod takes no options: any argument gets "Usage: PROG" and exit status 1; lkm
adds only ``--json`` (JSON Lines, kind ``lsmod``), through a link named lsmod and as
``kmod list --json`` too.
"""

from __future__ import annotations

import sys

from lkm.cli.backend import choose
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.kernel import KernelError, open_kernel
from lkm.kernel.interface import LoadedModule

__all__ = ["HEADER", "LIBKMOD_FROM_LOADED", "TOOL", "format_lsmod", "run"]


TOOL = Tool(
    "lsmod",
    "list the modules loaded in the running kernel (kmod-compatible)",
    usage=[""],
    kmod=True,
    description="Called as lsmod (a link), it takes no options, as kmod's lsmod.",
    options=[
        *BACKEND,
        Opt("", "json", None, "one JSON object per module (JSON Lines, schema lkm/1)", own=True),
    ],
)
LIBKMOD_FROM_LOADED = "libkmod: ERROR ../libkmod/libkmod-module.c:1725 kmod_module_new_from_loaded: "
HEADER = "Module                  Size  Used by\n"


def format_lsmod(modules: list[LoadedModule]) -> str:
    rows = [HEADER]
    for m in modules:
        used = " " + ",".join(m.holders) if m.holders else ""
        rows.append(f"{m.name:<19} {m.size:8d}  {m.refcount}{used}\n")
    return "".join(rows)


def run(prog: str, args: list[str]) -> int:
    done, chosen, args = choose(prog, args, "lsmod")
    if done is not None:
        return done
    as_json = False
    if prog in ("lsmod", "list"):  # kmod's own lsmod (and kmod list): no options but lkm's --json
        as_json = args == ["--json"]
        if args and not as_json:
            sys.stderr.write(f"Usage: {prog}\n")
            return 1
    else:
        opts, operands = TOOL.parse(prog, args)
        as_json = bool(opts)
        if operands:
            sys.stderr.write(f"Usage: {prog}\n")
            return 1
    try:
        modules = (chosen or open_kernel()).modules()
    except KernelError as exc:
        if chosen is None:
            # libkmod's own logger reports the unreadable /proc/modules first (Debian's kmod 30)
            sys.stderr.write(f"{LIBKMOD_FROM_LOADED}could not open /proc/modules: {exc.strerror}\n")
        # kmod 30's lsmod words this one without its program name.
        sys.stderr.write(f"Error: could not get list of modules: {exc.strerror}\n")
        return 1
    if as_json:
        from lkm.cli.jsonout import emit, loaded_module  # lazy: json only for --json (start-up)

        for m in modules:
            emit("lsmod", **loaded_module(m))
        return 0
    sys.stdout.write(format_lsmod(modules))
    return 0

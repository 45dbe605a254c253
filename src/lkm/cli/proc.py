"""``lkm proc FILE``: a model kernel's /proc files (modules, ksyms, kallsyms, vmallocinfo) in
the formats of the kernel it models; without a model kernel, the running system's file."""

from __future__ import annotations

import sys

from lkm.cli.tool import BACKEND, Tool
from lkm.errors import LkmError

USAGE = "Usage: lkm proc [--model | --state PATH] modules|ksyms|kallsyms|vmallocinfo\n"
TOOL = Tool(
    "proc",
    "a model kernel's /proc files: modules, ksyms, kallsyms, vmallocinfo",
    usage=["[--model | --state FILE] modules|ksyms|kallsyms|vmallocinfo"],
    description="Without a model kernel, the running system's file.",
    options=[*BACKEND],
)


def run(prog: str, args: list[str]) -> int:
    from lkm.cli.backend import split_backend
    from lkm.kernel.procfs import PROC_FILES

    model, state, args = split_backend(args)
    _opts, args = TOOL.parse(prog, args)
    if len(args) != 1 or args[0] not in PROC_FILES:
        sys.stderr.write(USAGE)
        return 1
    try:
        if model:
            from lkm.kernel.model import ModelKernel

            text = PROC_FILES[args[0]](ModelKernel(state))
        else:
            with open(f"/proc/{args[0]}", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except (LkmError, OSError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    sys.stdout.write(text)
    return 0

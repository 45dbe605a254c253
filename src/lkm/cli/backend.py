"""Which kernel a module tool works on: the running Linux, or a model kernel chosen with
``--model`` (the default state file), ``--state PATH``, or ``$LKM_STATE``.  The options are
taken out of the argument list before the tool parses its own, so every tool accepts them."""

from __future__ import annotations

import os
import sys

from lkm.errors import LkmError
from lkm.kernel import open_kernel
from lkm.kernel.interface import Kernel

__all__ = ["choose", "open_backend", "split_backend"]


def split_backend(args: list[str]) -> tuple[bool, str | None, list[str]]:
    """(model wanted, state path or None for the default, the other arguments)."""
    model = bool(os.environ.get("LKM_STATE"))
    state: str | None = None
    rest: list[str] = []
    i = 0
    n = len(args)
    while i < n:
        a = args[i]
        if a[:2] != "--":  # not one of ours (nor "--"): most arguments
            rest.append(a)
            i += 1
            continue
        if a == "--":
            rest.extend(args[i:])
            break
        if a == "--model":
            model = True
        elif a.startswith("--state="):
            model, state = True, a[len("--state=") :]
        elif a == "--state" and i + 1 < len(args):
            model, state = True, args[i + 1]
            i += 1
        else:
            rest.append(a)
        i += 1
    return model, state, rest


def open_backend(model: bool, state: str | None) -> Kernel:
    """The live kernel, or the model kernel at ``state`` (raises lkm.kernel.model.state.StateError)."""
    if not model:
        return open_kernel()
    from lkm.kernel.model import ModelKernel  # lazy: the model (SQLite, linker) costs start-up

    return ModelKernel(state)


def choose(prog: str, args: list[str], tool: str) -> tuple[int | None, Kernel | None, list[str]]:
    """For kmod's insmod/rmmod/lsmod: (exit status when the call was handled here, the model
    kernel chosen or None for the live one, the remaining arguments).  A 2.4 model kernel is
    handed to modutils' tool of the same name (:mod:`lkm.cli.modutils24`)."""
    model, state, rest = split_backend(args)
    if not model:
        return None, None, rest
    try:
        kernel = open_backend(True, state)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1, None, rest
    from lkm.kernel.model import ModelKernel  # lazy: as above

    if isinstance(kernel, ModelKernel) and kernel.version.user_space_link:
        from lkm.cli import modutils24  # lazy: 2.4 tools only for a 2.4 model

        status: int = getattr(modutils24, tool)(prog, rest, kernel)
        return status, kernel, rest
    return None, kernel, rest

"""Which kernel a module tool works on: the running Linux, or a model kernel chosen with
``--model`` (the default state file), ``--state PATH``, or ``$LKM_STATE``.  The options are
taken out of the argument list before the tool parses its own, so every tool accepts them."""

from __future__ import annotations

import os

from lkm.kernel.interface import Kernel


def split_backend(args: list[str]) -> tuple[bool, str | None, list[str]]:
    """(model wanted, state path or None for the default, the other arguments)."""
    model = bool(os.environ.get("LKM_STATE"))
    state: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
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
    """The live kernel, or the model kernel at ``state`` (raises lkm.kernel.state.StateError)."""
    if not model:
        from lkm.kernel import open_kernel

        return open_kernel()
    from lkm.kernel.model import ModelKernel

    return ModelKernel(state)

"""Kernels that modules are loaded into: one interface, two backends.

:class:`~lkm.kernel.interface.Kernel` is what insmod, rmmod, lsmod, modprobe and verify talk
to.  ``lkm.kernel.live`` implements it over the running Linux (the real system calls, /proc,
/sys); ``lkm.kernel.model`` implements it over a persistent model kernel (SQLite state, the
2.4 system calls as well as today's).  The tools never know which one they hold.
"""

from __future__ import annotations

import sys

from lkm.kernel.interface import (
    MODULE_INIT_COMPRESSED_FILE,
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    Kernel,
    KernelError,
    LoadedModule,
)

# Backend name -> "module:class"; the live kernel is the default.  Options a backend needs
# (e.g. a model kernel's state file) are passed through as keyword arguments.
BACKENDS: dict[str, str] = {
    "live": "lkm.kernel.live:LiveKernel",
    "model": "lkm.kernel.model:ModelKernel",  # options: state=PATH (default $LKM_STATE / XDG)
    "snapshot": "lkm.kernel.snapshot:SnapshotKernel",  # path=DIR: a captured machine, read-only
}


def open_kernel(backend: str = "live", **options: object) -> Kernel:
    """The kernel a tool works on: the running Linux unless another backend is named."""
    modname, _, cls = BACKENDS[backend].partition(":")
    __import__(modname)  # (not importlib: its import costs a small tool's start-up)
    kernel: Kernel = getattr(sys.modules[modname], cls)(**options)
    return kernel


__all__ = [
    "BACKENDS",
    "MODULE_INIT_COMPRESSED_FILE",
    "MODULE_INIT_IGNORE_MODVERSIONS",
    "MODULE_INIT_IGNORE_VERMAGIC",
    "Kernel",
    "KernelError",
    "LoadedModule",
    "open_kernel",
]

"""Kernels that modules are loaded into: one interface, two backends.

:class:`~lkm.kernel.interface.Kernel` is what insmod, rmmod, lsmod, modprobe and verify talk
to.  ``lkm.kernel.live`` implements it over the running Linux (the real system calls, /proc,
/sys); ``lkm.kernel.model`` implements it over a persistent model kernel (SQLite state, the
2.4 system calls as well as today's).  The tools never know which one they hold.
"""

from __future__ import annotations

from lkm.kernel.interface import (
    MODULE_INIT_COMPRESSED_FILE,
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    Kernel,
    KernelError,
    LoadedModule,
)

__all__ = [
    "MODULE_INIT_COMPRESSED_FILE",
    "MODULE_INIT_IGNORE_MODVERSIONS",
    "MODULE_INIT_IGNORE_VERMAGIC",
    "Kernel",
    "KernelError",
    "LoadedModule",
]

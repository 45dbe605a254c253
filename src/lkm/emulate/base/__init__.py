"""The base kernel's functions, in Python, registered by name when this package is imported
(see :func:`lkm.emulate.kernel.kfunc`).  One module per subsystem."""

from lkm.emulate.base import devices, mm, printk, runtime, strings, sync  # noqa: F401

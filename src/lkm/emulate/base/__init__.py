"""The base kernel's functions, in Python, registered by name when this package is imported
(see :func:`lkm.emulate.kernel.kfunc`).  One module per subsystem."""

# isort: off
from lkm.emulate.base import devices, mm, printk, runtime, strings, sync  # noqa: F401

# The driver core, buses, I/O, interrupts and deferred work: imported after the modules above,
# whose record-only versions of the same functions they replace.
from lkm.emulate.base import bus, io, irq, pci, uaccess, usb  # noqa: F401
# isort: on

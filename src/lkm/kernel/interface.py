"""The kernel interface the module tools are written against.

It is the system-call and /proc//sys surface kmod's tools use, no more: a backend that
implements these methods can be driven by ``lkm insmod|rmmod|lsmod|modprobe``.  Failures are
:class:`KernelError` with the errno the real call returns, so a tool words them exactly as
kmod does (``strerror`` of that errno) whichever backend it holds.
"""

from __future__ import annotations

import errno as _errno
import os

from lkm.errors import InvalidModule, LkmError
from lkm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Protocol
else:
    # Kernel is a structural type for the checker only; at run time a plain base class
    # spares every tool the import of typing (and re, collections, contextlib with it).
    Protocol = object

__all__ = [
    "MODULE_INIT_COMPRESSED_FILE",
    "MODULE_INIT_IGNORE_MODVERSIONS",
    "MODULE_INIT_IGNORE_VERMAGIC",
    "O_NONBLOCK",
    "O_TRUNC",
    "TAINT_ORDER",
    "Kernel",
    "KernelError",
    "LoadedModule",
    "kernel_error",
    "not_loaded",
]

# init_module(2) / finit_module(2) flags (include/uapi/linux/module.h).
MODULE_INIT_IGNORE_MODVERSIONS = 1
MODULE_INIT_IGNORE_VERMAGIC = 2
MODULE_INIT_COMPRESSED_FILE = 4

# delete_module(2) flags, as kmod passes them (rmmod: O_NONBLOCK always, O_TRUNC with -f).
O_NONBLOCK = os.O_NONBLOCK
O_TRUNC = os.O_TRUNC


class KernelError(LkmError):
    """A kernel call failed; ``errno`` is what the real call would set."""

    errno: int

    def __init__(self, call: str, errno: int, reason: str | None = None, *, path: str | None = None) -> None:
        super().__init__(reason or os.strerror(errno), path=path, errno=errno)
        self.call = call

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno)


# Taint letters as /proc/modules prints them (kernel/panic.c taint_flags, module-relevant ones).
TAINT_ORDER = "PFOEX"


def kernel_error(call: str, exc: InvalidModule) -> KernelError:
    """The KernelError a loader failure becomes (the module's errno, its one-line reason)."""
    return KernelError(call, exc.errno, exc.reason, path=exc.path)


class LoadedModule(Record):
    """One row of /proc/modules, with the /sys/module facts lsmod reads."""

    __slots__ = ("name", "size", "refcount", "holders", "state", "address", "taints")

    def __init__(
        self,
        name: str,
        size: int,
        refcount: int,
        holders: tuple[str, ...] | None,
        state: str = "Live",
        address: int = 0,
        taints: str = "",
    ) -> None:
        self.name = name
        self.size = size  # coresize, as lsmod prints it
        self.refcount = refcount
        # "used by", in /sys/module/NAME/holders order; None when the kernel has no holders list
        self.holders = holders
        self.state = state  # Live, Loading, Unloading
        self.address = address
        self.taints = taints  # e.g. "(OE)"


class Kernel(Protocol):
    """What a kernel offers the module tools."""

    release: str  # uname -r
    machine: str  # uname -m

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        """Load a module file (the kernel reads, checks, lays out and links it)."""
        ...

    def init_module(self, image: bytes, params: str = "") -> None:
        """Load a module from a buffer holding the (uncompressed) file."""
        ...

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        """Unload a module by name."""
        ...

    def modules(self) -> list[LoadedModule]:
        """The loaded modules, in /proc/modules order (most recently loaded first)."""
        ...

    def module_compression(self) -> str | None:
        """The in-kernel decompressor (/sys/module/compression), or None."""
        ...

    def sections(self, name: str) -> dict[str, int]:
        """Section name -> load address of a loaded module (/sys/module/NAME/sections)."""
        ...

    def parameters(self, name: str) -> dict[str, str]:
        """Readable parameter values of a loaded module (/sys/module/NAME/parameters)."""
        ...

    def kallsyms(self) -> str:
        """/proc/kallsyms text."""
        ...

    def is_builtin(self, name: str) -> bool:
        """True if NAME is built into the kernel (modules.builtin), so rmmod says so."""
        ...

    def initstate(self, name: str) -> str | None:
        """/sys/module/NAME/initstate: "live", "coming", "going"; "builtin" for a built-in
        module; None when NAME is neither loaded nor built in."""
        ...

    def module(self, name: str) -> LoadedModule | None:
        """One loaded module as lsmod and rmmod see it (size, refcount, holders), or None."""
        ...


def not_loaded(call: str, name: str) -> KernelError:
    return KernelError(call, _errno.ENOENT, f"Module {name} is not currently loaded")

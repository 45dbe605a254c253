"""The typed error hierarchy.  The library raises these and never prints or exits.

Every error carries a one-line ``reason`` and, where the kernel or kmod would fail with one,
the ``errno``: :class:`InvalidModule` (what a Linux kernel returns for the same file, so a
loader built on the reader reports what ``init_module(2)`` would),
:class:`lkm.kernel.interface.KernelError` (a system call's), the parameter errors of the
emulator.  Code that reports an errno asks ``LkmError.errno`` (None: no errno applies).
"""

from __future__ import annotations

import errno as _errno

__all__ = ["BadSignature", "DecompressionError", "InvalidModule", "LinkError", "LkmError", "ModprobeError"]


class LkmError(Exception):
    """Base class of everything lkm raises on bad input or failed operations: a one-line
    ``reason``, the ``path`` it is about and the ``errno`` the kernel or kmod would give."""

    def __init__(self, reason: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.errno = errno

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class InvalidModule(LkmError):
    """The data is not a module the kernel would accept (or could read at all)."""

    errno: int

    def __init__(self, reason: str, errno: int = _errno.ENOEXEC, *, path: str | None = None) -> None:
        super().__init__(reason, path=path, errno=errno)


class LinkError(InvalidModule):
    """A module that cannot be linked; the reason names module, section, offset and symbol.
    ``printk``: the lines the kernel's loader prints on the way (simplify_symbols' pr_warn
    per unknown symbol), for a model kernel's log."""

    def __init__(
        self,
        reason: str,
        errno: int = _errno.ENOEXEC,
        *,
        path: str | None = None,
        printk: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, errno, path=path)
        self.printk = printk


class DecompressionError(InvalidModule):
    """A compressed module whose stream is corrupt or truncated."""


class BadSignature(InvalidModule):
    """The appended module signature is malformed."""

    def __init__(self, reason: str, errno: int = _errno.EBADMSG, *, path: str | None = None) -> None:
        super().__init__(reason, errno, path=path)


class ModprobeError(LkmError):
    """modprobe failed (:class:`lkm.modprobe.Modprobe`): ``errno`` is libkmod's (ENOENT for a
    name that matches no module); the lines modprobe prints about it have been written
    already.  Defined here so a kernel running modprobe (the model's request_module) can tell
    it from its own failures without importing lkm.modprobe."""

    errno: int

    def __init__(self, reason: str, errno: int, *, path: str | None = None) -> None:
        super().__init__(reason, path=path, errno=errno)

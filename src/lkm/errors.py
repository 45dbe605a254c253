"""The typed error hierarchy.  The library raises these and never prints or exits.

Every error carries a one-line ``reason``; :class:`InvalidModule` also carries the errno a
Linux kernel would return for the same file, so a loader built on the reader reports what
``init_module(2)`` would.
"""

from __future__ import annotations

import errno as _errno


class LkmError(Exception):
    """Base class of everything lkm raises on bad input or failed operations."""

    def __init__(self, reason: str, *, path: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class InvalidModule(LkmError):
    """The data is not a module the kernel would accept (or could read at all)."""

    def __init__(self, reason: str, errno: int = _errno.ENOEXEC, *, path: str | None = None) -> None:
        super().__init__(reason, path=path)
        self.errno = errno


class LinkError(InvalidModule):
    """A module that cannot be linked; the reason names module, section, offset and symbol."""


class DecompressionError(InvalidModule):
    """A compressed module whose stream is corrupt or truncated."""


class BadSignature(InvalidModule):
    """The appended module signature is malformed."""

    def __init__(self, reason: str, errno: int = _errno.EBADMSG, *, path: str | None = None) -> None:
        super().__init__(reason, errno, path=path)

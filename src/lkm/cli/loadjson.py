"""The JSON of ``insmod --json`` and ``rmmod --json`` (schema lkm/1, kinds ``insmod`` and
``rmmod``): one document per module acted on, saying what happened.

Every document has the module's ``name``, the ``result`` (insmod: ``loaded``,
``already-loaded``, ``failed``; rmmod: ``removed``, ``not-loaded``, ``builtin``, ``in-use``,
``failed``), and on failure the ``errno`` (number and symbolic ``error``) with the
``message`` the text mode prints after ``PROG: ERROR:`` (kmod's wording).  A loaded module
is described as the kernel shows it: its size and address as /proc/modules gives them (hex
strings), its taint letters, its sections (/sys/module/NAME/sections) and, on a model kernel,
its memory regions; the kernel's taint and the lines the kernel logged during the call: a
model kernel's log, or the running kernel's /dev/kmsg (each reader of it has its own position,
so reading takes nothing from dmesg or journald; ``log`` is null where it cannot be read, as
without CAP_SYSLOG under dmesg_restrict).  On a running kernel the log holds whatever the
kernel printed meanwhile, the call's lines among them.
A usage error (no file or module named, a file read from stdin) acts on no module and writes
no document.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import re

from lkm.cli.jsonout import hexaddr, line
from lkm.errors import LkmError
from lkm.kernel.interface import Kernel
from lkm.kernel.live import LiveKernel

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up: insmod, rmmod)
if TYPE_CHECKING:
    from typing import Any

KMSG = "/dev/kmsg"


class Kmsg:
    """A reader of the running kernel's log (/dev/kmsg) from now on."""

    def __init__(self, path: str = KMSG) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)  # only what is logged from now on

    def read(self) -> list[str]:
        """The records logged since (or since the last read), their text only; closes."""
        out: list[str] = []
        try:
            for _ in range(1 << 16):  # bounded: a kernel flooding its log does not keep us here
                try:
                    record = os.read(self.fd, 8192)  # one record per read (kernel/printk)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errnos.EPIPE:  # records overwritten before we read them
                        continue
                    break
                if not record:
                    break
                body = record.partition(b";")[2].split(b"\n", 1)[0]
                # the kernel writes unprintable bytes (and the backslash) as \xNN
                raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), body)
                out.append(raw.decode("utf-8", "replace"))
        finally:
            os.close(self.fd)
        return out


def _log(kernel: Kernel) -> list[str] | None:
    """The kernel log so far, where lkm can read it (a model kernel's), else None."""
    dmesg = getattr(kernel, "dmesg", None)
    if dmesg is None:
        return None
    try:
        return list(dmesg())
    except (LkmError, OSError):  # the log is a detail: the result is what matters
        return None


class Watch:
    """What a call changed in the kernel's log: ``Watch(kernel)`` before, ``.logged()`` after."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.kmsg: Kmsg | None = None
        self.mark: int | None = None
        if isinstance(kernel, LiveKernel):
            with contextlib.suppress(OSError):
                self.kmsg = Kmsg()
            return
        before = _log(kernel)
        self.mark = None if before is None else len(before)

    def logged(self) -> list[str] | None:
        if self.kmsg is not None:
            kmsg, self.kmsg = self.kmsg, None
            return kmsg.read()
        if self.mark is None:
            return None
        after = _log(self.kernel)
        return None if after is None else after[self.mark :]


def kernel_taint(kernel: Kernel) -> int | None:
    """/proc/sys/kernel/tainted of the kernel acted on (None when unreadable)."""
    tainted = getattr(kernel, "tainted", None)
    if tainted is not None:
        try:
            return int(tainted())
        except (LkmError, OSError, ValueError):
            return None
    proc = getattr(kernel, "proc", "/proc")
    try:
        with open(f"{proc}/sys/kernel/tainted", encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def loaded(kernel: Kernel, name: str) -> dict[str, Any]:
    """A loaded module's facts as the kernel reports them (None each when it is not loaded)."""
    try:  # /proc/modules' row (address, taints), as lsmod reads it
        m = next((r for r in kernel.modules() if r.name == name), None)
    except (LkmError, OSError):
        m = None
    if m is None:  # gone already (or /proc/modules unreadable): the facts are unknown
        return dict.fromkeys(("size", "address", "taints", "state", "refcount", "holders", "sections"))
    out: dict[str, Any] = {
        "size": m.size,
        "address": hexaddr(m.address) if m.address else None,
        "taints": m.taints.strip("()"),
        "state": m.state,
        "refcount": m.refcount,
        "holders": list(m.holders) if m.holders is not None else None,
    }
    try:
        out["sections"] = {s: hexaddr(a) for s, a in kernel.sections(name).items()}
    except (LkmError, OSError):  # /sys/module/NAME/sections: root only on a real kernel
        out["sections"] = None
    regions = getattr(kernel, "regions", None)
    if regions is not None:
        with contextlib.suppress(LkmError, OSError):
            out["regions"] = {r: hexaddr(a) for r, a in regions(name).items()}
    return out


def errno_fields(err: int | None, message: str | None) -> dict[str, Any]:
    return {
        "errno": err,
        "error": errnos.errorcode.get(err) if err is not None else None,
        "message": message,
    }


def insmod_document(
    kernel: Kernel | None,
    name: str,
    filename: str,
    err: int | None,
    message: str | None,
    watch: Watch | None,
    warnings: list[str] | None = None,
    result: str | None = None,
    **extra: Any,
) -> str:
    """The ``insmod`` document of one load (``result`` by default: err None, it loaded);
    ``warnings`` are the lines the tool itself printed (modutils' insmod has some)."""
    if result is None:
        result = "loaded" if err is None else "already-loaded" if err == errnos.EEXIST else "failed"
    fields: dict[str, Any] = {"name": name, "file": filename, "result": result, **errno_fields(err, message)}
    if kernel is not None and result == "loaded":
        fields.update(loaded(kernel, name))
    if kernel is not None:
        fields["kernel_taint"] = kernel_taint(kernel)
    fields["warnings"] = warnings or []
    fields["log"] = watch.logged() if watch is not None else None
    return line("insmod", **fields, **extra)


def rmmod_document(
    kernel: Kernel | None,
    name: str,
    argument: str,
    result: str,
    err: int | None,
    message: str | None,
    before: dict[str, Any],
    notes: list[str],
    watch: Watch | None,
) -> str:
    """The ``rmmod`` document of one removal; ``before`` is the module as it was (:func:`loaded`)."""
    fields: dict[str, Any] = {
        "name": name,
        "argument": argument,
        "result": result,
        **errno_fields(err, message),
        "size": before.get("size"),
        "address": before.get("address"),
        "notes": notes,
    }
    if kernel is not None:
        fields["kernel_taint"] = kernel_taint(kernel)
    fields["log"] = watch.logged() if watch is not None else None
    return line("rmmod", **fields)


__all__ = ["Watch", "errno_fields", "insmod_document", "kernel_taint", "loaded", "rmmod_document"]

"""Firmware requests (drivers/base/firmware_loader/main.c): the emulated machine has no
/lib/firmware, so every request fails as on a machine without the file: -ENOENT and
``*firmware_p = NULL`` (request_firmware_nowarn/_direct the same, without the console line);
request_firmware prints the kernel's "Direct firmware load ... failed with error -2" only
with a device (dev_warn), which this kernel's callers do not have on their own."""

from __future__ import annotations

from lkm.emulate.base.registry import ENOENT, table
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__: list[str] = []


def _missing(k: BaseKernel, name_ptr: int) -> None:
    name = k.cstring(name_ptr, 256) if name_ptr else ""
    misses = table(k, "firmware-missing")
    count = misses.get(name, 0)
    misses[name] = (count if isinstance(count, int) else 0) + 1


@kfunc("request_firmware", "request_firmware_direct", "firmware_request_nowarn", "firmware_request_platform",
       nargs=3)  # fmt: skip
def _request_firmware(k: BaseKernel, c: TrapCall) -> int:
    """request_firmware(&fw, name, device): -ENOENT, *fw = NULL."""
    if c.arg(0):
        k.machine.write_word(c.arg(0), 0)
    _missing(k, c.arg(1))
    return -ENOENT


@kfunc("request_firmware_into_buf", nargs=5)
def _request_firmware_into_buf(k: BaseKernel, c: TrapCall) -> int:
    """request_firmware_into_buf(&fw, name, device, buf, size): -ENOENT, *fw = NULL."""
    return _request_firmware(k, c)


@kfunc("request_partial_firmware_into_buf", nargs=6)
def _request_partial_firmware_into_buf(k: BaseKernel, c: TrapCall) -> int:
    return _request_firmware(k, c)


@kfunc("request_firmware_nowait", nargs=7)
def _request_firmware_nowait(k: BaseKernel, c: TrapCall) -> int:
    """request_firmware_nowait(module, uevent, name, device, gfp, context, cont): queued (0);
    the request fails later in a worker, which calls cont(NULL, context).  The call is kept
    in the "firmware-nowait" table for whoever runs deferred work."""
    _missing(k, c.arg(2))
    pending = table(k, "firmware-nowait")
    pending[len(pending)] = (c.arg(6), c.arg(5), k.current)
    return 0


@kfunc("release_firmware", nargs=1)
def _release_firmware(k: BaseKernel, c: TrapCall) -> int:
    """release_firmware(fw): NULL is allowed (nothing was loaded)."""
    if c.arg(0):
        k.free(c.arg(0))
    return 0

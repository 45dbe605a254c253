"""Inserting and removing modules the way libkmod does, over any :class:`Kernel`.

``insert_module`` is kmod_module_insert_module: a plain file goes to ``finit_module`` (the
kernel reads it); a compressed one too, with ``MODULE_INIT_COMPRESSED_FILE``, when the kernel
decompresses that format itself (/sys/module/compression), otherwise it is decompressed here
and passed to ``init_module``.  ``check_removable`` is rmmod's in-use check, and
``remove_module`` the delete_module call kmod makes.  All failures are :class:`KernelError`
with the errno kmod would report.
"""

from __future__ import annotations

import errno
import os

from lkm.compress import decompress, detect, limit
from lkm.errors import DecompressionError
from lkm.kernel.interface import (
    MODULE_INIT_COMPRESSED_FILE,
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    O_NONBLOCK,
    O_TRUNC,
    Kernel,
    KernelError,
)
from lkm.kernel.strip import strip_for_force
from lkm.modname import path_to_modname as module_name
from lkm.safeio import open_regular, read_bytes

__all__ = ["NotRemovable", "check_removable", "insert_module", "join_options", "module_name", "remove_module"]


def join_options(args: list[str]) -> str:
    """insmod's parameter string: the arguments joined by single spaces, as given."""
    return " ".join(args)


def insert_module(kernel: Kernel, path: str, options: str = "", *, force: bool = False) -> None:
    """Load the module file at *path* with the parameter string *options*."""
    try:
        fd, _st = open_regular(path)
        try:
            head = os.pread(fd, 6, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KernelError("open", exc.errno or errno.EIO, path=path) from None
    flags = MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC if force else 0
    comp = detect(head)
    if comp is None or comp.name == kernel.module_compression():
        if comp is not None:
            flags |= MODULE_INIT_COMPRESSED_FILE
        try:
            kernel.finit_module(path, options, flags)
            return
        except KernelError as exc:
            if exc.errno != errno.ENOSYS:
                raise
    data = read_bytes(path, limit=limit())
    if comp is not None:
        try:
            data = decompress(data, comp)
        except DecompressionError:
            # libkmod's decompressors fail with -EINVAL, which insmod words "Invalid parameters".
            raise KernelError("decompress", errno.EINVAL, path=path) from None
    if force:
        data = strip_for_force(data)
    kernel.init_module(data, options)


class NotRemovable(KernelError):
    """rmmod's refusal before calling delete_module (kmod 30's check_module_inuse), worded as
    kmod words it: builtin, not loaded, in use (by holders or references), or no unloading."""


# libkmod (kmod 30 as Debian builds it) logs a missing holders directory with its source
# location; rmmod prints that line, so we do too.
KMOD_HOLDERS_WHERE = "../libkmod/libkmod-module.c:1998 kmod_module_get_holders()"


def check_removable(kernel: Kernel, name: str, logged: list[str] | None = None) -> None:
    """Raise NotRemovable if rmmod (without -f) would refuse *name*; the messages libkmod
    logs along the way (each one line) are appended to *logged*."""
    state = kernel.initstate(name)
    if state == "builtin":
        raise NotRemovable("delete_module", errno.ENOENT, f"Module {name} is builtin.")
    mod = kernel.module(name) if state is not None else None
    if mod is None:
        raise NotRemovable("delete_module", errno.ENOENT, f"Module {name} is not currently loaded")
    if logged is None:
        logged = []
    if mod.holders is None:
        where = f"/sys/module/{name}/holders"
        logged.append(f"{KMOD_HOLDERS_WHERE} could not open '{where}': {os.strerror(errno.ENOENT)}")
    elif mod.holders:
        users = " ".join(mod.holders)
        raise NotRemovable("delete_module", errno.EBUSY, f"Module {name} is in use by: {users}")
    if mod.refcount > 0:
        raise NotRemovable("delete_module", errno.EBUSY, f"Module {name} is in use")
    if mod.refcount == -errno.ENOENT:  # no refcnt file: a kernel without module unloading
        raise NotRemovable("delete_module", errno.ENOENT, "Module unloading is not supported")


def remove_module(kernel: Kernel, name: str, *, force: bool = False) -> None:
    """delete_module as kmod calls it: never waiting, O_TRUNC when forced."""
    kernel.delete_module(name, O_NONBLOCK | (O_TRUNC if force else 0))

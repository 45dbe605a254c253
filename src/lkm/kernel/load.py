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

from lkm.compress import decompress, detect
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

# Suffixes kmod strips to name a module after its file (path_to_modname).
_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


def module_name(arg: str) -> str:
    """The module name kmod derives from a path or name: basename, up to the first '.', '-' -> '_'."""
    base = os.path.basename(arg)
    return base.split(".", 1)[0].replace("-", "_")


def join_options(args: list[str]) -> str:
    """insmod's parameter string: the arguments joined by single spaces, as given."""
    return " ".join(args)


def insert_module(kernel: Kernel, path: str, options: str = "", *, force: bool = False) -> None:
    """Load the module file at *path* with the parameter string *options*."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
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
    with open(path, "rb") as f:
        data = f.read()
    if comp is not None:
        try:
            data = decompress(data, comp)
        except DecompressionError:
            # libkmod's decompressors fail with -EINVAL, which insmod words "Invalid parameters".
            raise KernelError("decompress", errno.EINVAL, path=path) from None
    if force:
        from lkm.kernel.strip import strip_for_force

        data = strip_for_force(data)
    kernel.init_module(data, options)


class InUse(KernelError):
    """rmmod's refusal before calling delete_module: the module has holders or references."""

    def __init__(self, name: str, holders: tuple[str, ...]) -> None:
        why = f"Module {name} is in use" + (" by: " + " ".join(holders) if holders else "")
        super().__init__("delete_module", errno.EBUSY, why)
        self.name = name
        self.holders = holders


class NotLoaded(KernelError):
    def __init__(self, name: str, builtin: bool) -> None:
        why = f"Module {name} is builtin." if builtin else f"Module {name} is not currently loaded"
        super().__init__("delete_module", errno.ENOENT, why)
        self.name = name
        self.builtin = builtin


def check_removable(kernel: Kernel, name: str) -> None:
    """kmod's check_module_inuse: builtin, not loaded, has holders, or referenced."""
    state = kernel.initstate(name)
    if state is None or state == "builtin":
        raise NotLoaded(name, state == "builtin")
    mod = kernel.module(name)
    if mod is None:
        raise NotLoaded(name, False)
    if mod.holders:
        raise InUse(name, mod.holders)
    if mod.refcount != 0:
        raise InUse(name, ())


def remove_module(kernel: Kernel, name: str, *, force: bool = False) -> None:
    """delete_module as kmod calls it: never waiting, O_TRUNC when forced."""
    kernel.delete_module(name, O_NONBLOCK | (O_TRUNC if force else 0))

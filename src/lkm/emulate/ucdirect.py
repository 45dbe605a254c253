"""Direct calls of unicorn's own C entry points, for the emulator's hot paths.

unicorn's Python binding reads a register by choosing a ctypes class for the register on
every call and wraps every hook callback in two Python layers; for a kernel call that was
most of its cost.  These helpers call the same C functions the binding calls (``uc_reg_read``,
``uc_reg_write``, ``uc_hook_add``) through the binding's own loaded library and prototypes,
with one preallocated 64-bit buffer.  They touch nothing but the unicorn engine given.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import unicorn
from unicorn.unicorn_py3 import unicorn as _binding

__all__ = ["Registers", "add_code_hook"]


_lib = _binding.uclib
_reg_read = _lib.uc_reg_read
_reg_write = _lib.uc_reg_write


class Registers:
    """Integer register access (up to 64 bits) of one engine."""

    __slots__ = ("_uch", "_val", "_ptr")

    def __init__(self, uc: unicorn.Uc) -> None:
        self._uch = uc._uch
        self._val = ctypes.c_uint64()
        self._ptr = ctypes.byref(self._val)

    def read(self, reg: int) -> int:
        val = self._val
        val.value = 0  # a 32-bit register fills only the low half
        status = _reg_read(self._uch, reg, self._ptr)
        if status:
            raise unicorn.UcError(status)
        return int(val.value)

    def write(self, reg: int, value: int) -> None:
        self._val.value = value & 0xFFFFFFFFFFFFFFFF
        status = _reg_write(self._uch, reg, self._ptr)
        if status:
            raise unicorn.UcError(status)


def add_code_hook(uc: unicorn.Uc, callback: Callable[[int, int], None], begin: int, end: int) -> object:
    """A UC_HOOK_CODE hook on ``[begin, end]`` calling ``callback(address, size)`` straight
    from C.  The callback must not raise.  Returns the object to keep alive as long as the
    engine runs (the C function pointer)."""

    def raw(_uch: object, address: int, size: int, _data: object) -> None:
        callback(address, size)

    fn = _binding.HOOK_CODE_CFUNC(raw)
    handle = _binding.uc_hook_h()
    bounds = ctypes.c_uint64(begin), ctypes.c_uint64(end)
    status = _lib.uc_hook_add(uc._uch, ctypes.byref(handle), unicorn.UC_HOOK_CODE, fn, None, *bounds)
    if status != unicorn.UC_ERR_OK:
        raise unicorn.UcError(status)
    return fn

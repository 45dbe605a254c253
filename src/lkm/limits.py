"""lkm's bounds on what a module may make it allocate.

A module's layout is checked before any of its memory exists: a region larger than
:func:`module_limit` is refused with ENOMEM, as ``module_alloc`` refuses what does not fit the
kernel's module area.  The kernel's reference is that area (x86_64 ``MODULES_LEN``: 1008 MiB,
MODULES_VADDR 0xffffffffc0000000 to MODULES_END 0xffffffffff000000), and 6.x lays sections out
in ``unsigned int`` sizes (no section or alignment of 4 GiB or more can be represented).
lkm's default, 256 MiB, is thirteen times the largest module of Debian's trees (amdgpu, 19 MB)
and keeps a tool's memory bounded; ``$LKM_MODULE_LIMIT`` (bytes; 0: the kernel's 1008 MiB)
raises it.  The emulator's heap (vmalloc/kmalloc of a running module) has its own cap,
:mod:`lkm.emulate` ``--memory``.
"""

from __future__ import annotations

import errno
import os

from lkm.errors import InvalidModule

__all__ = ["DEFAULT_MODULE_LIMIT", "MODULES_LEN", "VMALLOC_RESERVE_24", "check_region_sizes", "module_limit"]

MODULES_LEN = 0xFFFFFFFFFF000000 - 0xFFFFFFFFC0000000  # x86_64 module area: 1008 MiB
DEFAULT_MODULE_LIMIT = 256 << 20
# 2.4 i386: create_module vmallocs the whole image, and the vmalloc area is VMALLOC_RESERVE
# (include/asm-i386/page.h, __VMALLOC_RESERVE = 128 << 20): no 2.4 module can be larger
VMALLOC_RESERVE_24 = 128 << 20


def module_limit() -> int:
    raw = os.environ.get("LKM_MODULE_LIMIT", "").strip()
    if raw:
        try:
            value = int(raw, 0)
        except ValueError:
            return DEFAULT_MODULE_LIMIT
        return MODULES_LEN if value <= 0 else min(value, MODULES_LEN)
    return DEFAULT_MODULE_LIMIT


def check_region_sizes(sizes: dict[str, int], path: str | None = None, *, area: int | None = None) -> None:
    """Raise InvalidModule(ENOMEM) if a region is larger than :func:`module_limit` (or
    ``area``, the kernel's own bound when smaller), or negative, which only a hostile header
    can make."""
    cap = module_limit() if area is None else min(module_limit(), area)
    for region, size in sizes.items():
        if size < 0 or size > cap:
            raise InvalidModule(
                f"module region {region} needs {size} bytes, more than the module area allows ({cap})",
                errno.ENOMEM,
                path=path,
            )

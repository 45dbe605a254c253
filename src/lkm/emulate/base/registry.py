"""What the subsystem registries have in common: a registered object is recorded (a
:class:`~lkm.emulate.state.Registration`, and in its subsystem's table in
``KernelState.tables``) so that a later unregister or lookup finds it, as the kernel's lists
do; a second registration of the same object or name fails as the kernel's does."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel
from lkm.emulate.state import Registration

__all__ = [
    "EBUSY",
    "EEXIST",
    "EINVAL",
    "ENODEV",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "MAX_ERRNO",
    "err_ptr",
    "lookup",
    "name_at",
    "ptr_name",
    "register",
    "table",
    "unregister",
    "zalloc",
]


ENOENT, ENOMEM, EBUSY, EEXIST, EINVAL, ENODEV, ENOSPC = 2, 12, 16, 17, 22, 19, 28
MAX_ERRNO = 4095


def table(k: BaseKernel, name: str) -> dict[object, object]:
    """The kernel's table ``name`` (created empty)."""
    return k.state.tables.setdefault(name, {})


def name_at(k: BaseKernel, addr: int, limit: int = 128) -> str:
    """A C string in module memory ("" for NULL or unmapped)."""
    if not addr or not k.machine.is_mapped(addr, 1):
        return ""
    return k.cstring(addr, limit)


def ptr_name(k: BaseKernel, obj: int, off: int, limit: int = 128) -> str:
    """The string a ``const char *`` member at ``obj + off`` points to."""
    if not obj or not k.machine.is_mapped(obj + off, k.arch.word):
        return ""
    return name_at(k, k.machine.read_word(obj + off), limit)


def register(k: BaseKernel, kind: str, obj: int, name: str = "", *, by_name: bool = False) -> int:
    """Record ``obj`` of ``kind``: 0, or -EEXIST when the object (or, ``by_name``, another
    object of that name) is registered already."""
    tab = table(k, kind)
    if obj in tab or (by_name and name and any(v == name for v in tab.values())):
        return -EEXIST
    tab[obj] = name
    k.state.registrations.append(Registration(kind, name, obj, k.current))
    return 0


def unregister(k: BaseKernel, kind: str, obj: int) -> bool:
    """Forget ``obj``; False when it was not registered."""
    tab = table(k, kind)
    if obj not in tab:
        return False
    del tab[obj]
    k.state.registrations = [r for r in k.state.registrations if not (r.kind == kind and r.address == obj)]
    return True


def lookup(k: BaseKernel, kind: str, name: str) -> int:
    """The registered object of ``kind`` called ``name``, 0 when there is none."""
    for o, n in table(k, kind).items():
        if n == name and isinstance(o, int):
            return o
    return 0


def err_ptr(k: BaseKernel, errno: int) -> int:
    """ERR_PTR(-errno) as the unsigned word the caller sees."""
    return (-errno) & k.arch.mask


def zalloc(k: BaseKernel, size: int) -> int:
    """A zeroed kernel object; 0 (NULL) past the memory budget, as kzalloc."""
    from lkm.emulate.kernel import OutOfMemory

    try:
        return k.alloc(size)
    except OutOfMemory as exc:
        k.log_oom(size, exc.reason)
        return 0

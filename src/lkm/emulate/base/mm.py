"""Allocators: the kmalloc family (__GFP_ZERO zeroes), kmem caches, vmalloc, pages, devm_*
(freed with the device, which never goes away here).  Memory comes from the kernel's heap;
live objects are kept so leaks can be reported after exit."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel, OutOfMemory, kfunc
from lkm.emulate.machine import TrapCall

__all__ = ["CACHE_SIZE", "GFP_ZERO", "PAGE"]


GFP_ZERO = 0x100  # ___GFP_ZERO (6.1)
PAGE = 0x1000
CACHE_SIZE = 0x100  # our struct kmem_cache: object size at offset 0, ctor at offset 8


def _alloc(k: BaseKernel, size: int, *, zero: bool = True, align: int = 16) -> int:
    """The allocators' common path: NULL when the request is beyond what the kernel (a
    kmalloc larger than KMALLOC_MAX_SIZE) or the emulator's memory budget gives."""
    try:
        return k.alloc(size, zero=zero, align=align)
    except OutOfMemory as exc:
        k.log_oom(size, exc.reason)
        return 0


def _zero(flags: int) -> bool:
    return bool(flags & GFP_ZERO)


@kfunc("__kmalloc", "__kmalloc_node", "kmalloc_large", "kmalloc_large_node", "__kmalloc_track_caller",
       "__kmalloc_node_track_caller", "kmalloc_node_trace", "kvmalloc_node", nargs=2)  # fmt: skip
def _kmalloc(k: BaseKernel, c: TrapCall) -> int:
    return _alloc(k, c.arg(0), zero=_zero(c.arg(1)))


@kfunc("kmalloc", nargs=2)
def _kmalloc_24(k: BaseKernel, c: TrapCall) -> int:
    """kmalloc(size, flags) as a function (2.4; inline since): no __GFP_ZERO there."""
    return _alloc(k, c.arg(0), zero=k.version.gfp_zero and _zero(c.arg(1)))


@kfunc("kmalloc_trace", "kmem_cache_alloc_trace", nargs=3)
def _kmalloc_trace(k: BaseKernel, c: TrapCall) -> int:
    """(cache, flags, size): kmalloc_trace; kmem_cache_alloc_trace before 6.1."""
    return _alloc(k, c.arg(2), zero=_zero(c.arg(1)))


@kfunc("devm_kmalloc", nargs=3)
def _devm_kmalloc(k: BaseKernel, c: TrapCall) -> int:
    return _alloc(k, c.arg(1), zero=_zero(c.arg(2)))


@kfunc("krealloc", "devm_krealloc", nargs=3)
def _krealloc(k: BaseKernel, c: TrapCall) -> int:
    off = 1 if c.name == "devm_krealloc" else 0
    old, size = c.arg(off), c.arg(off + 1)
    new = _alloc(k, size, zero=_zero(c.arg(off + 2)))
    if old:
        keep = min(k.allocations.get(old, 0), size)
        k.machine.write(new, k.machine.read(old, keep))
        k.free(old)
    return new


@kfunc("kfree", "kvfree", "vfree", "kfree_sensitive", "kzfree", "devm_kfree", "kvfree_sensitive", nargs=1)
def _kfree(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(1) if c.name == "devm_kfree" else c.arg(0))
    return 0


@kfunc("vmalloc", "vzalloc", "vmalloc_node", "vzalloc_node", "vmalloc_32", "vmalloc_user", nargs=1)
def _vmalloc(k: BaseKernel, c: TrapCall) -> int:
    return _alloc(k, c.arg(0), zero=c.name.startswith("vz") or c.name == "vmalloc_user", align=PAGE)


@kfunc("kmemdup", "kmemdup_nul", nargs=3)
def _kmemdup(k: BaseKernel, c: TrapCall) -> int:
    src, size = c.arg(0), c.arg(1)
    addr = _alloc(k, size + (1 if c.name == "kmemdup_nul" else 0), zero=True)
    k.machine.write(addr, k.machine.read(src, size))
    return addr


@kfunc("kstrdup", "kstrdup_const", "devm_kstrdup", nargs=2)
def _kstrdup(k: BaseKernel, c: TrapCall) -> int:
    src = c.arg(1 if c.name == "devm_kstrdup" else 0)
    if not src:
        return 0
    return k.new_string(k.machine.read_cstr(src) or b"")


@kfunc("kstrndup", nargs=3)
def _kstrndup(k: BaseKernel, c: TrapCall) -> int:
    src = c.arg(0)
    return k.new_string(k.machine.read_cstr(src, c.arg(1)) or b"") if src else 0


@kfunc("kmem_cache_create", "kmem_cache_create_usercopy", nargs=5)
def _kmem_cache_create(k: BaseKernel, c: TrapCall) -> int:
    cache = _alloc(k, CACHE_SIZE)
    k.machine.write_word(cache, c.arg(1))
    ctor = c.arg(4) if c.name == "kmem_cache_create" else c.arg(6)
    k.machine.write_word(cache + 8, ctor)
    k.machine.write_word(cache + 16, c.arg(0))
    return cache


@kfunc("kmem_cache_alloc", "kmem_cache_alloc_node", "kmem_cache_alloc_lru", nargs=2)
def _kmem_cache_alloc(k: BaseKernel, c: TrapCall) -> int:
    cache = c.arg(0)
    size = k.machine.read_word(cache) if cache in k.allocations else 64
    return _alloc(k, size, zero=_zero(c.arg(1)))


@kfunc("kmem_cache_free", nargs=2)
def _kmem_cache_free(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(1))
    return 0


@kfunc("kmem_cache_destroy", nargs=1)
def _kmem_cache_destroy(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(0))
    return 0


@kfunc("__get_free_pages", "get_zeroed_page", nargs=2)
def _get_free_pages(k: BaseKernel, c: TrapCall) -> int:
    if c.name == "get_zeroed_page":
        return _alloc(k, PAGE, align=PAGE)
    return _alloc(k, PAGE << c.arg(1), zero=_zero(c.arg(0)), align=PAGE)


@kfunc("free_pages", nargs=2)
def _free_pages(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(0))
    return 0


VMALLOC_START_64, VMALLOC_SIZE_64 = 0xFFFFC90000000000, 32 << 40  # x86_64 4-level: vmalloc_base, 32 TiB


@kfunc("is_vmalloc_addr", nargs=1)
def _is_vmalloc_addr(k: BaseKernel, c: TrapCall) -> int:
    """is_vmalloc_addr(x): x in [VMALLOC_START, VMALLOC_END) (x86_64: vmalloc_base and its 32 TiB,
    where lkm's ioremap windows are too).  Other architectures: lkm's heap is their direct map,
    so false."""
    if k.arch.name != "x86_64":
        return 0
    return int(VMALLOC_START_64 <= c.arg(0) < VMALLOC_START_64 + VMALLOC_SIZE_64)

"""DMA pools (mm/dmapool.c): small coherent blocks of one size for a device, as drivers with
descriptor rings allocate them (e100's command blocks).  The blocks come from the emulated
heap; their bus address is the physical one, as lkm.emulate.base.pci's coherent buffers
(a direct mapping, no IOMMU)."""

from __future__ import annotations

from lkm.emulate.base.netdev import provide
from lkm.emulate.kernel import BaseKernel, OutOfMemory
from lkm.emulate.machine import TrapCall

__all__ = ["POOL_STRUCT"]


POOL_STRUCT = 128  # an object standing for the struct dma_pool the kernel would allocate


def _pools(k: BaseKernel) -> dict[int, tuple[int, int, set[int]]]:
    """pool -> (block size, alignment, blocks handed out)."""
    pools: dict[int, tuple[int, int, set[int]]] = k.__dict__.setdefault("dma_pools", {})
    return pools


@provide("dma_pool_create", "dmam_pool_create", nargs=5)
def _dma_pool_create(k: BaseKernel, c: TrapCall) -> int:
    """dma_pool_create(name, dev, size, align, boundary): NULL for a zero size or an alignment
    that is not a power of two; a size below the alignment becomes the alignment, and sizes
    are rounded up to it (6.1).  dmam_pool_create(name, dev, size, align, allocation)."""
    size, align = c.arg(2), c.arg(3) & 0xFFFFFFFF or 1
    if size == 0 or align & (align - 1) or size > 1 << 30:
        return 0
    size = (max(size, align) + align - 1) & ~(align - 1)
    try:
        pool = k.alloc(POOL_STRUCT)
    except OutOfMemory as exc:
        k.log_oom(POOL_STRUCT, str(exc))
        return 0
    _pools(k)[pool] = (size, align, set())
    return pool


@provide("dma_pool_alloc", nargs=3)
def _dma_pool_alloc(k: BaseKernel, c: TrapCall) -> int:
    """dma_pool_alloc(pool, gfp, &handle): a zeroed block and its bus address; NULL when the
    heap is exhausted."""
    entry = _pools(k).get(c.arg(0))
    if entry is None:
        return 0
    size, align, blocks = entry
    try:
        virt = k.alloc(size, align=max(align, 16))
    except OutOfMemory as exc:
        k.log_oom(size, str(exc))
        return 0
    blocks.add(virt)
    if c.arg(2):
        phys = virt - k.arch.page_offset if virt >= k.arch.page_offset else virt
        k.machine.write_word(c.arg(2), phys)
    return virt


@provide("dma_pool_free", nargs=3)
def _dma_pool_free(k: BaseKernel, c: TrapCall) -> int:
    entry = _pools(k).get(c.arg(0))
    if entry is not None and c.arg(1) in entry[2]:
        entry[2].discard(c.arg(1))
        k.free(c.arg(1))
    return 0


@provide("dma_pool_destroy", nargs=1)
def _dma_pool_destroy(k: BaseKernel, c: TrapCall) -> int:
    """dma_pool_destroy(pool): NULL is allowed; blocks still handed out go with it."""
    entry = _pools(k).pop(c.arg(0), None)
    if entry is not None:
        for b in entry[2]:
            k.free(b)
        k.free(c.arg(0))
    return 0

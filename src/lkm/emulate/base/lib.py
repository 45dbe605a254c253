"""Library data structures the kernel keeps for modules: xarrays (lib/xarray.c), IDRs and
IDAs (lib/idr.c), resizable hash tables (lib/rhashtable.c), memory pools (mm/mempool.c),
dynamic per-cpu memory (mm/percpu.c), static keys (kernel/jump_label.c) and strsep
(lib/string.c).

An xarray's entries live in Python, keyed by the xarray's address (the xarray's own memory
is not walked by module code: every access goes through these functions); an IDR is an
xarray plus its base, an IDA a set of ids.  Offsets: 6.1 amd64 (offsetof() against its
headers)."""

from __future__ import annotations

import hashlib
import math
import zlib

from lkm.emulate.base.registry import (
    EBUSY,
    EINVAL,
    ENOMEM,
    ENOSPC,
    err_ptr,
    lookup,
    name_at,
    ptr_name,
    register,
    table,
    unregister,
    zalloc,
)
from lkm.emulate.kernel import PERCPU_SIZE, BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "BUCKETS",
    "CRC32C_TABLE",
    "CRC32_BE_TABLE",
    "GUID_INDEX",
    "HASH_DEFAULT_SIZE",
    "HASH_MIN_SIZE",
    "IDR_BASE",
    "INT_MAX",
    "LRU_LIST",
    "LRU_MEMCG_AWARE",
    "LRU_NODE",
    "LRU_NODE_LIST",
    "LRU_NODE_NR",
    "LRU_NODE_SIZE",
    "LRU_SHRINKER_ID",
    "MEMPOOL_SIZE",
    "MP_ALLOC",
    "MP_CURR_NR",
    "MP_ELEMENTS",
    "MP_FREE",
    "MP_MIN_NR",
    "MP_POOL_DATA",
    "RHT_KEY_LEN",
    "RHT_MAX_ELEMS",
    "RHT_P",
    "RHT_PARAMS_SIZE",
    "TS_INIT",
    "TS_NAME",
    "XA_PRESENT",
]


INT_MAX = 0x7FFFFFFF


def _xa(k: BaseKernel, xa: int) -> dict[int, int]:
    tab = table(k, "xarray")
    d = tab.get(xa)
    if not isinstance(d, dict):
        d = {}
        tab[xa] = d
    return d


def _marks(k: BaseKernel, xa: int) -> dict[int, set[int]]:
    tab = table(k, "xarray-marks")
    d = tab.get(xa)
    if not isinstance(d, dict):
        d = {}
        tab[xa] = d
    return d


# -- xarray ------------------------------------------------------------------------------------
@kfunc("xa_load", nargs=2)
def _xa_load(k: BaseKernel, c: TrapCall) -> int:
    """xa_load(xa, index): the entry, NULL when there is none."""
    return _xa(k, c.arg(0)).get(c.arg(1), 0)


@kfunc("xa_store", "__xa_store", nargs=4)
def _xa_store(k: BaseKernel, c: TrapCall) -> int:
    """xa_store(xa, index, entry, gfp): the old entry; storing NULL erases."""
    d = _xa(k, c.arg(0))
    old = d.pop(c.arg(1), 0) if not c.arg(2) else d.get(c.arg(1), 0)
    if c.arg(2):
        d[c.arg(1)] = c.arg(2)
    return old


@kfunc("xa_erase", "__xa_erase", nargs=2)
def _xa_erase(k: BaseKernel, c: TrapCall) -> int:
    """xa_erase(xa, index): the entry removed (NULL when none); its marks go with it."""
    for s in _marks(k, c.arg(0)).values():
        s.discard(c.arg(1))
    return _xa(k, c.arg(0)).pop(c.arg(1), 0)


@kfunc("__xa_insert", nargs=4)
def _xa_insert(k: BaseKernel, c: TrapCall) -> int:
    """__xa_insert(xa, index, entry, gfp): -EBUSY when the index is occupied."""
    d = _xa(k, c.arg(0))
    if c.arg(1) in d:
        return -EBUSY
    if c.arg(2):
        d[c.arg(1)] = c.arg(2)
    return 0


@kfunc("__xa_alloc", nargs=5)
def _xa_alloc(k: BaseKernel, c: TrapCall) -> int:
    """__xa_alloc(xa, &id, entry, limit {u32 min, max}, gfp): the lowest free index in the
    limit, -EBUSY when full."""
    d = _xa(k, c.arg(0))
    limit = c.arg(3)
    lo, hi = limit & 0xFFFFFFFF, limit >> 32
    for i in range(lo, hi + 1):
        if i not in d:
            d[i] = c.arg(2)
            k.machine.write_int(c.arg(1), 4, i)
            return 0
    return -EBUSY


@kfunc("xa_set_mark", "__xa_set_mark", nargs=3)
def _xa_set_mark(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(1) in _xa(k, c.arg(0)):
        _marks(k, c.arg(0)).setdefault(c.arg(2) & 0xFFFFFFFF, set()).add(c.arg(1))
    return 0


@kfunc("xa_clear_mark", "__xa_clear_mark", nargs=3)
def _xa_clear_mark(k: BaseKernel, c: TrapCall) -> int:
    _marks(k, c.arg(0)).get(c.arg(2) & 0xFFFFFFFF, set()).discard(c.arg(1))
    return 0


@kfunc("xa_get_mark", nargs=3)
def _xa_get_mark(k: BaseKernel, c: TrapCall) -> int:
    return int(c.arg(1) in _marks(k, c.arg(0)).get(c.arg(2) & 0xFFFFFFFF, set()))


XA_PRESENT = 8  # xa_mark_t XA_PRESENT: any entry (XA_MARK_0..2 are 0..2)


def _find(k: BaseKernel, xa: int, start: int, last: int, mark: int, after: bool) -> int | None:
    d = _xa(k, xa)
    keys = sorted(d) if mark == XA_PRESENT else sorted(_marks(k, xa).get(mark, set()))
    return next((i for i in keys if (i > start if after else i >= start) and i <= last), None)


@kfunc("xa_find", "xa_find_after", nargs=4)
def _xa_find(k: BaseKernel, c: TrapCall) -> int:
    """xa_find(xa, &index, max, filter): the first entry at or after *index (xa_find_after:
    after it) up to max that has the mark; *index is set to it.  NULL when none."""
    m = k.machine
    start = m.read_word(c.arg(1))
    i = _find(k, c.arg(0), start, c.arg(2), c.arg(3) & 0xFFFFFFFF, c.name == "xa_find_after")
    if i is None:
        return 0
    m.write_word(c.arg(1), i)
    return _xa(k, c.arg(0))[i]


@kfunc("xa_destroy", nargs=1)
def _xa_destroy(k: BaseKernel, c: TrapCall) -> int:
    table(k, "xarray").pop(c.arg(0), None)
    table(k, "xarray-marks").pop(c.arg(0), None)
    return 0


# -- IDR and IDA ---------------------------------------------------------------------------------
IDR_BASE = 16  # struct idr { struct xarray idr_rt (16 bytes); unsigned int idr_base; idr_next }


def _idr_range(start: int, end: int) -> tuple[int, int]:
    start &= 0xFFFFFFFF
    end &= 0xFFFFFFFF
    end = INT_MAX if end == 0 or end >> 31 else end - 1
    return start, end


@kfunc("idr_alloc", "idr_alloc_cyclic", "idr_alloc_u32", nargs=5)
def _idr_alloc(k: BaseKernel, c: TrapCall) -> int:
    """idr_alloc(idr, ptr, start, end, gfp): the lowest free id in [start, end) (end <= 0:
    up to INT_MAX), -ENOSPC when none, -EINVAL for a negative start.  idr_alloc_u32(idr,
    ptr, &id, max, gfp) from *id.  (idr_alloc_cyclic: from after the last one handed out.)"""
    m = k.machine
    idr = c.arg(0)
    d = _xa(k, idr)
    base = m.read_int(idr + IDR_BASE, 4)
    if c.name == "idr_alloc_u32":
        lo, hi = m.read_int(c.arg(2), 4), c.arg(3) & 0xFFFFFFFF
    else:
        if c.arg(2) & 0x80000000:
            return -EINVAL
        lo, hi = _idr_range(c.arg(2), c.arg(3))
        if c.name == "idr_alloc_cyclic":
            nxt = table(k, "idr-next").get(idr, lo)
            lo = max(lo, nxt if isinstance(nxt, int) else lo)
    i = lo
    while i <= hi and (i - base) in d:
        i += 1
    if i > hi:
        if c.name == "idr_alloc_cyclic" and lo > (c.arg(2) & 0xFFFFFFFF):
            table(k, "idr-next")[idr] = c.arg(2) & 0xFFFFFFFF
            return _idr_alloc(k, c)
        return -ENOSPC
    d[i - base] = c.arg(1)
    if c.name == "idr_alloc_cyclic":
        table(k, "idr-next")[idr] = i + 1
    if c.name == "idr_alloc_u32":
        m.write_int(c.arg(2), 4, i)
        return 0
    return i


@kfunc("idr_find", nargs=2)
def _idr_find(k: BaseKernel, c: TrapCall) -> int:
    base = k.machine.read_int(c.arg(0) + IDR_BASE, 4)
    return _xa(k, c.arg(0)).get(c.arg(1) - base, 0)


@kfunc("idr_remove", nargs=2)
def _idr_remove(k: BaseKernel, c: TrapCall) -> int:
    base = k.machine.read_int(c.arg(0) + IDR_BASE, 4)
    return _xa(k, c.arg(0)).pop(c.arg(1) - base, 0)


@kfunc("idr_replace", nargs=3)
def _idr_replace(k: BaseKernel, c: TrapCall) -> int:
    """idr_replace(idr, ptr, id): the old pointer, ERR_PTR(-ENOENT) for an id not allocated."""
    base = k.machine.read_int(c.arg(0) + IDR_BASE, 4)
    d = _xa(k, c.arg(0))
    key = c.arg(2) - base
    if key not in d:
        return (-2) & k.arch.mask
    old, d[key] = d[key], c.arg(1)
    return old


@kfunc("idr_destroy", nargs=1)
def _idr_destroy(k: BaseKernel, c: TrapCall) -> int:
    table(k, "xarray").pop(c.arg(0), None)
    return 0


@kfunc("idr_for_each", nargs=3)
def _idr_for_each(k: BaseKernel, c: TrapCall) -> int:
    """idr_for_each(idr, fn, data): fn(id, ptr, data) for each entry until one returns non-zero."""
    base = k.machine.read_int(c.arg(0) + IDR_BASE, 4)
    for key, ptr in sorted(_xa(k, c.arg(0)).items()):
        ret = k.call(c.arg(1), (key + base, ptr, c.arg(2)), k.current) & 0xFFFFFFFF
        if ret:
            return ret
    return 0


@kfunc("idr_get_next", "idr_get_next_ul", nargs=2)
def _idr_get_next(k: BaseKernel, c: TrapCall) -> int:
    """idr_get_next(idr, &id): the entry at the first id >= *id (which is set), NULL at the end."""
    m = k.machine
    base = m.read_int(c.arg(0) + IDR_BASE, 4)
    size = 8 if c.name.endswith("_ul") else 4
    start = m.read_int(c.arg(1), size)
    for key, ptr in sorted(_xa(k, c.arg(0)).items()):
        if key + base >= start:
            m.write_int(c.arg(1), size, key + base)
            return ptr
    return 0


def _ida(k: BaseKernel, ida: int) -> set[int]:
    tab = table(k, "ida")
    s = tab.get(ida)
    if not isinstance(s, set):
        s = set()
        tab[ida] = s
    return s


@kfunc("ida_alloc_range", nargs=4)
def _ida_alloc_range(k: BaseKernel, c: TrapCall) -> int:
    """ida_alloc_range(ida, min, max, gfp): the lowest free id in [min, max], -ENOSPC when
    none, -EINVAL for a negative min."""
    lo, hi = c.arg(1) & 0xFFFFFFFF, c.arg(2) & 0xFFFFFFFF
    if lo >> 31:
        return -EINVAL
    hi = min(hi, INT_MAX)
    used = _ida(k, c.arg(0))
    i = lo
    while i <= hi and i in used:
        i += 1
    if i > hi:
        return -ENOSPC
    used.add(i)
    return i


@kfunc("ida_free", "ida_simple_remove", nargs=2)
def _ida_free(k: BaseKernel, c: TrapCall) -> int:
    """ida_free(ida, id): freeing an id not allocated is the kernel's WARN "ida_free called
    for id=%d which is not allocated"."""
    used = _ida(k, c.arg(0))
    i = c.arg(1) & 0xFFFFFFFF
    if i not in used:
        k.state.printk(4, False, f"ida_free called for id={i} which is not allocated.\n", None)
    used.discard(i)
    return 0


@kfunc("ida_destroy", nargs=1)
def _ida_destroy(k: BaseKernel, c: TrapCall) -> int:
    table(k, "ida").pop(c.arg(0), None)
    return 0


# -- rhashtable ----------------------------------------------------------------------------------
RHT_P, RHT_KEY_LEN, RHT_MAX_ELEMS, RHT_PARAMS_SIZE = 16, 8, 12, 40
BUCKETS = 64  # struct bucket_table: size, nest, hash_rnd, ..., buckets[] at 64
HASH_DEFAULT_SIZE, HASH_MIN_SIZE = 64, 4


@kfunc("rhashtable_init", "rhltable_init", nargs=2)
def _rhashtable_init(k: BaseKernel, c: TrapCall) -> int:
    """rhashtable_init(ht, params): -EINVAL without a key length or hash function pair;
    ht->p = *params, ht->tbl = an empty bucket table (size from nelem_hint, default 64),
    max_elems from max_size (default 2^31)."""
    m = k.machine
    ht, params = c.arg(0), c.arg(1)
    p = m.read(params, RHT_PARAMS_SIZE)
    nelem_hint = int.from_bytes(p[0:2], "little")
    key_len = int.from_bytes(p[2:4], "little")
    max_size = int.from_bytes(p[8:12], "little")
    min_size = int.from_bytes(p[12:14], "little")
    hashfn, obj_hashfn = int.from_bytes(p[16:24], "little"), int.from_bytes(p[24:32], "little")
    if (not key_len and not obj_hashfn) or (key_len and obj_hashfn and not hashfn):
        return -EINVAL
    m.write(ht + RHT_P, p)
    min_size = max(min_size, HASH_MIN_SIZE)
    m.write_int(ht + RHT_P + 12, 2, min_size)
    m.write_int(ht + RHT_KEY_LEN, 4, key_len)
    m.write_int(ht + RHT_MAX_ELEMS, 4, 2 * max_size if max_size else 1 << 31)
    size = HASH_DEFAULT_SIZE
    if nelem_hint:
        want = max(nelem_hint * 4 // 3, min_size)
        size = 1 << (want - 1).bit_length()
    tbl = zalloc(k, BUCKETS + 8 * size)
    if not tbl:
        return -ENOMEM
    m.write_int(tbl, 4, size)
    m.write(tbl + 8, hashlib.shake_128(b"rhashtable").digest(4))  # hash_rnd
    m.write_word(tbl + 16, tbl + 16)  # walkers: an empty list
    m.write_word(tbl + 24, tbl + 16)
    m.write_word(ht, tbl)
    return 0


@kfunc("rhashtable_destroy", "rhashtable_free_and_destroy", nargs=3)
def _rhashtable_destroy(k: BaseKernel, c: TrapCall) -> int:
    """The bucket table is freed (rhashtable_free_and_destroy's per-object callback runs
    for the objects inserted: objects go in through rhashtable_insert_slow, not emulated)."""
    tbl = k.machine.read_word(c.arg(0))
    if tbl:
        k.free(tbl)
        k.machine.write_word(c.arg(0), 0)
    return 0


# -- mempools -------------------------------------------------------------------------------------
MEMPOOL_SIZE, MP_MIN_NR, MP_CURR_NR, MP_ELEMENTS, MP_POOL_DATA, MP_ALLOC, MP_FREE = 72, 4, 8, 16, 24, 32, 40


def _mempool_init(k: BaseKernel, pool: int, min_nr: int, alloc_fn: int, free_fn: int, data: int) -> int:
    """mempool_init_node: the pool pre-filled with min_nr elements from alloc_fn(GFP_KERNEL,
    data); -ENOMEM (the pool emptied again) when one cannot be had."""
    m = k.machine
    elements = zalloc(k, 8 * max(min_nr, 1))
    if not elements:
        return -ENOMEM
    for off, v in ((MP_MIN_NR, min_nr), (MP_CURR_NR, 0)):
        m.write_int(pool + off, 4, v)
    for off, v in ((MP_ELEMENTS, elements), (MP_POOL_DATA, data), (MP_ALLOC, alloc_fn), (MP_FREE, free_fn)):
        m.write_word(pool + off, v)
    for i in range(min_nr):
        el = k.call(alloc_fn, (0xCC0, data), k.current) & k.arch.mask  # GFP_KERNEL
        if not el:
            for j in range(i):
                k.call(free_fn, (m.read_word(elements + 8 * j), data), k.current)
            k.free(elements)
            return -ENOMEM
        m.write_word(elements + 8 * i, el)
        m.write_int(pool + MP_CURR_NR, 4, i + 1)
    return 0


@kfunc("mempool_create", "mempool_create_node", nargs=4)
def _mempool_create(k: BaseKernel, c: TrapCall) -> int:
    """mempool_create(min_nr, alloc_fn, free_fn, pool_data): the pool or NULL."""
    pool = zalloc(k, MEMPOOL_SIZE)
    if not pool:
        return 0
    if _mempool_init(k, pool, c.arg(0) & 0xFFFFFFFF, c.arg(1), c.arg(2), c.arg(3)):
        k.free(pool)
        return 0
    return pool


@kfunc("mempool_init", "mempool_init_node", nargs=5)
def _mempool_init_fn(k: BaseKernel, c: TrapCall) -> int:
    """mempool_init(pool, min_nr, alloc_fn, free_fn, pool_data): 0 or -ENOMEM."""
    return _mempool_init(k, c.arg(0), c.arg(1) & 0xFFFFFFFF, c.arg(2), c.arg(3), c.arg(4))


@kfunc("mempool_exit", "mempool_destroy", nargs=1)
def _mempool_destroy(k: BaseKernel, c: TrapCall) -> int:
    """The reserved elements go back through free_fn (mempool_destroy: the pool too; NULL
    is allowed)."""
    m = k.machine
    pool = c.arg(0)
    if not pool:
        return 0
    elements, data, free_fn = (m.read_word(pool + o) for o in (MP_ELEMENTS, MP_POOL_DATA, MP_FREE))
    for i in range(m.read_int(pool + MP_CURR_NR, 4)):
        k.call(free_fn, (m.read_word(elements + 8 * i), data), k.current)
    m.write_int(pool + MP_CURR_NR, 4, 0)
    k.free(elements)
    if c.name == "mempool_destroy":
        k.free(pool)
    return 0


@kfunc("mempool_alloc", nargs=2)
def _mempool_alloc(k: BaseKernel, c: TrapCall) -> int:
    """mempool_alloc(pool, gfp): from alloc_fn, else a reserved element."""
    m = k.machine
    pool = c.arg(0)
    el = k.call(m.read_word(pool + MP_ALLOC), (c.arg(1), m.read_word(pool + MP_POOL_DATA)), k.current)
    el &= k.arch.mask
    if el:
        return el
    n = m.read_int(pool + MP_CURR_NR, 4)
    if not n:
        return 0
    m.write_int(pool + MP_CURR_NR, 4, n - 1)
    return m.read_word(m.read_word(pool + MP_ELEMENTS) + 8 * (n - 1))


@kfunc("mempool_free", nargs=2)
def _mempool_free(k: BaseKernel, c: TrapCall) -> int:
    """mempool_free(element, pool): refills the reserve first, else free_fn."""
    m = k.machine
    el, pool = c.arg(0), c.arg(1)
    if not el:
        return 0
    n, mn = m.read_int(pool + MP_CURR_NR, 4), m.read_int(pool + MP_MIN_NR, 4)
    if n < mn:
        m.write_word(m.read_word(pool + MP_ELEMENTS) + 8 * n, el)
        m.write_int(pool + MP_CURR_NR, 4, n + 1)
        return 0
    k.call(m.read_word(pool + MP_FREE), (el, m.read_word(pool + MP_POOL_DATA)), k.current)
    return 0


@kfunc("mempool_alloc_slab", nargs=2)
def _mempool_alloc_slab(k: BaseKernel, c: TrapCall) -> int:
    """mempool_alloc_slab(gfp, cache): kmem_cache_alloc(cache, gfp)."""
    from lkm.emulate.base.mm import _alloc

    cache = c.arg(1)
    size = k.machine.read_word(cache) if cache in k.allocations else 64
    return _alloc(k, size, zero=False)


@kfunc("mempool_kmalloc", nargs=2)
def _mempool_kmalloc(k: BaseKernel, c: TrapCall) -> int:
    """mempool_kmalloc(gfp, size)."""
    from lkm.emulate.base.mm import _alloc

    return _alloc(k, c.arg(1), zero=False)


@kfunc("mempool_alloc_pages", nargs=2)
def _mempool_alloc_pages(k: BaseKernel, c: TrapCall) -> int:
    """mempool_alloc_pages(gfp, order): alloc_pages; lkm hands out the memory itself (its
    struct page is not modelled)."""
    from lkm.emulate.base.mm import _alloc

    return _alloc(k, 0x1000 << (c.arg(1) & 0x1F), align=0x1000)


@kfunc("mempool_free_slab", "mempool_kfree", "mempool_free_pages", nargs=2)
def _mempool_free_el(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(0))
    return 0


# -- dynamic per-cpu memory -----------------------------------------------------------------------
@kfunc("__alloc_percpu", "__alloc_percpu_gfp", "__alloc_reserved_percpu", nargs=2)
def _alloc_percpu(k: BaseKernel, c: TrapCall) -> int:
    """__alloc_percpu(size, align): a zeroed per-cpu object (the address per_cpu_ptr adds
    the CPU's offset to), from the same area as modules' per-cpu sections; NULL for a size
    of 0 or when the area is full (PCPU_MIN_UNIT_SIZE-like bound)."""
    size, align = c.arg(0), max(c.arg(1) & 0xFFFF, 8)
    if not size or size > 0x8000:
        return 0
    used = getattr(k, "_module_percpu", 0x40000)
    at = (used + align - 1) & ~(align - 1)
    if at + size > PERCPU_SIZE:
        return 0
    k._module_percpu = at + size  # type: ignore[attr-defined]
    k.machine.write(k.percpu_base + at, bytes(size))
    return at if k.percpu_relative else at + k.percpu_base


@kfunc("free_percpu", nargs=1)
def _free_percpu(k: BaseKernel, c: TrapCall) -> int:
    return 0  # the area is a bump allocator: freed per-cpu memory is not reused


# -- static keys -----------------------------------------------------------------------------------
def _key_add(k: BaseKernel, key: int, delta: int, *, to: int | None = None) -> None:
    m = k.machine
    v = m.read_int(key, 4)
    v = v - (1 << 32) if v >> 31 else v
    v = to if to is not None else max(v + delta, 0)
    m.write_int(key, 4, v & 0xFFFFFFFF)


@kfunc("static_key_slow_inc", "static_key_slow_inc_cpuslocked", nargs=1)
def _static_key_slow_inc(k: BaseKernel, c: TrapCall) -> int:
    """key->enabled += 1 (the module's jump sites are not repatched: its code reads the
    branch's default)."""
    _key_add(k, c.arg(0), 1)
    return 0


@kfunc("static_key_slow_dec", "static_key_slow_dec_cpuslocked", nargs=1)
def _static_key_slow_dec(k: BaseKernel, c: TrapCall) -> int:
    _key_add(k, c.arg(0), -1)
    return 0


@kfunc("static_key_enable", "static_key_enable_cpuslocked", nargs=1)
def _static_key_enable(k: BaseKernel, c: TrapCall) -> int:
    _key_add(k, c.arg(0), 0, to=1)
    return 0


@kfunc("static_key_disable", "static_key_disable_cpuslocked", nargs=1)
def _static_key_disable(k: BaseKernel, c: TrapCall) -> int:
    _key_add(k, c.arg(0), 0, to=0)
    return 0


@kfunc("static_key_count", nargs=1)
def _static_key_count(k: BaseKernel, c: TrapCall) -> int:
    return k.machine.read_int(c.arg(0), 4)


# -- strings ----------------------------------------------------------------------------------------
@kfunc("strsep", nargs=2)
def _strsep(k: BaseKernel, c: TrapCall) -> int:
    """strsep(&s, ct): the token at *s, ended at the first byte of ct (written as NUL) and
    *s moved past it (NULL at the end); NULL when *s is NULL."""
    m = k.machine
    sp = c.arg(0)
    s = m.read_word(sp)
    if not s:
        return 0
    text = m.read_cstr(s) or b""
    ct = set(m.read_cstr(c.arg(1)) or b"")
    end = next((i for i, b in enumerate(text) if b in ct), None)
    if end is None:
        m.write_word(sp, 0)
    else:
        m.write(s + end, b"\0")
        m.write_word(sp, s + end + 1)
    return s


# -- checksums (lib/crc32.c) ------------------------------------------------------------------------
def _crc_table(poly: int, reflected: bool) -> list[int]:
    out = []
    for i in range(256):
        if reflected:
            c = i
            for _ in range(8):
                c = (c >> 1) ^ poly if c & 1 else c >> 1
        else:
            c = i << 24
            for _ in range(8):
                c = ((c << 1) ^ poly if c & 0x80000000 else c << 1) & 0xFFFFFFFF
        out.append(c)
    return out


CRC32C_TABLE = _crc_table(0x82F63B78, True)
CRC32_BE_TABLE = _crc_table(0x04C11DB7, False)


@kfunc("crc32_le", "__crc32c_le", nargs=3)
def _crc32_le(k: BaseKernel, c: TrapCall) -> int:
    """crc32_le(crc, p, len) / __crc32c_le: the reflected CRC-32 (0xedb88320) / CRC-32C
    (0x82f63b78) of the bytes, from seed crc, no final inversion."""
    crc, data = c.arg(0) & 0xFFFFFFFF, k.machine.read(c.arg(1), c.arg(2)) if c.arg(2) else b""
    if c.name == "crc32_le":
        return zlib.crc32(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


@kfunc("crc32_be", nargs=3)
def _crc32_be(k: BaseKernel, c: TrapCall) -> int:
    """crc32_be(crc, p, len): the big-endian CRC-32 (0x04c11db7) from seed crc."""
    crc = c.arg(0) & 0xFFFFFFFF
    for b in k.machine.read(c.arg(1), c.arg(2)) if c.arg(2) else b"":
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC32_BE_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


# -- UUIDs (lib/uuid.c) ------------------------------------------------------------------------------
GUID_INDEX = (3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15)


@kfunc("guid_parse", "uuid_parse", nargs=2)
def _uuid_parse(k: BaseKernel, c: TrapCall) -> int:
    """guid_parse / uuid_parse(str, out): the 36-character form (dashes at 8, 13, 18, 23)
    into 16 bytes (a GUID's first three fields little-endian); -EINVAL otherwise."""
    text = (k.machine.read_cstr(c.arg(0), 37) or b"").decode("latin-1")
    if len(text) < 36 or any(text[i] != "-" for i in (8, 13, 18, 23)):
        return -EINVAL
    hexpart = text[:36].replace("-", "")
    try:
        raw = bytes.fromhex(hexpart)
    except ValueError:
        return -EINVAL
    if len(raw) != 16:
        return -EINVAL
    index = GUID_INDEX if c.name == "guid_parse" else tuple(range(16))
    out = bytearray(16)
    for i, b in enumerate(raw):
        out[index[i]] = b
    k.machine.write(c.arg(1), bytes(out))
    return 0


# -- sort (lib/sort.c) ---------------------------------------------------------------------------------
@kfunc("sort", "sort_r", nargs=6)
def _sort(k: BaseKernel, c: TrapCall) -> int:
    """sort(base, num, size, cmp, swap) / sort_r(..., priv): lib/sort.c's bottom-up heapsort,
    step for step (the same calls of cmp and swap in the same order, so the same order of
    equal elements as the kernel's; n log n compares, each a call into module code);
    elements exchanged by swap when given, else bytewise."""
    m = k.machine
    base, num, size, cmp, swap = c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4)
    num &= k.arch.mask
    size &= k.arch.mask
    priv = (c.arg(5),) if c.name == "sort_r" else ()
    current = k.current

    def before_or_equal(x: int, y: int) -> bool:  # do_cmp(x, y) >= 0
        return not (k.call(cmp, (base + x, base + y, *priv), current) & 0x80000000)

    def do_swap(x: int, y: int) -> None:
        if swap:
            k.call(swap, (base + x, base + y, size, *priv), current)
        else:
            bx, by = m.read(base + x, size), m.read(base + y, size)
            m.write(base + x, by)
            m.write(base + y, bx)

    lsbit = size & -size

    def parent(i: int) -> int:
        i -= size
        i -= size & -(i & lsbit)
        return i // 2

    n, a = num * size, (num // 2) * size
    if not a:  # num < 2 or size == 0
        return 0
    while True:
        if a:  # building the heap: sift down --a
            a -= size
        else:
            n -= size  # sorting: the root to --n
            if not n:
                break
            do_swap(0, n)
        b = a
        while True:  # the path of larger children down to a leaf (one compare per level)
            cc = 2 * b + size
            d = cc + size
            if d >= n:
                break
            b = cc if before_or_equal(cc, d) else d
        if d == n:  # the last leaf has no sibling
            b = cc
        while b != a and before_or_equal(a, b):  # back up to where "a" belongs
            b = parent(b)
        cc = b
        while b != a:  # shift it into place
            b = parent(b)
            do_swap(b, cc)
    return 0


@kfunc("int_sqrt", nargs=1)
def _int_sqrt(k: BaseKernel, c: TrapCall) -> int:
    return math.isqrt(c.arg(0))


@kfunc("__sw_hweight32", "__sw_hweight64", "__sw_hweight16", "__sw_hweight8", nargs=1)
def _hweight(k: BaseKernel, c: TrapCall) -> int:
    bits = int(c.name.rsplit("t", 1)[1])
    return bin(c.arg(0) & ((1 << bits) - 1)).count("1")


@kfunc("bitmap_zalloc", "bitmap_alloc", nargs=2)
def _bitmap_alloc(k: BaseKernel, c: TrapCall) -> int:
    """bitmap_zalloc(nbits, flags): BITS_TO_LONGS(nbits) longs."""
    return zalloc(k, ((c.arg(0) & 0xFFFFFFFF) + 63) // 64 * 8 or 8)


@kfunc("bitmap_free", nargs=1)
def _bitmap_free(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(0))
    return 0


@kfunc("__do_once_start", nargs=2)
def _do_once_start(k: BaseKernel, c: TrapCall) -> int:
    """__do_once_start(&done, &flags): true when the once-block has not run yet."""
    return 0 if k.machine.read_int(c.arg(0), 1) else 1


@kfunc("__do_once_done", nargs=4)
def _do_once_done(k: BaseKernel, c: TrapCall) -> int:
    k.machine.write_int(c.arg(0), 1, 1)
    return 0


@kfunc("__percpu_counter_init", nargs=4)
def _percpu_counter_init(k: BaseKernel, c: TrapCall) -> int:
    """__percpu_counter_init(fbc, amount, gfp, key): count = amount, a per-cpu s32 each."""
    m = k.machine
    m.write_int(c.arg(0) + 8, 8, c.arg(1) & 0xFFFFFFFFFFFFFFFF)
    used = getattr(k, "_module_percpu", 0x40000)
    at = (used + 7) & ~7
    if at + 4 > PERCPU_SIZE:
        return -ENOMEM
    k._module_percpu = at + 4  # type: ignore[attr-defined]
    k.machine.write(k.percpu_base + at, bytes(4))
    m.write_word(c.arg(0) + 32, at if k.percpu_relative else at + k.percpu_base)
    return 0


@kfunc("percpu_counter_destroy", nargs=1)
def _percpu_counter_destroy(k: BaseKernel, c: TrapCall) -> int:
    k.machine.write_word(c.arg(0) + 32, 0)
    return 0


@kfunc("alloc_cpumask_var_node", "alloc_cpumask_var", "zalloc_cpumask_var", nargs=3)
def _alloc_cpumask_var(k: BaseKernel, c: TrapCall) -> int:
    """CONFIG_CPUMASK_OFFSTACK (Debian's NR_CPUS 8192): *mask = cpumask_size() bytes
    (nr_cpu_ids 1: one long); true, false without memory."""
    mask = zalloc(k, 8)
    k.machine.write_word(c.arg(0), mask)
    return int(mask != 0)


@kfunc("free_cpumask_var", nargs=1)
def _free_cpumask_var(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(0))
    return 0


@kfunc("idr_preload", nargs=1)
def _idr_preload(k: BaseKernel, c: TrapCall) -> int:
    """idr_preload(gfp): preemption disabled (idr_preload_end, inline, enables it again);
    the radix-tree nodes it preloads are not needed by this kernel's IDR."""
    at = k.percpu_base + k.percpu_offset("__preempt_count")
    k.machine.write_int(at, 4, (k.machine.read_int(at, 4) + 1) & 0xFFFFFFFF)
    return 0


@kfunc("uuid_gen", "guid_gen", "generate_random_uuid", "generate_random_guid", nargs=1)
def _uuid_gen(k: BaseKernel, c: TrapCall) -> int:
    """A random (version 4, DCE variant) UUID/GUID: 16 random bytes with the version in byte
    6 (uuid) or 7 (guid) and the variant in byte 8 (lib/uuid.c)."""
    raw = bytearray(hashlib.shake_128(b"lkm-uuid%d" % len(table(k, "uuids"))).digest(16))
    table(k, "uuids")[len(table(k, "uuids"))] = bytes(raw)
    v = 7 if "guid" in c.name else 6
    raw[v] = (raw[v] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    k.machine.write(c.arg(0), bytes(raw))
    return 0


# -- text search (lib/textsearch.c) --------------------------------------------------------------------
TS_NAME, TS_INIT = 0, 8


@kfunc("textsearch_register", nargs=1)
def _textsearch_register(k: BaseKernel, c: TrapCall) -> int:
    """textsearch_register(ops): -EINVAL without name/init/find, -EEXIST for a name taken
    (struct ts_ops: name, init, find, destroy, ...)."""
    m = k.machine
    ops = c.arg(0)
    if not all(m.read_word(ops + o) for o in (0, 8, 16)):  # name, init, find
        return -EINVAL
    return register(k, "textsearch", ops, ptr_name(k, ops, TS_NAME), by_name=True)


@kfunc("textsearch_unregister", nargs=1)
def _textsearch_unregister(k: BaseKernel, c: TrapCall) -> int:
    return 0 if unregister(k, "textsearch", c.arg(0)) else -2


@kfunc("textsearch_prepare", nargs=5)
def _textsearch_prepare(k: BaseKernel, c: TrapCall) -> int:
    """textsearch_prepare(algo, pattern, len, gfp, flags): the algorithm by name (loading
    ts_<algo> when it is not registered, as with TS_AUTOLOAD), conf = ops->init(pattern,
    len, gfp, flags), conf->ops = ops; ERR_PTR(-EINVAL) for len 0, ERR_PTR(-ENOENT) when
    no module provides it."""
    if not c.arg(2) & 0xFFFFFFFF:
        return err_ptr(k, EINVAL)
    algo = name_at(k, c.arg(0))
    ops = lookup(k, "textsearch", algo)
    if not ops and k.request_module is not None and c.arg(4) & 1:  # TS_AUTOLOAD
        k.request_module(f"ts_{algo}", True)
        ops = lookup(k, "textsearch", algo)
    if not ops:
        return err_ptr(k, 2)
    init = k.machine.read_word(ops + TS_INIT)
    conf = k.call(init, (c.arg(1), c.arg(2), c.arg(3), c.arg(4)), k.current) & k.arch.mask
    if conf and conf < (-4095) & k.arch.mask:
        k.machine.write_word(conf, ops)
    return conf


# -- list_lru (mm/list_lru.c) --------------------------------------------------------------------------
LRU_NODE, LRU_LIST, LRU_SHRINKER_ID, LRU_MEMCG_AWARE = 0, 8, 24, 28
LRU_NODE_SIZE, LRU_NODE_LIST, LRU_NODE_NR = 64, 8, 32


@kfunc("__list_lru_init", nargs=4)
def _list_lru_init(k: BaseKernel, c: TrapCall) -> int:
    """__list_lru_init(lru, memcg_aware, key, shrinker): one node (nr_node_ids is 1) with an
    empty list and no items, shrinker_id -1 (no memcg shrinker id here), memcg_aware kept;
    -ENOMEM without memory."""
    m = k.machine
    lru = c.arg(0)
    node = zalloc(k, LRU_NODE_SIZE)
    if not node:
        return -ENOMEM
    m.write_word(node + LRU_NODE_LIST, node + LRU_NODE_LIST)
    m.write_word(node + LRU_NODE_LIST + 8, node + LRU_NODE_LIST)
    m.write_word(lru + LRU_NODE, node)
    m.write_word(lru + LRU_LIST, lru + LRU_LIST)
    m.write_word(lru + LRU_LIST + 8, lru + LRU_LIST)
    m.write_int(lru + LRU_SHRINKER_ID, 4, 0xFFFFFFFF)
    m.write_int(lru + LRU_MEMCG_AWARE, 1, c.arg(1) & 1)
    return 0


@kfunc("list_lru_destroy", nargs=1)
def _list_lru_destroy(k: BaseKernel, c: TrapCall) -> int:
    """list_lru_destroy(lru): the nodes go (an lru never set up is allowed)."""
    node = k.machine.read_word(c.arg(0) + LRU_NODE)
    if node:
        k.free(node)
        k.machine.write_word(c.arg(0) + LRU_NODE, 0)
    return 0

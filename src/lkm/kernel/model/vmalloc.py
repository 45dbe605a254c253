"""Memory for loaded modules (HOWTO 10.7): the vmalloc area over the architecture's module
range and, optionally, the kmalloc pool for small modules.

vmalloc hands out whole pages, first fit from the bottom of the range, each area followed by
one unmapped guard page (``get_vm_area`` adds it).  kmalloc rounds a request up to its power
of two size class (32 bytes .. 128 KiB in 2.4) and needs no guard page.  Both are pure
functions over the areas already in use, so the state store can keep the areas as rows.
"""

from __future__ import annotations

import errno

from lkm.kernel.interface import KernelError
from lkm.kernel.model.store import Store
from lkm.record import Record

KMALLOC_MIN = 32
KMALLOC_MAX = 128 * 1024  # 2.4's largest general cache (size-131072)


class Arena(Record):
    """A range of addresses handed out first fit: ``granule`` rounding, ``guard`` bytes after
    each area (unmapped, so an overrun faults)."""

    __slots__ = ("name", "start", "end", "granule", "guard")

    def __init__(self, name: str, start: int, end: int, granule: int, guard: int) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.granule = granule
        self.guard = guard

    def span(self, size: int) -> int:
        """Bytes an area of ``size`` takes, guard included (vmalloc: whole pages + a guard page;
        kmalloc: the size class)."""
        if self.name == "kmalloc":
            return kmalloc_class(size)
        g = self.granule
        return (max(size, 1) + g - 1) // g * g + self.guard

    def fits(self, size: int) -> bool:
        return self.name != "kmalloc" or size <= KMALLOC_MAX


def kmalloc_class(size: int) -> int:
    """The general cache a kmalloc of ``size`` bytes comes from."""
    c = KMALLOC_MIN
    while c < size:
        c <<= 1
    return c


def first_fit(arena: Arena, used: list[tuple[int, int]], size: int) -> int | None:
    """The lowest address where an area of ``size`` fits between the ``used`` (start, span)
    areas; kmalloc objects are aligned to their size class (up to a page), None if full."""
    span = arena.span(size)
    align = min(span, 4096) if arena.name == "kmalloc" else arena.granule
    at = arena.start
    for start, used_span in sorted(used):
        at = (at + align - 1) // align * align
        if at + span <= start:
            return at
        at = max(at, start + used_span)
    at = (at + align - 1) // align * align
    return at if at + span <= arena.end else None


class ModuleMemory:
    """module_alloc / module_map of one model: kmalloc first for small modules (the
    ``kmalloc-first`` policy, up to ``kmalloc_max`` bytes), else vmalloc."""

    def __init__(self, arenas: dict[str, Arena], policy: str, kmalloc_max: int) -> None:
        self.arenas = arenas
        self.policy = policy
        self.kmalloc_max = kmalloc_max

    def alloc(self, store: Store, seq: int, name: str, region: str, size: int) -> int:
        """An area of ``size`` bytes for ``region`` of module ``seq``: its address (ENOMEM)."""
        pools = ["vmalloc"]
        if self.policy == "kmalloc-first" and size <= self.kmalloc_max:
            pools.insert(0, "kmalloc")
        for pool in pools:
            arena = self.arenas[pool]
            if not arena.fits(size):
                continue
            at = first_fit(arena, store.areas_in(pool), size)
            if at is not None:
                store.add_area(pool, at, arena.span(size), size, seq, region)
                return at
        raise KernelError(
            "module_alloc",
            errno.ENOMEM,
            f"can't allocate kernel memory for module {name}; needed {size} bytes",
        )


class Fragmentation(Record):
    """Free space of an arena: total, the largest hole, the number of holes, and the fraction
    of free space not in the largest hole (0: one hole, all free space usable at once)."""

    __slots__ = ("used", "free", "largest", "holes", "ratio", "areas")

    def __init__(self, used: int, free: int, largest: int, holes: int, areas: int) -> None:
        self.used = used
        self.free = free
        self.largest = largest
        self.holes = holes
        self.areas = areas
        self.ratio = 0.0 if free == 0 else 1.0 - largest / free


def fragmentation(arena: Arena, used: list[tuple[int, int]]) -> Fragmentation:
    """Holes between areas, counted up to the highest used address (the untouched top of
    the range is one more hole)."""
    holes: list[int] = []
    at = arena.start
    total = 0
    for start, span in sorted(used):
        if start > at:
            holes.append(start - at)
        at = max(at, start + span)
        total += span
    if arena.end > at:
        holes.append(arena.end - at)
    return Fragmentation(total, sum(holes), max(holes, default=0), len(holes), len(used))

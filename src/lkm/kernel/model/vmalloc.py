"""Memory for loaded modules (HOWTO 10.7): the vmalloc area over the architecture's module
range and, optionally, the kmalloc pool for small modules.

vmalloc hands out whole pages, first fit from the bottom of the range, each area followed by
one unmapped guard page (``get_vm_area`` adds it).  kmalloc rounds a request up to its power
of two size class (32 bytes .. 128 KiB in 2.4) and needs no guard page.  Both are pure
functions over the areas already in use, so the state store can keep the areas as rows.
"""

from __future__ import annotations

import errno
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lkm.kernel.interface import KernelError

if TYPE_CHECKING:
    from lkm.kernel.model.store import Store

__all__ = [
    "KMALLOC_MAX",
    "KMALLOC_MIN",
    "AreaList",
    "Arena",
    "Fragmentation",
    "ModuleMemory",
    "first_fit",
    "fragmentation",
    "kmalloc_class",
]


KMALLOC_MIN = 32
KMALLOC_MAX = 128 * 1024  # 2.4's largest general cache (size-131072)


@dataclass(frozen=True, slots=True)
class Arena:
    """A range of addresses handed out first fit: ``granule`` rounding, ``guard`` bytes after
    each area (unmapped, so an overrun faults)."""

    name: str
    start: int
    end: int
    granule: int
    guard: int

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


class AreaList:
    """The areas of one pool, sorted by address (``starts``, ``ends``: start + span), kept
    in memory between calls by :class:`lkm.kernel.model.store.Cache` so that an allocation
    does not read every area of the pool.  :meth:`first_fit` gives exactly
    :func:`first_fit`'s answer; while the areas neither overlap, nor are empty, nor lie below
    the arena (what the allocator makes, and what ``lkm model check`` checks) only the free gaps
    between areas are looked at: the allocator packs areas end to end, so a pool of thousands
    of areas has few gaps (``holes``: the ends of the areas followed by free space, kept up to
    date as areas come and go); otherwise it falls back to :func:`first_fit` itself."""

    __slots__ = ("starts", "ends", "regular", "holes")

    def __init__(self, areas: list[tuple[int, int]]) -> None:
        areas = sorted(areas)
        self.starts = [s for s, _ in areas]
        self.ends = [s + n for s, n in areas]
        self.regular = _regular(self.starts, self.ends)
        self.holes: list[int] | None = None  # sorted; None: to be found again

    def add(self, start: int, span: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect_left(starts, start)
        starts.insert(i, start)
        ends.insert(i, start + span)
        if span <= 0 or (i and ends[i - 1] > start) or (i + 1 < len(starts) and start + span > starts[i + 1]):
            self.regular = False
        holes = self.holes
        if not self.regular or holes is None:
            self.holes = None
            return
        nxt = i + 1 < len(starts)
        if i:  # the gap the area went into: after area i - 1, before it
            end = ends[i - 1]
            had, has = nxt and starts[i + 1] > end, start > end
            if had and not has:
                del holes[bisect_left(holes, end)]
            elif has and not had:
                insort(holes, end)
        if nxt and starts[i + 1] > start + span:
            insort(holes, start + span)

    def remove(self, start: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect_left(starts, start)
        if i < len(starts) and starts[i] == start:
            holes = self.holes
            if self.regular and holes is not None:
                last = i + 1 == len(starts)
                if not last and starts[i + 1] > ends[i]:  # the gap after it
                    del holes[bisect_left(holes, ends[i])]
                if i:  # the gap before it now reaches the next area (or the end: no gap)
                    end = ends[i - 1]
                    had, has = starts[i] > end, not last and starts[i + 1] > end
                    if had and not has:
                        del holes[bisect_left(holes, end)]
                    elif has and not had:
                        insort(holes, end)
            del starts[i], ends[i]
        if not self.regular:
            self.regular = _regular(starts, ends)
            self.holes = None

    def first_fit(self, arena: Arena, size: int) -> int | None:
        starts, ends = self.starts, self.ends
        if not self.regular or (starts and starts[0] < arena.start):
            return first_fit(arena, [(s, e - s) for s, e in zip(starts, ends, strict=True)], size)
        span = arena.span(size)
        align = min(span, 4096) if arena.name == "kmalloc" else arena.granule
        at = (arena.start + align - 1) // align * align
        if not starts or at + span <= starts[0]:
            return at if at + span <= arena.end else None
        holes = self.holes
        if holes is None:
            holes = self.holes = [e for e, s in zip(ends, starts[1:], strict=False) if s > e]
        # Sorted, disjoint areas: after area i the search is at ends[i] (rounded up); only a
        # gap before the next area can take it.
        for end in holes:
            at = (end + align - 1) // align * align
            if at + span <= starts[bisect_left(starts, end)]:
                return at
        at = (ends[-1] + align - 1) // align * align
        return at if at + span <= arena.end else None


def _regular(starts: list[int], ends: list[int]) -> bool:
    """Sorted areas that are not empty and do not overlap."""
    return all(s < e for s, e in zip(starts, ends, strict=True)) and all(
        e <= s for e, s in zip(ends, starts[1:], strict=False)
    )


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
            at = store.area_list(pool).first_fit(arena, size)
            if at is not None:
                store.add_area(pool, at, arena.span(size), size, seq, region)
                return at
        raise KernelError(
            "module_alloc",
            errno.ENOMEM,
            f"can't allocate kernel memory for module {name}; needed {size} bytes",
        )


@dataclass(frozen=True, slots=True)
class Fragmentation:
    """Free space of an arena: total, the largest hole, the number of holes, and the fraction
    of free space not in the largest hole (0: one hole, all free space usable at once)."""

    used: int
    free: int
    largest: int
    holes: int
    ratio: float = field(init=False)
    areas: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", 0.0 if self.free == 0 else 1.0 - self.largest / self.free)


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

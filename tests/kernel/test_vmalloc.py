"""The module-memory allocator (HOWTO 10.7): first fit, page granularity, guard pages,
reuse after free, kmalloc size classes, fragmentation figures."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.kernel.model.vmalloc import AreaList, Arena, first_fit, fragmentation, kmalloc_class

PAGE = 4096
V = Arena("vmalloc", 0x10000, 0x10000 + 64 * PAGE, PAGE, PAGE)
K = Arena("kmalloc", 0x1000000, 0x1000000 + 64 * PAGE, 1, 0)


def test_page_granularity_and_guard() -> None:
    assert V.span(1) == 2 * PAGE and V.span(PAGE) == 2 * PAGE and V.span(PAGE + 1) == 3 * PAGE
    a = first_fit(V, [], 100)
    b = first_fit(V, [(a, V.span(100))], 100)
    assert (a, b) == (V.start, V.start + 2 * PAGE)


def test_first_fit_reuses_the_lowest_hole() -> None:
    used = [(V.start, 2 * PAGE), (V.start + 4 * PAGE, 2 * PAGE)]  # hole of 2 pages at +2
    assert first_fit(V, used, PAGE) == V.start + 2 * PAGE
    assert first_fit(V, used, 2 * PAGE) == V.start + 6 * PAGE  # 3 pages with guard: no fit in the hole
    assert first_fit(V, [], 64 * PAGE) is None  # needs a guard page beyond the arena


def test_kmalloc_classes() -> None:
    assert [kmalloc_class(n) for n in (1, 32, 33, 1128, 4096, 4097)] == [32, 32, 64, 2048, 4096, 8192]
    a = first_fit(K, [(K.start, 32)], 1128)
    assert a == K.start + 2048  # aligned to its class


def test_fragmentation_figures() -> None:
    used = [(V.start, 2 * PAGE), (V.start + 4 * PAGE, 2 * PAGE)]
    f = fragmentation(V, used)
    assert (f.used, f.holes, f.largest, f.free) == (4 * PAGE, 2, 58 * PAGE, 60 * PAGE)
    assert abs(f.ratio - (1 - 58 / 60)) < 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5 * PAGE)), max_size=60))
def test_areas_never_overlap_and_stay_inside(ops: list[tuple[bool, int]]) -> None:
    used: list[tuple[int, int]] = []
    for alloc, size in ops:
        if alloc or not used:
            at = first_fit(V, used, size)
            if at is None:
                assert fragmentation(V, used).largest < V.span(size)
                continue
            used.append((at, V.span(size)))
        else:
            used.pop(size % len(used))
        spans = sorted(used)
        assert all(s + n <= t for (s, n), (t, _) in pairwise(spans))
        assert all(V.start <= s and s + n <= V.end for s, n in spans)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([V, K]),
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 5 * PAGE)), max_size=80),
)
def test_area_list_answers_as_first_fit(arena: Arena, ops: list[tuple[int, int]]) -> None:
    """The areas a process keeps between calls (AreaList: sorted, updated as areas come and
    go) give first_fit's answer after any allocations and frees -- also over areas no
    allocator makes (op 5: an area put anywhere, overlapping others or below the arena, as in
    a damaged state)."""
    used: list[tuple[int, int]] = []
    areas = AreaList([])
    for op, size in ops:
        if op == 0 and used:
            start, _span = used.pop(size % len(used))
            areas.remove(start)
        elif op == 5:
            start = arena.start - 2 * PAGE + size * 7 % (8 * PAGE)
            if all(start != s for s, _ in used):
                used.append((start, arena.span(size)))
                areas.add(start, arena.span(size))
        else:
            at = first_fit(arena, used, size)
            assert areas.first_fit(arena, size) == at
            if at is not None:
                used.append((at, arena.span(size)))
                areas.add(at, arena.span(size))
        fresh = AreaList(used)
        assert (areas.starts, areas.ends, areas.regular) == (fresh.starts, fresh.ends, fresh.regular)
        if areas.holes is not None:  # the gaps kept up to date are the gaps there are
            assert areas.holes == [e for e, s in zip(fresh.ends, fresh.starts[1:], strict=False) if s > e]

"""The .bin writer against the .bin reader on arbitrary key sets (both are pinned to kmod's
files by the corpus tests): every key found with its values in kmod's value order, nothing
else found; and a trie's bytes depend on its keys, not on the order they came in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.depmod.trie import IndexBuilder
from lkm.index import IndexFile

KEYS = st.text(alphabet="ab-_*?[]:0129", min_size=0, max_size=12)
ENTRIES = st.lists(st.tuples(KEYS, st.sampled_from(["m1", "m2", "m3"]), st.integers(0, 3)), max_size=40)


def _read(tmp: pytest.TempPathFactory, data: bytes) -> IndexFile:
    path = Path(tmp.mktemp("idx")) / "x.bin"
    path.write_bytes(data)
    return IndexFile(str(path))


@settings(max_examples=150, deadline=None)
@given(entries=ENTRIES)
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, str, int]]) -> None:
    b = IndexBuilder()
    expected: dict[str, list[tuple[int, str]]] = {}
    for key, value, prio in entries:
        b.insert(key, value, prio)
        vals = expected.setdefault(key, [])
        # kmod's index_add_value: before the first value of equal or higher priority
        i = next((j for j, (p, _v) in enumerate(vals) if p >= prio), len(vals))
        vals.insert(i, (prio, value))
    idx = _read(tmp_path_factory, b.write())
    assert dict(idx.items()) == expected
    for key, vals in expected.items():
        assert idx.search(key) == vals[0][1]
    assert idx.search("zz-not-a-key") is None


@settings(max_examples=100, deadline=None)
@given(keys=st.sets(KEYS, max_size=40), seed=st.integers(0, 1000))
def test_shape_independent_of_insertion_order(keys: set[str], seed: int) -> None:
    order = sorted(keys)
    a, b = IndexBuilder(), IndexBuilder()
    for k in order:
        a.insert(k, "m", 0)
    random.Random(seed).shuffle(order)
    for k in order:
        b.insert(k, "m", 0)
    assert a.write() == b.write()


# Keys with bytes above 127 (kmod lets them through; as str they are surrogate escapes), 0xff
# included: the last possible character of a node's child range.
HIGH_KEYS = st.text(alphabet="ab\udc80\udcfe\udcff", min_size=0, max_size=6)


@settings(max_examples=100, deadline=None)
@given(keys=st.sets(HIGH_KEYS, max_size=30))
def test_high_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, keys: set[str]) -> None:
    b = IndexBuilder()
    for k in keys:
        b.insert(k, "m", 0)
    idx = _read(tmp_path_factory, b.write())
    assert dict(idx.items()) == {k: [(0, "m")] for k in keys}

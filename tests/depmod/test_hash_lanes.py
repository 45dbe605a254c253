"""The lane-parallel SuperFastHash against the scalar one (the scalar one is pinned to kmod by
the corpus tests: modules.symbols comes out in kmod's hash order)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.depmod.hash import hash_superfast, hash_superfast_many

# Few lengths, so that groups reach the lane path; bytes above 127 for the signed-char tails.
KEYS = st.lists(
    st.binary(min_size=0, max_size=11) | st.sampled_from([b"\xff" * 3, b"\x80", b"ab\xfe"]),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(keys=KEYS)
def test_many_equals_scalar(keys: list[bytes]) -> None:
    assert hash_superfast_many(keys) == [hash_superfast(k) for k in keys]


def test_big_groups_of_every_tail() -> None:
    keys = [bytes((i * 37 + j * 11) % 256 for j in range(n)) for n in range(0, 24) for i in range(40)]
    assert hash_superfast_many(keys) == [hash_superfast(k) for k in keys]

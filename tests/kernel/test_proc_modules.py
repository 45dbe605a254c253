"""/proc/modules parsing: rows written with the kernel's format (m_show: "%s %u", " %i ",
users "a,b," or "-", " Live|Loading|Unloading", " 0x%px", " (%s)" taints) read back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lkm.kernel.live import parse_proc_modules

names = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)
row = st.tuples(
    names,
    st.integers(0, 2**32 - 1),
    st.integers(-1, 1000),
    st.lists(names, max_size=5, unique=True),
    st.sampled_from(["Live", "Loading", "Unloading"]),
    st.integers(0, 2**64 - 1),
    st.sampled_from(["", "(OE)", "(P)", "(OE+)"]),
)


def _m_show(r: tuple[str, int, int, list[str], str, int, str]) -> str:
    name, size, refs, users, state, addr, taints = r
    used = "".join(f"{u}," for u in users) or "-"
    return f"{name} {size} {refs} {used} {state} 0x{addr:016x}" + (f" {taints}" if taints else "") + "\n"


@given(st.lists(row, max_size=20))
def test_rows_read_back(rows: list[tuple[str, int, int, list[str], str, int, str]]) -> None:
    parsed = parse_proc_modules("".join(_m_show(r) for r in rows))
    assert parsed == [(n, s, c, tuple(u), st_, a, t) for n, s, c, u, st_, a, t in rows]

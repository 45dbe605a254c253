"""2.4 ``parm_`` specifications, parsed and described as modutils 2.4.16's modinfo does
(util/modinfo.c: describe_parm).  The expected strings are derived by hand from that C code,
rule by rule, not from lkm."""

from __future__ import annotations

import pytest

from lkm.module.modinfo import parse_param24_spec

CASES = [
    ("i", "int", 1, 1, False),
    ("b", "byte", 1, 1, False),
    ("h", "short", 1, 1, False),
    ("l", "long", 1, 1, False),
    ("s", "string", 1, 1, False),
    ("c20", "char", 1, 1, False),  # the size is swallowed, not printed
    ("ip", "int persistent", 1, 1, True),
    ("1-4i", "int array (min = 1, max = 4)", 1, 4, False),
    ("1-4ip", "int persistent array (min = 1, max = 4)", 1, 4, True),
    ("3i", "int array (min = 3, max = 3)", 3, 3, False),
    ("c20p", "char persistent", 1, 1, True),
    ("sp", "string persistent (invalid)", 1, 1, True),
    ("c", "char *** missing string size ***", 1, 1, False),
    ("x", "unknown format character 'x'", 1, 1, False),
    ("", "no format character!", 1, 1, False),
    ("iq", "int unknown format modifier 'q'", 1, 1, False),
    ("-4i", "unknown format character '-'", 1, 1, False),
]


@pytest.mark.parametrize(("spec", "words", "lo", "hi", "persistent"), CASES)
def test_describe_like_modutils(spec: str, words: str, lo: int, hi: int, persistent: bool) -> None:
    p = parse_param24_spec(spec)
    assert p.describe() == words
    assert (p.min, p.max, p.persistent) == (lo, hi, persistent)


def test_validity() -> None:
    assert parse_param24_spec("1-4ip").valid
    assert parse_param24_spec("c20p").valid
    assert not parse_param24_spec("sp").valid
    assert not parse_param24_spec("c").valid
    assert not parse_param24_spec("4-1i").valid

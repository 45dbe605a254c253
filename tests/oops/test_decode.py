"""The decoder on any input: every line it cannot improve comes out unchanged, it never fails
on the report as a whole, and says once what it lacked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.oops.inputs import FORMATS, Inputs, decode_text

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"
FILES = sorted(DATA.glob("*.txt"))
CORPUS_LINES = [ln for p in FILES for ln in p.read_text(errors="replace").splitlines(True)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_without_inputs_text_unchanged(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    out, notes = decode_text(text, Inputs())
    # nothing to improve frames with: every input line comes out as it was, in order (only
    # decodecode's listings are added, after Code: lines)
    rest = iter(out.splitlines(True))
    assert all(any(o == ln for o in rest) for ln in text.splitlines(True))
    assert len(notes) == len(set(notes))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(CORPUS_LINES), max_size=60), st.text(max_size=40), st.sampled_from(FORMATS))
def test_never_raises(lines: list[str], junk: str, fmt: str) -> None:
    out, _notes = decode_text("".join(lines) + junk, Inputs(), fmt)
    if fmt == "json":
        json.loads(out)

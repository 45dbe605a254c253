"""The oops parser over the report corpus (tests/data/oops): lossless, every line classified,
reports found; arbitrary text never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.oops.report import LINE_KINDS, parse

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"
FILES = sorted(DATA.glob("*.txt"))
KINDS = {k for k, _ in LINE_KINDS} | {"other"}


def test_corpus_size() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_round_trip_and_kinds(path: Path) -> None:
    raw = path.read_bytes()
    log = parse(raw)
    assert log.text().encode("utf-8", "surrogateescape") == raw
    assert all(ln.kind in KINDS for ln in log.lines)
    assert (len(log.reports) == 0) == path.name.startswith("spec-garbage")


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith("vm-") and "panic" not in p.name],
                         ids=lambda p: p.name)  # fmt: skip
def test_vm_reports(path: Path) -> None:
    """Reports the guests printed: one per file, its facts as the kernel printed them."""
    log = parse(path.read_text())
    (r,) = log.reports
    version = path.name.split("-")[1]
    assert str(r.facts["release"]).startswith(version + ".")
    assert r.facts["comm"] == "busybox"
    assert r.arch == "x86_64"
    assert ("uid" in r.facts) == (version == "6.12")  # the UID field is new in 6.11
    names = [m[0] for m in r.facts["modules"]]  # type: ignore[union-attr]
    assert "oopsmod" in names and "ext4" in names
    ip = r.facts["ip"]
    assert isinstance(ip, dict) and ip["module"] in ("oopsmod", "oopsinit")
    assert r.frames, "call trace frames"
    # every frame line of the report is a frame (nothing between <TASK> and </TASK> lost)
    inside = [ln for ln in log.lines if ln.text.startswith("  ") or ln.text.startswith(" ?")]
    assert len([f for f in r.frames if not f.pc]) >= len(inside)


def test_interleaved_and_wrapped() -> None:
    log = parse((DATA / "fmt-6.1-fault-interleaved.txt").read_text())
    (r,) = log.reports
    clean = parse((DATA / "vm-6.1-fault.txt").read_text()).reports[0]
    assert [f.symbol for f in r.frames] == [f.symbol for f in clean.frames]
    wrapped = parse((DATA / "fmt-6.12-gpf-wrapped.txt").read_text()).reports[0]
    plain = parse((DATA / "vm-6.12-gpf.txt").read_text()).reports[0]
    assert wrapped.facts["code"]["units"] == plain.facts["code"]["units"]  # type: ignore[index]


@pytest.mark.parametrize("name", ["syslog", "journal", "plain", "crlf"])
def test_prefix_variants(name: str) -> None:
    base = parse((DATA / "vm-6.12-null.txt").read_text()).reports[0]
    other = parse((DATA / f"fmt-6.12-null-{name}.txt").read_bytes()).reports[0]
    assert [f.asdict() | {"line": 0} for f in other.frames] == [f.asdict() | {"line": 0} for f in base.frames]
    assert other.facts.get("ip", {}) | {"line": 0} == base.facts["ip"] | {"line": 0}  # type: ignore[operator]


CORPUS_LINES = [ln for p in FILES for ln in p.read_text(errors="replace").splitlines(True)]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    assert parse(text).text() == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CORPUS_LINES), max_size=80), st.binary(max_size=64))
def test_shuffled_report_lines(lines: list[str], junk: bytes) -> None:
    raw = "".join(lines).encode() + junk
    assert parse(raw).text().encode("utf-8", "surrogateescape") == raw


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_json(path: Path) -> None:
    import json

    log = parse(path.read_bytes())
    doc = json.loads(json.dumps(log.asdict()))
    assert len(doc["lines"]) == len(log.lines) and len(doc["reports"]) == len(log.reports)


REPORT_FILES = [p for p in FILES if not p.name.startswith("spec-garbage")]


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.name)
def test_every_frame_in_a_report(path: Path) -> None:
    log = parse(path.read_bytes())
    assert [ln.text for ln in log.lines if ln.kind in ("frame", "call_trace") and ln.report is None] == []
    assert all(r.title and r.signature and r.family != "unknown" for r in log.reports)

"""Symbolisation against the guests' own answers (scripts/guest_oops.py): the addresses pcsym
printed with the kernel's %pS, and the frames of the reports the kernel printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lkm.oops import modmap
from lkm.oops.report import parse
from lkm.oops.symbolize import symbolizer_from_kallsyms

from conftest import require

TREES = {"amd64-6.1": "6.1", "amd64-6.12": "6.12"}


def _capture(tree: str) -> Path:
    from lkm.corpus import corpus_dir

    d = corpus_dir() / "oops" / tree
    require((d / "pcsym.txt").is_file(), f"no guest capture for {tree}: run scripts/guest_oops.py")
    return d


def _symbolizer(d: Path, version: str, files: bool):  # type: ignore[no-untyped-def]
    from lkm.module import ModuleFile

    mfiles = {p.stem: ModuleFile.open(p) for p in (d / "modules").glob("*.ko")} if files else None
    maps = modmap.from_snapshot(
        (d / "proc-modules.txt").read_text(), (d / "sections.txt").read_text(),
        rules=modmap.kernel_rules(version), files=mfiles,
    )  # fmt: skip
    return symbolizer_from_kallsyms((d / "proc-kallsyms.txt").read_text(encoding="latin-1"), maps)


@pytest.mark.corpus
@pytest.mark.parametrize("tree", TREES)
def test_pcsym_addresses(tree: str) -> None:
    d = _capture(tree)
    sym = _symbolizer(d, TREES[tree], files=True)
    rows = [line.split(" ", 1) for line in (d / "pcsym.txt").read_text().splitlines()]
    assert len(rows) >= 10_000
    assert sum("[" in want for _a, want in rows) >= 5_000  # module addresses too
    bad = [
        (a, want, sym.format_symbol(int(a, 16))) for a, want in rows if sym.format_symbol(int(a, 16)) != want
    ]
    assert bad == [], f"{len(bad)} of {len(rows)} differ, e.g. {bad[:5]}"


@pytest.mark.corpus
@pytest.mark.parametrize("tree", TREES)
def test_report_frames(tree: str) -> None:
    """Each frame resolved to an address and printed again (%pS for the ip, %pB for return
    addresses) gives the kernel's text; the module frames land in the module's areas."""
    d = _capture(tree)
    sym = _symbolizer(d, TREES[tree], files=True)
    log = parse((d / "dmesg.txt").read_text(encoding="latin-1"))
    assert len(log.reports) == 6
    checked = 0
    for r in log.reports:
        ip = r.facts["ip"]
        assert isinstance(ip, dict)
        frames = [(ip, True)] + [(f.asdict(), False) for f in r.frames]
        for f, is_pc in frames:
            printed = f"{f['symbol']}+{f['offset']:#x}/{f['size']:#x}" + (
                f" [{f['module']}]" if f["module"] else ""
            )
            addr = sym.resolve(f["symbol"], f["offset"], f["size"], f["module"])
            if addr is None:  # init code of a module that finished loading: freed, not in the snapshot
                assert f["symbol"] == "oopsmod_init" and sym.modules["oopsmod"].state == "Live", printed
                continue
            again = sym.format_symbol(addr) if is_pc else sym.format_backtrace(addr)
            assert again == printed
            checked += 1
    assert checked > 50

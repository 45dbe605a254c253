"""Symbolisation against the guests' own answers (scripts/guest_oops.py): the addresses pcsym
printed with the kernel's %pS, and the frames of the reports the kernel printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lkm.oops import modmap
from lkm.oops.report import parse
from lkm.oops.symbolize import symbolizer_from_kallsyms

from support import guest_kallsyms, oops_capture

TREES = {"amd64-6.1": "6.1", "amd64-6.12": "6.12"}


def _capture(tree: str) -> Path:
    return oops_capture(tree)


def _symbolizer(d: Path, version: str, files: bool):  # type: ignore[no-untyped-def]
    from lkm.module import ModuleFile

    mfiles = {p.stem: ModuleFile.open(p) for p in (d / "modules").glob("*.ko")} if files else None
    maps = modmap.from_snapshot(
        (d / "proc-modules.txt").read_text(), (d / "sections.txt").read_text(),
        rules=modmap.kernel_rules(version), files=mfiles,
    )  # fmt: skip
    return symbolizer_from_kallsyms((d / "proc-kallsyms.txt").read_text(encoding="latin-1"), maps)


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("files", [True, False], ids=["module-files", "snapshot-only"])
@pytest.mark.parametrize("tree", TREES)
def test_pcsym_addresses(tree: str, files: bool) -> None:
    """The kernel's own %pS of ~25,000-40,000 addresses (symbol starts, random addresses inside
    functions and data, addresses past the last symbol; vmlinux and eight modules), with the
    module areas from the module files' layout or inferred from the snapshot alone."""
    d = _capture(tree)
    sym = _symbolizer(d, TREES[tree], files=files)
    rows = [line.split(" ", 1) for line in (d / "pcsym.txt").read_text().splitlines()]
    assert len(rows) >= 10_000
    assert sum("[" in want for _a, want in rows) >= 5_000  # module addresses too
    bad = [
        (a, want, sym.format_symbol(int(a, 16))) for a, want in rows if sym.format_symbol(int(a, 16)) != want
    ]
    assert bad == [], f"{len(bad)} of {len(rows)} differ, e.g. {bad[:5]}"


@pytest.mark.corpus
@pytest.mark.vm
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


def _offset(d: Path) -> int:
    log = parse((d / "console.log").read_bytes())
    (off,) = [r.facts["kernel_offset"] for r in log.reports if "kernel_offset" in r.facts]
    assert isinstance(off, int)
    return off


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("tree", TREES)
def test_unrelocated_symbols_with_report_offset(tree: str) -> None:
    """Symbols without the KASLR shift (the tree's nokaslr /proc/kallsyms, what a System.map
    holds) plus the "Kernel Offset" the guest printed when it panicked give the kernel's %pS
    for every core address; the module map and the module files give the module ones."""
    from lkm.module import ModuleFile
    from lkm.oops.symbolize import Symbolizer
    from lkm.symbols.sources import parse_kallsyms
    from testing.corpus import find_tree

    d = _capture(tree)
    nokaslr = guest_kallsyms(find_tree(tree))
    core = [s for s in parse_kallsyms(nokaslr.read_text()) if s.module is None]
    rules = modmap.kernel_rules(TREES[tree])
    files = {p.stem: ModuleFile.open(p) for p in (d / "modules").glob("*.ko")}
    maps = modmap.from_snapshot(
        (d / "proc-modules.txt").read_text(), (d / "sections.txt").read_text(), rules=rules, files=files
    )
    per_mod = {n: modmap.module_symbols(files[n], m, rules) for n, m in maps.items()}
    sym = Symbolizer(core, maps, per_mod, offset=_offset(d))
    rows = [line.split(" ", 1) for line in (d / "pcsym.txt").read_text().splitlines()]
    bad = [(a, want) for a, want in rows if sym.format_symbol(int(a, 16)) != want]
    assert bad == [], f"{len(bad)} of {len(rows)} differ, e.g. {bad[:5]}"


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("tree", TREES)
def test_cli_decodes_guest_report(tree: str) -> None:
    """lkm ksymoops on a guest report: every module frame gets a source line, the output keeps
    every other line, the ksymoops form marks the trapping instruction at the faulting pc."""
    from support import lkm_cmd, run

    d = _capture(tree)
    report = Path(__file__).resolve().parent.parent / "data" / "oops" / f"vm-{TREES[tree]}-gpf.txt"
    args = ["-k", str(d / "proc-kallsyms.txt"), "-l", str(d / "proc-modules.txt")]
    args += ["-s", str(d / "sections.txt"), "-o", str(d / "modules"), str(report)]
    r = run([*lkm_cmd(), "ksymoops", *args])
    out = r.stdout.decode()
    assert "oopsmod_write (" in out and "oopsmod.c:" in out
    assert "<-- trapping instruction" in out
    r = run([*lkm_cmd(), "ksymoops", "--format", "ksymoops", *args])
    lines = r.stdout.decode().splitlines()
    (eip,) = [ln for ln in lines if ln.startswith(">>RIP;")]
    pc = eip.split()[1]
    trap = [ln for ln in lines if ln.startswith("Code;") and ln.endswith("<=====")]
    assert [ln.split()[1] for ln in trap] == [pc]


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("tree", TREES)
def test_kaslr_offset_inferred(tree: str) -> None:
    """Frames printed the older way, "[<address>] symbol+off/size" (addresses from the guest's
    own /proc/kallsyms), against symbols without the shift give the offset the guest printed
    in its "Kernel Offset" line."""
    from lkm.oops.report import symbolised_addresses
    from lkm.oops.symbolize import Symbolizer, infer_offset
    from lkm.symbols.sources import parse_kallsyms
    from testing.corpus import find_tree

    d = _capture(tree)
    nokaslr = guest_kallsyms(find_tree(tree))
    live = _symbolizer(d, TREES[tree], files=False)
    log = parse((d / "dmesg.txt").read_text(encoding="latin-1"))
    lines = []
    for f in log.reports[1].frames:
        if f.module is None and f.symbol is not None and f.offset is not None:
            addr = live.resolve(f.symbol, f.offset, f.size)
            assert addr is not None
            lines.append(f" [<{addr:016x}>] {f.symbol}+{f.offset:#x}/{f.size:#x}\n")
    old = parse("".join(["BUG: x\nCall Trace:\n", *lines]))
    pairs = symbolised_addresses(old.reports[0], old)
    assert len(pairs) >= 4
    core = [s for s in parse_kallsyms(nokaslr.read_text()) if s.module is None]
    assert infer_offset(pairs, Symbolizer(core)) == _offset(d)


class _SnapshotKernel:
    """The Kernel interface over a guest snapshot (what LiveKernel reads from /proc and /sys)."""

    machine = "x86_64"

    def __init__(self, d: Path, release: str) -> None:
        self.release = release
        self._d = d

    def modules(self):  # type: ignore[no-untyped-def]
        from lkm.kernel.interface import LoadedModule

        rows = modmap.parse_proc_modules((self._d / "proc-modules.txt").read_text())
        return [LoadedModule(n, size, 0, (), state, base, taints) for n, size, state, base, taints in rows]

    def sections(self, name: str) -> dict[str, int]:
        return modmap.parse_sections((self._d / "sections.txt").read_text()).get(name, {})

    def kallsyms(self) -> str:
        return (self._d / "proc-kallsyms.txt").read_text(encoding="latin-1")


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("tree", TREES)
def test_symbolizer_from_kernel_interface(tree: str) -> None:
    from lkm.oops.symbolize import symbolizer_from_kernel

    d = _capture(tree)
    sym = symbolizer_from_kernel(_SnapshotKernel(d, TREES[tree] + ".0"))  # type: ignore[arg-type]
    rows = [line.split(" ", 1) for line in (d / "pcsym.txt").read_text().splitlines()[::7]]
    assert [sym.format_symbol(int(a, 16)) for a, _ in rows] == [want for _, want in rows]


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("tree", TREES)
def test_duplicate_names_resolved_by_size(tree: str) -> None:
    """Core symbols that several functions share (static functions of one name): the printed
    size picks the one the kernel meant (faddr2line's rule), checked by printing it again."""
    d = _capture(tree)
    sym = _symbolizer(d, TREES[tree], files=False)
    by_name: dict[str, list[int]] = {}
    for a, n in zip(sym.addrs, sym.names, strict=True):
        by_name.setdefault(n, []).append(a)
    checked = 0
    for name, starts in by_name.items():
        if len(starts) < 2 or not sym.stext <= starts[0] < sym.etext:
            continue
        hits = [(s, sym.lookup(s)) for s in starts]
        pairs = [(s, h.size) for s, h in hits if h is not None and h.name == name]
        if len(pairs) < 2 or len({size for _, size in pairs}) != len(pairs):
            continue
        for s, size in pairs:
            assert sym.resolve(name, 1, size) == s + 1
            checked += 1
        if checked > 200:
            break
    assert checked > 20

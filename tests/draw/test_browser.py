"""Every kind of picture opened in a real headless browser (Debian's chromium): it loads
without page errors, is self-contained (no scripts, no fetches), the elements the data calls
for are there (one per section / area / module / frame, with labels equal to the data), and
a screenshot is taken, in light and dark mode.  ``LKM_WRITE_DOCS=1`` copies the screenshots
of the fixtures' outputs to docs/pictures/ (they are committed and shown in the README)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from lkm.draw.depgraph import DepTables

from support import (
    FIX6,
    FIX24,
    KSYMS24,
    ROOT,
    Elements,
    kallsyms_for,
    lkm,
    load,
    map24_sections,
    png_distinct_bytes,
    screenshot,
    self_contained,
    summary_sections,
)

pytestmark = pytest.mark.oracle
DOCS = ROOT / "docs" / "pictures"


def shoot(page: Path, name: str, size: tuple[int, int], tmp: Path, dark: bool = False) -> None:
    out = tmp / f"{name}.png"
    screenshot(page, out, *size, dark=dark)
    _keep(out, name)


def _keep(out: Path, name: str) -> None:
    assert png_distinct_bytes(out.read_bytes()) > 20, "blank screenshot"
    if os.environ.get("LKM_WRITE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOCS / f"{name}.png")


def opened(path: Path, name: str, size: tuple[int, int], tmp: Path) -> Elements:
    """The page loaded in the browser (no page errors, self-contained) and, in the same run,
    its screenshot *name* (light mode) taken at *size*."""
    out = tmp / f"{name}.png"
    dom, errors = load(path, shot=(out, *size))
    assert errors == [], errors
    assert self_contained(path.read_text()) == []
    _keep(out, name)
    return Elements(dom)


def svg_size(path: Path) -> tuple[int, int]:
    m = re.search(r'width="([\d.]+)" height="([\d.]+)"', path.read_text())
    assert m
    return int(float(m.group(1))) + 16, int(float(m.group(2))) + 16


@pytest.mark.parametrize("layout", ["linux-6.1", "linux-6.12"])
def test_memory_map_6x(layout: str, tmp_path: Path) -> None:
    ks = kallsyms_for([FIX6 / "chardev.ko"], tmp_path / "ks")
    base = [
        "link",
        str(FIX6 / "chardev.ko"),
        "--kernel",
        str(ks),
        "--base",
        "0xffffffffc0000000",
        "--layout",
        layout,
    ]
    _, text, _ = lkm(*base)
    svg = tmp_path / "chardev.svg"
    assert lkm(*base, "--svg", str(svg))[0] == 0
    els = opened(svg, f"memmap-chardev-{layout}", svg_size(svg), tmp_path)
    secs = els.with_class("sec")
    rows = summary_sections(text)
    assert sorted(
        (a["data-name"], int(a["data-addr"], 16), int(a["data-size"], 16), a["data-region"]) for a in secs
    ) == sorted(rows)
    body = svg.read_text()
    for name, addr, size, _r in rows:  # the label beside each box says the same
        assert re.search(rf">{re.escape(name)}\s+{addr:#018x}\s+{size:#x} ", body), name
    if layout == "linux-6.12":
        shoot(svg, f"memmap-chardev-{layout}-dark", svg_size(svg), tmp_path, dark=True)


def test_memory_map_24(tmp_path: Path) -> None:
    """insmod's link of chardev24.o as a 2.4 system has it (/lib/modules/2.4.20/misc)."""
    from lkm.draw.memmap import map_of_insmod24, memmap_svg
    from lkm.link.insmod24 import Insmod24Options, KernelSymbols24, link_module_24
    from lkm.link.output24 import format_load_map
    from lkm.module import ModuleFile

    mod = ModuleFile.open(FIX24 / "chardev24.o")
    opts = Insmod24Options(object_path="/lib/modules/2.4.20/misc/chardev24.o", mtime=0x3E5A1B2C)
    img = link_module_24(mod, KernelSymbols24.from_ksyms(KSYMS24), 0xC8800000, opts)
    svg = tmp_path / "chardev24.svg"
    svg.write_text(memmap_svg(map_of_insmod24(mod, img)))
    els = opened(svg, "memmap-chardev24-linux-2.4", svg_size(svg), tmp_path)
    drawn = [
        (a["data-name"], int(a["data-addr"], 16), int(a["data-size"], 16)) for a in els.with_class("sec")
    ]
    assert drawn == map24_sections(format_load_map(img))


def test_module_memory_pools(tmp_path: Path) -> None:
    from lkm.kernel.model import ModelKernel

    state = str(tmp_path / "k.db")
    assert lkm("model", "boot", "linux-2.4-i386", "--state", state)[0] == 0
    objs = Path(tempfile.mkdtemp(prefix="lkm-"))  # a short path: insmod's ksymoops symbols show it
    try:
        for obj in ("fat24.o", "msdos24.o", "chardev24.o"):
            shutil.copyfile(FIX24 / obj, objs / obj)
            assert lkm("insmod", "--state", state, str(objs / obj))[0] == 0
    finally:
        shutil.rmtree(objs)
    assert lkm("rmmod", "--state", state, "msdos24")[0] == 0
    svg = tmp_path / "mem.svg"
    assert lkm("proc", "--state", state, "memory", "--svg", str(svg))[0] == 0
    els = opened(svg, "memory-pools-2.4", (950, 900), tmp_path)
    k = ModelKernel(state)
    want = sorted((a.module, a.region, a.start, a.span) for a in k.areas())
    got = sorted(
        (a["data-module"], a["data-region"], int(a["data-start"], 16), int(a["data-span"], 16))
        for a in els.with_class("area")
    )
    assert got == want and len(got) == 2
    holes = els.with_class("hole")
    assert len(holes) == 1 and int(holes[0]["data-size"], 16) == 0x2000  # where msdos24 was


def _tree(tmp: Path) -> tuple[Path, Path]:
    from support import RELEASE, make_tree
    from support import WHY_CONF as CONF
    from support import WHY_MODS as MODS

    make_tree(tmp, MODS)
    assert lkm("depmod", "-b", str(tmp), RELEASE)[0] == 0
    conf = tmp / "conf"
    conf.mkdir()
    (conf / "x.conf").write_bytes(CONF)
    return tmp / "lib" / "modules" / RELEASE, conf


@pytest.mark.parametrize("engine", ["graphviz", "lkm"])
def test_dependency_graph(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support import RELEASE

    d, conf = _tree(tmp_path)
    if engine == "lkm":  # no Graphviz on PATH: our own layout
        monkeypatch.setenv("LKM_DOT", "")
    else:
        from support import require

        require(shutil.which("dot"), "Graphviz is not installed: apt-get install graphviz")
    svg, dot = tmp_path / "top.svg", tmp_path / "top.dot"
    rc, _, err = lkm(
        "modprobe",
        "-d",
        str(tmp_path),
        "-S",
        RELEASE,
        "-C",
        str(conf),
        "-D",
        "top",
        "--svg",
        str(svg),
        "--dot",
        str(dot),
    )
    assert rc == 0, err
    els = opened(svg, f"depgraph-top-{engine}", svg_size(svg), tmp_path)
    assert els.with_class("depgraph")[0]["data-engine"] == engine
    t = DepTables.from_dir(str(d))
    mods = {"top", *t.lines["top"]}
    edges = {(a["data-src"], a["data-dst"]) for a in els.with_class("edge-g") if a["data-kind"] == "dep"}
    assert edges == {(m, x) for m in mods for x in t.lines[m]}
    names = {a["data-name"] for a in els.with_class("node")}
    assert mods <= names and "helper" in names  # softdep top post: helper
    if shutil.which("dot"):
        p = subprocess.run(["dot", "-Tsvg", str(dot)], capture_output=True, check=False)
        assert p.returncode == 0, p.stderr


def test_crash_graph_html(tmp_path: Path) -> None:
    report = ROOT / "tests" / "data" / "oops" / "vm-6.1-null.txt"
    html = tmp_path / "crash.html"
    rc, _, _ = lkm("ksymoops", "-K", "-L", "--html", str(html), str(report))
    assert rc == 0 and html.exists()  # decoded; "no kernel symbols" is a warning (issue 17)
    _, doc, _ = lkm("ksymoops", "-K", "-L", "--format", "json", str(report))
    frames = json.loads(doc)["reports"][0]["frames"]
    els = opened(html, "crash-vm-6.1-null", (900, 1000), tmp_path)
    drawn = [a for a in els.with_class("fr") if a["id"].startswith("fr-0-")]
    assert [a["data-function"] for a in drawn] == [f["symbol"] for f in frames]
    assert [a["data-reliable"] for a in drawn] == ["1" if f["reliable"] else "0" for f in frames]
    assert {a["data-module"] for a in els.with_class("modband")} >= {"oopsmod", "kernel"}


def test_crash_graph_nesting(tmp_path: Path) -> None:
    from lkm.draw.crash import CrashFrame, crash_svg

    frames = [
        CrashFrame("__list_add", None, "oopsmod", True, True, "include/linux/list.h:69"),
        CrashFrame("list_add_tail", None, "oopsmod", True, True, "include/linux/list.h:102"),
        CrashFrame(
            "oopsmod_write",
            0x6C,
            "oopsmod",
            False,
            True,
            "oopsmod/oopsmod.c:41",
            0x9A,
            0xFFFFFFFFC065F06C,
            True,
        ),
        CrashFrame("proc_reg_write", 0x56, None, False, True, None, 0xA0),
        CrashFrame("filemap_map_pages", 0x153, None, False, False, None, 0x720),
        CrashFrame("vfs_write", 0xC7, None, False, True, "fs/read_write.c:582", 0x3F0),
    ]
    svg = tmp_path / "c.svg"
    svg.write_text(crash_svg(frames, "BUG: kernel NULL pointer dereference"))
    els = opened(svg, "crash-nesting", svg_size(svg), tmp_path)
    fr = els.with_class("fr")
    assert [(a["data-function"], a["data-inline"]) for a in fr][:3] == [
        ("oopsmod_write", "0"),
        ("list_add_tail", "1"),
        ("__list_add", "1"),
    ]  # outer frame first, nested inside
    assert [a["data-function"] for a in els.with_class("unreliable")] == ["filemap_map_pages"]
    shoot(svg, "crash-nesting-dark", svg_size(svg), tmp_path, dark=True)


def test_demo_page(tmp_path: Path) -> None:
    page = tmp_path / "demo.html"
    assert lkm("demo", "--html", str(page))[0] == 0
    els = opened(page, "demo-page", (1100, 1400), tmp_path)
    assert len([t for t, _a in els.tags if t == "section"]) >= 5
    assert len([t for t, _a in els.tags if t == "figure"]) >= 7
    assert "no picture" not in page.read_text()
    assert els.with_class("depgraph") and els.with_class("crash") and els.with_class("occupancy")

"""The picture options of the other tools: ``lkm depmod --graph``, ``lkm proc memory`` from a
sections snapshot, and their failures (one line, no partial file)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from support import FIX6, RELEASE, SVG, lkm, make_tree
from support import WHY_MODS as MODS


def test_depmod_graph_dot_and_svg(tmp_path: Path) -> None:
    from lkm.draw.depgraph import DepTables

    make_tree(tmp_path, MODS)
    dot, svg = tmp_path / "all.dot", tmp_path / "all.svg"
    assert lkm("depmod", "-b", str(tmp_path), "--graph", str(dot), RELEASE)[0] == 0
    assert lkm("depmod", "-b", str(tmp_path), "--graph", str(svg), RELEASE)[0] == 0
    t = DepTables.from_dir(str(tmp_path / "lib" / "modules" / RELEASE))
    want = {(m, d) for m, line in t.lines.items() for d in line}
    text = dot.read_text()
    assert {(a, b) for a, b in ((ln.split('"')[1][2:], ln.split('"')[3][2:]) for ln in text.splitlines()
                                if " -> " in ln)} == want  # fmt: skip
    root = ET.parse(svg).getroot()
    got = {
        (g.attrib["data-src"], g.attrib["data-dst"])
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "edge-g"
    }
    assert got == want
    rc, _, err = lkm("depmod", "-b", str(tmp_path), "--graph", str(tmp_path / "x.png"), RELEASE)
    assert rc == 1 and len(err.splitlines()) == 1


def test_proc_memory_from_sections_file(tmp_path: Path) -> None:
    """A captured machine's /sys/module/*/sections ('MODULE SECTION ADDRESS'): every section
    drawn at its address, sizes marked estimated."""
    state = str(tmp_path / "k.db")
    assert lkm("model", "boot", "linux-6.1-amd64", "--state", state)[0] == 0
    for ko in ("exporter.ko", "importer.ko"):
        assert lkm("insmod", "--state", state, str(FIX6 / ko))[0] == 0
    from lkm.kernel.model import ModelKernel

    k = ModelKernel(state)
    lines = [f"{m.name} {s} {a:#x}\n" for m in k.modules() for s, a in k.sections(m.name).items()]
    (tmp_path / "sections.txt").write_text("".join(lines))
    svg = tmp_path / "m.svg"
    assert lkm("proc", "memory", "--sections", str(tmp_path / "sections.txt"), "--svg", str(svg))[0] == 0
    root = ET.parse(svg).getroot()
    got = set()
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "sec":
            assert g.get("data-estimated") == "1"
            got.add((g.attrib["data-name"], int(g.attrib["data-addr"], 16)))
    assert got == {(s, a) for m in k.modules() for s, a in k.sections(m.name).items()}
    # the model kernel itself knows the sizes: none estimated
    svg2 = tmp_path / "m2.svg"
    assert lkm("proc", "--state", state, "memory", "--svg", str(svg2))[0] == 0
    secs = [g for g in ET.parse(svg2).getroot().iter(f"{SVG}g") if g.get("class") == "sec"]
    assert secs and not any(g.get("data-estimated") for g in secs)
    rc, _, err = lkm("proc", "memory", "--sections", str(tmp_path / "nope"))
    assert rc == 1 and len(err.splitlines()) == 1

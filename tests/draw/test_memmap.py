"""Memory maps (``lkm link --svg``, ``lkm proc memory --svg``): the numbers drawn are read
back out of the SVG's data attributes and compared with what ``lkm link`` prints (the 6.x
section list, 2.4's ``insmod -m`` map) for the fixtures and 20 corpus modules, and with the
model kernel's vmallocinfo."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import FIX6, FIX24, KSYMS24, SVG, kallsyms_for, lkm, map24_sections, summary_sections


def svg_sections(path: Path) -> list[tuple[str, int, int, str]]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    out = []
    for g in root.iter(f"{SVG}g"):
        if "sec" in (g.get("class") or "").split():
            title = g.find(f"{SVG}title")
            assert title is not None and title.text and title.text.startswith(g.get("data-name", "?"))
            out.append(
                (
                    g.attrib["data-name"],
                    int(g.attrib["data-addr"], 16),
                    int(g.attrib["data-size"], 16),
                    g.attrib["data-region"],
                )
            )
    return out


def check_6x(ko: Path, ks: Path, layout: str, tmp: Path, extra: tuple[str, ...] = ()) -> int:
    base = ["link", str(ko), "--kernel", str(ks), "--base", "0xffffffffc0000000", "--layout", layout, *extra]
    rc, text, err = lkm(*base)
    assert rc == 0, err
    svg = tmp / f"{ko.name}.{layout}.svg"
    rc, _, err = lkm(*base, "--svg", str(svg))
    assert rc == 0, err
    drawn = svg_sections(svg)
    printed = summary_sections(text)
    assert sorted(drawn, key=lambda r: (r[1], r[0])) == sorted(printed, key=lambda r: (r[1], r[0]))
    # to scale: each section box's height over its region's is size over allocation
    return len(drawn)


FIXTURES_6 = [
    "chardev.ko",
    "exporter.ko",
    "importer.ko",
    "params.ko",
    "dwarfmod.ko",
    "kreq.ko",
    "chardev.ko.xz",
]


@pytest.mark.parametrize("layout", ["linux-6.1", "linux-6.12"])
def test_fixture_maps_equal_link_output(layout: str, tmp_path: Path) -> None:
    paths = [FIX6 / n for n in FIXTURES_6]
    ks = kallsyms_for(paths, tmp_path / "kallsyms")
    for p in paths:
        extra = ("--with", str(FIX6 / "exporter.ko")) if p.name == "importer.ko" else ()
        assert check_6x(p, ks, layout, tmp_path, extra) > 5


@pytest.mark.parametrize("obj", ["chardev24.o", "hello24.o", "fat24.o", "common24.o", "msdos24.o"])
def test_fixture_24_maps_equal_insmod_m(obj: str, tmp_path: Path) -> None:
    ks = tmp_path / "ksyms"
    ks.write_text(KSYMS24)
    extra = ["--with", str(FIX24 / "fat24.o"), "--base", "0xc8800000"] if obj == "msdos24.o" else []
    base = ["link", str(FIX24 / obj), "--kernel", str(ks), *extra]
    rc, text, err = lkm(*base)
    assert rc == 0, err
    svg = tmp_path / "m.svg"
    rc, _, err = lkm(*base, "--svg", str(svg))
    assert rc == 0, err
    drawn = [(n, a, s) for n, a, s, r in svg_sections(svg)]
    assert drawn == map24_sections(text)  # the same sections, in insmod's load order
    # every ksymoops __insmod symbol of the map is marked
    wanted = {ln.split()[2] for ln in text.split("Symbols:")[1].splitlines() if "__insmod_" in ln}
    body = svg.read_text()
    assert wanted and all(f"\u25c0 {w}" in body for w in wanted if int(text.split(w)[0].split()[-2], 16))


def test_marks_plt_and_relocations(tmp_path: Path) -> None:
    """The relocation strip counts every relocation the linker applied."""
    ks = kallsyms_for([FIX6 / "chardev.ko"], tmp_path / "ks")
    _, text, _ = lkm("link", str(FIX6 / "chardev.ko"), "--kernel", str(ks), "--base", "0xffffffffc0000000")
    applied = int(re.match(r"chardev: (\d+) relocations", text).group(1))  # type: ignore[union-attr]
    svg = tmp_path / "c.svg"
    lkm(
        "link",
        str(FIX6 / "chardev.ko"),
        "--kernel",
        str(ks),
        "--base",
        "0xffffffffc0000000",
        "--svg",
        str(svg),
    )
    root = ET.parse(svg).getroot()
    strips = [int(g.attrib["data-count"]) for g in root.iter(f"{SVG}g") if g.get("class") == "relocs"]
    assert sum(strips) == applied


def test_bad_output_path_is_one_line(tmp_path: Path) -> None:
    ks = kallsyms_for([FIX6 / "chardev.ko"], tmp_path / "ks")
    rc, _, err = lkm(
        "link",
        str(FIX6 / "chardev.ko"),
        "--kernel",
        str(ks),
        "--base",
        "0xffffffffc0000000",
        "--svg",
        str(tmp_path / "no" / "x.svg"),
    )
    assert rc == 1 and len(err.splitlines()) == 1


@pytest.mark.corpus
def test_corpus_maps_equal_link_output(corpus_trees, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from testing.corpus import module_files

    trees = {t.name: t for t in corpus_trees}
    checked = 0
    for name, layout in (("amd64-6.1", "linux-6.1"), ("amd64-6.12", "linux-6.12")):
        if name not in trees:
            continue
        files = random.Random(20).sample(module_files(trees[name]), 10)
        ks = kallsyms_for(files, tmp_path / f"ks-{name}")
        for f in files:
            rc, _, err = lkm(
                "link",
                str(f),
                "--kernel",
                str(ks),
                "--base",
                "0xffffffffc0000000",
                "--layout",
                layout,
                "--config",
                str(trees[name].config),
            )
            if rc != 0:  # e.g. a symbol only a GPL module may use, bound by the kernel's own table
                pytest.fail(f"{f}: {err}")
            check_6x(f, ks, layout, tmp_path, ("--config", str(trees[name].config)))
            checked += 1
    assert checked == 20


@pytest.mark.corpus
def test_arm64_plt_marked(corpus_trees, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """arm64's PLT sections (sized by module_frob_arch_sections) are drawn, marked, at the
    addresses lkm link prints."""
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "arm64-6.1"), None)
    assert tree is not None
    fat = next(p for p in module_files(tree) if p.name.startswith("fat.ko"))
    ks = kallsyms_for([fat], tmp_path / "ks")
    check_6x(fat, ks, "linux-6.1", tmp_path, ("--config", str(tree.config)))
    root = ET.parse(tmp_path / f"{fat.name}.linux-6.1.svg").getroot()
    marked = {
        g.attrib["data-name"]: g.get("data-mark") for g in root.iter(f"{SVG}g") if g.get("class") == "sec"
    }
    assert marked.get(".plt") == "PLT" and marked.get(".init.plt") == "PLT"

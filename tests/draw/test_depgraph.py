"""Dependency graphs: the ``dep`` edges drawn are exactly the modules.dep lines of the module
and of every module on its line, the softdep edges exactly its softdep line, the reverse
edges exactly the modules whose line holds it; for 100 random corpus modules (modules.dep
written by Debian's kmod depmod), with kmod's ``modprobe --show-depends`` as a second oracle
(every module it would insert is in the graph)."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from lkm.draw.depgraph import (
    DepTables,
    Graph,
    dependency_graph,
    graph_svg,
    layered_layout,
    node_sizes,
    to_dot,
)
from lkm.moddir import ModulesDir
from lkm.modprobe import Resolver, load_config
from lkm.modprobe.resolve import PatternTable

from support import RELEASE, kmod_tool, make_tree
from support import WHY_CONF as CONF
from support import WHY_MODS as MODS

pytestmark = pytest.mark.oracle  # runs Debian's kmod (depmod, modprobe)


def check(g: Graph, res: Resolver, t: DepTables, name: str) -> None:
    """For every module the graph expands (the focus, what it needs, what its softdeps bring):
    its dep edges are its modules.dep line and its softdep edges its softdep line; the reverse
    edges are the modules whose line holds the focus."""
    table = PatternTable([sd.name for sd in res.config.softdeps])
    expanded = [n.label for n in g.nodes.values() if n.kind in ("focus", "module")]
    assert name in expanded and set(t.lines.get(name, [])) <= set(expanded)
    for m in expanded:
        dep = {g.nodes[e.dst].label for e in g.edges if e.kind == "dep" and e.src == f"m:{m}"}
        assert dep == set(t.lines.get(m, [])), m
        soft = {
            (e.kind, g.nodes[e.dst].label)
            for e in g.edges
            if e.src == f"m:{m}" and e.kind.startswith("softdep")
        }
        hits = table.matches(m)
        want: set[tuple[str, str]] = set()
        if hits:
            sd = res.config.softdeps[hits[0]]
            want = {("softdep-pre", x) for x in sd.pre} | {("softdep-post", x) for x in sd.post}
        assert soft == want, m
    users = set(t.users.get(name, []))
    rev = {
        g.nodes[e.src].label
        for e in g.edges
        if e.kind == "dep" and e.dst == f"m:{name}" and g.nodes[e.src].kind == "reverse"
    }
    assert rev <= users and g.totals.get("reverse", 0) == len(users)
    assert len(rev) == min(len(users - set(expanded)), 24) or len(users) > 24


def test_constructed_tree(tmp_path: Path) -> None:
    make_tree(tmp_path, MODS)
    subprocess.run([kmod_tool("depmod"), "-b", str(tmp_path), RELEASE], check=True)
    d = str(tmp_path / "lib" / "modules" / RELEASE)
    (tmp_path / "c.conf").write_bytes(CONF)
    res = Resolver(ModulesDir(d), load_config(d, [str(tmp_path / "c.conf")], cmdline=None))
    t = DepTables.from_dir(d)
    for name in t.lines:
        g = dependency_graph(res, name, t)
        check(g, res, t, name)
        placed = layered_layout(g, node_sizes(g))  # our layout: every node placed, apart
        boxes = [(placed.pos[n][0], placed.pos[n][1], *node_sizes(g)[n]) for n in g.nodes]
        for i, (x1, y1, w1, h1) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1 :]:
                assert abs(x1 - x2) * 2 >= w1 + w2 - 0.01 or abs(y1 - y2) * 2 >= h1 + h2 - 0.01
    g = dependency_graph(res, "wrapped", t)
    kinds = {g.nodes[e.src].label.split(":")[0] for e in g.edges if e.kind == "rule"}
    assert kinds == {"install"}
    g = dependency_graph(res, "bad", t)
    assert any(e.kind == "rule" and g.nodes[e.src].label == "blacklist bad" for e in g.edges)
    g = dependency_graph(res, "nothing", t)
    assert [n.kind for n in g.nodes.values()] == ["missing"]
    assert 'digraph "deps nothing"' in to_dot(g) and "<svg" in graph_svg(g, "lkm")


@pytest.mark.corpus
@pytest.mark.oracle
def test_corpus_100_modules(corpus_trees, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from testing.corpus import depmod_root

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    assert tree is not None
    d = depmod_root(tree, tmp_path)
    subprocess.run([kmod_tool("depmod"), "-b", str(tmp_path), tree.release], check=True)
    res = Resolver(ModulesDir(str(d)), load_config(str(d), [str(tmp_path / "none")], cmdline=None))
    t = DepTables.from_dir(str(d))
    names = random.Random(100).sample(sorted(t.lines), 100)
    for name in names:
        g = dependency_graph(res, name, t)
        check(g, res, t, name)
    for name in names[:20]:  # kmod's modprobe: everything it inserts for the module is in the graph
        out = subprocess.run(
            [
                kmod_tool("modprobe"),
                "-d",
                str(tmp_path),
                "-S",
                tree.release,
                "-C",
                str(tmp_path / "none"),
                "--show-depends",
                name,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        inserted = {
            ln.split()[1].rsplit("/", 1)[1].split(".ko")[0].replace("-", "_")
            for ln in out.splitlines()
            if ln.startswith("insmod ")
        }
        g = dependency_graph(res, name, t)
        assert inserted <= {n.label for n in g.nodes.values()}, name

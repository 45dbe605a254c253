"""Dependency graphs: a module with what it needs and what needs it (kmod.md: modules.dep,
softdeps, aliases, modprobe.d).

:func:`dependency_graph` collects, for the module a name or alias resolves to (libkmod's
lookup, :class:`lkm.modprobe.Resolver`): its modules.dep line and the lines of every module
on it (the graph's ``dep`` edges are exactly those lines; an edge another path already implies
is marked ``implied`` and drawn light), its soft dependencies (``softdep-pre``/``-post``, the
first matching softdep line as libkmod takes it), the modules whose line holds it and the
softdeps naming it (reverse), the aliases that resolve to it (modules.alias and modprobe.d),
the modprobe.d rules that touch it (blacklist, install, remove, options) and, given a kernel,
the modules holding it.  :func:`to_dot` writes Graphviz DOT; :func:`graph_svg` draws it, laid
out by Graphviz's ``dot`` when it is installed and by a layered layout of our own otherwise.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from lkm.draw import svg
from lkm.errors import LkmError
from lkm.modname import path_to_modname
from lkm.modprobe.resolve import Mod, PatternTable, Resolver
from lkm.safeio import read_text

__all__ = [
    "LAYER_GAP",
    "MAX_ALIASES",
    "MAX_REVERSE",
    "MAX_ROW",
    "NODE_GAP",
    "NODE_H",
    "DepTables",
    "Edge",
    "Graph",
    "Node",
    "Placed",
    "dependency_graph",
    "graph_svg",
    "graphviz_layout",
    "layered_layout",
    "layout",
    "node_sizes",
    "to_dot",
    "tree_graph",
]

MAX_ALIASES = 8
MAX_REVERSE = 24


@dataclass(slots=True, unsafe_hash=True)
class Node:
    """A box in the graph: ``kind`` focus, module, reverse, holder, alias, rule, missing,
    builtin or more (a count of what was left out)."""

    id: str
    kind: str
    label: str
    detail: str = ""


@dataclass(slots=True, unsafe_hash=True)
class Edge:
    """``kind`` dep, softdep-pre, softdep-post, alias, rule or holder; src -> dst reads
    "src needs / leads to / holds dst"."""

    src: str
    dst: str
    kind: str
    label: str = ""
    implied: bool = False


@dataclass(slots=True, unsafe_hash=True)
class Graph:
    focus: list[str]  # the module names the query resolved to
    query: str
    nodes: dict[str, Node] = field(default_factory=dict, init=False)
    edges: list[Edge] = field(default_factory=list, init=False)
    totals: dict[str, int] = field(
        default_factory=dict, init=False
    )  # counts before truncation: aliases, reverse

    def node(self, id: str, kind: str, label: str, detail: str = "") -> str:
        if id not in self.nodes:
            self.nodes[id] = Node(id, kind, label, detail)
        return id

    def edge(self, src: str, dst: str, kind: str, label: str = "", implied: bool = False) -> None:
        e = Edge(src, dst, kind, label, implied)
        if e not in self.edges:
            self.edges.append(e)


class DepTables:
    """modules.dep and modules.alias of a modules directory as tables: each module's line
    (names), who lists each module, each module's alias patterns."""

    def __init__(self, dep_text: str, alias_text: str = "", dirname: str = "") -> None:
        self.dirname = dirname
        self.lines: dict[str, list[str]] = {}
        self.paths: dict[str, str] = {}
        self.users: dict[str, list[str]] = {}
        for line in dep_text.splitlines():
            head, colon, rest = line.partition(":")
            if not colon:
                continue
            name = path_to_modname(head)
            self.paths[name] = head
            deps = [path_to_modname(p) for p in rest.split()]
            self.lines[name] = deps
            for d in deps:
                self.users.setdefault(d, []).append(name)
        self.aliases: dict[str, list[str]] = {}
        for line in alias_text.splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[0] == "alias":
                self.aliases.setdefault(parts[2], []).append(parts[1])

    @classmethod
    def from_dir(cls, dirname: str) -> DepTables:
        dep = os.path.join(dirname, "modules.dep")
        if not os.path.isfile(dep):
            raise LkmError("no modules.dep (run depmod first)", path=dep)
        return cls(_read(dep), _read(os.path.join(dirname, "modules.alias")), dirname)


def _read(path: str) -> str:
    try:
        return read_text(path)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None


def tree_graph(t: DepTables, names: list[str] | None = None) -> Graph:
    """Every module (or those of ``names`` and what they need) with its modules.dep line;
    modules that neither need nor are needed by anything are left out of a whole tree."""
    g = Graph(sorted(names or []), "all modules" if names is None else " ".join(names))
    todo = sorted(t.lines) if names is None else list(names)
    seen: set[str] = set()
    while todo:
        n = todo.pop(0)
        if n in seen:
            continue
        seen.add(n)
        line = t.lines.get(n, [])
        if names is None and not line and not t.users.get(n):
            continue
        src = g.node(
            _mod_id(n),
            "focus" if names and n in names else "module",
            n,
            f"{n}\nmodules.dep: {' '.join(line) or '(none)'}",
        )
        on = set(line)
        for d in line:
            g.node(_mod_id(d), "module", d, f"{d}\nmodules.dep: {' '.join(t.lines.get(d, [])) or '(none)'}")
            g.edge(src, _mod_id(d), "dep", "", any(d in t.lines.get(o, ()) for o in on if o != d))
            todo.append(d)
    return g


def _mod_id(name: str) -> str:
    return f"m:{name}"


def dependency_graph(
    res: Resolver,
    query: str,
    tables: DepTables | None = None,
    holders: dict[str, list[str]] | None = None,
    max_aliases: int = MAX_ALIASES,
    max_reverse: int = MAX_REVERSE,
) -> Graph:
    """The graph around what ``query`` (a module name or alias) resolves to."""
    t = tables or DepTables.from_dir(res.moddir.dirname)
    mods = res.lookup(query)
    g = Graph([m.name for m in mods], query)
    if not mods:
        g.node(
            _mod_id(query),
            "missing",
            query,
            f"{query}: not found in modules.dep, modules.alias, modules.builtin or modprobe.d",
        )
        _rules(g, res, Mod(query, None), _mod_id(query))
        return g
    for m in mods:
        fid = g.node(_mod_id(m.name), "focus", m.name, _module_detail(res, t, m.name))
        if res.is_builtin(m):
            g.nodes[fid].kind = "focus"
            g.nodes[fid].detail += "\nbuilt into the kernel"
        if m.alias is not None and m.alias != m.name:
            aid = g.node(f"a:{m.alias}", "alias", m.alias, f"'{m.alias}' resolves to {m.name}")
            g.edge(aid, fid, "alias")
    _dependencies(g, res, t)
    for m in mods:
        _around(g, res, t, m, holders, max_aliases, max_reverse)
    return g


def _dependencies(g: Graph, res: Resolver, t: DepTables) -> None:
    """Each module's modules.dep line and soft dependencies (the first matching softdep line,
    as libkmod), for the focus and every module they bring in."""
    cfg = res.config
    softdeps = PatternTable([sd.name for sd in cfg.softdeps])
    todo = list(g.focus)
    seen: set[str] = set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        line = t.lines.get(name, [])
        src = g.node(_mod_id(name), "module", name, _module_detail(res, t, name))
        on_line = set(line)
        for d in line:
            implied = any(d in t.lines.get(o, ()) for o in on_line if o != d)
            g.node(_mod_id(d), "module", d, _module_detail(res, t, d))
            g.edge(src, _mod_id(d), "dep", "", implied)
            todo.append(d)
        hits = softdeps.matches(name)
        if not hits:
            continue
        sd = cfg.softdeps[hits[0]]
        for kind, names in (("softdep-pre", sd.pre), ("softdep-post", sd.post)):
            for x in names:
                found = res.lookup(x)
                if len(found) == 1 and found[0].name == x:
                    xid = g.node(_mod_id(x), "module", x, _module_detail(res, t, x))
                else:
                    xid = g.node(
                        f"a:{x}",
                        "alias" if found else "missing",
                        x,
                        f"'{x}' resolves to " + (", ".join(f.name for f in found) or "nothing"),
                    )
                    for f in found:
                        g.edge(
                            xid,
                            g.node(_mod_id(f.name), "module", f.name, _module_detail(res, t, f.name)),
                            "alias",
                        )
                g.edge(src, xid, kind, kind.split("-")[1])
                todo.extend(f.name for f in found)


def _around(
    g: Graph,
    res: Resolver,
    t: DepTables,
    m: Mod,
    holders: dict[str, list[str]] | None,
    max_aliases: int,
    max_reverse: int,
) -> None:
    """What points at a focus module: modules whose line holds it, softdeps naming it, aliases
    that resolve to it, modprobe.d rules, holders."""
    cfg = res.config
    fid = _mod_id(m.name)
    # reverse: modules whose line holds it, softdeps naming it
    users = sorted(t.users.get(m.name, []))
    g.totals["reverse"] = g.totals.get("reverse", 0) + len(users)
    for u in users[:max_reverse]:
        uid = g.node(_mod_id(u), "reverse", u, f"{u} needs {m.name} (modules.dep)")
        g.edge(uid, fid, "dep")
    if len(users) > max_reverse:
        more = g.node(
            f"more:rev:{m.name}",
            "more",
            f"+{len(users) - max_reverse} more",
            "\n".join(users[max_reverse:]),
        )
        g.edge(more, fid, "dep")
    for sd in cfg.softdeps:
        for kind, names in (("softdep-pre", sd.pre), ("softdep-post", sd.post)):
            if m.name in names and sd.name != m.name:
                sid = g.node(
                    _mod_id(sd.name),
                    "reverse",
                    sd.name,
                    f"softdep {sd.name} {kind.split('-')[1]}: {m.name}",
                )
                g.edge(sid, fid, kind, kind.split("-")[1])
    # aliases that resolve to it
    pats = t.aliases.get(m.name, [])
    conf_aliases = [a for a, target in cfg.aliases if target == m.name]
    g.totals["aliases"] = g.totals.get("aliases", 0) + len(pats) + len(conf_aliases)
    for a in conf_aliases:
        g.edge(g.node(f"a:{a}", "alias", a, f"modprobe.d: alias {a} {m.name}"), fid, "alias")
    if pats:
        shown = pats[:max_aliases]
        label = "\n".join(_short(a, 40) for a in shown)
        if len(pats) > max_aliases:
            label += f"\n+{len(pats) - max_aliases} more"
        aid = g.node(
            f"aliases:{m.name}",
            "alias",
            label,
            f"modules.alias: {len(pats)} alias patterns of {m.name}\n" + "\n".join(pats[:80]),
        )
        g.edge(aid, fid, "alias", f"{len(pats)} aliases")
    _rules(g, res, m, fid)
    for h in (holders or {}).get(m.name, []):
        g.edge(g.node(f"h:{h}", "holder", h, f"{h} holds {m.name} (loaded)"), fid, "holder", "holds")


def _module_detail(res: Resolver, t: DepTables, name: str) -> str:
    path = t.paths.get(name)
    deps = t.lines.get(name, [])
    out = [name, f"file: {path}" if path else "no file (built-in or missing)"]
    out.append(f"modules.dep: {' '.join(deps) or '(none)'}")
    return "\n".join(out)


def _rules(g: Graph, res: Resolver, m: Mod, fid: str) -> None:
    cfg = res.config
    if m.name in cfg.blacklist:
        g.edge(
            g.node(
                f"r:blacklist:{m.name}",
                "rule",
                f"blacklist {m.name}",
                "modprobe.d: blacklist (alias lookups skip it; modprobe -b skips it always)",
            ),
            fid,
            "rule",
            "blacklist",
        )
    cmd = res.install_command(m)
    if cmd is not None:
        g.edge(
            g.node(
                f"r:install:{m.name}",
                "rule",
                f"install: {cmd}",
                f"modprobe.d: install {m.name} {cmd}\n"
                "modprobe runs this command instead of inserting the module",
            ),
            fid,
            "rule",
            "install",
        )
    cmd = res.remove_command(m)
    if cmd is not None:
        g.edge(
            g.node(f"r:remove:{m.name}", "rule", f"remove: {cmd}", f"modprobe.d: remove {m.name} {cmd}"),
            fid,
            "rule",
            "remove",
        )
    opts = res.options(m)
    if opts:
        g.edge(
            g.node(f"r:options:{m.name}", "rule", f"options {opts}", f"modprobe.d: options {m.name} {opts}"),
            fid,
            "rule",
            "options",
        )


# -- DOT ----------------------------------------------------------------------------------------

_DOT_NODE = {
    "focus": 'shape=box, style="rounded,bold", color="#0969da"',
    "module": 'shape=box, style="rounded"',
    "reverse": 'shape=box, style="rounded", color="#1a7f37"',
    "holder": 'shape=box, style="rounded,filled", fillcolor="#dafbe1"',
    "alias": 'shape=note, color="#8250df"',
    "rule": 'shape=component, color="#cf222e"',
    "missing": 'shape=box, style="dashed"',
    "builtin": 'shape=box, style="rounded,filled", fillcolor="#eeeeee"',
    "more": "shape=plaintext",
}
_DOT_EDGE = {
    "dep": "",
    "softdep-pre": 'style=dashed, color="#bf8700"',
    "softdep-post": 'style=dashed, color="#bf8700"',
    "alias": 'color="#8250df"',
    "rule": 'style=dotted, color="#cf222e", arrowhead=odot',
    "holder": 'color="#1a7f37"',
}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(label: str, n: int = 44) -> str:
    return label if len(label) <= n else label[: n - 1] + "\u2026"


def to_dot(g: Graph, sizes: dict[str, tuple[float, float]] | None = None) -> str:
    """Graphviz DOT of the graph (``sizes``: fixed node sizes in pixels, for our renderer)."""
    out = [
        f"digraph {_q('deps ' + g.query)} {{",
        "  rankdir=TB; nodesep=0.25; ranksep=0.5;",
        '  node [fontname="monospace", fontsize=10]; edge [arrowsize=0.7];',
    ]
    for n in g.nodes.values():
        extra = ""
        if sizes:
            w, h = sizes[n.id]
            extra = f", fixedsize=true, width={w / 72:.3f}, height={h / 72:.3f}"
        out.append(
            f"  {_q(n.id)} [label={_q(chr(10).join(_short(x) for x in n.label.split(chr(10))))}, "
            f"tooltip={_q(n.detail or n.label)}, "
            f"{_DOT_NODE.get(n.kind, '')}{extra}];"
        )
    for e in g.edges:
        a = _DOT_EDGE.get(e.kind, "")
        if e.implied:
            a = (a + ", " if a else "") + 'style=dashed, color="#aaaaaa", constraint=false'
        if e.label and e.kind != "dep":
            a = (a + ", " if a else "") + f"label={_q(e.label)}, fontsize=9"
        out.append(f"  {_q(e.src)} -> {_q(e.dst)}" + (f" [{a}]" if a else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


# -- layout -----------------------------------------------------------------------------------

NODE_H = 26
LAYER_GAP = 64
NODE_GAP = 18
MAX_ROW = 1300.0


@dataclass(slots=True, unsafe_hash=True)
class Placed:
    """Node centres and edge paths (lists of points: a polyline or a Bezier's control points)."""

    pos: dict[str, tuple[float, float]]
    paths: dict[int, list[tuple[float, float]]]
    width: float
    height: float
    engine: str


def node_sizes(g: Graph) -> dict[str, tuple[float, float]]:
    out = {}
    for n in g.nodes.values():
        lines = n.label.split("\n")
        w = max(svg.text_width(_short(ln), 11) for ln in lines) + 18
        out[n.id] = (w, float(NODE_H + 14 * (len(lines) - 1)))
    return out


def layered_layout(g: Graph, sizes: dict[str, tuple[float, float]]) -> Placed:
    """Our own layered layout: longest-path layers (every edge downwards where the graph allows;
    cycles broken at the first edge back), barycentre ordering sweeps, wide layers wrapped."""
    ids = list(g.nodes)
    out_e: dict[str, list[str]] = {i: [] for i in ids}
    for e in g.edges:
        if e.src != e.dst:
            out_e[e.src].append(e.dst)
    # break cycles: DFS, drop edges to nodes on the stack
    state: dict[str, int] = {}
    dag: dict[str, list[str]] = {i: [] for i in ids}
    for root in ids:
        if root in state:
            continue
        stack = [(root, iter(out_e[root]))]
        state[root] = 1
        while stack:
            v, it = stack[-1]
            w = next(it, None)
            if w is None:
                state[v] = 2
                stack.pop()
            elif state.get(w) == 1:
                continue
            else:
                dag[v].append(w)
                if w not in state:
                    state[w] = 1
                    stack.append((w, iter(out_e[w])))
    layer = {i: 0 for i in ids}
    order_topo: list[str] = []
    indeg = {i: 0 for i in ids}
    for v in ids:
        for w in dag[v]:
            indeg[w] += 1
    ready = [i for i in ids if indeg[i] == 0]
    while ready:
        v = ready.pop(0)
        order_topo.append(v)
        for w in dag[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    # pull sources down next to what they point at (aliases, rules right above their module)
    for v in reversed(order_topo):
        if dag[v]:
            layer[v] = min(layer[w] for w in dag[v]) - 1
    nlayers = max(layer.values(), default=0) + 1
    rows: list[list[str]] = [[] for _ in range(nlayers)]
    for v in ids:
        rows[layer[v]].append(v)
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for v in ids:
        for w in dag[v]:
            preds[w].append(v)
    index = {v: i for r in rows for i, v in enumerate(r)}
    for sweep in range(6):
        rng = range(1, nlayers) if sweep % 2 == 0 else range(nlayers - 2, -1, -1)
        for li in rng:
            nb = preds if sweep % 2 == 0 else dag

            def bary(v: str, nb: dict[str, list[str]] = nb) -> float:
                ns = nb[v]
                return sum(index[n] for n in ns) / len(ns) if ns else index[v]

            rows[li].sort(key=bary)
            for i, v in enumerate(rows[li]):
                index[v] = i
    # wrap wide layers into several rows
    lines: list[list[str]] = []
    for r in rows:
        cur: list[str] = []
        row_w = 0.0
        for v in r:
            vw = sizes[v][0] + NODE_GAP
            if cur and row_w + vw > MAX_ROW:
                lines.append(cur)
                cur, row_w = [], 0.0
            cur.append(v)
            row_w += vw
        lines.append(cur)
    widths = [sum(sizes[v][0] for v in ln) + NODE_GAP * (len(ln) - 1) for ln in lines]
    width = max(widths, default=100) + 40
    pos: dict[str, tuple[float, float]] = {}
    y = 16.0
    for li, ln in enumerate(lines):
        x = (width - widths[li]) / 2
        rh = max((sizes[v][1] for v in ln), default=float(NODE_H))
        y += rh / 2
        for v in ln:
            pos[v] = (x + sizes[v][0] / 2, y)
            x += sizes[v][0] + NODE_GAP
        y += rh / 2 + LAYER_GAP - NODE_H
    height = y + 10
    paths: dict[int, list[tuple[float, float]]] = {}
    for k, e in enumerate(g.edges):
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        h1, h2 = sizes[e.src][1] / 2, sizes[e.dst][1] / 2
        if y2 > y1:
            a, b = (x1, y1 + h1), (x2, y2 - h2)
        elif y2 < y1:
            a, b = (x1, y1 - h1), (x2, y2 + h2)
        else:  # same row: an arc below
            a, b = (x1, y1 + h1), (x2, y2 + h2)
            paths[k] = [a, (a[0], a[1] + 30), (b[0], b[1] + 30), b]
            continue
        my = (a[1] + b[1]) / 2
        paths[k] = [a, (a[0], my), (b[0], my), b]
    return Placed(pos, paths, width, height, "lkm")


def graphviz_layout(g: Graph, sizes: dict[str, tuple[float, float]], dot: str) -> Placed:
    """Graphviz's layout (``dot -Tplain``): node centres and edge splines, y flipped."""
    try:
        proc = subprocess.run(
            [dot, "-Tplain"],
            input=to_dot(g, sizes).encode("utf-8", "surrogateescape"),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LkmError(f"dot failed: {exc}") from None
    if proc.returncode != 0:
        raise LkmError(f"dot failed: {proc.stderr.decode(errors='replace').strip()[:200]}")

    pos: dict[str, tuple[float, float]] = {}
    splines: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    gw = gh = 0.0
    plain = proc.stdout.decode("utf-8", "surrogateescape").replace("\\\n", "")  # dot wraps long lines
    for raw in plain.splitlines():
        try:
            f = shlex.split(raw)
        except ValueError:
            continue
        if not f:
            continue
        if f[0] == "graph":
            gw, gh = float(f[2]) * 72, float(f[3]) * 72
        elif f[0] == "node":
            pos[f[1]] = (float(f[2]) * 72, float(f[3]) * 72)
        elif f[0] == "edge":
            n = int(f[3])
            pts = [(float(f[4 + 2 * i]) * 72, float(f[5 + 2 * i]) * 72) for i in range(n)]
            splines.setdefault((f[1], f[2]), []).append(pts)
    m = 20.0
    pos = {k: (x + m, gh - y + m) for k, (x, y) in pos.items()}
    paths: dict[int, list[tuple[float, float]]] = {}
    for k, e in enumerate(g.edges):
        lst = splines.get((e.src, e.dst))
        if lst:
            paths[k] = [(x + m, gh - y + m) for x, y in lst.pop(0)]
    if set(pos) != set(g.nodes):
        raise LkmError("dot's layout lacks nodes")
    return Placed(pos, paths, gw + 2 * m, gh + 2 * m, "graphviz")


def layout(g: Graph, engine: str = "auto") -> Placed:
    """``auto``: Graphviz when ``dot`` is on PATH (our layout if it fails), else ours.
    ``$LKM_DOT`` names the dot program; set to the empty string it turns Graphviz off."""
    sizes = node_sizes(g)
    dot = None
    if engine in ("auto", "graphviz"):
        env = os.environ.get("LKM_DOT")
        dot = shutil.which("dot") if env is None else (shutil.which(env) if env else None)
    if dot:
        try:
            return graphviz_layout(g, sizes, dot)
        except LkmError:
            if engine == "graphviz":
                raise
    elif engine == "graphviz":
        raise LkmError("Graphviz's dot is not installed (apt-get install graphviz)")
    return layered_layout(g, sizes)


def _bezier_d(pts: list[tuple[float, float]]) -> str:
    d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
    rest = pts[1:]
    if len(rest) % 3 == 0:
        for i in range(0, len(rest), 3):
            (a, b), (c, dd), (e, f) = rest[i], rest[i + 1], rest[i + 2]
            d += f" C{a:.1f},{b:.1f} {c:.1f},{dd:.1f} {e:.1f},{f:.1f}"
    else:
        d += "".join(f" L{x:.1f},{y:.1f}" for x, y in rest)
    return d


def _border(
    c: tuple[float, float], size: tuple[float, float], frm: tuple[float, float]
) -> tuple[float, float]:
    """Where the segment from ``frm`` to the centre ``c`` of a w x h box crosses its border."""
    dx, dy = frm[0] - c[0], frm[1] - c[1]
    if dx == 0 and dy == 0:
        return c
    w, h = size[0] / 2, size[1] / 2
    t = min(w / abs(dx) if dx else 1e9, h / abs(dy) if dy else 1e9)
    return (c[0] + dx * t, c[1] + dy * t)


def _arrow(tip: tuple[float, float], frm: tuple[float, float]) -> str:
    dx, dy = tip[0] - frm[0], tip[1] - frm[1]
    ln = math.hypot(dx, dy) or 1.0
    ux, uy = dx / ln, dy / ln
    bx, by = tip[0] - ux * 8, tip[1] - uy * 8
    left = f"{bx - uy * 3.5:.1f},{by + ux * 3.5:.1f}"
    right = f"{bx + uy * 3.5:.1f},{by - ux * 3.5:.1f}"
    return f"M{tip[0]:.1f},{tip[1]:.1f} L{left} L{right} Z"


_KIND_WORDS = {
    "dep": "needs (modules.dep)",
    "softdep-pre": "softdep pre: loaded before",
    "softdep-post": "softdep post: loaded after",
    "alias": "resolves to",
    "rule": "modprobe.d rule for",
    "holder": "holds (loaded kernel)",
}


def graph_svg(g: Graph, engine: str = "auto") -> str:
    """The graph as a standalone SVG document."""
    sizes = node_sizes(g)
    p = layout(g, engine)
    head = f"dependencies of {g.query}" + (
        f" ({', '.join(g.focus)})" if g.focus and g.focus != [g.query] else ""
    )
    top = 56.0
    parts = []
    for k, e in enumerate(g.edges):
        pts = p.paths.get(k)
        if not pts:
            continue
        pts = [(x, y + top) for x, y in pts]
        # Graphviz ends a spline short of the node (room for its arrowhead): ours goes to the border
        if p.engine == "graphviz":
            cx, cy = p.pos[e.dst]
            tip, frm = _border((cx, cy + top), sizes[e.dst], pts[-1]), pts[-1]
        else:
            tip, frm = pts[-1], pts[-2]
        cls = f"edge e-{e.kind}" + (" implied" if e.implied else "")
        hover = f"{g.nodes[e.src].label} {_KIND_WORDS.get(e.kind, e.kind)} {g.nodes[e.dst].label}" + (
            " (also through another dependency)" if e.implied else ""
        )
        body = svg.el("path", d=_bezier_d(pts), class_=cls)
        if tip != pts[-1]:
            body += svg.el(
                "path", d=f"M{pts[-1][0]:.1f},{pts[-1][1]:.1f} L{tip[0]:.1f},{tip[1]:.1f}", class_=cls
            )
        body += svg.el("path", d=_arrow(tip, frm), class_=f"arrow a-{e.kind}")
        parts.append(
            svg.group(
                body,
                hover,
                class_="edge-g",
                data_src=g.nodes[e.src].label,
                data_dst=g.nodes[e.dst].label,
                data_src_id=e.src,
                data_dst_id=e.dst,
                data_kind=e.kind,
                data_implied="1" if e.implied else None,
            )
        )
    for n in g.nodes.values():
        x, y = p.pos[n.id]
        w, h = sizes[n.id]
        y += top
        rx = 2 if n.kind in ("alias", "rule") else 7
        body = svg.el("rect", x=x - w / 2, y=y - h / 2, width=w, height=h, rx=rx, class_="shape")
        lines = n.label.split("\n")
        for i, ln in enumerate(lines):
            body += svg.text(x, y + 4 + 14 * (i - (len(lines) - 1) / 2), _short(ln), text_anchor="middle")
        parts.append(
            svg.group(
                body,
                n.detail or n.label,
                class_=f"node n-{n.kind}",
                data_id=n.id,
                data_name=n.label,
                data_kind=n.kind,
            )
        )
    sub = (
        f"{sum(1 for e in g.edges if e.kind == 'dep')} dependency edges, {len(g.nodes)} nodes; "
        f"layout: {'Graphviz dot' if p.engine == 'graphviz' else 'lkm layered'}"
    )
    legend = []
    x = 8.0
    for kind, word in (
        ("dep", "needs"),
        ("softdep-pre", "softdep"),
        ("alias", "alias"),
        ("rule", "modprobe.d"),
        ("holder", "holds"),
    ):
        legend.append(svg.el("path", d=f"M{x:.0f},44 l26,0", class_=f"edge e-{kind}"))
        legend.append(svg.text(x + 30, 48, word, class_="small"))
        x += 40 + svg.text_width(word, 10)
    header = svg.text(8, 18, head, class_="h") + svg.text(8, 34, sub, class_="muted") + "".join(legend)
    width = max(p.width, svg.text_width(head, 13) + 20, x + 10)
    totals = " ".join(f"{k}={v}" for k, v in sorted(g.totals.items()))
    body = svg.group(
        header + "".join(parts),
        class_="depgraph",
        data_query=g.query,
        data_focus=" ".join(g.focus),
        data_totals=totals or None,
        data_engine=p.engine,
    )
    return svg.document(width, p.height + top + 10, body, head)

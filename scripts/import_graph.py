#!/usr/bin/env python3
"""Import structure of src/lkm: cycles between files and imports inside functions.

Counts, over the runtime imports of every file (``if TYPE_CHECKING:`` imports left out):

* cycles: strongly connected components of more than one file (Tarjan), listed; the same
  between packages (``lkm.kernel``, ``lkm.modprobe``, ...), names looked up by string
  (``importlib``) not counted;
* imports inside functions (``def`` bodies), in total and per file (``-v``).

An edge goes to the most specific file an import names (``from lkm.kernel.model import procfs``
-> lkm/kernel/model/procfs.py; ``from lkm.kernel import Kernel`` -> lkm/kernel/__init__.py).
Usage: ``python scripts/import_graph.py [-v] [SRC]`` (SRC defaults to src/lkm).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module, package: str) -> tuple[list[str], list[str]]:
    """(top-level imported names, imported names inside functions), TYPE_CHECKING skipped."""
    top: list[str] = []
    inner: list[str] = []

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            pkg = package.split(".")
            base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
        # "from PKG import sub" names the file PKG/sub.py (and only it, when every name is one)
        return [f"{base}.{a.name}" for a in node.names] + [base]

    def walk(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for c in child.orelse:
                    walk(c, in_func)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (inner if in_func else top).extend(names(child))
                if in_func:
                    inner.append("\0")  # one marker per statement
                continue
            walk(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    walk(tree, False)
    return top, inner


def _names_non_submodule(tree: ast.Module, module: str, known: set[str]) -> bool:
    """Whether some "from MODULE import X" of the file takes a name that is not a file."""
    return any(
        isinstance(n, ast.ImportFrom)
        and n.module == module
        and any(f"{module}.{a.name}" not in known for a in n.names)
        for n in ast.walk(tree)
    )


def resolve(name: str, known: set[str]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = Path(args[0] if args else "src/lkm").resolve()
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    inner_count: Counter[str] = Counter()
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        top, inner = imports(ast.parse(path.read_text()), package)
        inner_count[mod] = inner.count("\0")
        for name in top + [n for n in inner if n != "\0"]:
            target = resolve(name, known)
            if target is not None and target != mod:
                graph[mod].add(target)
    # "from PKG import sub1, sub2" also listed PKG itself (the base); drop that edge when
    # every name it brought was a file of PKG: importing PKG/sub.py is not importing PKG's code
    # any more than "import PKG.sub" is.
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if all(f"{node.module}.{a.name}" in known for a in node.names):
                    if not _names_non_submodule(tree, node.module, known):
                        graph[mod].discard(node.module)
    cycles = sccs(graph)
    print(f"import cycles (SCCs > 1 file): {len(cycles)}")
    for c in cycles:
        print(f"  {len(c)} files: {' '.join(c)}")
    # The same between packages (lkm.kernel.* as one node, lkm.modprobe.* as another, ...).
    top = {m: ".".join(m.split(".")[:2]) for m in graph}
    pkg_graph: dict[str, set[str]] = {p: set() for p in top.values()}
    for m, targets in graph.items():
        pkg_graph[top[m]].update(top[t] for t in targets if top[t] != top[m])
    pkg_cycles = sccs(pkg_graph)
    print(f"import cycles between packages: {len(pkg_cycles)}")
    for c in pkg_cycles:
        print(f"  {' '.join(c)}")
    print(f"imports inside functions: {sum(inner_count.values())}")
    if verbose:
        for mod, n in inner_count.most_common():
            if n:
                print(f"  {n:4d} {mod}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

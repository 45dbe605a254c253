#!/usr/bin/env python3
"""Import structure of src/lkm: cycles between files and imports inside functions.

Counts, over the runtime imports of every file (``if TYPE_CHECKING:`` imports left out):

* cycles: strongly connected components of more than one file (Tarjan), listed; the same
  between packages (``lkm.kernel``, ``lkm.modprobe``, ...), names looked up by string
  (``importlib``) not counted;
* imports inside functions (``def`` bodies), in total and per file (``-v``), each with the
  reason it is allowed to stay there (``ALLOWED`` below: start-up time measured by
  bench/run.py, an optional extra, a guarded optional import, a package facade) or
  "NOT ALLOWED"; ``--check`` exits 1 when one is not allowed or a cycle is not the allowed one.

The one cycle kept on purpose (``ALLOWED_CYCLE``): the emulator's registry of base-kernel
functions, whose modules register into lkm.emulate.kernel and call one another's helpers.

An edge goes to the most specific file an import names (``from lkm.kernel.model import procfs``
-> lkm/kernel/model/procfs.py; ``from lkm.kernel import Kernel`` -> lkm/kernel/__init__.py).
Usage: ``python scripts/import_graph.py [-v] [--check] [SRC]`` (SRC defaults to src/lkm).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

# Heavy optional dependencies (pyproject extras): imported where used, so that lkm works
# without them and a tool that does not need them does not pay for them.
OPTIONAL = {
    "unicorn": "optional extra run (the emulator's CPU)",
    "capstone": "optional extra run/debug (disassembly)",
    "cryptography": "optional extra trust (signature verification, signing)",
    "zstandard": "optional: .zst decompression (python-zstandard)",
    "elftools": "optional extra debug (DWARF lines)",
    "asn1crypto": "optional: PKCS#7 structures for the cryptography path",
    "dask": "optional extra dask (triage on a cluster)",
}
# Start-up: the three timed calls (bench/run.py, case c: `lkm modinfo one.ko`,
# `lkm modprobe -D name`, `lkm lsmod`) must stay within 1.5x `python3 -c pass`; each entry
# keeps out of them a module they do not need (measured with `python -X importtime`).
STARTUP = "start-up (bench/run.py c): "
DEPMOD = "start-up of depmod (bench/depmod.py, incremental: ~40 ms of 0.1 s): "
REGEX = "the stdlib's regex parser: re._parser on 3.11+, sre_parse before"
ALLOWED: dict[tuple[str, str], str] = {
    ("lkm.cli", "contextlib"): STARTUP + "error paths only; contextlib imports collections, functools",
    ("lkm.cli", "traceback"): STARTUP + "LKM_TRACEBACK only; ~50 modules",
    ("lkm.cli.backend", "lkm.kernel.model"): STARTUP + "the model kernel (SQLite, linker) only with --model",
    ("lkm.cli.backend", "lkm.cli.modutils24"): STARTUP + "2.4's tools only for a 2.4 model",
    ("lkm.cli.lsmod", "lkm.cli.jsonout"): STARTUP + "json only for --json",
    ("lkm.cli.modinfo", "json"): STARTUP + "json only for --json",
    ("lkm.cli.modinfo", "lkm.cli.jsonout"): STARTUP + "json only for --json",
    ("lkm.cli.modinfo", "lkm.module.report"): STARTUP + "the --json report (signature, symbols, validity)",
    ("lkm.cli.modinfo", "lkm.parallel"): STARTUP + "process pools only for a batch of 64+ files",
    ("lkm.cli.modinfo", "lkm.moddir"): STARTUP + "the .bin indexes only for a name operand",
    ("lkm.cli.modprobe", "lkm.cli.jsonout"): STARTUP + "json only for --json",
    ("lkm.cli.modprobe", "lkm.draw.depgraph"): STARTUP + "drawing only for --svg/--dot",
    ("lkm.cli.modprobe", "lkm.link.output"): STARTUP + "drawing only for --svg/--dot",
    ("lkm.cli.depmod", "lkm.cli.jsonout"): DEPMOD + "json only for --json",
    ("lkm.cli.depmod", "lkm.draw.depgraph"): DEPMOD + "drawing only for --graph",
    ("lkm.cli.depmod", "lkm.link.output"): DEPMOD + "drawing only for --graph",
    ("lkm.cli.modprobe", "lkm.depmod.exports"): STARTUP + "the ELF reader only for --show-exports",
    ("lkm.cli.modprobe", "lkm.depmod.scan"): STARTUP + "the ELF reader only for --show-exports",
    ("lkm.cli.modprobe", "lkm.module.file"): STARTUP + "the ELF reader only for --show-exports",
    ("lkm.compress", "lzma"): STARTUP + "the decompressor of the format met only (liblzma)",
    ("lkm.compress", "zlib"): STARTUP + "the decompressor of the format met only",
    ("lkm.compress", "io"): STARTUP + "with zstandard only",
    ("lkm.depmod", "importlib"): STARTUP + "PEP 562: lkm.depmod.config loads no depmod code",
    ("lkm.module", "importlib"): STARTUP + "PEP 562 facade: the reader's submodules on first use",
    ("lkm.depmod.config", "re"): STARTUP + "re only for a depmod.d line with a kernel pattern",
    ("lkm.index", "fnmatch"): STARTUP + "fnmatch (re) only for wildcard index entries",
    ("lkm.modprobe.resolve", "fnmatch"): STARTUP + "fnmatch (re) only for wildcard aliases",
    ("lkm.modprobe.resolve", "re"): STARTUP + "re only for wildcard aliases",
    ("lkm.modprobe.actions", "subprocess"): STARTUP + "subprocess only to run install/remove commands",
    ("lkm.modprobe.actions", "lkm.kernel.load"): STARTUP + "the loader (ELF, decompression) only to insert",
    ("lkm.kernel.live", "ctypes"): STARTUP + "ctypes only for the system calls (lsmod reads /proc)",
    ("lkm.kernel.live", "lkm.index"): STARTUP + "modules.builtin.bin only when asked",
    ("lkm.module.file", "lkm.module.validate"): STARTUP + "lkm.arch (functools, typing) only for checks",
    ("lkm.module.file", "lkm.module.symbols"): STARTUP + "modinfo reads no symbol table (+4.6 ms)",
    ("lkm.module.file", "lkm.module.signature"): STARTUP + "unsigned files never load it (+2.7 ms)",
    ("lkm.module.file", "lkm.module.notes"): STARTUP + "build ids only when asked (+0.5 ms)",
    ("lkm.module.source", "mmap"): STARTUP + "a small module is read, not mapped",
    ("lkm.safeio", "mmap"): STARTUP + "lsmod maps nothing",
    ("lkm.elf.file", "bisect"): STARTUP + "only for suffix-shared string tables",
    ("lkm.oops.report", "re._parser"): REGEX,
    ("lkm.oops.report", "re._constants"): REGEX,
    ("lkm.oops.report", "sre_parse"): REGEX,
    ("lkm.oops.report", "sre_constants"): REGEX,
    ("lkm.emulate.kernel", "lkm.emulate.base"): "the base-kernel registry (the allowed cycle)",
}
# Whole files whose in-function imports are start-up work measured by another benchmark.
ALLOWED_FILES: dict[str, str] = {
    m: "start-up of depmod (bench/depmod.py): the incremental and small-tree paths load only "
    "what they run (trie, cache, parallel: pickle and typing ~30 ms)"
    for m in ("lkm.depmod.cache", "lkm.depmod.core", "lkm.depmod.outputs", "lkm.depmod.read")
}
ALLOWED[("lkm.cli.progress", "threading")] = STARTUP + "threading only when a progress line is drawn"

# The one import cycle kept on purpose: files of these packages may import one another.
# (hw and replay: the devices the registry's bus code attaches, which reach back into it)
ALLOWED_CYCLE = ("lkm.emulate.base", "lkm.emulate.kernel", "lkm.emulate.hw", "lkm.emulate.replay")


def _in_allowed_cycle(mod: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in ALLOWED_CYCLE)


def why_inside(mod: str, names: list[str], guarded: bool) -> str | None:
    """The reason an import statement of ``mod`` naming ``names`` may sit in a function."""
    for name in names:
        root = name.split(".")[0]
        if root in OPTIONAL:
            return OPTIONAL[root]
    for name in names:
        probe = name
        while probe:
            if (mod, probe) in ALLOWED:
                return ALLOWED[(mod, probe)]
            probe = probe.rpartition(".")[0]
    if mod in ALLOWED_FILES:
        return ALLOWED_FILES[mod]
    if guarded:
        return "guarded by except ImportError: an optional extra (lkm[run]) reported to the user"
    if _in_allowed_cycle(mod) and all(_in_allowed_cycle(n) for n in names):
        return "inside the allowed cycle (the emulator's base-kernel registry)"
    return None


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


def _guarded(node: ast.Try) -> bool:
    for h in node.handlers:
        for x in ast.walk(h.type) if h.type is not None else []:
            if isinstance(x, ast.Name) and x.id in ("ImportError", "ModuleNotFoundError"):
                return True
    return False


def imports(
    tree: ast.Module, package: str, stmts: list[tuple[int, list[str], bool]] | None = None
) -> tuple[list[str], list[str]]:
    """(top-level imported names, imported names inside functions), TYPE_CHECKING skipped;
    ``stmts`` collects (line, names, guarded by except ImportError) of those inside functions."""
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

    def walk(node: ast.AST, in_func: bool, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for c in child.orelse:
                    walk(c, in_func, guarded)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (inner if in_func else top).extend(names(child))
                if in_func:
                    inner.append("\0")  # one marker per statement
                    if stmts is not None:
                        stmts.append((child.lineno, names(child), guarded))
                continue
            walk(
                child,
                in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
                guarded or (isinstance(child, ast.Try) and _guarded(child)),
            )

    walk(tree, False, False)
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
    check = "--check" in argv
    args = [a for a in argv if a not in ("-v", "--check")]
    root = Path(args[0] if args else "src/lkm").resolve()
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    inner_count: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    refused: list[str] = []
    listing: list[str] = []
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        stmts: list[tuple[int, list[str], bool]] = []
        top, inner = imports(ast.parse(path.read_text()), package, stmts)
        for line, nm, guarded in stmts:
            named = [n for n in nm if resolve(n, known) is None] or [resolve(n, known) or n for n in nm]
            why = why_inside(mod, nm, guarded)
            where = f"{path.relative_to(root.parent)}:{line}"
            if why is None:
                refused.append(f"{where} {' '.join(dict.fromkeys(named))}")
            else:
                reasons[why.split(":")[0] if why.startswith(STARTUP) else why] += 1
                listing.append(f"{where} {' '.join(dict.fromkeys(named))}: {why}")
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
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and not node.level
                and all(f"{node.module}.{a.name}" in known for a in node.names)
                and not _names_non_submodule(tree, node.module, known)
            ):
                graph[mod].discard(node.module)
    cycles = sccs(graph)
    bad_cycles = [c for c in cycles if not all(_in_allowed_cycle(m) for m in c)]
    print(f"import cycles (SCCs > 1 file): {len(cycles)} ({len(cycles) - len(bad_cycles)} allowed)")
    for c in cycles:
        tag = "" if c in bad_cycles else " [allowed: the emulator's base-kernel registry]"
        print(f"  {len(c)} files{tag}: {' '.join(c)}")
    # The same between packages (lkm.kernel.* as one node, lkm.modprobe.* as another, ...).
    top = {m: ".".join(m.split(".")[:2]) for m in graph}
    pkg_graph: dict[str, set[str]] = {p: set() for p in top.values()}
    for m, targets in graph.items():
        pkg_graph[top[m]].update(top[t] for t in targets if top[t] != top[m])
    pkg_cycles = sccs(pkg_graph)
    print(f"import cycles between packages: {len(pkg_cycles)}")
    for c in pkg_cycles:
        print(f"  {' '.join(c)}")
    print(f"imports inside functions: {sum(inner_count.values())} ({len(refused)} not allowed)")
    for why, n in reasons.most_common():
        print(f"  {n:4d} {why}")
    for r in refused:
        print(f"  NOT ALLOWED {r}")
    if verbose:
        print("per file:")
        for mod, n in inner_count.most_common():
            if n:
                print(f"  {n:4d} {mod}")
        print("each, with its reason:")
        for item in listing:
            print(f"  {item}")
    if check and (refused or bad_cycles or pkg_cycles):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Exports read from each corpus module's own tables (__ksymtab*, __kcrctab*, namespaces)
against the Module.symvers that Debian's kernel build wrote for the same kernel: every
module, every exported symbol, CRC, GPL-ness and namespace.  Needed symbols' CRCs are then
checked against the exporters (vmlinux rows and other modules), as the kernel's check_version
would on load."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

from support import require


def _symvers(path: Path) -> dict[str, set[tuple[str, int, bool, str | None]]]:
    by_module: dict[str, set[tuple[str, int, bool, str | None]]] = defaultdict(set)
    for line in path.read_text().splitlines():
        crc, name, module, kind, *ns = line.split("\t")
        by_module[module].add((name, int(crc, 16), kind.endswith("_GPL"), (ns[0] if ns else "") or None))
    return by_module


def _tree_and_symvers(corpus_trees, tree_name: str, headers_name: str):  # type: ignore[no-untyped-def]
    from testing.corpus import load_headers

    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree, f"corpus tree {tree_name} missing")
    headers = next((h for h in load_headers() if h.name == headers_name), None)
    require(headers is not None and headers.module_symvers.exists(), f"{headers_name} Module.symvers missing")
    assert headers is not None
    require(headers.release == tree.release, f"{headers_name} is {headers.release}, tree is {tree.release}")
    return tree, _symvers(headers.module_symvers)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("tree_name", "headers_name"), [("amd64-6.1", "headers-6.1"), ("amd64-6.12", "headers-6.12")]
)
def test_exports_match_module_symvers(corpus_trees, tree_name: str, headers_name: str) -> None:  # type: ignore[no-untyped-def]
    from lkm.module import ModuleFile
    from testing.corpus import module_files

    tree, symvers = _tree_and_symvers(corpus_trees, tree_name, headers_name)
    kernel_dir = tree.modules_dir / "kernel"
    modules = exporters = symbols = 0
    bad: list[str] = []
    seen: set[str] = set()
    for path in module_files(tree):
        rel = str(path.relative_to(kernel_dir))
        key = rel[: rel.index(".ko")]
        seen.add(key)
        with ModuleFile.open(path) as m:
            ours = {(e.name, e.crc, e.gpl, e.namespace) for e in m.exports}
        modules += 1
        exporters += bool(ours)
        symbols += len(ours)
        if ours != symvers.get(key, set()):
            bad.append(
                f"{key}: only ours {sorted(ours - symvers.get(key, set()))[:3]} "
                f"only symvers {sorted(symvers.get(key, set()) - ours)[:3]}"
            )
    missing = [k for k in symvers if k != "vmlinux" and k not in seen]
    print(
        f"{tree.name}: {modules} modules, {exporters} exporting, {symbols} exports compared, "
        f"{len(bad)} mismatching, {len(missing)} symvers modules without a file",
        file=sys.stderr,
    )
    assert not bad, bad[:5]
    assert not missing, missing[:5]


@pytest.mark.corpus
def test_needed_crcs_agree_with_exporters(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """Every __versions CRC of every 6.1 module equals its exporter's CRC in Module.symvers."""
    from lkm.module import ModuleFile
    from testing.corpus import module_files

    tree, symvers = _tree_and_symvers(corpus_trees, "amd64-6.1", "headers-6.1")
    crc = {name: c for rows in symvers.values() for (name, c, _g, _n) in rows}
    checked = unknown = 0
    bad = []
    for path in module_files(tree):
        with ModuleFile.open(path) as m:
            for n in m.needed:
                if n.crc is None:
                    continue
                if n.name not in crc:
                    unknown += 1
                    continue
                checked += 1
                if crc[n.name] != n.crc:
                    bad.append((path.name, n.name, hex(n.crc), hex(crc[n.name])))
    print(f"needed CRCs checked: {checked}, symbols not in Module.symvers: {unknown}", file=sys.stderr)
    assert checked > 100000
    assert not bad, bad[:5]

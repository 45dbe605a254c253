"""Deterministic samples of the amd64-6.1 and arm64-6.1 corpus trees: each module's init in
the emulator against the tree's kallsyms.  The floors are regression guards below the full
runs' shares (scripts/emulate_corpus.py, within 2M instructions / 2 s: see FULL_RUN), not targets."""

from __future__ import annotations

import collections

import pytest

from conftest import require

# tree -> (sample size, floor); the full runs: FULL_RUN
SAMPLES = {"amd64-6.1": (100, 0.95), "arm64-6.1": (60, 0.93)}
FULL_RUN = {"amd64-6.1": "4023 modules, 99.28% returned", "arm64-6.1": "3685 modules, 99.13% returned"}


@pytest.mark.parametrize("tree_name", sorted(SAMPLES))
def test_sample_inits_run_to_their_return(corpus_trees, tree_name: str) -> None:  # type: ignore[no-untyped-def]
    from lkm.corpus import module_files
    from lkm.emulate.kernel import SymbolSpace
    from lkm.emulate.survey import run_modules
    from lkm.symbols.table import SymbolTable

    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree is not None, f"corpus tree {tree_name} missing")
    kallsyms = tree.root / "proc-kallsyms.txt"
    require(kallsyms.is_file(), f"{kallsyms} missing: run scripts/guest_kallsyms.py")
    size, floor = SAMPLES[tree_name]
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: max(1, len(paths) // size)][:size]
    arch = "x86_64" if tree.arch == "amd64" else tree.arch
    runs = run_modules(sample, SymbolSpace(SymbolTable.from_files(kallsyms), arch))
    causes = collections.Counter(r.result for r in runs)
    assert causes["error"] == 0, [(r.name, r.detail) for r in runs if r.result == "error"]
    assert causes["link"] == 0, [(r.name, r.detail) for r in runs if r.result == "link"]
    share = causes["returned"] / len(runs)
    assert share >= floor, causes

"""Deterministic samples of the amd64-6.1 and arm64-6.1 corpus trees: each module's init in
the emulator against the tree's kallsyms.  The floors are regression guards below the full
runs' shares (scripts/emulate_corpus.py, within 2M instructions / 2 s: see FULL_RUN), not targets."""

from __future__ import annotations

import collections

import pytest

from support import guest_kallsyms, require

# tree -> (sample size, floor); the full runs: FULL_RUN
SAMPLES = {"amd64-6.1": (100, 0.95), "arm64-6.1": (60, 0.93)}
FULL_RUN = {"amd64-6.1": "4023 modules, 99.25% returned", "arm64-6.1": "3685 modules, 99.13% returned"}


@pytest.mark.vm
@pytest.mark.parametrize("tree_name", sorted(SAMPLES))
def test_sample_inits_run_to_their_return(corpus_trees, tree_name: str) -> None:  # type: ignore[no-untyped-def]
    from lkm.emulate.survey import run_modules
    from testing.captures import tree_symbols
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree is not None, f"corpus tree {tree_name} missing")
    guest_kallsyms(tree)
    symbols = tree_symbols(tree)
    require(symbols is not None, f"{tree_name}: neither proc-kallsyms.txt nor vmlinuz")
    size, floor = SAMPLES[tree_name]
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: max(1, len(paths) // size)][:size]
    runs = run_modules(sample, symbols)
    causes = collections.Counter(r.result for r in runs)
    assert causes["error"] == 0, [(r.name, r.detail) for r in runs if r.result == "error"]
    assert causes["link"] == 0, [(r.name, r.detail) for r in runs if r.result == "link"]
    share = causes["returned"] / len(runs)
    assert share >= floor, causes


@pytest.mark.vm
def test_symbols_come_from_the_image_without_a_captured_kallsyms(corpus_trees, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fresh machine may not have booted the guest yet: the vmlinuz gives the same addresses."""
    import dataclasses

    from lkm.module.file import ModuleFile
    from testing.captures import tree_symbols

    from support import FIX6

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    guest_kallsyms(tree)
    captured = tree_symbols(tree)
    from_image = tree_symbols(dataclasses.replace(tree, root=tmp_path))
    assert captured is not None and from_image is not None
    for need in ModuleFile.open(FIX6 / "chardev.ko").needed:
        a, b = captured.table.lookup(need.name), from_image.table.lookup(need.name)
        assert a is not None and b is not None and (a.address, a.type) == (b.address, b.type)

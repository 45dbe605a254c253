"""Real modules on the model: the fs/, lib/ and crypto/ modules of Debian's 6.1 amd64 tree (with
the modules they depend on, dependencies first) load into the 6.1 profile kernel with no failure.

Oracle: modpost's ``depends=`` of each module (computed at build time from the symbols it
uses) must be exactly the set of modules the model kernel bound its imports to, and every
__versions CRC must agree with the profile's (a mismatch fails the load with EINVAL)."""

from __future__ import annotations

import os
from pathlib import Path

from lkm.corpus import find_tree, module_files
from lkm.kernel.model import ModelKernel
from lkm.moddir import load_order, normalize
from lkm.module.file import ModuleFile
from tests.conftest import require

SUBDIRS = ("fs", "lib", "crypto")


def test_corpus_modules_load_and_unload(corpus_trees: object, tmp_path: Path) -> None:
    trees = {t.name: t for t in corpus_trees}  # type: ignore[attr-defined]
    require("amd64-6.1" in trees, "corpus tree amd64-6.1 missing: run scripts/fetch_corpus.py")
    tree = find_tree("amd64-6.1")
    files = {normalize(os.path.basename(p).split(".")[0]): str(p) for p in module_files(tree)}
    wanted = sorted(n for n, p in files.items() if any(f"/kernel/{d}/" in p for d in SUBDIRS))
    order = load_order(wanted, files)
    assert len(order) >= 200
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    failures = []
    for path in order:
        try:
            k.finit_module(path)
        except Exception as exc:
            failures.append(f"{path}: {exc}")
    assert failures == []
    loaded = {m.name: m for m in k.modules()}
    assert len(loaded) == len(order)
    total_depends = 0
    for path in order:
        mod = ModuleFile.open(path)
        depends = {normalize(d) for d in (mod.get("depends") or "").split(",") if d}
        holders_of_deps = {d for d in depends if mod.name in loaded[d].holders}
        assert holders_of_deps == depends, f"{mod.name}: depends={sorted(depends)}"
        total_depends += len(depends)
    assert sum(len(m.holders) for m in loaded.values()) == total_depends  # and no reference beyond them
    assert k.check_integrity() == []
    for path in reversed(order):
        k.delete_module(ModuleFile.open(path).name)
    assert k.modules() == [] and k.areas() == [] and k.check_integrity() == []

"""Real modules on the model: the fs/, lib/ and crypto/ modules of Debian's 6.1 amd64 tree load
into the 6.1 profile kernel with no failure, through lkm's modprobe (modules.dep order, the
indexes written by lkm's depmod) exactly as `modprobe --model` loads them.  The kernel is the
profile of the corpus's own build (testing.captures.corpus_profile, addresses from its vmlinuz),
whatever build Debian's mirror had on the day of the fetch.

Oracle: modpost's ``depends=`` of each module (computed at build time from the symbols it
uses) must be exactly the set of modules the model kernel bound its imports to, and every
__versions CRC must agree with the profile's (a mismatch fails the load with EINVAL)."""

from __future__ import annotations

import os
from pathlib import Path

from lkm.kernel.model import ModelKernel
from lkm.moddir import ModulesDir
from lkm.modname import alias_normalize as normalize
from lkm.modprobe import Resolver, load_config
from lkm.modprobe.actions import Flags, KernelState, probe
from lkm.module.file import ModuleFile
from testing.corpus import depmod_root, find_tree, module_files

from support import corpus_profile, lkm_cmd, require, run

SUBDIRS = ("fs", "lib", "crypto")


def test_corpus_modules_load_and_unload(corpus_trees: object, tmp_path: Path) -> None:
    trees = {t.name: t for t in corpus_trees}  # type: ignore[attr-defined]
    require("amd64-6.1" in trees, "corpus tree amd64-6.1 missing: run scripts/fetch_corpus.py")
    tree = find_tree("amd64-6.1")
    files = {normalize(os.path.basename(p).split(".")[0]): str(p) for p in module_files(tree)}
    wanted = sorted(n for n, p in files.items() if any(f"/kernel/{d}/" in p for d in SUBDIRS))
    root = tmp_path / "root"
    depmod_root(tree, root)
    r = run([*lkm_cmd(), "depmod", "-b", str(root), tree.release])
    assert r.returncode == 0, r.stderr
    dirname = str(root / "lib" / "modules" / tree.release)
    res = Resolver(ModulesDir(dirname), load_config(dirname, paths=[], cmdline=None))
    k = ModelKernel.boot(corpus_profile("image"), tmp_path / "k.db")
    state = KernelState(k, res)
    failures: list[str] = []

    def emit(kind: str, text: str) -> None:
        if kind in ("ERROR", "FATAL"):
            failures.append(text)

    for name in wanted:
        err = probe(res, state, res.module(name), "", Flags(), emit)
        if err < 0:
            failures.append(f"{name}: {os.strerror(-err)}")
    assert failures == []
    # The order the model saw: /proc/modules lists the newest first.
    order = [files[m.name] for m in reversed(k.modules())]
    assert len(order) >= 200
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

"""modinfo by module name, alias and symbol (-b/-k/-m), against kmod on the same modules
directory; kmod's own depmod builds the indexes both sides read."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import kmod_modinfo, lkm_cmd, require, run


@pytest.fixture(scope="module")
def moddir(corpus_trees, tmp_path_factory):  # type: ignore[no-untyped-def]
    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree, "corpus tree amd64-6.1 missing")
    require(shutil.which("depmod"), "kmod's depmod missing")
    root = tmp_path_factory.mktemp("root")
    d = root / "lib" / "modules" / tree.release
    d.mkdir(parents=True)
    for name in ("kernel", "modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (tree.modules_dir / name).exists():
            os.symlink(tree.modules_dir / name, d / name)
    subprocess.run(["depmod", "-b", str(root), tree.release], check=True, capture_output=True)
    return root, tree.release, d


def _compare(root: Path, release: str, args: list[str]) -> bool:
    a = run([*lkm_cmd(), "modinfo", "-b", str(root), "-k", release, *args])
    b = run([kmod_modinfo(), "-b", str(root), "-k", release, *args])
    return a.stdout == b.stdout and a.returncode == b.returncode and a.stderr[4:] == b.stderr


def _differing(root: Path, release: str, opts: list[str], args: list[str]) -> list[str]:
    if _compare(root, release, [*opts, *args]):
        return []
    if len(args) == 1:
        return args
    mid = len(args) // 2
    return _differing(root, release, opts, args[:mid]) + _differing(root, release, opts, args[mid:])


@pytest.mark.corpus
@pytest.mark.oracle
def test_lookup_by_name_alias_symbol(moddir) -> None:  # type: ignore[no-untyped-def]
    root, release, d = moddir
    rng = random.Random(2026)
    names = [
        Path(line.split(":")[0]).name.split(".")[0] for line in (d / "modules.dep").read_text().splitlines()
    ]
    aliases = [line.split()[1] for line in (d / "modules.alias").read_text().splitlines()[1:]]
    symbols = [line.split()[1] for line in (d / "modules.symbols").read_text().splitlines()[1:]]
    probes = (
        rng.sample(names, 150)
        + [n.replace("_", "-") for n in rng.sample(names, 30)]
        + [a.replace("*", "x") for a in rng.sample(aliases, 200)]
        + rng.sample(aliases, 50)
        + rng.sample(symbols, 100)
        + ["no-such-module", "symbol:no_such_symbol", "pci:v*"]
    )
    builtin = [Path(x).name.split(".")[0] for x in (d / "modules.builtin").read_text().split()]
    builtin_aliases = [
        entry.split("=", 1)[1]
        for entry in (d / "modules.builtin.modinfo").read_bytes().decode().split("\0")
        if ".alias=" in entry
    ]
    probes += rng.sample(builtin, 40) + rng.sample(builtin_aliases, min(40, len(builtin_aliases)))
    # One call per batch (as a user passing several names); bisect a differing batch to report.
    bad = _differing(root, release, ["-F", "filename"], probes)
    bad += _differing(root, release, ["-m"], rng.sample(names, 50))
    bad += _differing(root, release, [], rng.sample(names, 30))
    bad += _differing(root, release, [], rng.sample(builtin, 20))
    bad += _differing(root, release, ["-F", "license"], rng.sample(builtin, 20))
    print(f"{len(probes) + 80} lookups compared, {len(bad)} differ", file=sys.stderr)
    assert not bad, bad[:10]

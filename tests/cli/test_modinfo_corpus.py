"""The acceptance test: every module of every corpus tree, lkm modinfo == kmod modinfo for the
default listing, for -0, and for -F of every field the module has."""

from __future__ import annotations

import sys
from collections import defaultdict

import pytest

from support import kmod_modinfo, lkm_cmd, run

BATCH = 500


def _compare_batch(args: list[str], files: list[str]) -> list[str]:
    """Files whose output differs (bisecting a differing batch down to single files)."""
    ours = run([*lkm_cmd(), "modinfo", *args, *files])
    theirs = run([kmod_modinfo(), *args, *files])
    if ours.stdout == theirs.stdout and ours.returncode == theirs.returncode:
        return []
    if len(files) == 1:
        return files
    mid = len(files) // 2
    return _compare_batch(args, files[:mid]) + _compare_batch(args, files[mid:])


@pytest.mark.corpus
@pytest.mark.oracle
def test_corpus_modinfo_identical_to_kmod(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    from lkm.module import ModuleFile
    from testing.corpus import module_files

    report = []
    all_bad: list[str] = []
    for tree in corpus_trees:
        files = [str(p) for p in module_files(tree)]
        assert len(files) > 1000, f"{tree.name}: only {len(files)} modules"
        bad: set[str] = set()
        fields: dict[str, list[str]] = defaultdict(list)
        for f in files:
            with ModuleFile.open(f) as m:
                for key in dict.fromkeys(k for k, _v in m.modinfo):
                    fields[key].append(f)
        comparisons = 0
        for i in range(0, len(files), BATCH):
            chunk = files[i : i + BATCH]
            for opts in ([], ["-0"]):
                bad.update(_compare_batch(opts, chunk))
                comparisons += len(chunk)
        for key, having in sorted(fields.items()):
            for i in range(0, len(having), BATCH):
                chunk = having[i : i + BATCH]
                bad.update(_compare_batch(["-F", key], chunk))
                comparisons += len(chunk)
        report.append(
            f"{tree.name}: {len(files)} modules, {len(fields)} fields, "
            f"{comparisons} comparisons, {len(bad)} mismatching modules"
        )
        all_bad.extend(sorted(bad))
    print("\n".join(report), file=sys.stderr)
    assert not all_bad, f"{len(all_bad)} modules differ from kmod, e.g. {all_bad[:5]}"

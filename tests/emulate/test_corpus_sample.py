"""A deterministic sample of the amd64-6.1 corpus: every module's init in the emulator.
The floor is a regression guard below the full run's share (scripts/emulate_corpus.py over
all 4023 modules: 99.08% ran to their return within 2M instructions / 2 s), not a target."""

from __future__ import annotations

import collections

from conftest import require

SAMPLE = 100
FLOOR = 0.95


def test_sample_inits_run_to_their_return(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    from lkm.corpus import module_files
    from lkm.emulate.session import default_symbols
    from lkm.emulate.survey import run_modules

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: max(1, len(paths) // SAMPLE)][:SAMPLE]
    runs = run_modules(sample, default_symbols())
    causes = collections.Counter(r.result for r in runs)
    assert causes["error"] == 0, [(r.name, r.detail) for r in runs if r.result == "error"]
    assert causes["link"] == 0, [(r.name, r.detail) for r in runs if r.result == "link"]
    share = causes["returned"] / len(runs)
    assert share >= FLOOR, causes

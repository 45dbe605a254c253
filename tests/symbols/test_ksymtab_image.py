"""Exports recovered from Debian's raw arm64 Image (lkm.symbols.ksymtab) against the kernel's
own /proc/kallsyms of a nokaslr boot (the corpus's proc-kallsyms.txt, scripts/guest_kallsyms.py):
every export that kallsyms lists must sit at the address kallsyms gives it."""

from __future__ import annotations

from collections import Counter

import pytest

from support import guest_kallsyms, require


@pytest.mark.corpus
@pytest.mark.vm
def test_arm64_image_exports_match_kallsyms(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    from lkm.symbols.image import decompress_kernel_image
    from lkm.symbols.ksymtab import raw_image_exports

    tree = next((t for t in corpus_trees if t.arch == "arm64"), None)
    require(tree is not None and tree.vmlinuz is not None, "arm64 corpus tree missing")
    kallsyms = guest_kallsyms(tree)
    running: dict[str, int] = {}
    for line in kallsyms.read_text().splitlines():
        a, _t, name = line.split()[:3]
        running.setdefault(name, int(a, 16))
    exports = raw_image_exports(decompress_kernel_image(tree.vmlinuz.read_bytes()))
    assert len(exports) > 10000
    listed = [(off, name) for off, name, _gpl in exports if name in running]
    _base, agree = Counter(running[n] - off for off, n in listed).most_common(1)[0]
    # A few names are also static symbols elsewhere (kallsyms lists those first).
    assert agree >= 0.995 * len(listed), f"{len(listed) - agree} of {len(listed)} exports disagree"
    assert sum(gpl for _, _, gpl in exports) > 1000  # __ksymtab_gpl found after __ksymtab


@pytest.mark.corpus
@pytest.mark.vm
def test_arm64_image_symbols_carry_the_exports(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """The symbols of the arm64 Image (what `lkm kallsyms --from-image`, `link -k IMAGE`, `run -k
    IMAGE` use) mark its exports: every export the guest's /proc/kallsyms lists is the
    kallsyms entry at the guest's address (one KASLR offset for all); the others (data
    without CONFIG_KALLSYMS_ALL) are added, so that modules bind to them."""
    from lkm.symbols.sources import image_symbols

    tree = next((t for t in corpus_trees if t.arch == "arm64"), None)
    require(tree is not None and tree.vmlinuz is not None, "arm64 corpus tree missing")
    running: dict[str, int] = {}
    for line in guest_kallsyms(tree).read_text().splitlines():
        a, _t, name = line.split()[:3]
        running.setdefault(name, int(a, 16))
    arch, syms = image_symbols(tree.vmlinuz.read_bytes(), cache=False)
    assert arch == "arm64"
    exports = [s for s in syms if s.exported]
    assert len(exports) > 10000 and sum(s.gpl_only for s in exports) > 1000
    listed = [s for s in exports if s.type is not None]
    assert all(s.name in running for s in listed)
    offsets = Counter(running[s.name] - (s.address or 0) for s in listed)
    _kaslr, agree = offsets.most_common(1)[0]
    assert agree >= 0.995 * len(listed)
    # the kallsyms part is the guest's, line for line (names and letters)
    core = [(s.type, s.name) for s in syms if s.type is not None]
    assert core == [
        tuple(ln.split()[1:3]) for ln in guest_kallsyms(tree).read_text().splitlines()[: len(core)]
    ]

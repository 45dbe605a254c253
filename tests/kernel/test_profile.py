"""Kernel profiles.

The shipped profiles are product data (a user boots them by name), made by
scripts/make_profiles.py from one Debian build: their own tests check them for internal
consistency (and the demo's modules, built against the same build, against them), and against
the corpus only where the corpus has that exact build.  The corpus follows Debian's mirror (the
newest build on the day of the fetch): its tests compare the profile generated from the corpus's
own build (testing.captures.corpus_profile) with that build's Module.symvers and the /proc/kallsyms
its kernel printed in QEMU."""

from __future__ import annotations

import errno

import pytest

from lkm.kernel.model.profile import ARCH_RANGES, load_profile, shipped_profiles
from lkm.module.file import ModuleFile
from lkm.symbols.sources import parse_kallsyms, parse_module_symvers
from testing.corpus import find_headers, find_tree

from support import FIX6, FIX24, corpus_profile, guest_kallsyms, require


def _key(profile):  # type: ignore[no-untyped-def]
    return [(s.name, s.address, s.type, s.crc, s.gpl_only, s.namespace) for s in profile.symbols]


def test_shipped() -> None:
    assert shipped_profiles() == ["linux-2.4-i386", "linux-6.1-amd64"]


def test_61_profile_is_consistent() -> None:
    """One build's data throughout: the release in vermagic and uname, every export sorted,
    once, with an address in the kernel image (per-CPU ones: an offset) and a CRC
    (CONFIG_MODVERSIONS), and the demo's 6.1 modules (built against the same build's headers)
    carry its vermagic and its CRCs."""
    p = load_profile("linux-6.1-amd64")
    f = p.fields
    assert (f["arch"], f["layout"], f["kernel"], f["bits"]) == ("x86_64", "linux-6.1", "6.1", "64")
    assert f["vermagic"].startswith(f["release"] + " ") and "modversions" in f["vermagic"]
    assert f" {f['release']} " in f["uname"] and int(f["struct_module_size"]) > 0
    names = [s.name for s in p.symbols]
    assert names == sorted(set(names)) and len(names) > 10000
    modules_start = ARCH_RANGES["x86_64"]["modules"][0]
    for s in p.symbols:
        assert s.address is not None, s.name
        if s.type == "A":  # per-CPU variables: offsets into the per-CPU area
            assert s.address < 0x100000, s.name
        else:
            assert 0xFFFFFFFF80000000 <= s.address < modules_start, s.name
        assert s.crc is not None and s.module is None and s.exported, s.name
    by_name = {s.name: s for s in p.symbols}
    for ko in ("exporter.ko", "importer.ko", "chardev.ko", "params.ko"):
        m = ModuleFile.open(FIX6 / ko)
        assert m.vermagic == f["vermagic"], ko
        for need in m.needed:
            if need.name in by_name and need.crc is not None:
                assert by_name[need.name].crc == need.crc, (ko, need.name)


@pytest.mark.corpus
def test_shipped_61_profile_against_the_corpus(corpus_trees: object) -> None:
    """The shipped profile next to the corpus's Module.symvers: equal where the corpus has
    the same build; for another build of the same 6.1 line, the exports and their CRCs are
    (almost all) the same ones (a point release changes a few; regenerate the shipped profile
    with scripts/make_profiles.py when this no longer holds)."""
    require(any(t.name == "amd64-6.1" for t in corpus_trees), "corpus tree amd64-6.1 missing")  # type: ignore[attr-defined]
    tree, headers = find_tree("amd64-6.1"), find_headers("headers-6.1")
    shipped = load_profile("linux-6.1-amd64")
    symvers = {
        s.name: s for s in parse_module_symvers(headers.module_symvers.read_bytes()) if s.module is None
    }
    mine = {s.name: s for s in shipped.symbols}
    common = mine.keys() & symvers.keys()
    same = [n for n in common if (mine[n].crc, mine[n].gpl_only) == (symvers[n].crc, symvers[n].gpl_only)]
    if tree.release == shipped.fields["release"]:
        assert len(same) == len(common) and len(mine) >= len(symvers) - 5
        assert mine.keys() <= symvers.keys()
    else:
        assert tree.release.split(".")[:2] == shipped.fields["release"].split(".")[:2]
        assert len(common) >= 0.98 * max(len(mine), len(symvers))
        assert len(same) >= 0.95 * len(common)


@pytest.mark.corpus
@pytest.mark.vm
def test_corpus_profile_matches_its_build(corpus_trees: object) -> None:
    """The profile of the corpus's own build: CRCs and GPL-only from its Module.symvers,
    addresses those its kernel's /proc/kallsyms gives (the global symbol of each name), every
    export but a handful absent from kallsyms; from its vmlinuz alone, the same profile."""
    require(any(t.name == "amd64-6.1" for t in corpus_trees), "corpus tree amd64-6.1 missing")  # type: ignore[attr-defined]
    tree, headers = find_tree("amd64-6.1"), find_headers("headers-6.1")
    fresh = corpus_profile("guest")
    assert fresh.fields["release"] == tree.release and fresh.fields["vermagic"].startswith(tree.release + " ")
    symvers = {
        s.name: s for s in parse_module_symvers(headers.module_symvers.read_bytes()) if s.module is None
    }
    guest = {}
    for s in parse_kallsyms(guest_kallsyms(tree).read_bytes()):
        if s.module is None and (s.type or "").isupper():
            guest.setdefault(s.name, s.address)
    for s in fresh.symbols:
        assert s.crc == symvers[s.name].crc and s.gpl_only == symvers[s.name].gpl_only
        assert guest.get(s.name, s.address) == s.address, s.name
    assert len(fresh.symbols) >= len(symvers) - 5
    assert _key(corpus_profile("image")) == _key(fresh)


@pytest.mark.corpus
def test_fixtures_of_another_build_load_into_the_corpus_kernel(corpus_trees: object, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The committed fixture modules were built against one 6.1 build (tests/fixtures/BUILD-INFO);
    with CONFIG_MODVERSIONS the kernel compares vermagic without the release, then CRCs, so a
    kernel of the corpus's build (whichever Debian has today) loads each while the CRCs of what
    it imports are unchanged, and refuses it with EINVAL once one has changed."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.interface import KernelError
    from lkm.kernel.model import ModelKernel

    require(any(t.name == "amd64-6.1" for t in corpus_trees), "corpus tree amd64-6.1 missing")  # type: ignore[attr-defined]
    prof = corpus_profile("image")
    crcs = {s.name: s.crc for s in prof.symbols}
    k = ModelKernel.boot(prof, tmp_path / "k.db", executor=RecordingExecutor())
    for ko in ("exporter.ko", "importer.ko", "chardev.ko", "params.ko"):
        m = ModuleFile.open(FIX6 / ko)
        stale = [n.name for n in m.needed if crcs.get(n.name, n.crc) != n.crc]
        if stale:
            with pytest.raises(KernelError) as exc:
                k.finit_module(str(FIX6 / ko))
            assert exc.value.errno == errno.EINVAL, (ko, stale)
        elif ko != "importer.ko" or "exporter" in {x.name for x in k.modules()}:
            k.finit_module(str(FIX6 / ko))
    assert k.check_integrity() == []


def test_24_profile_covers_the_fixtures() -> None:
    exported = {s.name for s in load_profile("linux-2.4-i386").symbols}
    for obj in FIX24.glob("*.o"):
        needed = {s.name for s in ModuleFile.open(obj).elf.undefined_symbols() if s.name}
        needed -= {"__this_module"} | {n for n in needed if n.startswith("fat24_")}  # insmod's / fat24's
        assert needed <= exported, (obj.name, needed - exported)

"""The shipped kernel profiles: the 6.1 one is what the corpus gives (regenerated and compared;
addresses of the global symbol of each exported name in the QEMU guest's /proc/kallsyms, CRCs
from Module.symvers), and the 2.4 one exports everything the 2.4 fixtures import."""

from __future__ import annotations

from lkm.corpus import find_headers, find_tree
from lkm.kernel.profile import load_profile, profile_from_files, shipped_profiles
from lkm.module.file import ModuleFile
from lkm.symbols.sources import parse_kallsyms, parse_module_symvers
from tests.conftest import FIX24, require


def test_shipped() -> None:
    assert shipped_profiles() == ["linux-2.4-i386", "linux-6.1-amd64"]


def test_61_profile_matches_the_corpus(corpus_trees: object) -> None:
    require(any(t.name == "amd64-6.1" for t in corpus_trees), "corpus tree amd64-6.1 missing")  # type: ignore[attr-defined]
    tree, headers = find_tree("amd64-6.1"), find_headers("headers-6.1")
    shipped = load_profile("linux-6.1-amd64")
    fresh = profile_from_files("x", tree.release, "x86_64", shipped.fields["vermagic"],
                               tree.root / "proc-kallsyms.txt", headers.module_symvers)  # fmt: skip
    key = [(s.name, s.address, s.crc, s.gpl_only, s.namespace) for s in shipped.symbols]
    assert key == [(s.name, s.address, s.crc, s.gpl_only, s.namespace) for s in fresh.symbols]
    symvers = {
        s.name: s for s in parse_module_symvers(headers.module_symvers.read_bytes()) if s.module is None
    }
    guest = {}
    for s in parse_kallsyms((tree.root / "proc-kallsyms.txt").read_bytes()):
        if s.module is None and (s.type or "").isupper():
            guest.setdefault(s.name, s.address)
    for s in shipped.symbols:
        assert s.crc == symvers[s.name].crc and s.gpl_only == symvers[s.name].gpl_only
        assert guest.get(s.name, s.address) == s.address, s.name
    assert len(shipped.symbols) >= len(symvers) - 5  # every export but a handful absent from kallsyms


def test_24_profile_covers_the_fixtures() -> None:
    exported = {s.name for s in load_profile("linux-2.4-i386").symbols}
    for obj in FIX24.glob("*.o"):
        needed = {s.name for s in ModuleFile.open(obj).elf.undefined_symbols() if s.name}
        needed -= {"__this_module"} | {n for n in needed if n.startswith("fat24_")}  # insmod's / fat24's
        assert needed <= exported, (obj.name, needed - exported)

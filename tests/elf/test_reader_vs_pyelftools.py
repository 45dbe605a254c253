"""lkm's ELF reader against an independent one (pyelftools), field by field.

Every section header, every symbol of every SHT_SYMTAB and every relocation of every
SHT_REL/SHT_RELA section of a deterministic sample of real Debian modules (three architectures,
two kernel series, plain and .ko.xz) and of the repository's fixtures is read by both readers
and compared as raw numbers.  pyelftools turns some fields into enum names ('SHT_PROGBITS',
'STB_GLOBAL', 'SHN_UNDEF', ...); those are mapped back to numbers with pyelftools' own tables.
"""

from __future__ import annotations

import io
import lzma
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from elftools.elf import enums as E
from elftools.elf.elffile import ELFFile

from lkm.elf import ElfFile
from testing.corpus import module_files

from support import FIX6, FIX24, require

# -- pyelftools enum names back to numbers ------------------------------------------------------

_SH_TYPE: dict[str, int] = {}
for _tab in (
    E.ENUM_SH_TYPE_BASE,
    E.ENUM_SH_TYPE_AMD64,
    E.ENUM_SH_TYPE_ARM,
    E.ENUM_SH_TYPE_AARCH64,
    E.ENUM_SH_TYPE_MIPS,
    E.ENUM_SH_TYPE_RISCV,
):
    for _k, _v in _tab.items():
        if not _k.startswith("_"):
            assert _SH_TYPE.setdefault(_k, _v) == _v, _k  # one number per name across machines
_BIND = {k: v for k, v in E.ENUM_ST_INFO_BIND.items() if not k.startswith("_")}
_STT = {k: v for k, v in E.ENUM_ST_INFO_TYPE.items() if not k.startswith("_")}
_VIS = {k: v for k, v in E.ENUM_ST_VISIBILITY.items() if not k.startswith("_")}
_LOCAL = {k: v for k, v in E.ENUM_ST_LOCAL.items() if not k.startswith("_")}
_SHNDX = {k: v for k, v in E.ENUM_ST_SHNDX.items() if not k.startswith("_")}
assert _SHNDX == {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}


def _num(value: object, table: dict[str, int]) -> int:
    if isinstance(value, int):
        return value
    assert isinstance(value, str), value
    return table[value]


def _sh_type(h) -> int:  # type: ignore[no-untyped-def]
    return _num(h["sh_type"], _SH_TYPE)


def _st_info(entry) -> int:  # type: ignore[no-untyped-def]
    i = entry["st_info"]
    return (_num(i["bind"], _BIND) << 4) | _num(i["type"], _STT)


def _st_other(entry) -> int:  # type: ignore[no-untyped-def]
    # pyelftools: BitStruct(local:3, padding:2, visibility:3), most significant bits first.
    o = entry["st_other"]
    return (_num(o["local"], _LOCAL) << 5) | _num(o["visibility"], _VIS)


SHT_SYMTAB, SHT_RELA, SHT_REL = 2, 4, 9
SECTION_FIELDS = (
    ("name_offset", "sh_name"),
    ("flags", "sh_flags"),
    ("addr", "sh_addr"),
    ("offset", "sh_offset"),
    ("size", "sh_size"),
    ("link", "sh_link"),
    ("info", "sh_info"),
    ("addralign", "sh_addralign"),
    ("entsize", "sh_entsize"),
)


class Tally:
    def __init__(self) -> None:
        self.modules = self.sections = self.symbols = self.relocations = self.undefined = 0
        self.mismatches: list[str] = []
        self.started = time.monotonic()

    def bad(self, where: str, what: str, ours: object, theirs: object) -> None:
        self.mismatches.append(f"{where}: {what}: lkm {ours!r} != pyelftools {theirs!r}")

    def report(self, label: str) -> str:
        return (
            f"[{label}] compared {self.modules} modules, {self.sections} section headers, "
            f"{self.symbols} symbols, {self.relocations} relocations, {self.undefined} undefined "
            f"symbols in {time.monotonic() - self.started:.1f}s: {len(self.mismatches)} mismatches"
        )


def _text(name: str) -> str:
    # pyelftools decodes names as UTF-8 with replacement; lkm keeps bytes as surrogates.
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def compare(data: bytes, where: str, t: Tally) -> None:
    """Compare lkm's and pyelftools' reading of one ELF object, recording every difference."""
    ours = ElfFile(data, path=where)
    theirs = ELFFile(io.BytesIO(data))
    t.modules += 1

    n = theirs.num_sections()
    if len(ours.sections) != n:
        t.bad(where, "number of sections", len(ours.sections), n)
        return
    if ours.e_shstrndx != theirs["e_shstrndx"] or ours.e_shoff != theirs["e_shoff"]:
        t.bad(where, "e_shstrndx/e_shoff", (ours.e_shstrndx, ours.e_shoff),
              (theirs["e_shstrndx"], theirs["e_shoff"]))  # fmt: skip
    if ours.elfclass != theirs.elfclass or ours.little_endian != theirs.little_endian:
        t.bad(where, "class/byte order", (ours.elfclass, ours.little_endian),
              (theirs.elfclass, theirs.little_endian))  # fmt: skip
    if ours.e_machine != _num(theirs["e_machine"], {k: v for k, v in E.ENUM_E_MACHINE.items()
                                                     if not k.startswith("_")}):  # fmt: skip
        t.bad(where, "e_machine", ours.e_machine, theirs["e_machine"])

    psecs = [theirs.get_section(i) for i in range(n)]
    reloc_targets: dict[int, list[int]] = {}
    for i, (s, p) in enumerate(zip(ours.sections, psecs, strict=True)):
        t.sections += 1
        h = p.header
        w = f"{where} [section {i}]"
        if s.number != i:
            t.bad(w, "number", s.number, i)
        if s.name != _text(p.name) and _text(s.name) != p.name:
            t.bad(w, "name", s.name, p.name)
        if s.type != _sh_type(h):
            t.bad(w, "sh_type", s.type, h["sh_type"])
        for ours_f, their_f in SECTION_FIELDS:
            if getattr(s, ours_f) != h[their_f]:
                t.bad(w, their_f, getattr(s, ours_f), h[their_f])
        if i and _sh_type(h) in (SHT_REL, SHT_RELA):
            reloc_targets.setdefault(h["sh_info"], []).append(i)
        # section(name) finds the first section of that name (index 0 excluded).
        if i and p.name:
            first = next(j for j in range(1, n) if psecs[j].name == p.name)
            found = ours.section(p.name)
            if found is None or found.number != first:
                t.bad(w, f"section({p.name!r})", found and found.number, first)

    for target, rels in reloc_targets.items():
        if target < n:
            got = [r.number for r in ours.relocation_sections_for(ours.sections[target])]
            if got != rels:
                t.bad(where, f"relocation_sections_for({target})", got, rels)

    first_symtab = next((i for i in range(1, n) if _sh_type(psecs[i].header) == SHT_SYMTAB), None)
    st = ours.symtab()
    if (st and st.number) != first_symtab:
        t.bad(where, "symtab()", st and st.number, first_symtab)

    for i in range(1, n):
        p = psecs[i]
        typ = _sh_type(p.header)
        if typ == SHT_SYMTAB:
            _compare_symtab(ours, p, i, i == first_symtab, where, t)
        elif typ in (SHT_REL, SHT_RELA):
            _compare_relocs(ours, p, i, typ, where, t)


def _compare_symtab(ours: ElfFile, p, i: int, first: bool, where: str, t: Tally) -> None:  # type: ignore[no-untyped-def]
    sec = ours.sections[i]
    osyms = ours.symbols(sec)
    psyms = list(p.iter_symbols())
    if len(osyms) != len(psyms):
        t.bad(where, f"symbol count of section {i}", len(osyms), len(psyms))
        return
    undefined: list[tuple[str, int]] = []
    for k, (s, q) in enumerate(zip(osyms, psyms, strict=True)):
        t.symbols += 1
        e = q.entry
        w = f"{where} [symtab {i} symbol {k}]"
        theirs = (k, _text(q.name), e["st_value"], e["st_size"], _st_info(e), _st_other(e),
                  _num(e["st_shndx"], _SHNDX))  # fmt: skip
        mine = (s.number, _text(s.name), s.value, s.size, s.info, s.other, s.shndx)
        if mine != theirs:
            t.bad(w, "(number, name, value, size, info, other, shndx)", mine, theirs)
        if s.bind != _num(e["st_info"]["bind"], _BIND) or s.type != _num(e["st_info"]["type"], _STT):
            t.bad(w, "bind/type", (s.bind, s.type), e["st_info"])
        if k >= p.header["sh_info"] and theirs[6] == 0 and q.name:
            undefined.append((q.name, theirs[4]))
    # Random access by index, and its bounds.
    for k in {0, 1, len(psyms) // 2, len(psyms) - 1}:
        if 0 <= k < len(psyms):
            one = ours.symbol(k, sec)
            if one is None or (one.number, one.name, one.value, one.info, one.shndx) != (
                osyms[k].number, osyms[k].name, osyms[k].value, osyms[k].info, osyms[k].shndx
            ):  # fmt: skip
                t.bad(where, f"symbol({k}) of section {i}", one, osyms[k])
    if ours.symbol(len(psyms), sec) is not None or ours.symbol(-1, sec) is not None:
        t.bad(where, f"symbol() out of range of section {i}", "a symbol", None)
    # symbols(start=sh_info) is the tail of the table.
    start = p.header["sh_info"]
    tail = [x.number for x in ours.symbols(sec, start=start)]
    if tail != list(range(start, len(psyms))):
        t.bad(where, f"symbols(start={start}) numbers of section {i}", tail[:5], start)
    got = [(_text(nm), info) for nm, info in ours.undefined(sec)]
    t.undefined += len(undefined)
    if got != undefined:
        t.bad(where, f"undefined() of section {i}", got[:10], undefined[:10])
    got_syms = [(_text(x.name), x.info) for x in ours.undefined_symbols(sec)]
    if got_syms != undefined:
        t.bad(where, f"undefined_symbols() of section {i}", got_syms[:10], undefined[:10])
    if first and ours.undefined() != ours.undefined(sec):
        t.bad(where, "undefined() default symtab", ours.undefined()[:5], ours.undefined(sec)[:5])


def _compare_relocs(ours: ElfFile, p, i: int, typ: int, where: str, t: Tally) -> None:  # type: ignore[no-untyped-def]
    orels = ours.relocations(ours.sections[i])
    prels = list(p.iter_relocations())
    if len(orels) != len(prels):
        t.bad(where, f"relocation count of section {i}", len(orels), len(prels))
        return
    for k, (r, q) in enumerate(zip(orels, prels, strict=True)):
        t.relocations += 1
        e = q.entry
        addend = e["r_addend"] if typ == SHT_RELA else None
        theirs = (e["r_offset"], e["r_info_sym"], e["r_info_type"], addend)
        mine = (r.offset, r.sym, r.type, r.addend)
        if mine != theirs:
            t.bad(f"{where} [reloc section {i} entry {k}]", "(offset, sym, type, addend)", mine, theirs)


# -- sampling -----------------------------------------------------------------------------------

TREE_SAMPLES = {"amd64-6.1": 200, "arm64-6.1": 200, "i386-6.1": 200, "amd64-6.12": 100}


def sample(files: list[Path], k: int, seed: str) -> list[Path]:
    """Every Nth file from a seeded starting point: deterministic and spread over the tree."""
    if len(files) <= k:
        return list(files)
    stride = len(files) // k
    start = random.Random(seed).randrange(stride)
    return files[start::stride][:k]


def load(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        data = lzma.decompress(data, format=lzma.FORMAT_XZ)
    return data


def run_all(items: Iterable[tuple[str, bytes]], label: str) -> Tally:
    t = Tally()
    for where, data in items:
        compare(data, where, t)
    print(t.report(label), file=sys.stderr)
    for m in t.mismatches[:30]:
        print("  " + m, file=sys.stderr)
    return t


@pytest.mark.corpus
@pytest.mark.parametrize("tree_name", list(TREE_SAMPLES))
def test_corpus_sample_matches_pyelftools(corpus_trees, tree_name: str) -> None:  # type: ignore[no-untyped-def]
    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree is not None, f"corpus tree {tree_name} missing: run scripts/fetch_corpus.py")
    assert tree is not None
    files = module_files(tree)
    want = TREE_SAMPLES[tree_name]
    assert len(files) >= want, f"{tree_name}: only {len(files)} modules"
    picked = sample(files, want, f"lkm-pyelftools-{tree_name}")
    assert len(picked) == want
    t = run_all(((str(p), load(p)) for p in picked), tree_name)
    assert t.modules == want
    assert t.symbols > 0 and t.relocations > 0
    assert not t.mismatches, "\n".join(t.mismatches[:30])


def test_fixtures_match_pyelftools() -> None:
    files = sorted(p for p in FIX6.iterdir() if p.name.endswith(".ko"))
    files += sorted(FIX24.glob("*.o"))
    assert len(files) >= 10
    t = run_all(((str(p), p.read_bytes()) for p in files), "fixtures")
    assert t.modules == len(files)
    assert not t.mismatches, "\n".join(t.mismatches[:30])

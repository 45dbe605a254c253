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
    listed = [(x.offset, x.name) for x in exports if x.name in running]
    _base, agree = Counter(running[n] - off for off, n in listed).most_common(1)[0]
    # A few names are also static symbols elsewhere (kallsyms lists those first).
    assert agree >= 0.995 * len(listed), f"{len(listed) - agree} of {len(listed)} exports disagree"
    assert sum(x.gpl_only for x in exports) > 1000  # __ksymtab_gpl found after __ksymtab


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


@pytest.mark.corpus
def test_arm64_image_exports_equal_what_the_modules_import(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """The arm64 Image's exports, CRCs and namespaces against its own tree's modules: every
    symbol a module imports (its __versions entry, made by modpost from the kernel's
    Module.symvers) and no module exports is an export of the image with that CRC, and a
    module using a core export that has a namespace imports that namespace.  No name is read
    twice (a stray 12-byte-shaped run would repeat or mangle names)."""
    from lkm.module.file import ModuleFile
    from lkm.symbols.image import decompress_kernel_image
    from lkm.symbols.ksymtab import raw_image_exports

    tree = next((t for t in corpus_trees if t.arch == "arm64"), None)
    require(tree is not None and tree.vmlinuz is not None, "arm64 corpus tree missing")
    exports = raw_image_exports(decompress_kernel_image(tree.vmlinuz.read_bytes()))
    names = [x.name for x in exports]
    assert len(names) == len(set(names))
    core = {x.name: x for x in exports}
    imported: dict[str, int] = {}
    from_modules: set[str] = set()
    uses: list[tuple[set[str], list[str]]] = []  # per module: import_ns, symbols imported
    for path in sorted(tree.modules_dir.rglob("*.ko*")):
        with ModuleFile.open(path) as m:
            imported.update(m.versions)
            from_modules.update(e.name for e in m.exports)
            uses.append((set(m.import_ns), [n for n, _crc in m.versions]))
    wanted = {n: crc for n, crc in imported.items() if n not in from_modules and n != "module_layout"}
    assert len(wanted) > 5000
    missing = sorted(set(wanted) - set(core))
    assert not missing, f"{len(missing)} imported symbols are not exports of the image: {missing[:5]}"
    wrong = sorted(n for n, crc in wanted.items() if core[n].crc != crc)
    assert not wrong, f"{len(wrong)} CRCs differ from the modules' __versions: {wrong[:5]}"
    # A module using a namespaced export imports the namespace (modpost insists; the kernel
    # refuses the module otherwise): the namespaces read must be the ones imported.
    used = [(ns, core[n].namespace) for ns, syms in uses for n in syms if n in wanted and core[n].namespace]
    assert len(used) > 100
    assert all(x in ns for ns, x in used), sorted({x for ns, x in used if x not in ns})
    gpl = [x.gpl_only for x in exports]
    assert gpl == sorted(gpl)  # __ksymtab, then __ksymtab_gpl
    assert 1000 < sum(gpl) < len(gpl)


def _raw_image(seed: int) -> tuple[bytes, list[tuple[int, str, bool, int, str | None]]]:
    """A raw image laid out as vmlinux.lds.h lays out a PREL32 kernel: __ksymtab (sorted),
    __ksymtab_gpl (sorted), __kcrctab + __kcrctab_gpl, __ksymtab_strings; before them a run of
    entry-shaped words whose name fields also point into the strings, in no order (as other
    PREL32 tables do).  Returns the image and the exports (value offset, name, GPL, CRC,
    namespace) it holds."""
    import random
    import struct

    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz_"
    names = sorted({"".join(rng.choice(letters) for _ in range(rng.randrange(4, 20))) for _ in range(1500)})
    plain = sorted(rng.sample(names, 600))
    gpl = sorted(rng.sample([n for n in names if n not in plain], 500))
    namespaces = ["CXL", "USB_STORAGE"]
    strings = b"".join(n.encode() + b"\0" for n in names + namespaces)
    image = bytearray(rng.randbytes(200_000))  # code before the tables
    stray_at = len(image)
    image += bytes(12 * 100) + rng.randbytes(4000)
    table_at = len(image)
    entries = [(n, False) for n in plain] + [(n, True) for n in gpl]
    crc_at = table_at + 12 * len(entries)
    strings_at = crc_at + 4 * len(entries)
    image += bytes(strings_at - table_at) + strings + rng.randbytes(3000)
    where = {}
    pos = strings_at
    for n in names + namespaces:
        where[n] = pos
        pos += len(n) + 1
    for i in range(100):  # the stray run: random names, unsorted
        p = stray_at + 12 * i
        struct.pack_into("<iii", image, p, rng.randrange(-1000, 1000), where[rng.choice(names)] - (p + 4), 0)
    out = []
    for i, (n, is_gpl) in enumerate(entries):
        p = table_at + 12 * i
        value = rng.randrange(0, 150_000) & ~3
        ns = rng.choice([None, None, None, *namespaces])
        crc = rng.getrandbits(32)
        ns_rel = where[ns] - (p + 8) if ns else 0
        struct.pack_into("<iii", image, p, value - p, where[n] - (p + 4), ns_rel)
        struct.pack_into("<I", image, crc_at + 4 * i, crc)
        out.append((value, n, is_gpl, crc, ns))
    return bytes(image), out


@pytest.mark.parametrize("seed", range(4))
def test_raw_exports_sorted_tables_crcs_namespaces(seed: int) -> None:
    """The generator's ground truth: every export of the tables with its value, GPL flag
    (where the sorted order restarts), CRC and namespace; the unsorted run is not one."""
    from lkm.symbols.ksymtab import raw_image_exports

    image, want = _raw_image(seed)
    got = raw_image_exports(image)
    assert [(x.offset, x.name, x.gpl_only, x.crc, x.namespace) for x in got] == want

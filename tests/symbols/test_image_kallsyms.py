"""Kernel images: decompression and kallsyms recovery (:mod:`lkm.symbols.image`).

The corpus test compares the symbols recovered from each tree's ``vmlinuz`` with the
``/proc/kallsyms`` that the same kernel printed when booted in QEMU with ``nokaslr``
(``scripts/guest_kallsyms.py``, cached as ``<tree>/proc-kallsyms.txt``; booted on first use
by testing.captures).  The unit tests build small images and tables by the kernel's rules.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
import sys
import time

import pytest
import zstandard

from lkm.errors import LkmError
from lkm.symbols.image import (
    KallsymsEntry,
    decompress_kernel_image,
    find_kallsyms_tables,
    format_proc_kallsyms,
    kallsyms_entries,
    recover_kallsyms,
)
from testing.corpus import CorpusTree

from support import guest_kallsyms, require

TREES = ("amd64-6.1", "amd64-6.12", "arm64-6.1", "i386-6.1")


# --------------------------------------------------------------------------------------
# Real kernels against their own /proc/kallsyms


@pytest.mark.corpus
@pytest.mark.vm
@pytest.mark.parametrize("name", TREES)
def test_recovered_kallsyms_equal_guest_proc_kallsyms(corpus_trees, name, capsys):  # type: ignore[no-untyped-def]
    trees = {t.name: t for t in corpus_trees}
    require(name in trees, f"corpus tree {name} missing: run scripts/fetch_corpus.py")
    tree = trees[name]
    require(tree.vmlinuz is not None and tree.vmlinuz.is_file(), f"{name}: no kernel image in the tree")
    ref_path = guest_kallsyms(tree)

    raw = tree.vmlinuz.read_bytes()
    t0 = time.perf_counter()
    kernel = decompress_kernel_image(raw)
    t1 = time.perf_counter()
    entries = recover_kallsyms(kernel, arch=tree.arch)
    t2 = time.perf_counter()
    tables = find_kallsyms_tables(kernel, arch=tree.arch)

    mine = format_proc_kallsyms(entries, tables.bits).splitlines()
    ref_all = ref_path.read_text(encoding="latin-1").splitlines()
    # Core-kernel lines only: module symbols end in "\t[module]" (none in a bare initramfs).
    ref = [line for line in ref_all if not line.endswith("]")]
    mismatches = sum(a != b for a, b in zip(mine, ref, strict=False)) + abs(len(mine) - len(ref))
    with capsys.disabled():
        print(
            f"\n{name}: {len(entries)} symbols recovered, {len(ref)} /proc/kallsyms lines compared, "
            f"{mismatches} mismatches; decompress {t1 - t0:.2f} s, recover {t2 - t1:.2f} s "
            f"({tables.layout}, absolute_percpu={tables.absolute_percpu}, "
            f"base from RELA={tables.relative_base_from_rela})",
            file=sys.stderr,
        )
    pairs = enumerate(zip(mine, ref, strict=False))
    first_bad = next((i for i, (a, b) in pairs if a != b), min(len(mine), len(ref)))
    assert mismatches == 0, (
        f"{name}: first difference at line {first_bad + 1}: "
        f"recovered {mine[first_bad : first_bad + 1]!r}, guest {ref[first_bad : first_bad + 1]!r}"
    )
    assert len(entries) == tables.num_syms


# --------------------------------------------------------------------------------------
# Decompression of synthetic images

VMLINUX = b"\x7fELF" + bytes(range(256)) * 64


def _bzimage(payload: bytes, version: int = 0x20F, setup_sects: int = 3) -> bytes:
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, version)
    pad = b"\x90" * 0x40  # stand-in for the decompressor stub before the payload
    struct.pack_into("<II", head, 0x248, len(pad), len(payload))
    return bytes(head) + pad + payload + struct.pack("<I", len(VMLINUX))


_COMPRESSORS = {
    "gzip": lambda d: gzip.compress(d),
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "bzip2": lambda d: bz2.compress(d),
    "zstd": lambda d: zstandard.ZstdCompressor(level=3).compress(d),
}


@pytest.mark.parametrize("method", sorted(_COMPRESSORS))
def test_bzimage_payload_each_compression(method: str) -> None:
    # The kernel appends the decompressed size after the stream: it must be ignored.
    payload = _COMPRESSORS[method](VMLINUX) + struct.pack("<I", len(VMLINUX))
    assert decompress_kernel_image(_bzimage(payload)) == VMLINUX


def test_setup_sects_zero_means_four() -> None:
    img = bytearray(_bzimage(_COMPRESSORS["gzip"](VMLINUX), setup_sects=4))
    img[0x1F1] = 0
    assert decompress_kernel_image(bytes(img)) == VMLINUX


def test_arm64_image_raw_and_gzipped_and_zboot() -> None:
    image = bytearray(b"\0" * 0x40 + bytes(range(256)) * 16)
    image[0x38:0x3C] = b"ARM\x64"
    image = bytes(image)
    assert decompress_kernel_image(image) == image
    assert decompress_kernel_image(gzip.compress(image)) == image
    payload = gzip.compress(image)
    zboot = bytearray(0x100)
    zboot[0:2] = b"MZ"
    zboot[4:8] = b"zimg"
    struct.pack_into("<II", zboot, 8, len(zboot), len(payload))
    zboot[0x18:0x1C] = b"gzip"
    assert decompress_kernel_image(bytes(zboot) + payload) == image


def test_unknown_and_unsupported_images_raise_lkm_error() -> None:
    with pytest.raises(LkmError, match="not a kernel image"):
        decompress_kernel_image(b"hello world" * 100)
    with pytest.raises(LkmError, match="lzo"):
        decompress_kernel_image(_bzimage(b"\x89LZO\x00\r\n\x1a\n" + b"\0" * 64))
    with pytest.raises(LkmError, match="unknown compression"):
        decompress_kernel_image(_bzimage(b"\x00\x01\x02\x03" * 16))
    with pytest.raises(LkmError, match=r"corrupt|truncated"):
        decompress_kernel_image(_bzimage(_COMPRESSORS["xz"](VMLINUX)[:100]))


# --------------------------------------------------------------------------------------
# kallsyms tables built by scripts/kallsyms.c's rules


def _symbols(rng: random.Random, count: int, percpu: bool, base: int) -> list[tuple[int, str, str]]:
    syms: list[tuple[int, str, str]] = []
    if percpu:
        syms += [(0, "A", "fixed_percpu_data"), (0, "A", "__per_cpu_start"), (0x1000, "A", "cpu_debug_store")]
    addr = base
    syms.append((addr, "T", "_stext"))
    words = ["init", "dev", "read", "write", "lock", "irq", "acpi", "pci", "x86", "v4l2", "ext4"]
    for i in range(count):
        addr += rng.choice((0, 0x10, 0x40, 0x123))
        typ = rng.choice("TtDdRrBbWV")
        name = "_".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + f"_{i}"
        syms.append((addr, typ, name))
    # A "big" symbol: more than 127 tokens, so its length takes two ULEB128 bytes.
    syms.append((addr + 8, "t", "Q" + "".join(rng.choice("QZqz.$") for _ in range(300))))
    return syms


def _encode(syms: list[tuple[int, str, str]]) -> tuple[list[bytes], list[bytes]]:
    """Token table (256 expanded strings) and the compressed names, like scripts/kallsyms."""
    texts = [(t + n).encode() for _, t, n in syms]
    used = sorted({c for s in texts for c in s})
    table: list[bytes] = [b""] * 256
    for c in used:
        table[c] = bytes((c,))
    counts: dict[bytes, int] = {}
    for s in texts:
        for i in range(len(s) - 1):
            counts[s[i : i + 2]] = counts.get(s[i : i + 2], 0) + 1
    pairs = sorted(counts, key=lambda p: -counts[p])
    free = [i for i in range(255, -1, -1) if not table[i]][:-6]  # leave a few slots empty
    for slot, pair in zip(free, pairs, strict=False):
        table[slot] = pair
    lookup = {tok: i for i, tok in enumerate(table) if tok}
    names = []
    for s in texts:
        out, i = bytearray(), 0
        while i < len(s):
            if s[i : i + 2] in lookup and len(s) - i >= 2:
                out.append(lookup[s[i : i + 2]])
                i += 2
            else:
                out.append(lookup[s[i : i + 1]])
                i += 1
        names.append(bytes(out))
    return table, names


class _Blob:
    def __init__(self, rng: random.Random, align: int) -> None:
        self.data = bytearray(rng.randbytes(4096))
        self.align = align

    def label(self) -> int:
        self.data += b"\0" * (-len(self.data) % self.align)
        return len(self.data)

    def add(self, raw: bytes) -> int:
        at = self.label()
        self.data += raw
        return at


def _build(
    syms: list[tuple[int, str, str]], *, bits: int, percpu: bool, layout: str, seqs: bool, rng: random.Random
) -> tuple[bytes, int]:
    """A blob holding the tables; returns it and the file offset of kallsyms_relative_base."""
    align = bits // 8
    table, names = _encode(syms)
    n = len(syms)
    base = next(a for a, t, _ in syms if not (percpu and t == "A"))
    offsets = []
    for addr, typ, _ in syms:
        if percpu and typ == "A":
            offsets.append(addr)
        elif percpu:
            offsets.append(base - addr - 1)
        else:
            offsets.append(addr - base)
    offs_raw = struct.pack(f"<{n}i", *offsets)
    base_raw = base.to_bytes(align, "little")
    names_raw, markers, pos = bytearray(), [], 0
    for i, nm in enumerate(names):
        if i % 256 == 0:
            markers.append(pos)
        ln = len(nm)
        head = bytes((ln,)) if ln < 0x80 else bytes(((ln & 0x7F) | 0x80, ln >> 7))
        names_raw += head + nm
        pos += len(head) + ln
    by_name = sorted(range(n), key=lambda i: (syms[i][2], syms[i][0], i))
    seqs_raw = b"".join(i.to_bytes(3, "big") for i in by_name)
    token_raw, index = bytearray(), []
    for tok in table:
        index.append(len(token_raw))
        token_raw += tok + b"\0"

    blob = _Blob(rng, align)
    rel_at = -1
    if layout == "offsets-first":
        blob.add(offs_raw)
        rel_at = blob.add(base_raw)
    blob.add(struct.pack("<I", n))
    blob.add(bytes(names_raw))
    blob.add(struct.pack(f"<{len(markers)}I", *markers))
    if seqs and layout == "offsets-first":
        blob.add(seqs_raw)
    blob.add(bytes(token_raw))
    blob.add(struct.pack("<256H", *index))
    if layout == "names-first":
        blob.add(offs_raw)
        rel_at = blob.add(base_raw)
        if seqs:
            blob.add(seqs_raw)
    blob.data += rng.randbytes(4096)
    return bytes(blob.data), rel_at


@pytest.mark.parametrize(
    ("bits", "percpu", "layout", "seqs"),
    [
        (64, True, "offsets-first", True),  # Debian 6.1 amd64
        (64, True, "names-first", True),  # 6.4+ amd64
        (32, False, "offsets-first", True),  # Debian 6.1 i386
        (32, False, "offsets-first", False),  # before kallsyms_seqs_of_names
        (64, False, "names-first", True),
    ],
)
def test_synthetic_tables(bits: int, percpu: bool, layout: str, seqs: bool) -> None:
    rng = random.Random(f"{bits}{percpu}{layout}{seqs}")
    base = 0xFFFFFFFF81000000 if bits == 64 else 0xC1000000
    syms = _symbols(rng, 700, percpu, base)
    blob, _ = _build(syms, bits=bits, percpu=percpu, layout=layout, seqs=seqs, rng=rng)
    arch = "amd64" if bits == 64 else "i386"
    tables = find_kallsyms_tables(blob, arch=arch)
    assert (tables.num_syms, tables.layout, tables.absolute_percpu) == (len(syms), layout, percpu)
    assert (tables.seqs_of_names_offset is not None) == seqs
    got = kallsyms_entries(blob, tables)
    assert got == [KallsymsEntry(a, t, nm) for a, t, nm in syms]
    text = format_proc_kallsyms(got[:2], bits)
    width = bits // 4
    assert text.splitlines()[0] == f"{syms[0][0]:0{width}x} {syms[0][1]} {syms[0][2]}"


def test_synthetic_arm64_base_from_rela() -> None:
    """arm64: the base's word is 0 in the Image; its R_AARCH64_RELATIVE entry has the value."""
    rng = random.Random(64)
    link = 0xFFFF800008000000
    syms = _symbols(rng, 300, False, link + 0x10000)
    blob, rel_at = _build(syms, bits=64, percpu=False, layout="offsets-first", seqs=True, rng=rng)
    image = bytearray(blob)
    image[rel_at : rel_at + 8] = bytes(8)
    image += bytes(-len(image) % 8 + 0x20000)  # zeroed words that the relocations fill
    zeros = len(image) - 0x20000
    relas = [(link + zeros + 8 * i, 0x403, link + 0x1234 * i) for i in range(200)]
    relas.insert(77, (link + rel_at, 0x403, link + 0x10000))
    image += b"".join(struct.pack("<QQQ", *r) for r in relas)
    tables = find_kallsyms_tables(bytes(image), arch="arm64")
    assert tables.relative_base_from_rela and tables.relative_base == link + 0x10000
    assert [e.address for e in kallsyms_entries(bytes(image), tables)] == [a for a, _, _ in syms]


def test_no_tables_raise_lkm_error() -> None:
    with pytest.raises(LkmError, match="no kallsyms token table"):
        find_kallsyms_tables(b"\x7fELF" + bytes(10000), arch="amd64")
    with pytest.raises(LkmError, match="unsupported kernel architecture"):
        find_kallsyms_tables(b"", arch="sparc")


@pytest.mark.corpus
@pytest.mark.vm
def test_cli_from_image_prints_proc_kallsyms(corpus_trees: list[CorpusTree]) -> None:
    """``lkm kallsyms --from-image`` prints exactly the core lines of the guest's /proc/kallsyms."""
    from support import lkm_cmd, run

    tree = next(t for t in corpus_trees if t.name == "i386-6.1")
    ref = guest_kallsyms(tree)
    core = "".join(
        line for line in ref.read_text().splitlines(keepends=True) if not line.rstrip().endswith("]")
    )
    proc = run([*lkm_cmd(), "kallsyms", "--from-image", str(tree.vmlinuz)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == core

"""Kernel images: decompression and recovery of the embedded kallsyms tables.

Debian ships only a placeholder ``System.map``; the kernel's own symbol table is the one
``scripts/kallsyms`` compiled into the image, and that is what ``/proc/kallsyms`` prints.
This module finds those tables in a kernel image without any symbol table, the way
vmlinux-to-elf does, and decodes them exactly as ``kernel/kallsyms.c`` does.

Image formats (:func:`decompress_kernel_image`):

- x86 ``bzImage``: the boot-protocol setup header (``HdrS`` at 0x202, protocol >= 2.08)
  gives ``setup_sects`` (0x1f1), ``payload_offset`` (0x248) and ``payload_length`` (0x24c);
  the payload is the compressed ELF ``vmlinux``, recognised by its magic: gzip, xz, lzma,
  bzip2 and zstd are decoded with the standard library and ``zstandard``; lz4 (legacy
  frames) needs the optional ``lz4`` package; lzo is refused with a clear error.
- arm64 ``Image`` (``ARM\\x64`` at 0x38), returned as it is; the same compressed by one of
  the formats above (``Image.gz``) is decompressed first.
- EFI zboot (``MZ`` + ``zimg``): the header's payload offset/size and compression name.
- An ELF ``vmlinux`` is returned as it is.

The kallsyms tables (:func:`find_kallsyms_tables`), as ``scripts/kallsyms.c`` emits them
(``ALGN`` is ``.balign 8`` on 64-bit and ``.balign 4`` on 32-bit, before every label)::

    up to 6.3                      6.4 and later
    kallsyms_offsets[N]  (s32)     kallsyms_num_syms    (u32)
    kallsyms_relative_base (ptr)   kallsyms_names
    kallsyms_num_syms    (u32)     kallsyms_markers[(N+255)/256] (u32)
    kallsyms_names                 kallsyms_token_table (256 NUL-terminated strings)
    kallsyms_markers     (u32)     kallsyms_token_index[256] (u16)
    [kallsyms_seqs_of_names]       kallsyms_offsets[N]  (s32)
    kallsyms_token_table           kallsyms_relative_base (ptr)
    kallsyms_token_index           kallsyms_seqs_of_names[N] (3 bytes, big-endian)

(``kallsyms_seqs_of_names`` appeared in 6.2 and was backported to Debian's 6.1; the markers
and ``num_syms`` have been 32-bit since 4.20, the kernels this reader handles.)  Without
``CONFIG_KALLSYMS_BASE_RELATIVE`` the offsets and base are one ``kallsyms_addresses[N]``
array of pointers.  Each name is a length (one byte, or two as ULEB128 when >= 0x80) and
that many token-table indices; the first expanded character is the ``nm`` type letter.

Finding them: the token table holds every character used in a symbol name as a one-character
token at its own code, so ``"0\\0" ... "9\\0"`` occurs in it; the token index that follows
(aligned) lists each token's offset, which pins the table's start.  The markers are found
back from the token table (first entry 0, increasing by at least 2 bytes per symbol); the
names end just before them and ``kallsyms_num_syms`` sits right before the names; every
marker must fall on an entry boundary and the names must end exactly at the markers.  The
offsets are then tried in both places and kept only where the decoded addresses come out
sorted, as ``scripts/kallsyms`` sorted them.

Addresses (``kernel/kallsyms.c: kallsyms_sym_address``): with
``CONFIG_KALLSYMS_ABSOLUTE_PERCPU`` (x86_64) an offset >= 0 is an absolute (per-cpu)
value and a negative one means ``relative_base - 1 - offset``; otherwise an offset is
unsigned, ``relative_base + (u32)offset``.  On arm64 the image is linked with
``--no-apply-dynamic-relocs``: the word holding ``kallsyms_relative_base`` is 0 in the file
and its value is the addend of the ``R_AARCH64_RELATIVE`` entry that targets it, found here
without knowing the load address because ``_text`` is the image's first byte.

The addresses are the kernel's link-time ones: those a guest shows with ``nokaslr``.
"""

from __future__ import annotations

import bz2
import importlib
import lzma
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from lkm.errors import LkmError

__all__ = [
    "KallsymsEntry",
    "KallsymsTables",
    "arch_bits",
    "decompress_kernel_image",
    "find_kallsyms_tables",
    "format_proc_kallsyms",
    "kallsyms_entries",
    "recover_kallsyms",
]

# --------------------------------------------------------------------------------------
# Decompression

_ELF_MAGIC = b"\x7fELF"

#: (name, magic) of the compressions the kernel's Makefiles produce, longest magic first.
_MAGICS: tuple[tuple[str, bytes], ...] = (
    ("xz", b"\xfd7zXZ\x00"),
    ("lzo", b"\x89LZO\x00\r\n\x1a\n"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00"),
    ("gzip", b"\x1f\x8b"),
)

#: Compression names used in an EFI zboot header (``compress_type``).
_ZBOOT_NAMES = {
    "gzip": "gzip",
    "lz4": "lz4",
    "lzma": "lzma",
    "lzo": "lzo",
    "xzkern": "xz",
    "xz": "xz",
    "zstd22": "zstd",
    "zstd": "zstd",
    "bzip2": "bzip2",
}

#: Largest decompressed kernel accepted (a guard against decompression bombs).
_MAX_KERNEL = 1 << 31


def _compression_of(data: bytes | memoryview) -> str | None:
    head = bytes(data[:10])
    for name, magic in _MAGICS:
        if head.startswith(magic):
            return name
    return None


def _decompress(name: str, data: bytes) -> bytes:
    """Decompress one stream; whatever follows its end (the kernel's appended size) is ignored."""
    try:
        if name == "gzip":
            gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = gz.decompress(data, _MAX_KERNEL)
            if not gz.eof:
                raise LkmError("gzip kernel payload is truncated or too large")
            return out
        if name in ("xz", "lzma"):
            fmt = lzma.FORMAT_XZ if name == "xz" else lzma.FORMAT_ALONE
            lz = lzma.LZMADecompressor(format=fmt)
            out = lz.decompress(data, _MAX_KERNEL)
            if not lz.eof:
                raise LkmError(f"{name} kernel payload is truncated or too large")
            return out
        if name == "bzip2":
            bz = bz2.BZ2Decompressor()
            out = bz.decompress(data, _MAX_KERNEL)
            if not bz.eof:
                raise LkmError("bzip2 kernel payload is truncated or too large")
            return out
        if name == "zstd":
            return _zstd(data)
        if name == "lz4":
            return _lz4_legacy(data)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise LkmError(f"{name} kernel payload is corrupt: {exc}") from None
    raise LkmError(f"{name}-compressed kernel payloads are not supported (no {name} decoder available)")


def _zstd(data: bytes) -> bytes:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    dobj = dctx.decompressobj()
    try:
        out: bytes = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise LkmError(f"zstd kernel payload is corrupt: {exc}") from None
    if not dobj.eof:
        raise LkmError("zstd kernel payload is truncated")
    return out


def _lz4_legacy(data: bytes) -> bytes:
    """The legacy lz4 frame format ``lz4 -l`` writes: magic, then (u32 size, block)*."""
    try:
        block = importlib.import_module("lz4.block")
    except ImportError:
        raise LkmError("lz4-compressed kernel payload: install the 'lz4' Python package to read it") from None
    out = bytearray()
    pos = 4
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        if size == 0x184C2102 or size == 0 or pos + 4 + size > len(data):
            # A new legacy frame, or the kernel's appended length / end of data.
            if size == 0x184C2102:
                pos += 4
                continue
            break
        out += block.decompress(data[pos + 4 : pos + 4 + size], uncompressed_size=8 << 20)
        pos += 4 + size
        if len(out) > _MAX_KERNEL:
            raise LkmError("lz4 kernel payload is too large")
    if not out:
        raise LkmError("lz4 kernel payload is empty or corrupt")
    return bytes(out)


def _bzimage_payload(data: bytes) -> tuple[str, bytes]:
    if len(data) < 0x250:
        raise LkmError("bzImage too short for a boot-protocol setup header")
    (version,) = struct.unpack_from("<H", data, 0x206)
    setup_sects = data[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    if version >= 0x208:
        offset, length = struct.unpack_from("<II", data, 0x248)
        payload = data[pm_start + offset : pm_start + offset + length]
        if len(payload) != length or length == 0:
            raise LkmError(f"bzImage payload (offset {offset:#x}, length {length:#x}) lies outside the file")
        name = _compression_of(payload)
        if name is None:
            raise LkmError(f"bzImage payload has an unknown compression (magic {payload[:6].hex()})")
        return name, payload
    # Older boot protocols do not say where the payload is: look for a magic.
    for pos in range(pm_start, len(data) - 8):
        name = _compression_of(memoryview(data)[pos : pos + 10])
        if name in ("gzip", "xz", "bzip2", "zstd"):
            return name, data[pos:]
    proto = f"{version >> 8}.{version & 0xFF:02d}"
    raise LkmError(f"bzImage with boot protocol {proto}: no compressed payload found")


def decompress_kernel_image(data: bytes) -> bytes:
    """The kernel inside *data*: an ELF ``vmlinux`` for x86, the raw ``Image`` for arm64.

    *data* is a ``vmlinuz`` as installed in ``/boot``: x86 bzImage, arm64 Image (raw or
    compressed as a whole), EFI zboot, or already an ELF vmlinux.
    """
    data = bytes(data)
    for _ in range(3):  # a wrapper may hold a compressed image: peel at most a few layers
        if data.startswith(_ELF_MAGIC):
            return data
        if len(data) >= 0x40 and data[0x38:0x3C] == b"ARM\x64":
            return data
        if len(data) >= 0x206 and data[0x202:0x206] == b"HdrS":
            name, payload = _bzimage_payload(data)
            data = _decompress(name, payload)
            continue
        if data[:2] == b"MZ" and data[4:8] == b"zimg":
            offset, size = struct.unpack_from("<II", data, 8)
            ctype = data[0x18:0x38].split(b"\0", 1)[0].decode("ascii", "replace")
            zname = _ZBOOT_NAMES.get(ctype)
            if zname is None:
                raise LkmError(f"EFI zboot image with unknown compression {ctype!r}")
            data = _decompress(zname, data[offset : offset + size])
            continue
        outer = _compression_of(data)
        if outer is None:
            break
        data = _decompress(outer, data)
    if data.startswith(_ELF_MAGIC) or (len(data) >= 0x40 and data[0x38:0x3C] == b"ARM\x64"):
        return data
    raise LkmError("not a kernel image this reader knows (bzImage, arm64 Image, EFI zboot, ELF vmlinux)")


# --------------------------------------------------------------------------------------
# kallsyms


@dataclass(frozen=True)
class KallsymsEntry:
    """One core-kernel line of ``/proc/kallsyms``."""

    address: int
    type: str
    name: str


@dataclass(frozen=True)
class KallsymsTables:
    """Where the kallsyms tables are in a kernel blob (byte offsets) and how they are encoded."""

    bits: int
    num_syms: int
    num_syms_offset: int
    names_offset: int
    markers_offset: int
    token_table_offset: int
    token_index_offset: int
    addresses_offset: int
    """``kallsyms_offsets`` (base-relative) or ``kallsyms_addresses``."""
    base_relative: bool
    absolute_percpu: bool
    relative_base: int | None
    relative_base_offset: int | None
    seqs_of_names_offset: int | None
    layout: str
    """``"offsets-first"`` (up to 6.3) or ``"names-first"`` (6.4 and later)."""
    relative_base_from_rela: bool = False
    """The base was read from an ``R_AARCH64_RELATIVE`` addend (its word in the image is 0)."""


_ARCHES: dict[str, int] = {
    "amd64": 64,
    "x86_64": 64,
    "x86-64": 64,
    "arm64": 64,
    "aarch64": 64,
    "i386": 32,
    "i686": 32,
    "x86": 32,
}

_KSYM_NAME_LEN = 512
_MIN_BLOCK = 256 * 2  # 256 names of at least a length byte and one token
_MAX_BLOCK = 256 * (2 + _KSYM_NAME_LEN)
_R_AARCH64_RELATIVE = 0x403
#: How far before the token table kallsyms_markers may start (seqs_of_names: 3 bytes a symbol).
_SEARCH_BACK = 8 << 20


def arch_bits(arch: str) -> int:
    """Word size of a kernel architecture (Debian or kernel spelling)."""
    try:
        return _ARCHES[arch.lower()]
    except KeyError:
        known = ", ".join(sorted(_ARCHES))
        raise LkmError(f"unsupported kernel architecture {arch!r} (known: {known})") from None


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _u32(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def _ptr(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "little")


class _Tokens:
    __slots__ = ("index_offset", "start", "strings")

    def __init__(self, start: int, index_offset: int, strings: list[str]) -> None:
        self.start = start
        self.index_offset = index_offset
        self.strings = strings


def _token_tables(data: bytes, align: int) -> Iterable[_Tokens]:
    """Every token table + token index pair in *data*, found from the run of digit tokens."""
    digits = b"".join(bytes((c, 0)) for c in range(0x30, 0x3A))
    pos = data.find(digits)
    while pos >= 0:
        found = _token_table_at(data, pos, align)
        if found is not None:
            yield found
        pos = data.find(digits, pos + 1)


def _token_table_at(data: bytes, zero: int, align: int) -> _Tokens | None:
    # Tokens 48 ('0') to 255, forward from the digit run.
    lengths: dict[int, int] = {}
    pos = zero
    for k in range(48, 256):
        end = data.find(b"\0", pos, pos + _KSYM_NAME_LEN + 1)
        if end < 0:
            return None
        lengths[k] = end - pos
        pos = end + 1
    # The token index follows (aligned): u16 offsets of every token from the table start.
    for index in range(_align(pos, align), _align(pos, align) + 2 * align, align):
        if index + 512 > len(data):
            return None
        idx = struct.unpack_from("<256H", data, index)
        if idx[0] != 0 or any(idx[k + 1] - idx[k] != lengths[k] + 1 for k in range(48, 255)):
            continue
        if any(idx[k + 1] <= idx[k] for k in range(48)):
            continue
        start = zero - idx[48]
        if start < 0 or start % align or _align(start + idx[255] + lengths[255] + 1, align) != index:
            continue
        strings: list[str] = []
        ok = True
        for k in range(256):
            a = start + idx[k]
            b = start + idx[k + 1] - 1 if k < 255 else start + idx[255] + lengths[255]
            token = data[a:b]
            if b < a or data[b] != 0 or b"\0" in token:
                ok = False
                break
            strings.append(token.decode("latin-1"))
        if ok:
            return _Tokens(start, index, strings)
    return None


class _Names:
    __slots__ = ("count", "end", "num_syms_offset", "start")

    def __init__(self, start: int, end: int, count: int, num_syms_offset: int) -> None:
        self.start = start
        self.end = end
        self.count = count
        self.num_syms_offset = num_syms_offset


def _walk_names(data: bytes, start: int, count: int, limit: int) -> tuple[list[int], int] | None:
    """Offsets (from *start*) of each of *count* entries, and the end; None if they overrun."""
    offsets = []
    pos = start
    for _ in range(count):
        if pos >= limit:
            return None
        offsets.append(pos - start)
        n = data[pos]
        if n & 0x80:
            n = (n & 0x7F) | (data[pos + 1] << 7)
            pos += 2 + n
        else:
            pos += 1 + n
        if n == 0:
            return None
    if pos > limit:
        return None
    return offsets, pos


def _markers_run(data: bytes, pos: int, limit: int) -> list[int]:
    """Plausible kallsyms_markers read from *pos*: 0 then increasing by a block's size."""
    values = [0]
    pos += 4
    while pos + 4 <= limit:
        v = _u32(data, pos)
        if not values[-1] + _MIN_BLOCK <= v <= values[-1] + _MAX_BLOCK:
            break
        values.append(v)
        pos += 4
    return values


def _names_before(
    data: bytes, markers_pos: int, markers: list[int], align: int, counts: range | set[int]
) -> _Names | None:
    """kallsyms_num_syms + kallsyms_names ending just before kallsyms_markers at *markers_pos*.

    *markers* are the marker values (their number fixes the symbol count to 256 at most per
    marker) and *counts* the symbol counts the layout allows.
    """
    k = len(markers)
    last = markers[-1]
    # The names start at s (aligned), with num_syms (u32) in the aligned word before.
    lowest = max(align, markers_pos - last - (_MAX_BLOCK + 2))
    highest = markers_pos - last - 2
    s = highest - highest % align
    while s >= lowest:
        n = _u32(data, s - align)
        if n in counts and data[s] != 0 and all(data[s + m] != 0 for m in markers[1:]):
            walked = _walk_names(data, s, n, markers_pos)
            if walked is not None:
                offsets, end = walked
                if _align(end, align) == markers_pos and all(
                    offsets[256 * j] == markers[j] for j in range(k)
                ):
                    return _Names(s, end, n, s - align)
        s -= align
    return None


class _Found:
    __slots__ = ("markers_offset", "names", "seqs_offset", "seqs_width")

    def __init__(self, names: _Names, markers_offset: int, seqs_offset: int | None, seqs_width: int) -> None:
        self.names = names
        self.markers_offset = markers_offset
        self.seqs_offset = seqs_offset
        self.seqs_width = seqs_width


def _layouts_after_markers(
    markers_pos: int, k: int, token_table: int, align: int
) -> list[tuple[range | set[int], int]]:
    """Symbol counts allowed by what lies between k markers at *markers_pos* and the token table.

    Either nothing but padding (any count with k markers; seqs width 0), or
    kallsyms_seqs_of_names of 3-byte (or, briefly in 6.2's development, 4-byte) entries.
    """
    end = _align(markers_pos + 4 * k, align)
    counts = range(256 * (k - 1) + 1, 256 * k + 1)
    gap = token_table - end
    if gap == 0:
        return [(counts, 0)]
    out: list[tuple[range | set[int], int]] = []
    for width in (3, 4):
        fits = {n for n in range(max(counts.start, (gap - align) // width), gap // width + 1) if n in counts}
        fits = {n for n in fits if _align(end + width * n, align) == token_table}
        if fits:
            out.append((fits, width))
    return out


def _find_names_and_markers(data: bytes, tokens: _Tokens, align: int, search_back: int) -> _Found | None:
    """Scan back from the token table for kallsyms_markers, validated by the names before it.

    A candidate is an aligned zero word (markers[0]) followed by plausibly increasing words;
    only marker counts whose end leaves exactly padding or kallsyms_seqs_of_names before the
    token table are tried, so most zero words cost one comparison.
    """
    table = tokens.start
    lowest = max(align, table - search_back)
    pos = table - 4
    while pos >= lowest:
        hit = data.rfind(b"\0\0\0\0", lowest, pos + 4)
        if hit < 0:
            return None
        cand = hit - hit % align
        pos = cand - align
        if cand < lowest or _u32(data, cand) != 0:
            continue
        run = _markers_run(data, cand, table)
        for k in range(len(run), 0, -1):
            for counts, width in _layouts_after_markers(cand, k, table, align):
                names = _names_before(data, cand, run[:k], align, counts)
                if names is None:
                    continue
                seqs = _align(cand + 4 * k, align) if width else None
                if seqs is not None and not _seqs_ok(data, seqs, names.count, width):
                    continue
                return _Found(names, cand, seqs, width)
    return None


def _seqs_ok(data: bytes, pos: int, count: int, width: int = 3) -> bool:
    """Whether *count* big-endian *width*-byte entries at *pos* are a permutation of range(count)."""
    raw = data[pos : pos + width * count]
    if len(raw) != width * count:
        return False
    seen = bytearray(count)
    for i in range(0, width * count, width):
        v = int.from_bytes(raw[i : i + width], "big" if width == 3 else "little")
        if v >= count or seen[v]:
            return False
        seen[v] = 1
    return True


def _offsets_mode(offs: tuple[int, ...]) -> bool | None:
    """Whether *offs* are valid kallsyms_offsets: False = plain, True = absolute-percpu."""
    if not offs:
        return None
    neg = next((i for i, o in enumerate(offs) if o < 0), None)
    if neg is None:
        # Plain: unsigned offsets from the first symbol's address, sorted.
        if offs[0] != 0:
            return None
        return False if all(a <= b for a, b in pairwise(offs)) else None
    # Absolute per-cpu: non-negative absolute values first, then -1 - (addr - base), sorted.
    if offs[neg] != -1:
        return None
    head, tail = offs[:neg], offs[neg:]
    if any(o >= 0 for o in tail):
        return None
    if not all(a <= b for a, b in pairwise(head)):
        return None
    return True if all(a >= b for a, b in pairwise(tail)) else None


def _arm64_relas(data: bytes) -> list[tuple[int, int]]:
    """(r_offset, r_addend) of the R_AARCH64_RELATIVE entries of a raw arm64 Image.

    Entries are 24 bytes and 8-aligned; an isolated match of the ``r_info`` word is not
    part of a table, so only matches with a neighbour entry 24 bytes away count.
    """
    info = struct.pack("<Q", _R_AARCH64_RELATIVE)
    hits = {m.start() for m in re.finditer(re.escape(info), data) if m.start() % 8 == 0 and m.start() >= 8}
    out = []
    for at in sorted(hits):
        if (at + 24 in hits or at - 24 in hits) and at + 16 <= len(data):
            r_offset, _, r_addend = struct.unpack_from("<QQQ", data, at - 8)
            out.append((r_offset, r_addend))
    return out


def _arm64_rela_base(data: bytes, place: int) -> int | None:
    """The addend of the R_AARCH64_RELATIVE entry that fills the word at file offset *place*.

    The image is linked at an unknown page-aligned address B (``_text``, its first byte) and
    the entry we want has ``r_offset == B + place``.  Each entry proposes a B; the right one
    is the B for which the relocation targets of the whole table land inside the image on
    words left 0 by ``--no-apply-dynamic-relocs`` (or already holding their addend), and for
    which the base itself points into the image.
    """
    relas = _arm64_relas(data)
    if len(relas) < 64:
        return None
    step = max(1, len(relas) // 256)
    sample = relas[::step]
    size = len(data)
    chosen: set[int] = set()
    for r_offset, r_addend in relas:
        b = (r_offset - place) & 0xFFFFFFFFFFFFFFFF
        if b % 4096 or not b <= r_addend < b + size:
            continue
        good = 0
        for o, a in sample:
            t = o - b
            if 0 <= t <= size - 8:
                w = int.from_bytes(data[t : t + 8], "little")
                good += w in (0, a)
        if good * 10 >= len(sample) * 9:
            chosen.add(r_addend)
    return chosen.pop() if len(chosen) == 1 else None


def find_kallsyms_tables(kernel: bytes, *, arch: str) -> KallsymsTables:
    """Locate the kallsyms tables in a decompressed kernel (ELF vmlinux or raw Image)."""
    bits = arch_bits(arch)
    align = bits // 8
    machine = arch.lower()
    errors: list[str] = []
    for tokens in _token_tables(kernel, align):
        try:
            return _tables_from_tokens(kernel, tokens, bits, machine)
        except LkmError as exc:
            errors.append(exc.reason)
    if not errors:
        raise LkmError("no kallsyms token table in this kernel (is CONFIG_KALLSYMS set?)")
    raise LkmError(f"kallsyms token table found but the other tables are not: {errors[0]}")


def _tables_from_tokens(data: bytes, tokens: _Tokens, bits: int, machine: str) -> KallsymsTables:

    def tables(
        addresses_offset: int,
        layout: str,
        seqs: int | None,
        base_relative: bool,
        absolute_percpu: bool,
        relative_base: int | None,
        relative_base_offset: int | None,
        from_rela: bool,
    ) -> KallsymsTables:
        return KallsymsTables(
            bits=bits,
            num_syms=n,
            num_syms_offset=names.num_syms_offset,
            names_offset=names.start,
            markers_offset=markers_pos,
            token_table_offset=tokens.start,
            token_index_offset=tokens.index_offset,
            addresses_offset=addresses_offset,
            base_relative=base_relative,
            absolute_percpu=absolute_percpu,
            relative_base=relative_base,
            relative_base_offset=relative_base_offset,
            seqs_of_names_offset=seqs,
            layout=layout,
            relative_base_from_rela=from_rela,
        )

    align = bits // 8
    found = _find_names_and_markers(data, tokens, align, search_back=_SEARCH_BACK)
    if found is None:
        raise LkmError("no kallsyms_markers/kallsyms_names before the token table")
    names, markers_pos, seqs = found.names, found.markers_offset, found.seqs_offset
    n = names.count

    after_index = _align(tokens.index_offset + 512, align)
    # (layout, offsets position, relative base position)
    candidates: list[tuple[str, int, int]] = []
    if seqs is None:
        rel = _align(after_index + 4 * n, align)
        candidates.append(("names-first", after_index, rel))
    rel = names.num_syms_offset - align
    candidates.append(("offsets-first", rel - _align(4 * n, align), rel))

    for layout, offs_pos, rel_pos in candidates:
        if offs_pos < 0 or offs_pos + 4 * n > len(data) or rel_pos + align > len(data):
            continue
        offs = struct.unpack_from(f"<{n}i", data, offs_pos)
        mode = _offsets_mode(offs)
        if mode is None:
            continue
        base = _ptr(data, rel_pos, align)
        from_rela = False
        if base == 0 and machine in ("arm64", "aarch64"):
            rela = _arm64_rela_base(data, rel_pos)
            if rela is None:
                raise LkmError("kallsyms_relative_base is 0 and no R_AARCH64_RELATIVE entry fills it")
            base, from_rela = rela, True
        if base == 0:
            raise LkmError("kallsyms_relative_base is 0")
        if layout == "names-first":
            cand = _align(rel_pos + align, align)
            if _seqs_ok(data, cand, n):
                seqs = cand
        return tables(offs_pos, layout, seqs, True, mode, base, rel_pos, from_rela)

    # Without CONFIG_KALLSYMS_BASE_RELATIVE: kallsyms_addresses[N], pointers, sorted.
    fmt = f"<{n}{'Q' if bits == 64 else 'I'}"
    for layout, pos in (("names-first", after_index), ("offsets-first", names.num_syms_offset - n * align)):
        if (layout == "names-first" and seqs is not None) or pos < 0 or pos + n * align > len(data):
            continue
        addrs = struct.unpack_from(fmt, data, pos)
        if addrs[-1] != 0 and all(a <= b for a, b in pairwise(addrs)):
            return tables(pos, layout, seqs, False, False, None, None, False)
    raise LkmError("no sorted kallsyms_offsets/kallsyms_addresses next to the other tables")


def _expand_names(data: bytes, tokens: _Tokens, start: int, count: int) -> Iterable[tuple[str, str]]:
    table = tokens.strings
    pos = start
    for _ in range(count):
        n = data[pos]
        if n & 0x80:
            n = (n & 0x7F) | (data[pos + 1] << 7)
            pos += 2
        else:
            pos += 1
        text = "".join([table[b] for b in data[pos : pos + n]])
        pos += n
        yield text[:1], text[1:]


def kernel_arch(kernel: bytes) -> str:
    """The architecture of a decompressed kernel: an ELF vmlinux (x86 images carry one) says its
    machine; a raw Image is arm64's."""
    if kernel[:4] == b"\x7fELF":
        machine = int.from_bytes(kernel[18:20], "little")
        return {62: "x86_64", 3: "i386", 6: "i386", 183: "arm64"}.get(machine, "arm64")
    return "arm64"


def recover_kallsyms(kernel: bytes, *, arch: str) -> list[KallsymsEntry]:
    """Every core-kernel symbol of *kernel*, in kallsyms order (as ``/proc/kallsyms`` lists them).

    *kernel* is a decompressed kernel (see :func:`decompress_kernel_image`) or any image
    that function accepts; *arch* is its architecture (``amd64``, ``i386``, ``arm64`` or the
    kernel's spelling).  Addresses are the link-time ones (a ``nokaslr`` boot).
    """
    kernel = decompress_kernel_image(kernel)
    tables = find_kallsyms_tables(kernel, arch=arch)
    return kallsyms_entries(kernel, tables)


def kallsyms_entries(data: bytes, t: KallsymsTables) -> list[KallsymsEntry]:
    """Decode the tables *t* found in *data* (see :func:`find_kallsyms_tables`).

    Addresses as ``kallsyms_sym_address`` computes them; the type letter is the first
    character of the expanded name and the name the rest, as ``kallsyms_expand_symbol``.
    """
    tokens = _token_table_for(data, t)
    names = list(_expand_names(data, tokens, t.names_offset, t.num_syms))
    n = t.num_syms
    mask = (1 << t.bits) - 1
    if t.base_relative:
        if t.relative_base is None:
            raise LkmError("base-relative kallsyms tables without kallsyms_relative_base")
        base = t.relative_base
        offs = struct.unpack_from(f"<{n}i", data, t.addresses_offset)
        if t.absolute_percpu:
            addrs = [o if o >= 0 else (base - 1 - o) & mask for o in offs]
        else:
            addrs = [(base + (o & 0xFFFFFFFF)) & mask for o in offs]
    else:
        addrs = list(struct.unpack_from(f"<{n}{'Q' if t.bits == 64 else 'I'}", data, t.addresses_offset))
    return [KallsymsEntry(a, typ, name) for a, (typ, name) in zip(addrs, names, strict=True)]


def _token_table_for(data: bytes, t: KallsymsTables) -> _Tokens:
    idx = struct.unpack_from("<256H", data, t.token_index_offset)
    strings = []
    for k in range(256):
        a = t.token_table_offset + idx[k]
        strings.append(data[a : data.index(b"\0", a)].decode("latin-1"))
    return _Tokens(t.token_table_offset, t.token_index_offset, strings)


def format_proc_kallsyms(entries: Iterable[KallsymsEntry], bits: int) -> str:
    """The core-kernel part of ``/proc/kallsyms``: ``"%px %c %s\\n"`` per symbol."""
    width = bits // 4
    return "".join(f"{e.address:0{width}x} {e.type} {e.name}\n" for e in entries)

"""Exports read from a raw kernel image (arm64 ``Image``): the ``__ksymtab`` tables found by
their shape, with no section headers to say where they are.

``struct kernel_symbol`` with PREL32 relocations is three s32: value, name and namespace, each
relative to its own field (a namespace field of 0: none).  The names lie in
``__ksymtab_strings``, a run of NUL-terminated identifiers after the tables.  A table is a
run of 12-byte entries whose name fields all point at a string there (or at the tail of one:
the linker merges suffixes).  ``include/asm-generic/vmlinux.lds.h`` places ``__ksymtab``,
then ``__ksymtab_gpl``, each sorted by name (``SORT(___ksymtab+*)``), then with
CONFIG_MODVERSIONS ``__kcrctab`` and ``__kcrctab_gpl`` (one u32 CRC per entry, in the same
order), then ``__ksymtab_strings``.  Runs of entry-shaped words elsewhere (other PREL32 data
whose fields happen to land in the strings) are told apart by that order: the export tables
are one run sorted by name with at most one restart (where ``__ksymtab_gpl`` begins), or two
sorted runs.

This is what a kernel without CONFIG_KALLSYMS_ALL (Debian's arm64 and 686-pae) needs to bind
modules to data symbols that /proc/kallsyms does not list.
"""

from __future__ import annotations

import re
import struct
from array import array
from dataclasses import dataclass
from itertools import pairwise

from lkm.errors import LkmError

__all__ = ["raw_image_exports"]

_ENTRY = 12
_MIN_RUN = 64  # a real export table has thousands of entries
_IDENT = re.compile(rb"(?:[A-Za-z0-9_.$]+\0){1000,}")
_FIRST = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_SLACK = 1 << 16
_NAME_LIMIT = 512  # KSYM_NAME_LEN
_CRC_SLACK = 64


@dataclass(slots=True, unsafe_hash=True)
class RawExport:
    """One export of a raw image: where its value is (an offset in the image), its name,
    whether it is GPL-only, its CRC (``__kcrctab``, None without CONFIG_MODVERSIONS) and its
    namespace (None: none)."""

    offset: int
    name: str
    gpl_only: bool
    crc: int | None
    namespace: str | None


_IDENT_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.$"
#: Every byte that can be in a run of identifiers becomes "a" (NUL stays), any other "#".
_CLASSES = bytes(0x61 if c in _IDENT_BYTES else 0 if c == 0 else 0x23 for c in range(256))
_BLOCK = 4096


def _long_runs(classes: bytes) -> list[tuple[int, int]]:
    """Spans of *classes* without "#" that hold a whole aligned block (every run of two blocks
    or more does): found block by block with ``bytes.find``, then widened to the run's ends."""
    runs: list[tuple[int, int]] = []
    size = len(classes)
    for at in range(0, size - _BLOCK + 1, _BLOCK):
        if runs and at < runs[-1][1]:
            continue
        if classes.find(b"#", at, at + _BLOCK) < 0:
            lo = classes.rfind(b"#", 0, at) + 1
            hi = classes.find(b"#", at + _BLOCK)
            runs.append((lo, size if hi < 0 else hi))
    return runs


def _string_areas(image: bytes) -> list[tuple[int, int]]:
    """Runs of NUL-terminated identifiers, largest first (__ksymtab_strings is one of them,
    BTF's string table another).  Long runs of identifier bytes and NULs are found first on
    the classified image (linear, in C), then the identifier runs inside them."""
    classes = image.translate(_CLASSES)
    areas = []
    for a, b in _long_runs(classes):
        areas += [(x.start(), x.end()) for x in _IDENT.finditer(image, a, b)]
    return sorted(areas, key=lambda a: a[0] - a[1])


def _tables(image: bytes, start: int, end: int, search: int) -> list[list[int]]:
    """Runs of 12-byte entries before [start, end) whose name fields point at its strings."""
    lo = max(4, (start - search) & ~3)
    words = array("i")
    words.frombytes(image[lo : lo + (start - lo) // 4 * 4])
    if words.itemsize != 4 or struct.pack("=i", 1) != struct.pack("<i", 1):  # pragma: no cover
        words = array("i", [w for (w,) in struct.iter_unpack("<i", bytes(words))])
    hits: list[int] = []
    first = _FIRST
    low, high = start - _SLACK, end
    field = lo
    for rel in words:
        t = field + rel
        # The run found may begin a little after the area's start (odd bytes before it), and
        # the linker merges a name into the tail of a longer one (_copy_from_iter).
        if low <= t < high and image[t] in first:
            hits.append(field - 4)  # the name is the entry's second field
        field += 4
    # Chains of entries 12 bytes apart (stray hits at other offsets do not break them).
    found = set(hits)
    runs: list[list[int]] = []
    for p in hits:
        if p - _ENTRY in found or p not in found:
            continue
        run = []
        while p in found:
            run.append(p)
            found.discard(p)
            p += _ENTRY
        runs.append(run)
    return [r for r in runs if len(r) >= _MIN_RUN]


def _string_at(image: bytes, at: int) -> str | None:
    if not 0 <= at < len(image):
        return None
    end = image.find(b"\0", at, at + _NAME_LIMIT)
    if end <= at:
        return None
    return image[at:end].decode("ascii", "replace")


def _names(image: bytes, run: list[int]) -> list[str]:
    out = []
    for p in run:
        (name_rel,) = struct.unpack_from("<i", image, p + 4)
        out.append(_string_at(image, p + 4 + name_rel) or "")
    return out


def _restarts(names: list[str]) -> list[int]:
    """Indices where a name sorts before the one preceding it (bytewise, as ld's SORT)."""
    return [i + 1 for i, (a, b) in enumerate(pairwise(names)) if b.encode() < a.encode()]


def _export_tables(image: bytes, runs: list[list[int]]) -> list[tuple[list[int], list[str], int]]:
    """The runs that are export tables, in address order, each with its names and the index
    where its GPL-only part begins."""
    sorted_runs = []
    for run in sorted(runs):
        names = _names(image, run)
        r = _restarts(names)
        if len(r) <= 1:
            sorted_runs.append((run, names, r))
    if not sorted_runs:
        return []
    # One run holding both tables (one restart), or the largest run(s) without restarts.
    one = [x for x in sorted_runs if len(x[2]) == 1]
    if one:
        run, names, r = max(one, key=lambda x: len(x[0]))
        return [(run, names, r[0])]
    big = sorted(sorted_runs, key=lambda x: -len(x[0]))[:2]
    big.sort(key=lambda x: x[0][0])
    if len(big) == 2 and big[1][0][0] - (big[0][0][-1] + _ENTRY) <= 16:  # __ksymtab, __ksymtab_gpl
        return [(big[0][0], big[0][1], len(big[0][0])), (big[1][0], big[1][1], 0)]
    run, names, _r = max(sorted_runs, key=lambda x: len(x[0]))
    return [(run, names, len(run))]  # a single table: __ksymtab only


def _crcs(image: bytes, after: int, count: int, strings: int) -> list[int] | None:
    """__kcrctab + __kcrctab_gpl: *count* u32 from the tables' end (aligned), ending where the
    strings begin.  The strings area as found may start a few bytes early (the last CRCs' bytes
    can read as an identifier and its NUL), hence the slack on both sides."""
    at = (after + 3) & ~3
    if at + 4 * count <= len(image) and -_CRC_SLACK <= strings - (at + 4 * count) < _CRC_SLACK:
        return list(struct.unpack_from(f"<{count}I", image, at))
    return None


def raw_image_exports(image: bytes, *, search: int = 8 << 20) -> list[RawExport]:
    """Every export of a raw kernel image, in table order (__ksymtab, then __ksymtab_gpl)."""
    best: tuple[list[tuple[list[int], list[str], int]], int] | None = None
    areas = _string_areas(image)[:4]
    window = 1 << 19
    while best is None:  # small windows first: the tables lie right before their strings
        window = min(window, search)
        for start, end in areas:
            tables = _export_tables(image, _tables(image, start, end, window))
            if not tables or (tables[0][0][0] - 4 <= start - window + _ENTRY and window < search):
                continue  # none, or cut by the window: look further back next round
            if best is None or sum(len(t[0]) for t in tables) > sum(len(t[0]) for t in best[0]):
                best = (tables, start)
        if window >= search:
            break
        window *= 4
    if best is None:
        raise LkmError("no __ksymtab in the kernel image")
    tables, strings = best
    entries = [
        (p, n, i >= gpl_from)
        for run, names, gpl_from in tables
        for i, (p, n) in enumerate(zip(run, names, strict=True))
    ]
    crcs = _crcs(image, tables[-1][0][-1] + _ENTRY, len(entries), strings)
    out = []
    for k, (p, name, gpl) in enumerate(entries):
        value_rel, _name_rel, ns_rel = struct.unpack_from("<iii", image, p)
        ns = _string_at(image, p + 8 + ns_rel) if ns_rel else None
        out.append(RawExport(p + value_rel, name, gpl, crcs[k] if crcs is not None else None, ns or None))
    return out

"""Exports read from a raw kernel image (arm64 ``Image``): the ``__ksymtab`` tables found by
their shape, with no section headers to say where they are.

``struct kernel_symbol`` with PREL32 relocations is three s32: value, name and namespace, each
relative to its own field.  The names lie in ``__ksymtab_strings``, a run of NUL-terminated
identifiers after the tables.  A table is a run of 12-byte entries whose name fields all
point at a string there (or at the tail of one: the linker merges suffixes); the kernel
places __ksymtab first, then __ksymtab_gpl.
This is what a kernel without CONFIG_KALLSYMS_ALL (Debian's arm64 and 686-pae) needs to bind
modules to data symbols that /proc/kallsyms does not list.
"""

from __future__ import annotations

import re
import struct

from lkm.errors import LkmError

__all__ = ["raw_image_exports"]

_ENTRY = 12
_MIN_RUN = 64  # a real export table has thousands of entries
_IDENT = re.compile(rb"(?:[A-Za-z0-9_.$]+\0){1000,}")
_FIRST = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_SLACK = 1 << 16


def _string_areas(image: bytes) -> list[tuple[int, int]]:
    """Runs of NUL-terminated identifiers, largest first (__ksymtab_strings is one of them,
    BTF's string table another)."""
    areas = [(m.start(), m.end()) for m in _IDENT.finditer(image)]
    return sorted(areas, key=lambda a: a[0] - a[1])


def _tables(image: bytes, start: int, end: int, search: int) -> list[list[int]]:
    """Runs of 12-byte entries before [start, end) whose name fields point at its strings."""
    lo = max(4, (start - search) & ~3)
    hits: list[int] = []
    for i, (rel,) in enumerate(struct.iter_unpack("<i", image[lo : lo + (start - lo) // 4 * 4])):
        field = lo + 4 * i
        t = field + rel
        # The run found may begin a little after the area's start (odd bytes before it), and
        # the linker merges a name into the tail of a longer one (_copy_from_iter).
        if start - _SLACK <= t < end and image[t] in _FIRST:
            hits.append(field - 4)  # the name is the entry's second field
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


def raw_image_exports(image: bytes, *, search: int = 8 << 20) -> list[tuple[int, str, bool]]:
    """(value offset in *image*, name, GPL-only) of every export of a raw kernel image."""
    # The strings area whose tables hold the most entries (BTF's names give a few stray chains).
    candidates = [_tables(image, start, end, search) for start, end in _string_areas(image)[:4]]
    tables = max(candidates, key=lambda t: sum(map(len, t)), default=[])
    if not tables:
        raise LkmError("no __ksymtab in the kernel image")
    out = []
    for table in tables:
        gpl = False  # __ksymtab, then __ksymtab_gpl: each sorted by name, so the order restarts
        last = ""
        for p in table:
            value_rel, name_rel = struct.unpack_from("<ii", image, p)
            t = p + 4 + name_rel
            name = image[t : image.index(b"\0", t)].decode("ascii", "replace")
            if name < last:
                gpl = True
            last = name
            out.append((p + value_rel, name, gpl))
    return out

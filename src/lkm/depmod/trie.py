"""Writing depmod's binary indexes (modules.*.bin): kmod's Patricia trie, byte for byte.

depmod inserts keys one by one into a trie whose shape depends only on the set of keys: the
root has an empty prefix, every other node carries the longest prefix its keys share after
the character that leads to it.  The writer emits it post-order (children before their
parent, in ascending character order), each node as: prefix NUL (if any), first and last
child characters with one big-endian u32 offset per character in between (0 where there is
no child), then a value count and (priority, value NUL) pairs.  A node's offset word carries
flags for the parts present.  Values of a key are ordered by ascending priority, and among
equal priorities the most recently inserted first.
"""

from __future__ import annotations

import struct
from bisect import bisect_left

from lkm.index import INDEX_MAGIC, INDEX_VERSION, NODE_CHILDS, NODE_PREFIX, NODE_VALUES

__all__ = ["IndexBuilder"]


_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")


class IndexBuilder:
    """Keys with their values, in insertion order; :meth:`write` gives the file bytes."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[bytes, list[tuple[int, bytes]]] = {}

    def insert(self, key: str, value: str, priority: int) -> bool:
        """Add ``value`` under ``key``; True if the key already held that value (depmod -w
        reports those).  Bytes above 127 are stored as they come: kmod's 7-bit check reads
        them as negative chars and lets them through, and so its files hold them."""
        k = key.encode("utf-8", "surrogateescape")
        v = value.encode("utf-8", "surrogateescape")
        vals = self._values.get(k)
        if vals is None:
            self._values[k] = [(priority, v)]
            return False
        dup = any(x == v for _p, x in vals)
        # kmod's index_add_value: before the first entry of equal or higher priority.
        i = 0
        while i < len(vals) and vals[i][0] < priority:
            i += 1
        vals.insert(i, (priority, v))
        return dup

    def __len__(self) -> int:
        return len(self._values)

    def write(self) -> bytes:
        keys = sorted(self._values)
        out = bytearray(_U32x2.pack(INDEX_MAGIC, INDEX_VERSION))
        out += b"\0\0\0\0"
        root = _write_node(out, keys, self._values, 0, len(keys), 0, root=True)
        out[8:12] = _U32.pack(root)
        return bytes(out)


def _common_prefix(a: bytes, b: bytes, start: int) -> int:
    """Length of the common prefix of ``a`` and ``b``, known to agree before ``start``
    (bisecting with slice compares, which run in C)."""
    n = min(len(a), len(b))
    if a[start:n] == b[start:n]:
        return n
    lo, hi = start, n  # equal before lo; a difference in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _write_node(
    out: bytearray,
    keys: list[bytes],
    values: dict[bytes, list[tuple[int, bytes]]],
    lo: int,
    hi: int,
    depth: int,
    root: bool = False,
) -> int:
    """Write the node holding keys[lo:hi] (which share keys[lo][:depth]); its offset word."""
    if lo < hi and not root:
        first = keys[lo]
        p = _common_prefix(first, keys[hi - 1], depth)
    else:
        p = depth
    here = None
    if lo < hi and len(keys[lo]) == p:
        here = values[keys[lo]]
        lo += 1
    children: list[tuple[int, int]] = []
    j = lo
    while j < hi:
        k = keys[j]
        c = k[p]
        if j + 1 == hi or keys[j + 1][p] != c:
            end = j + 1
        elif c < 255:
            end = bisect_left(keys, k[:p] + bytes((c + 1,)), j, hi)
        else:  # no character sorts after 0xff: the rest all lead with it
            end = hi
        if end == j + 1:  # a leaf, most of a trie's nodes: its whole rest is its prefix
            children.append((c, _write_leaf(out, k, values[k], p + 1)))
        else:
            children.append((c, _write_node(out, keys, values, j, end, p + 1)))
        j = end
    offset = len(out)
    if p > depth:
        out += keys[lo - (here is not None)][depth:p]
        out.append(0)
        offset |= NODE_PREFIX
    if children:
        c0, c1 = children[0][0], children[-1][0]
        offs = [0] * (c1 - c0 + 1)
        for c, off in children:
            offs[c - c0] = off
        out.append(c0)
        out.append(c1)
        out += struct.pack(f">{len(offs)}I", *offs)
        offset |= NODE_CHILDS
    if here:
        _write_values(out, here)
        offset |= NODE_VALUES
    return offset


def _write_leaf(out: bytearray, key: bytes, here: list[tuple[int, bytes]], depth: int) -> int:
    """:func:`_write_node` for a node holding one key: prefix (the key's rest) and values."""
    offset = len(out)
    if len(key) > depth:
        out += key[depth:]
        out.append(0)
        offset |= NODE_PREFIX
    if len(here) == 1:  # one value: count and priority in one pack
        out += _U32x2.pack(1, here[0][0])
        out += here[0][1]
        out.append(0)
    else:
        _write_values(out, here)
    return offset | NODE_VALUES


def _write_values(out: bytearray, here: list[tuple[int, bytes]]) -> None:
    out += _U32.pack(len(here))
    for prio, v in here:
        out += _U32.pack(prio)
        out += v
        out.append(0)

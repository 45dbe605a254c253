"""libkmod's hash table order (shared/hash.c), which depmod's outputs inherit.

depmod keeps modules in a 512-bucket table and symbols in a 2048-bucket one; iterating such a
table walks the buckets in index order and, inside a bucket, the keys in strcmp order.  The
bucket is Paul Hsieh's SuperFastHash of the key masked to the (power of two) bucket count.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MODULES_BUCKETS",
    "SYMBOLS_BUCKETS",
    "bucket_keys",
    "hash_order",
    "hash_superfast",
    "hash_superfast_many",
]


MODULES_BUCKETS = 512
SYMBOLS_BUCKETS = 2048
_M = 0xFFFFFFFF


def hash_superfast(key: bytes) -> int:
    """SuperFastHash of ``key`` as libkmod computes it (little-endian 16-bit reads, signed
    char for the odd trailing byte)."""
    n = len(key)
    h = n
    rem = n & 3
    end = n - rem
    i = 0
    while i < end:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        tmp = (((key[i + 2] | key[i + 3] << 8) << 11) ^ h) & _M
        h = ((h << 16) & _M) ^ tmp
        h = (h + (h >> 11)) & _M
        i += 4
    if rem == 3:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 16) & _M
        c = key[i + 2]
        h ^= ((c - 256 if c > 127 else c) << 18) & _M
        h = (h + (h >> 11)) & _M
    elif rem == 2:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 11) & _M
        h = (h + (h >> 17)) & _M
    elif rem == 1:
        c = key[i]
        h = (h + (c - 256 if c > 127 else c)) & _M
        h ^= (h << 10) & _M
        h = (h + (h >> 1)) & _M
    h ^= (h << 3) & _M
    h = (h + (h >> 5)) & _M
    h ^= (h << 4) & _M
    h = (h + (h >> 17)) & _M
    h ^= (h << 25) & _M
    h = (h + (h >> 6)) & _M
    return h


def hash_superfast_many(keys: Sequence[bytes]) -> list[int]:
    """:func:`hash_superfast` of every key.  Keys of one length share every step, so each
    such group is hashed at once: one big integer holds a 64-bit lane per key (the 32-bit
    state in its low half, room above for the shifts), and each step of the hash is a
    handful of big-integer operations, run in C, for the whole group."""
    out = [0] * len(keys)
    by_len: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        by_len.setdefault(len(k), []).append(i)
    for n, idx in by_len.items():
        if len(idx) < _LANES_FROM:
            for i in idx:
                out[i] = hash_superfast(keys[i])
            continue
        for i, h in zip(idx, _hash_lanes([keys[i] for i in idx], n), strict=True):
            out[i] = h
    return out


_LANES_FROM = 8  # below this many keys of a length, the scalar hash is as fast
_SIGN = bytes(0xFF if b > 127 else 0 for b in range(256))  # a char's sign-extension byte


def _hash_lanes(group: list[bytes], n: int) -> list[int]:
    """hash_superfast of ``group`` (keys all of length ``n``), lane-parallel."""
    m = len(group)
    flat = b"".join(group)
    lanes = int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * m, "little")

    def u16(off: int) -> int:  # the little-endian u16 at ``off`` of every key, one per lane
        buf = bytearray(8 * m)
        buf[0::8] = flat[off::n]
        buf[1::8] = flat[off + 1 :: n]
        return int.from_bytes(buf, "little")

    def char(off: int) -> int:  # the signed char at ``off`` of every key, as 32-bit lanes
        buf = bytearray(8 * m)
        col = flat[off::n]
        buf[0::8] = col
        ext = col.translate(_SIGN)
        buf[1::8] = buf[2::8] = buf[3::8] = ext
        return int.from_bytes(buf, "little")

    h = int.from_bytes(n.to_bytes(8, "little") * m, "little")
    i = 0
    for i in range(0, n - (n & 3), 4):
        h = (h + u16(i)) & lanes
        tmp = ((u16(i + 2) << 11) ^ h) & lanes
        h = ((h << 16) & lanes) ^ tmp
        h = (h + ((h >> 11) & lanes)) & lanes
    i = n - (n & 3)
    rem = n & 3
    if rem == 3:
        h = (h + u16(i)) & lanes
        h ^= (h << 16) & lanes
        h ^= (char(i + 2) << 18) & lanes
        h = (h + ((h >> 11) & lanes)) & lanes
    elif rem == 2:
        h = (h + u16(i)) & lanes
        h ^= (h << 11) & lanes
        h = (h + ((h >> 17) & lanes)) & lanes
    elif rem == 1:
        h = (h + char(i)) & lanes
        h ^= (h << 10) & lanes
        h = (h + ((h >> 1) & lanes)) & lanes
    h ^= (h << 3) & lanes
    h = (h + ((h >> 5) & lanes)) & lanes
    h ^= (h << 4) & lanes
    h = (h + ((h >> 17) & lanes)) & lanes
    h ^= (h << 25) & lanes
    h = (h + ((h >> 6) & lanes)) & lanes
    return list(struct.unpack(f"<{m}Q", h.to_bytes(8 * m, "little")))


def bucket_keys(keys: Iterable[str], n_buckets: int) -> list[tuple[int, bytes]]:
    """(bucket, key bytes) for each key: sorting these gives the table's iteration order."""
    mask = n_buckets - 1
    raw = [k.encode("utf-8", "surrogateescape") for k in keys]
    return [(h & mask, b) for h, b in zip(hash_superfast_many(raw), raw, strict=True)]


def hash_order(keys: Iterable[str], n_buckets: int) -> list[str]:
    """``keys`` (unique) in the order libkmod's hash_iter visits them."""
    pairs = bucket_keys(keys, n_buckets)
    pairs.sort()
    return [b.decode("utf-8", "surrogateescape") for _h, b in pairs]

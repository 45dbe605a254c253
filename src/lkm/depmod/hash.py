"""libkmod's hash table order (shared/hash.c), which depmod's outputs inherit.

depmod keeps modules in a 512-bucket table and symbols in a 2048-bucket one; iterating such a
table walks the buckets in index order and, inside a bucket, the keys in strcmp order.  The
bucket is Paul Hsieh's SuperFastHash of the key masked to the (power of two) bucket count.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def bucket_keys(keys: Iterable[str], n_buckets: int) -> list[tuple[int, bytes]]:
    """(bucket, key bytes) for each key: sorting these gives the table's iteration order."""
    mask = n_buckets - 1
    out = []
    for k in keys:
        b = k.encode("utf-8", "surrogateescape")
        out.append((hash_superfast(b) & mask, b))
    return out


def hash_order(keys: Iterable[str], n_buckets: int) -> list[str]:
    """``keys`` (unique) in the order libkmod's hash_iter visits them."""
    pairs = bucket_keys(keys, n_buckets)
    pairs.sort()
    return [b.decode("utf-8", "surrogateescape") for _h, b in pairs]

"""depmod's binary indexes (modules.dep.bin, modules.alias.bin, modules.symbols.bin,
modules.builtin.bin, ...): reading them, with libkmod's exact and wildcard lookups.

Format (big-endian): u32 magic 0xB007F457, u32 version 0x00020001, u32 root node offset.  A
node offset carries flags in its top bits: PREFIX (a NUL-terminated prefix string follows),
CHILDS (u8 first, u8 last, then last-first+1 u32 child offsets), VALUES (u32 count, then
count times u32 priority + NUL-terminated value).  A Patricia trie of 7-bit ASCII keys.
"""

from __future__ import annotations

import mmap
import os
import struct

from lkm.errors import LkmError
from lkm.safeio import open_regular

__all__ = [
    "INDEX_MAGIC",
    "INDEX_VERSION",
    "NODE_CHILDS",
    "NODE_MASK",
    "NODE_PREFIX",
    "NODE_VALUES",
    "IndexFile",
]

INDEX_MAGIC = 0xB007F457
INDEX_VERSION = 0x00020001
NODE_PREFIX = 0x80000000
NODE_VALUES = 0x40000000
NODE_CHILDS = 0x20000000
NODE_MASK = 0x0FFFFFFF
_U32 = struct.Struct(">I")
_WILDCARDS = (ord("*"), ord("?"), ord("["))


class _Node:
    __slots__ = ("children", "first", "last", "offset", "prefix", "values")

    def __init__(self, data: bytes | mmap.mmap, offset: int) -> None:
        p = offset & NODE_MASK
        self.offset = offset
        if offset & NODE_PREFIX:
            end = data.find(b"\0", p)
            self.prefix = bytes(data[p:end])
            p = end + 1
        else:
            self.prefix = b""
        if offset & NODE_CHILDS:
            self.first, self.last = data[p], data[p + 1]
            n = self.last - self.first + 1
            self.children: tuple[int, ...] = struct.unpack_from(f">{n}I", data, p + 2)
            p += 2 + 4 * n
        else:
            self.first, self.last, self.children = 128, 0, ()
        self.values: list[tuple[int, str]] = []
        if offset & NODE_VALUES:
            count = _U32.unpack_from(data, p)[0]
            p += 4
            for _ in range(count):
                prio = _U32.unpack_from(data, p)[0]
                end = data.find(b"\0", p + 4)
                self.values.append((prio, data[p + 4 : end].decode("utf-8", "surrogateescape")))
                p = end + 1


def _add_value(out: list[tuple[int, str]], prio: int, value: str) -> None:
    """libkmod's add_value: ascending priority; a new value goes before equal priorities."""
    i = 0
    while i < len(out) and out[i][0] < prio:
        i += 1
    out.insert(i, (prio, value))


class IndexFile:
    """One .bin index, memory-mapped."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd, st = open_regular(path)
        try:
            size = st.st_size
            self.data: bytes | mmap.mmap = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""
        except OSError as exc:
            raise LkmError(os.strerror(exc.errno or 0), path=path) from None
        finally:
            os.close(fd)
        if len(self.data) < 12:
            raise LkmError("index too short", path=path)
        magic, version, self.root = struct.unpack_from(">III", self.data, 0)
        if magic != INDEX_MAGIC or version >> 16 != INDEX_VERSION >> 16:
            raise LkmError(f"not a kmod index (magic {magic:#x}, version {version:#x})", path=path)

    def _node(self, offset: int) -> _Node | None:
        return _Node(self.data, offset) if offset else None

    def _child(self, node: _Node, ch: int) -> _Node | None:
        if node.first <= ch <= node.last:
            return self._node(node.children[ch - node.first])
        return None

    def search(self, key: str) -> str | None:
        """Exact lookup: the first (lowest-priority) value stored under ``key``.

        Walks the node words in place (no node objects): modprobe makes thousands of these."""
        k = key.encode("utf-8", "surrogateescape")
        data = self.data
        unpack = _U32.unpack_from
        off = self.root
        i = 0
        n = len(k)
        while off:
            p = off & NODE_MASK
            if off & NODE_PREFIX:
                end = data.find(b"\0", p)
                if k[i : i + end - p] != data[p:end]:
                    return None
                i += end - p
                p = end + 1
            if i == n:
                if not off & NODE_VALUES:
                    return None
                if off & NODE_CHILDS:
                    p += 2 + 4 * (data[p + 1] - data[p] + 1)
                if not unpack(data, p)[0]:
                    return None
                end = data.find(b"\0", p + 8)
                return data[p + 8 : end].decode("utf-8", "surrogateescape")
            if not off & NODE_CHILDS:
                return None
            first, last, c = data[p], data[p + 1], k[i]
            if c < first or c > last:
                return None
            off = unpack(data, p + 2 + 4 * (c - first))[0]
            i += 1
        return None

    def search_wild(self, key: str) -> list[str]:
        """Every value whose stored pattern matches ``key``, in libkmod's order.

        As libkmod: walk the trie literally along ``key``; at each node every child that starts
        a wildcard ('*', '?', '[') is expanded and its patterns fnmatch'ed against the rest of
        the key; values reached literally at the key's end match exactly.
        """
        k = key.encode("utf-8", "surrogateescape")
        out: list[tuple[int, str]] = []
        node = self._node(self.root)
        i = 0
        while node is not None:
            pre = node.prefix
            for j, ch in enumerate(pre):
                if ch in _WILDCARDS:
                    self._wild_all(node, j, b"", k[i + j :], out)
                    return [v for _p, v in out]
                if i + j >= len(k) or ch != k[i + j]:
                    return [v for _p, v in out]
            i += len(pre)
            for w in _WILDCARDS:
                child = self._child(node, w)
                if child is not None:
                    self._wild_all(child, 0, bytes([w]), k[i:], out)
            if i == len(k):
                for prio, value in node.values:
                    _add_value(out, prio, value)
                break
            node = self._child(node, k[i])
            i += 1
        return [v for _p, v in out]

    def _wild_all(self, node: _Node, j: int, buf: bytes, subkey: bytes, out: list[tuple[int, str]]) -> None:
        buf += node.prefix[j:]
        for idx, off in enumerate(node.children):
            if off:
                child = self._node(off)
                assert child is not None
                self._wild_all(child, 0, buf + bytes([node.first + idx]), subkey, out)
        if node.values and _fnmatch(buf, subkey):
            for prio, value in node.values:
                _add_value(out, prio, value)

    def items(self) -> list[tuple[str, list[tuple[int, str]]]]:
        """Every (key, values) in the index, in key order."""
        out: list[tuple[str, list[tuple[int, str]]]] = []

        def walk(node: _Node, key: bytes) -> None:
            key += node.prefix
            if node.values:
                out.append((key.decode("utf-8", "surrogateescape"), list(node.values)))
            for idx, off in enumerate(node.children):
                if off:
                    child = self._node(off)
                    assert child is not None
                    walk(child, key + bytes([node.first + idx]))

        root = self._node(self.root)
        if root is not None:
            walk(root, b"")
        return out


def _fnmatch(pattern: bytes, name: bytes) -> bool:
    """fnmatch(3) without flags, as libkmod calls it."""
    from fnmatch import fnmatchcase

    return fnmatchcase(name.decode("latin-1"), pattern.decode("latin-1"))

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


class Damaged(Exception):
    """A node word, offset or string that is not where a written index puts it (raised inside
    the reader; :class:`IndexFile` turns it into an LkmError naming the file)."""


def _cstr_end(data: bytes | mmap.mmap, p: int) -> int:
    end = data.find(b"\0", p)
    if end < 0:
        raise Damaged(f"string at {p:#x} not terminated")
    return end


class _Node:
    __slots__ = ("children", "first", "last", "offset", "prefix", "values")

    def __init__(self, data: bytes | mmap.mmap, offset: int) -> None:
        p = offset & NODE_MASK
        if not 12 <= p <= len(data):  # a node without prefix, children or values has no bytes
            raise Damaged(f"node offset {p:#x} outside the file")
        self.offset = offset
        if offset & NODE_PREFIX:
            end = _cstr_end(data, p)
            self.prefix = bytes(data[p:end])
            p = end + 1
        else:
            self.prefix = b""
        if offset & NODE_CHILDS:
            if p + 2 > len(data):
                raise Damaged(f"node at {offset & NODE_MASK:#x} cut off")
            self.first, self.last = data[p], data[p + 1]
            n = self.last - self.first + 1
            if n < 1 or p + 2 + 4 * n > len(data):
                raise Damaged(f"node at {offset & NODE_MASK:#x}: children {self.first}..{self.last}")
            self.children: tuple[int, ...] = struct.unpack_from(f">{n}I", data, p + 2)
            p += 2 + 4 * n
        else:
            self.first, self.last, self.children = 128, 0, ()
        self.values: list[tuple[int, str]] = []
        if offset & NODE_VALUES:
            count = _U32.unpack_from(data, p)[0]
            p += 4
            if count > len(data) - p:  # each value takes at least its priority word
                raise Damaged(f"node at {offset & NODE_MASK:#x}: {count} values")
            for _ in range(count):
                prio = _U32.unpack_from(data, p)[0]
                end = _cstr_end(data, p + 4)
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

    def _node(self, offset: int, seen: set[int] | None = None) -> _Node | None:
        if not offset:
            return None
        if seen is not None:  # a trie is a tree: a node reached twice is a loop or a shared node
            if offset & NODE_MASK in seen:
                raise Damaged(f"node at {offset & NODE_MASK:#x} reached twice")
            seen.add(offset & NODE_MASK)
        return _Node(self.data, offset)

    def _child(self, node: _Node, ch: int, seen: set[int] | None = None) -> _Node | None:
        if node.first <= ch <= node.last:
            return self._node(node.children[ch - node.first], seen)
        return None

    def _damaged(self, exc: Exception) -> LkmError:
        why = {Damaged: str(exc), RecursionError: "trie nested too deeply"}.get(
            type(exc), "node data out of range"
        )
        return LkmError(f"damaged index: {why}", path=self.path)

    def search(self, key: str) -> str | None:
        """Exact lookup: the first (lowest-priority) value stored under ``key``.

        Walks the node words in place (no node objects): modprobe makes thousands of these.
        A damaged index (an offset, a count or a string outside the file) raises LkmError."""
        try:
            return self._search(key)
        except (Damaged, IndexError, struct.error) as exc:
            raise self._damaged(exc) from None

    def _search(self, key: str) -> str | None:
        k = key.encode("utf-8", "surrogateescape")
        data = self.data
        find = data.find  # _cstr_end inlined: modprobe -a runs this for every name
        unpack = _U32.unpack_from
        off = self.root
        i = 0
        n = len(k)
        while off:
            p = off & NODE_MASK
            if off & NODE_PREFIX:
                end = find(b"\0", p)
                if end < 0:
                    raise Damaged(f"string at {p:#x} not terminated")
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
                end = find(b"\0", p + 8)
                if end < 0:
                    raise Damaged(f"string at {p + 8:#x} not terminated")
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
        the key; values reached literally at the key's end match exactly.  A damaged index
        raises LkmError; an expanded subtree reads each node at most once (a loop or a shared
        node in the trie is damage, not a hang).
        """
        try:
            return self._search_wild(key)
        except (Damaged, IndexError, struct.error, RecursionError) as exc:
            raise self._damaged(exc) from None

    def _search_wild(self, key: str) -> list[str]:
        k = key.encode("utf-8", "surrogateescape")
        out: list[tuple[int, str]] = []
        node = self._node(self.root)
        i = 0
        while node is not None:
            pre = node.prefix
            for j, ch in enumerate(pre):
                if ch in _WILDCARDS:
                    self._wild_all(node, j, b"", k[i + j :], out, set())
                    return [v for _p, v in out]
                if i + j >= len(k) or ch != k[i + j]:
                    return [v for _p, v in out]
            i += len(pre)
            for w in _WILDCARDS:
                child = self._child(node, w)
                if child is not None:  # each expanded subtree a tree: no node in it twice
                    self._wild_all(child, 0, bytes([w]), k[i:], out, {child.offset & NODE_MASK})
            if i == len(k):
                for prio, value in node.values:
                    _add_value(out, prio, value)
                break
            node = self._child(node, k[i])  # the literal walk ends with the key
            i += 1
        return [v for _p, v in out]

    def _wild_all(
        self, node: _Node, j: int, buf: bytes, subkey: bytes, out: list[tuple[int, str]], seen: set[int]
    ) -> None:
        buf += node.prefix[j:]
        for idx, off in enumerate(node.children):
            if off:
                child = self._node(off, seen)
                assert child is not None
                self._wild_all(child, 0, buf + bytes([node.first + idx]), subkey, out, seen)
        if node.values and _fnmatch(buf, subkey):
            for prio, value in node.values:
                _add_value(out, prio, value)

    def items(self) -> list[tuple[str, list[tuple[int, str]]]]:
        """Every (key, values) in the index, in key order (LkmError if it is damaged)."""
        out: list[tuple[str, list[tuple[int, str]]]] = []
        seen: set[int] = set()
        try:
            root = self._node(self.root, seen)
            stack = [(root, b"")] if root is not None else []
            while stack:  # depth first, children in order, without recursion
                node, key = stack.pop()
                key += node.prefix
                if node.values:
                    out.append((key.decode("utf-8", "surrogateescape"), list(node.values)))
                for idx in range(len(node.children) - 1, -1, -1):
                    child = self._node(node.children[idx], seen)
                    if child is not None:
                        stack.append((child, key + bytes([node.first + idx])))
        except (Damaged, IndexError, struct.error) as exc:
            raise self._damaged(exc) from None
        return out


def _fnmatch(pattern: bytes, name: bytes) -> bool:
    """fnmatch(3) without flags, as libkmod calls it."""
    from fnmatch import fnmatchcase

    return fnmatchcase(name.decode("latin-1"), pattern.decode("latin-1"))

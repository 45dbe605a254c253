"""A modules directory (``/lib/modules/<release>``) and libkmod's lookups in it.

Like libkmod this reads depmod's binary indexes only (modules.dep.bin, modules.symbols.bin,
modules.alias.bin, modules.builtin.bin) and tries them in libkmod's order: module name,
``symbol:`` names, alias patterns, built-in modules, built-in modules' aliases; the first
that finds anything wins.
"""

from __future__ import annotations

import os

from lkm.errors import LkmError
from lkm.index import IndexFile
from lkm.modname import MODULE_SUFFIXES, alias_normalize
from lkm.record import Record
from lkm.safeio import read_bytes

__all__ = ["MODULE_DIRECTORY", "Found", "ModulesDir", "find_modules", "modules_dir"]

MODULE_DIRECTORY = "/lib/modules"


class Found(Record):
    """A module a lookup found: its file, or ``path`` None for a built-in module (with the
    .modinfo entries the kernel build recorded for it)."""

    __slots__ = ("name", "path", "builtin_modinfo")

    def __init__(
        self, name: str, path: str | None, builtin_modinfo: list[tuple[str, str]] | None = None
    ) -> None:
        self.name = name
        self.path = path
        self.builtin_modinfo = builtin_modinfo or []


def find_modules(top: str) -> list[str]:
    """Every module file under ``top`` (recursively; symbolic links neither followed nor
    returned), sorted: what depmod scans."""
    found: list[str] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.name.endswith(MODULE_SUFFIXES) and e.is_file(follow_symlinks=False):
                    found.append(e.path)
    found.sort()
    return found


def modules_dir(root: str | None, release: str | None) -> str:
    if release is None:
        release = os.uname().release
    return f"{root or ''}{MODULE_DIRECTORY}/{release}"


class ModulesDir:
    def __init__(self, dirname: str) -> None:
        self.dirname = dirname
        self._indexes: dict[str, IndexFile | None] = {}

    def index(self, name: str) -> IndexFile | None:
        """The index ``name`` (e.g. "modules.dep.bin"), None if missing or unreadable."""
        if name not in self._indexes:
            try:
                self._indexes[name] = IndexFile(os.path.join(self.dirname, name))
            except LkmError:
                self._indexes[name] = None
        return self._indexes[name]

    def _path_of(self, name: str) -> str | None:
        idx = self.index("modules.dep.bin")
        line = idx.search(name) if idx is not None else None
        if line is None:
            return None
        rel = line.partition(":")[0]
        return rel if rel.startswith("/") else os.path.join(self.dirname, rel)

    def _module(self, name: str) -> Found:
        path = self._path_of(name)
        return Found(name, path, None if path else self.builtin_modinfo(name))

    def lookup_name(self, name: str) -> Found | None:
        """The module called ``name`` (modules.dep.bin), or None."""
        key = alias_normalize(name)
        path = self._path_of(key)
        return Found(key, path) if path is not None else None

    def lookup(self, alias: str) -> list[Found]:
        """All modules that ``alias`` names, as libkmod's kmod_module_new_from_lookup finds them."""
        key = alias_normalize(alias)
        hit = self.lookup_name(key)
        if hit is not None:
            return [hit]
        if key.startswith("symbol:"):
            found = self._wild("modules.symbols.bin", key)
            if found:
                return found
        found = self._wild("modules.alias.bin", key)
        if found:
            return found
        idx = self.index("modules.builtin.bin")
        if idx is not None and idx.search(key) is not None:
            return [Found(key, None, self.builtin_modinfo(key))]
        return self._wild("modules.builtin.alias.bin", key)

    def _wild(self, index: str, key: str) -> list[Found]:
        idx = self.index(index)
        # Every matching pattern yields its module, duplicates included, as libkmod lists them.
        return [self._module(name) for name in idx.search_wild(key)] if idx is not None else []

    def builtin_modinfo(self, name: str) -> list[tuple[str, str]]:
        try:
            data = read_bytes(os.path.join(self.dirname, "modules.builtin.modinfo"))
        except OSError:
            return []
        prefix = name.encode("utf-8", "surrogateescape") + b"."
        out = []
        for raw in data.split(b"\0"):
            if raw.startswith(prefix):
                k, _, v = raw[len(prefix) :].decode("utf-8", "surrogateescape").partition("=")
                out.append((k, v))
        return out

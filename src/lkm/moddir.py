"""A modules directory (``/lib/modules/<release>``) and name/alias lookups in it.

This reads the text indexes depmod writes (modules.dep, modules.alias, modules.builtin,
modules.builtin.modinfo) in libkmod's lookup order: module name, then aliases, then built-in
modules.  (Reading depmod's binary tries is the depmod/modprobe work's job.)
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

MODULE_DIRECTORY = "/lib/modules"


def normalize(name: str) -> str:
    """libkmod's alias_normalize: '-' becomes '_' except inside [...] character classes."""
    out = []
    depth = 0
    for ch in name:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append("_" if ch == "-" and not depth else ch)
    return "".join(out)


def modname_from_path(path: str) -> str:
    base = os.path.basename(path)
    dot = base.find(".")
    if dot >= 0:
        base = base[:dot]
    return normalize(base)


@dataclass(frozen=True)
class Found:
    name: str
    path: str | None  # None for a built-in module
    builtin_modinfo: list[tuple[str, str]] = field(default_factory=list)


def modules_dir(root: str | None, release: str | None) -> str:
    if release is None:
        release = os.uname().release
    return f"{root or ''}{MODULE_DIRECTORY}/{release}"


class ModulesDir:
    def __init__(self, dirname: str) -> None:
        self.dirname = dirname
        self._dep: dict[str, str] | None = None

    def _read(self, name: str) -> list[str]:
        try:
            with open(os.path.join(self.dirname, name), encoding="utf-8", errors="surrogateescape") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def deps(self) -> dict[str, str]:
        """module name -> path, from modules.dep."""
        if self._dep is None:
            d: dict[str, str] = {}
            for line in self._read("modules.dep"):
                path, colon, _rest = line.partition(":")
                if colon:
                    d.setdefault(modname_from_path(path), path)
            self._dep = d
        return self._dep

    def _abspath(self, rel: str) -> str:
        return rel if rel.startswith("/") else os.path.join(self.dirname, rel)

    def lookup_name(self, name: str) -> Found | None:
        rel = self.deps().get(normalize(name))
        return Found(normalize(name), self._abspath(rel)) if rel is not None else None

    def lookup(self, alias: str) -> list[Found]:
        """All modules that ``alias`` names, in libkmod's order of index files."""
        key = normalize(alias)
        hit = self.lookup_name(key)
        if hit is not None:
            return [hit]
        out: list[Found] = []
        seen: set[str] = set()
        for line in self._read("modules.alias"):
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alias" and fnmatch.fnmatchcase(key, parts[1]):
                mod = parts[2]
                if mod not in seen:
                    seen.add(mod)
                    f = self.lookup_name(mod)
                    out.append(f if f is not None else Found(mod, None))
        if out:
            return out
        for line in self._read("modules.builtin"):
            if modname_from_path(line) == key:
                return [Found(key, None, self.builtin_modinfo(key))]
        return []

    def builtin_modinfo(self, name: str) -> list[tuple[str, str]]:
        try:
            with open(os.path.join(self.dirname, "modules.builtin.modinfo"), "rb") as f:
                data = f.read()
        except OSError:
            return []
        prefix = name.encode() + b"."
        out = []
        for raw in data.split(b"\0"):
            if raw.startswith(prefix):
                k, _, v = raw[len(prefix) :].decode("utf-8", "surrogateescape").partition("=")
                out.append((k, v))
        return out

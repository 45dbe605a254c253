"""depmod.d configuration: search order, overrides, external directories, excludes.

Files are ``*.conf`` in /etc/depmod.d, /run/depmod.d, /usr/local/lib/depmod.d and
/lib/depmod.d (or the paths given with -C), read in basename order; a basename seen in an
earlier directory hides later ones.  Directives: ``search DIR|built-in|external ...``,
``override MODNAME KVER-REGEX SUBDIR``, ``external KVER-REGEX DIR``, ``exclude DIR ...``
(``include`` and ``make_map_files`` are accepted and ignored, as kmod does).
"""

from __future__ import annotations

import os
import stat

from lkm.record import Record
from lkm.safeio import read_text

__all__ = [
    "BUILTIN_KEY",
    "DEFAULT_CONFIG_PATHS",
    "ERROR",
    "EXTERNAL_KEY",
    "INFO",
    "WARNING",
    "DepmodConfig",
    "Search",
    "config_files",
    "load_config",
    "read_lines",
]


DEFAULT_CONFIG_PATHS = ("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d")
BUILTIN_KEY = "built-in"
EXTERNAL_KEY = "external"

# kmod's log priorities, as its messages name them.
ERROR, WARNING, INFO = "ERROR", "WARNING", "INFO"


class Search(Record):
    """One ``search`` entry: a subdirectory, or the built-in tree, or the external dirs."""

    __slots__ = ("path", "kind")

    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind  # "path", "built-in", "external"


class DepmodConfig(Record):
    """Parsed depmod.d.  ``searches`` and ``overrides`` are kept in kmod's list order (each
    new entry goes first), which is what its priority rule counts on."""

    __slots__ = ("searches", "overrides", "externals", "excludes", "messages")

    def __init__(self) -> None:
        self.searches: list[Search] = []
        self.overrides: list[str] = []  # "subdir/modname"
        self.externals: list[str] = []
        self.excludes: list[str] = []
        self.messages: list[tuple[str, str]] = []  # (priority, text) in kmod's order


def _kernel_matches(pattern: str, release: str) -> bool:
    if pattern == "*":
        return True
    import re

    try:
        return re.search(pattern, release) is not None  # POSIX ERE; Python's re is a superset
    except re.error:
        return False


def config_files(paths: tuple[str, ...] | list[str]) -> list[str]:
    """The files to parse, in kmod's order (sorted by basename, first directory wins)."""
    files: dict[str, str] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            files.setdefault(os.path.basename(path), path)
            continue
        try:
            names = os.listdir(path)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") or len(name) < 6 or not name.endswith(".conf"):
                continue
            full = os.path.join(path, name)
            if os.path.isdir(full):
                continue
            files.setdefault(name, full)
    return [files[k] for k in sorted(files, key=lambda s: s.encode("utf-8", "surrogateescape"))]


def load_config(paths: tuple[str, ...] | list[str] | None, release: str) -> DepmodConfig:
    cfg = DepmodConfig()
    for filename in config_files(DEFAULT_CONFIG_PATHS if paths is None else paths):
        _parse(cfg, filename, release)
    if not cfg.searches:
        cfg.searches.insert(0, Search("updates", "path"))
    return cfg


def read_lines(filename: str) -> list[tuple[int, str]]:
    """The logical lines of a config file with the number of their last physical line, as
    kmod's getline_wrapped reads them: backslash-newline joins lines, a backslash before any
    other character is dropped (the character kept)."""
    text = read_text(filename)
    if "\\" not in text:  # nothing to join or drop: the physical lines as they are
        lines = text.split("\n")
        last = lines.pop()
        out = list(zip(range(1, len(lines) + 1), lines, strict=True))
        if last:
            out.append((len(lines) + 1, last))
        return out
    out = []
    buf: list[str] = []
    n = 0
    i = 0
    end = len(text)
    while i < end:
        c = text[i]
        i += 1
        if c == "\n":
            n += 1
            out.append((n, "".join(buf)))
            buf = []
        elif c == "\\":
            if i == end:  # getc() gives EOF, stored as the byte 0xff
                buf.append("\udcff")
                continue
            c = text[i]
            i += 1
            if c == "\n":
                n += 1
            else:
                buf.append(c)
        else:
            buf.append(c)
    if buf:
        out.append((n + 1, "".join(buf)))
    return out


def _parse(cfg: DepmodConfig, filename: str, release: str) -> None:
    try:
        lines = read_lines(filename)
    except OSError as exc:
        cfg.messages.append((ERROR, f"file parse {filename}: {os.strerror(exc.errno or 0)}"))
        return
    for n, line in lines:
        if not line or line[0] == "#":
            continue
        words = line.replace("\t", " ").split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd == "search":
            for sp in args:
                kind = "built-in" if sp == BUILTIN_KEY else "external" if sp == EXTERNAL_KEY else "path"
                cfg.searches.insert(0, Search(sp, kind))
        elif cmd == "override" and len(args) >= 3:
            modname, version, subdir = args[:3]
            if not _kernel_matches(version, release):
                cfg.messages.append((INFO, f"{filename}:{n}: override kernel did not match {version}"))
                continue
            cfg.overrides.insert(0, f"{subdir}/{modname}")
        elif cmd == "external" and len(args) >= 2:
            version = args[0]
            if not _kernel_matches(version, release):
                cfg.messages.append((INFO, f"{filename}:{n}: external directory did not match {version}"))
                continue
            cfg.externals.insert(0, args[1])  # one directory a line: kmod ignores the rest
        elif cmd == "exclude":
            for d in args:
                cfg.excludes.insert(0, d)
        elif cmd in ("include", "make_map_files"):
            cfg.messages.append((INFO, f"{filename}:{n}: command {cmd} not implemented yet"))
        else:
            cfg.messages.append((ERROR, f"{filename}:{n}: ignoring bad line starting with '{cmd}'"))

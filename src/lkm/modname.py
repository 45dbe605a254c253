"""Module names
============

What kmod's shared/util.c does with names, in one place: a module's name from a path
(``path_to_modname``: the basename up to its first '.', '-' as '_'), the normalisation of a
name or alias given by a user (``modname_normalize``, ``alias_normalize``), and the file
suffixes a module file may have.

The suffix lists differ on purpose: libkmod finds modules with any compression it was built
for (:data:`MODULE_SUFFIXES`); kmod 30's depmod indexes ``.ko``, ``.ko.xz`` and ``.ko.zst``
(:data:`KMOD_EXTS`, the kmod_exts table of the Debian build); lkm's own tools also read 2.4
objects (:data:`FILE_SUFFIXES`).
"""

from __future__ import annotations

__all__ = [
    "FILE_SUFFIXES",
    "KMOD_EXTS",
    "MODULE_SUFFIXES",
    "alias_normalize",
    "modname_normalize",
    "name_from_file",
    "path_to_modname",
    "strip_suffix",
]

#: What libkmod looks for under /lib/modules/RELEASE (any compression).
MODULE_SUFFIXES: tuple[str, ...] = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
#: kmod 30's depmod (kmod_exts of the Debian build: no zlib).
KMOD_EXTS: tuple[str, ...] = (".ko", ".ko.xz", ".ko.zst")
#: Module files lkm's tools open, 2.4 objects included; longest first, for stripping.
FILE_SUFFIXES: tuple[str, ...] = (".ko.xz", ".ko.zst", ".ko.gz", ".ko", ".o.gz", ".o", ".mod")


def modname_normalize(name: str) -> str:
    """kmod's modname_normalize: up to the first '.', each '-' as '_'."""
    return name.partition(".")[0].replace("-", "_")


def path_to_modname(path: str) -> str:
    """kmod's path_to_modname: the basename, normalised (``drivers/a-b.ko.xz`` -> ``a_b``)."""
    return modname_normalize(path.rpartition("/")[2])


def alias_normalize(alias: str) -> str:
    """libkmod's alias_normalize: '-' becomes '_' except inside [...] character classes."""
    if "[" not in alias:
        return alias.replace("-", "_")
    out = []
    depth = 0
    for ch in alias:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append("_" if ch == "-" and not depth else ch)
    return "".join(out)


def strip_suffix(filename: str, suffixes: tuple[str, ...] = FILE_SUFFIXES) -> str | None:
    """``filename`` without the first of ``suffixes`` it ends with (None: none)."""
    for ext in suffixes:
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return None


def name_from_file(path: str) -> str:
    """A module file's name when its .modinfo has none: the basename without a module suffix
    (dots before it are kept, unlike :func:`path_to_modname`), '-' as '_'."""
    base = path.rpartition("/")[2]
    stripped = strip_suffix(base)
    return (base if stripped is None else stripped).replace("-", "_")

"""Finding the modules of a tree as depmod does: directory order, kmod's file extensions,
and which of two files with the same module name wins (depmod.d override and search)."""

from __future__ import annotations

import os
import stat

from lkm.depmod.config import DepmodConfig
from lkm.modname import KMOD_EXTS, path_to_modname
from lkm.record import Record

__all__ = ["KMOD_DECOMPRESSORS", "SKIPPED_DIRS", "Candidate", "candidates", "existing_wins", "search_modules"]


# The decompressors Debian's kmod 30 was built with (+XZ +ZSTD -ZLIB): .ko.gz files are not
# modules to it (lkm.modname.KMOD_EXTS).
KMOD_DECOMPRESSORS = ("xz", "zstd")
SKIPPED_DIRS = ("build", "source")


class Candidate(Record):
    """A module file found in the tree."""

    __slots__ = ("name", "path", "relpath", "uncrelpath")

    def __init__(self, name: str, path: str, dirname: str) -> None:
        self.name = name
        self.path = path
        if path.startswith(dirname + "/"):
            self.relpath: str | None = path[len(dirname) + 1 :]
            # kmod cuts the relative path after "<dir>/<modname>.ko": modules.order's key.
            slash = self.relpath.rfind("/")
            self.uncrelpath: str | None = self.relpath[: slash + 1 + len(name) + 3]
        else:
            self.relpath = None
            self.uncrelpath = None


def existing_wins(cfg: DepmodConfig, old: Candidate, new: Candidate, dirname: str) -> bool:
    """depmod_module_is_higher_priority: does the module already found beat ``new``?

    Overrides first (relative "subdir/modname" paths); then the search list, walked once in
    kmod's (reversed) order, where each external directory takes a position of its own and
    the later position wins; paths matching nothing rank with built-in."""
    new_rel, old_rel = new.relpath, old.relpath
    new_key = new_rel[: new_rel.rfind("/") + 1 + len(new.name)] if new_rel is not None else None
    old_key = old_rel[: old_rel.rfind("/") + 1 + len(old.name)] if old_rel is not None else None
    for ov in cfg.overrides:
        if ov == new_key:
            return False
        if ov == old_key:
            return True
    bprio = newprio = oldprio = -1
    i = 0
    for se in cfg.searches:
        if se.kind == "built-in":
            bprio = i
        elif se.kind == "external":
            for ext in cfg.externals:
                if new.path.startswith(ext):
                    newprio = i
                elif old.path.startswith(ext):
                    oldprio = i
                i += 1
        elif new_rel is not None and new_rel.startswith(se.path + "/"):
            newprio = i
        elif old_rel is not None and old_rel.startswith(se.path + "/"):
            oldprio = i
        i += 1
    if newprio < 0:
        newprio = bprio
    if oldprio < 0:
        oldprio = bprio
    return newprio <= oldprio


def _walk(
    top: str,
    skip: frozenset[str],
    out: list[str],
    errors: list[str],
    stats: dict[str, os.stat_result] | None,
) -> None:
    try:
        it = os.scandir(top)
    except OSError as exc:
        errors.append(f"could not open directory {top}: {os.strerror(exc.errno or 0)}")
        return
    append = out.append
    with it:
        for e in it:
            name = e.name
            if name in skip:
                continue
            try:
                # File types from the directory entry; symbolic links followed (one stat), as
                # kmod's fstatat does.  Module names first: nearly every entry is one.
                if name.endswith(KMOD_EXTS):
                    if e.is_symlink():
                        st = e.stat()  # the target's, as kmod's fstatat
                        if stat.S_ISREG(st.st_mode):
                            append(e.path)
                            if stats is not None:
                                stats[e.path] = st
                            continue
                    elif e.is_file():
                        append(e.path)
                        continue
                if e.is_dir():
                    _walk(e.path, skip, out, errors, stats)  # at once: kmod's order
                elif not e.is_file():
                    st = os.stat(e.path)
                    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                        errors.append(f"unsupported file type {e.path}: {stat.S_IFMT(st.st_mode):o}")
            except OSError as exc:
                errors.append(f"fstatat({e.path}): {os.strerror(exc.errno or 0)}")


def search_modules(
    dirname: str, cfg: DepmodConfig, stats: dict[str, os.stat_result] | None = None
) -> tuple[dict[str, Candidate], list[str]]:
    """Module name -> the file that wins for it, and the errors met (kmod's wording).
    ``stats`` gets the stat of module files the walk had to stat (symbolic links)."""
    paths: list[str] = []
    errors: list[str] = []
    if not os.path.isdir(dirname):
        errors.append(f"could not open directory {dirname}: No such file or directory")
        return {}, errors
    skip = frozenset((*SKIPPED_DIRS, *cfg.excludes))
    _walk(dirname, skip, paths, errors, stats)
    for ext in cfg.externals:  # scanned whether or not "search" names them
        _walk(ext, skip, paths, errors, stats)
    found: dict[str, Candidate] = {}
    for cand in candidates(paths, dirname):
        old = found.get(cand.name)
        if old is not None:
            if existing_wins(cfg, old, cand, dirname):
                continue
            del found[cand.name]
        found[cand.name] = cand
    return found, errors


def candidates(paths: list[str], dirname: str) -> list[Candidate]:
    """``Candidate(path_to_modname(p), p, dirname)`` for each path, the string work done
    over all paths at once."""
    bases = [p.rpartition("/")[2] for p in paths]
    stems = "\n".join([b.partition(".")[0] for b in bases])
    if stems.count("\n") != max(len(paths) - 1, 0):  # a file name with a newline in it
        return [Candidate(path_to_modname(p), p, dirname) for p in paths]
    names = stems.replace("-", "_").split("\n") if paths else []
    prefix = dirname + "/"
    out = []
    new = Candidate.__new__
    for path, name, base in zip(paths, names, bases, strict=True):
        c = new(Candidate)
        c.name = name
        c.path = path
        if path.startswith(prefix):
            rel = path[len(prefix) :]
            c.relpath = rel
            # kmod cuts the relative path after "<dir>/<modname>.ko": modules.order's key.
            c.uncrelpath = rel[: len(rel) - len(base) + len(name) + 3]
        else:
            c.relpath = c.uncrelpath = None
        out.append(c)
    return out

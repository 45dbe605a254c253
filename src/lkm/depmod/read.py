"""What depmod needs from each module file, read in parallel worker processes.

A module gives its exports (name, CRC), the symbols it needs (name, __versions CRC, weak)
and the .modinfo entries depmod writes out (alias, softdep).  Files are read in contiguous
chunks by forked workers (lkm.parallel), so the result is in input order whatever the core
count.  .xz decompression dominates a compressed tree and parallelises the same way.
"""

from __future__ import annotations

import errno as errno_mod
import os
from dataclasses import dataclass
from itertools import compress

from lkm.errors import LkmError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lkm.module.file import ModuleFile

__all__ = ["COMPRESSED_SUFFIXES", "IN_PROCESS", "STB_WEAK", "ModuleFacts", "read_all", "read_facts"]


STB_WEAK = 2
_WEAK_INFO = frozenset(range(STB_WEAK << 4, (STB_WEAK + 1) << 4))  # st_info values of weak symbols


@dataclass(slots=True, unsafe_hash=True)
class ModuleFacts:
    """``needed`` names in symbol-table order; ``weak`` the weak ones; CRCs (0 when absent,
    as libkmod reports them) only when asked for, since only -E compares them; the module's
    ``alias=`` and ``softdep=`` values in .modinfo order."""

    exports: list[str]
    export_crcs: list[int] | None
    needed: list[str]
    needed_crcs: list[int] | None
    weak: frozenset[str]
    aliases: list[str]
    softdeps: list[str]
    error: str | None = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Back from a worker as a few NUL-joined strings rather than ~50 small ones a module:
        # pickling 200 000 names one by one costs more than splitting them again.
        return (
            _unpack,
            (
                "\0".join(self.exports),
                self.export_crcs,
                "\0".join(self.needed),
                self.needed_crcs,
                tuple(self.weak),
                "\0".join(self.aliases),
                "\0".join(self.softdeps),
                self.error,
            ),
        )


def _split(s: str) -> list[str]:
    return s.split("\0") if s else []


def _unpack(
    exports: str,
    export_crcs: list[int] | None,
    needed: str,
    needed_crcs: list[int] | None,
    weak: tuple[str, ...],
    aliases: str,
    softdeps: str,
    error: str | None,
) -> ModuleFacts:
    return ModuleFacts(
        _split(exports),
        export_crcs,
        _split(needed),
        needed_crcs,
        frozenset(weak) if weak else _NOTHING,
        _split(aliases),
        _split(softdeps),
        error,
    )


_NOTHING: frozenset[str] = frozenset()


def read_facts(path: str, crcs: bool = False) -> ModuleFacts:
    from lkm.depmod.exports import kmod_export_names, kmod_exports
    from lkm.module.file import ModuleFile

    try:
        with ModuleFile.open(path) as mod:
            aliases = []
            softdeps = []
            for k, v in mod.modinfo:
                if k == "alias":
                    aliases.append(v)
                elif k == "softdep":
                    softdeps.append(v)
            export_crcs = needed_crcs = None
            if crcs:
                rows = _exports_or_none(mod, kmod_exports)
                exports = [n for n, _c in rows]
                export_crcs = [c for _n, c in rows]
            else:
                exports = kmod_export_names(mod)
            names, infos = mod.elf.undefined_columns()
            weak = frozenset(compress(names, map(_WEAK_INFO.__contains__, infos))) or _NOTHING
            if crcs:
                vers = dict(reversed(mod.versions))  # the first entry of a name wins
                needed_crcs = [vers.get(n, 0) for n in names]
    except LkmError as exc:
        errno = getattr(exc, "errno", None)
        reason = os.strerror(errno) if isinstance(errno, int) else exc.reason
        return ModuleFacts([], None, [], None, _NOTHING, [], [], reason)
    return ModuleFacts(exports, export_crcs, names, needed_crcs, weak, aliases, softdeps)


def _exports_or_none(
    mod: ModuleFile, fn: Callable[[ModuleFile], list[tuple[str, int]]]
) -> list[tuple[str, int]]:
    """A module exporting nothing is no error to depmod (libkmod's -ENOENT: "no symbols")."""
    from lkm.errors import InvalidModule

    try:
        return fn(mod)
    except InvalidModule as exc:
        if exc.errno == errno_mod.ENOENT:
            return []
        raise


COMPRESSED_SUFFIXES = (".xz", ".zst", ".gz")
# Up to this much work (an incremental depmod) is read in this process, a plain module one
# unit, a compressed one COMPRESSED_UNITS: forking workers costs CPU of its own (the workers'
# start, lkm.parallel's imports: pickle, typing; the results pickled back), measured on
# Debian's 6.1 tree at a load of 10: 200 plain modules 0.054 s of CPU in process against
# 0.093-0.108 s forked, 400 0.10 s against 0.14-0.17 s, and no shorter wall time; a .ko.xz
# module costs ~3 ms to read (6.12: 128 of them 0.34 s in process, 0.49 s forked), where the
# second core may still shorten the wait.
IN_PROCESS = 512
COMPRESSED_UNITS = 4


def _chunk(paths: Sequence[str]) -> list[ModuleFacts]:
    return [read_facts(p) for p in paths]


def _chunk_crcs(paths: Sequence[str]) -> list[ModuleFacts]:
    return [read_facts(p, True) for p in paths]


def read_all(paths: Sequence[str], workers: int | None = None, crcs: bool = False) -> list[ModuleFacts]:
    """Facts of every file of ``paths``, in order, read by all cores (or ``workers``), each
    core given about the same amount of work (modules.order puts the big drivers first)."""
    fn = _chunk_crcs if crcs else _chunk
    if len(paths) <= IN_PROCESS // COMPRESSED_UNITS or (
        len(paths) <= IN_PROCESS
        and len(paths) + (COMPRESSED_UNITS - 1) * sum(p.endswith(COMPRESSED_SUFFIXES) for p in paths)
        <= IN_PROCESS
    ):
        return fn(paths)  # without importing lkm.parallel (pickle, typing: ~30 ms of start-up)
    from lkm.parallel import map_chunks

    sizes = []
    for p in paths:
        try:
            size = os.stat(p).st_size
        except OSError:
            size = 0
        # Work per file: a compressed one costs its decompression, about its size; a plain
        # one a fixed parse cost, its size hardly counts (measured on Debian's 6.1 and 6.12
        # trees: ~100 us a module; xz ~50 ns a compressed byte, about 2 KB's worth).
        sizes.append(size + (2_000 if p.endswith(COMPRESSED_SUFFIXES) else 1_000_000))
    out: list[ModuleFacts] = []
    for part in map_chunks(fn, paths, workers=workers, min_per_worker=16, weights=sizes):
        out.extend(part)
    return out

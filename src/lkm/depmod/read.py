"""What depmod needs from each module file, read in parallel worker processes.

A module gives its exports (name, CRC), the symbols it needs (name, __versions CRC, weak)
and the .modinfo entries depmod writes out (alias, softdep).  Files are read in contiguous
chunks by forked workers (lkm.parallel), so the result is in input order whatever the core
count.  .xz decompression dominates a compressed tree and parallelises the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lkm.errors import LkmError
from lkm.record import Record

STB_WEAK = 2
INFO_KEYS = frozenset({"alias", "softdep"})


class ModuleFacts(Record):
    __slots__ = ("exports", "needed", "info", "error")

    def __init__(
        self,
        exports: list[tuple[str, int]],
        needed: list[tuple[str, int, bool]],
        info: list[tuple[str, str]],
        error: str | None = None,
    ) -> None:
        self.exports = exports
        self.needed = needed
        self.info = info
        self.error = error


def read_facts(path: str) -> ModuleFacts:
    from lkm.module.file import ModuleFile

    try:
        with ModuleFile.open(path) as mod:
            info = [(k, v) for k, v in mod.modinfo if k in INFO_KEYS]
            exports = [(e.name, e.crc or 0) for e in mod.exports]
            needed = [(n.name, n.crc or 0, n.bind == STB_WEAK) for n in mod.needed]
    except LkmError as exc:
        errno = getattr(exc, "errno", None)
        reason = os.strerror(errno) if isinstance(errno, int) else exc.reason
        return ModuleFacts([], [], [], reason)
    return ModuleFacts(exports, needed, info)


def _chunk(paths: Sequence[str]) -> list[ModuleFacts]:
    return [read_facts(p) for p in paths]


def read_all(paths: Sequence[str], workers: int | None = None) -> list[ModuleFacts]:
    from lkm.parallel import map_chunks

    out: list[ModuleFacts] = []
    for part in map_chunks(_chunk, paths, workers=workers, min_per_worker=16):
        out.extend(part)
    return out

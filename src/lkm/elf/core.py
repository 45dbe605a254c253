"""The load segments of an ELF core file (``/proc/kcore``, a vmcore): which file offset holds
which virtual address.  Only the ELF header and program headers are read (kcore is as large
as the address space), with ``pread``."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from lkm.elf.constants import ELFCLASS64, ELFMAG
from lkm.errors import LkmError

__all__ = ["PT_LOAD", "CoreFile", "Segment"]

PT_LOAD = 1


@dataclass(slots=True, unsafe_hash=True)
class Segment:
    vaddr: int
    offset: int
    size: int


class CoreFile:
    """An open ELF core file; :meth:`read` returns the bytes at a virtual address."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot open", path=path) from None
        head = os.pread(self.fd, 64, 0)
        if len(head) < 52 or head[:4] != ELFMAG:
            raise LkmError("not an ELF core file", path=path)
        e = "<" if head[5] == 1 else ">"
        if head[4] == ELFCLASS64:
            phoff, phentsize, phnum = (
                struct.unpack_from(e + "Q", head, 32)[0],
                *struct.unpack_from(e + "HH", head, 54),
            )
            ph = struct.Struct(e + "IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align
            fields = (0, 2, 3, 5)
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(e + "I", head, 28)[0],
                *struct.unpack_from(e + "HH", head, 42),
            )
            ph = struct.Struct(e + "IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
            fields = (0, 1, 2, 4)
        table = os.pread(self.fd, phentsize * phnum, phoff)
        self.segments: list[Segment] = []
        for i in range(phnum):
            row = ph.unpack_from(table, i * phentsize)
            typ, off, vaddr, size = (row[f] for f in fields)
            if typ == PT_LOAD:
                self.segments.append(Segment(vaddr, off, size))

    def read(self, address: int, size: int) -> bytes:
        for s in self.segments:
            if s.vaddr <= address and address + size <= s.vaddr + s.size:
                data = os.pread(self.fd, size, s.offset + address - s.vaddr)
                if len(data) == size:
                    return data
        raise LkmError(f"address {address:#x}+{size:#x} not in any load segment", path=self.path)

    def close(self) -> None:
        os.close(self.fd)

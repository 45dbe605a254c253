"""ELF notes: the GNU build id."""

from __future__ import annotations

import struct

from lkm.elf import ElfFile
from lkm.elf.constants import NT_GNU_BUILD_ID, SHT_NOTE

__all__ = ["build_id", "notes"]


def notes(elf: ElfFile) -> list[tuple[bytes, int, bytes]]:
    """(name, type, desc) of every note in every SHT_NOTE section; malformed tails are ignored."""
    e = "<" if elf.little_endian else ">"
    hdr = struct.Struct(e + "III")
    out = []
    for sec in elf.sections_of_type(SHT_NOTE):
        data = elf.section_bytes(sec)
        off = 0
        while off + 12 <= len(data):
            namesz, descsz, typ = hdr.unpack_from(data, off)
            off += 12
            name = data[off : off + namesz].rstrip(b"\0")
            off += (namesz + 3) & ~3
            desc = data[off : off + descsz]
            off += (descsz + 3) & ~3
            if off > len(data) + 3:
                break
            out.append((name, typ, desc))
    return out


def build_id(elf: ElfFile) -> bytes | None:
    for name, typ, desc in notes(elf):
        if name == b"GNU" and typ == NT_GNU_BUILD_ID:
            return desc
    return None

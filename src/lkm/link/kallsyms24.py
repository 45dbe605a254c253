"""2.4's ``__kallsyms`` section as modutils builds it for a module (obj/obj_kallsyms.c,
include/kallsyms.h), ELF32 layout.  No pointers inside: offsets from the section start, except
section and symbol addresses, which are final values (insmod builds it twice, before and after
relocation).

header (11 words): size, total_size, sections, section_off, section_size, symbols, symbol_off,
symbol_size, string_off, start, end; then one {start, size, name_off, flags} per allocated
section (index order), one {section_off, symbol_addr, name_off} per symbol of an allocated
section (hash order, then sorted by address and name; ``gcc2_compiled.`` and ``__insmod_*``
left out), then the strings (section names, then symbol names, in the order they were met).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lkm.elf.constants import SHF_ALLOC
from lkm.errors import InvalidModule
from lkm.link.obj24 import ObjFile, Sec

__all__ = ["HEADER", "SECTION", "SECTION_ENTRY", "SYMBOL_ENTRY", "KallsymsSymbol24", "build", "fill", "parse"]

SECTION = "__kallsyms"
HEADER = struct.Struct("<iIiIiiIiIII")  # 44 bytes
SECTION_ENTRY = struct.Struct("<IIII")
SYMBOL_ENTRY = struct.Struct("<III")


def build(obj: ObjFile) -> bytes:
    """obj_kallsyms over ``obj`` as it stands (addresses as the sections have them now)."""
    strings = bytearray()

    def add(name: str) -> int:
        at = len(strings)
        strings.extend(name.encode("utf-8", "surrogateescape") + b"\0")
        return at

    loaded = [s for s in obj.sections if s.flags & SHF_ALLOC]
    sec_off = {s.idx: k * SECTION_ENTRY.size for k, s in enumerate(loaded)}
    entries = bytearray()
    start, end = 0xFFFFFFFF, 0
    for s in loaded:
        entries += SECTION_ENTRY.pack(s.addr, s.size, add(s.name), s.flags)
        start = min(start, s.addr)
        end = max(end, (s.addr + s.size) & 0xFFFFFFFF)
    syms: list[tuple[int, int, int, bytes]] = []
    for sym in obj.symbols():
        if sym.secidx >= len(obj.sections) or sym.secidx not in sec_off:
            continue
        if sym.name == "gcc2_compiled." or sym.name.startswith("__insmod_"):
            continue
        addr = (sym.value + obj.sections[sym.secidx].addr) & 0xFFFFFFFF
        name_off = add(sym.name)
        syms.append((addr, sec_off[sym.secidx], name_off, sym.name.encode("utf-8", "surrogateescape")))
    syms.sort(key=lambda t: (t[0], t[3]))  # address, then strcmp of the names
    symbol_off = HEADER.size + len(entries)
    string_off = symbol_off + len(syms) * SYMBOL_ENTRY.size
    total = string_off + len(strings)
    header = HEADER.pack(
        HEADER.size, total, len(loaded), HEADER.size, SECTION_ENTRY.size, len(syms), symbol_off,
        SYMBOL_ENTRY.size, string_off, start if loaded else 0xFFFFFFFF, end,
    )  # fmt: skip
    body = b"".join(SYMBOL_ENTRY.pack(so, addr, no) for addr, so, no, _ in syms)
    return header + bytes(entries) + body + bytes(strings)


def fill(obj: ObjFile, sec: Sec) -> None:
    """add_kallsyms: (re)build the module's __kallsyms section, word aligned."""
    data = build(obj)
    sec.align = 4
    sec.size = len(data)
    sec.contents = bytearray(data)


@dataclass(slots=True, unsafe_hash=True)
class KallsymsSymbol24:
    section: str
    address: int
    name: str


def parse(data: bytes) -> tuple[list[tuple[str, int, int, int]], list[KallsymsSymbol24]]:
    """Read a __kallsyms section back: sections (name, start, size, flags) and symbols, through
    the header's offsets and entry sizes as a kernel-side reader must."""
    if len(data) < HEADER.size:
        raise InvalidModule(f"{SECTION}: {len(data)} bytes, shorter than its header")
    size, _total, nsec, sec_off, sec_size, nsym, sym_off, sym_size, str_off, _s, _e = HEADER.unpack_from(data)
    if size < HEADER.size or sec_size < SECTION_ENTRY.size or sym_size < SYMBOL_ENTRY.size:
        raise InvalidModule(f"{SECTION}: header or entry sizes smaller than modutils' ({size})")

    def string(off: int) -> str:
        at = str_off + off
        return data[at : data.index(b"\0", at)].decode("utf-8", "surrogateescape")

    sections = []
    by_off: dict[int, str] = {}
    for k in range(nsec):
        start, ssize, name_off, flags = SECTION_ENTRY.unpack_from(data, sec_off + k * sec_size)
        by_off[k * sec_size] = string(name_off)
        sections.append((string(name_off), start, ssize, flags))
    symbols = []
    for k in range(nsym):
        so, addr, name_off = SYMBOL_ENTRY.unpack_from(data, sym_off + k * sym_size)
        symbols.append(KallsymsSymbol24(by_off.get(so, "?"), addr, string(name_off)))
    return sections, symbols

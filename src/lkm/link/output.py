"""Writing a LinkedImage: an ELF executable that objdump, gdb and Ghidra open directly (every
allocated section at its final address, one PT_LOAD per region, the full symbol table with
imports as absolute symbols), and the raw memory of each region.  Files are written whole:
a temporary file renamed into place, or nothing."""

from __future__ import annotations

import struct

from lkm.elf.constants import (
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    ELFMAG,
    ET_EXEC,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHN_UNDEF,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_LOCAL,
)
from lkm.link.image import LinkedImage
from lkm.module.file import ModuleFile
from lkm.safeio import write_file

__all__ = ["PT_LOAD", "linked_elf", "region_blobs", "write_atomic"]

PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole, or not at all (:func:`lkm.safeio.write_file`)."""
    write_file(path, data)


def region_blobs(image: LinkedImage) -> dict[str, bytes]:
    """Each region's memory, as the kernel (or 2.4's init_module) receives it."""
    return {r: bytes(b) for r, b in image.regions.items() if len(b)}


def linked_elf(mod: ModuleFile, image: LinkedImage) -> bytes:
    """The linked module as an ELF executable of the module's class, byte order and machine."""
    elf = mod.elf
    is64 = elf.elfclass == 64
    e = "<" if elf.little_endian else ">"
    ehdr = struct.Struct(e + ("16sHHIQQQIHHHHHH" if is64 else "16sHHIIIIIHHHHHH"))
    phdr = struct.Struct(e + ("IIQQQQQQ" if is64 else "IIIIIIII"))
    shdr = struct.Struct(e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII"))
    sym = struct.Struct(e + ("IBBHQQ" if is64 else "IIIBBH"))
    word_mask = (1 << (64 if is64 else 32)) - 1

    shstr = bytearray(b"\0")

    def name_off(name: str) -> int:
        off = len(shstr)
        shstr.extend(name.encode("utf-8", "surrogateescape") + b"\0")
        return off

    placed = sorted(image.layout.placements.items(), key=lambda kv: image.section_addresses[kv[0]])
    placed = [
        (n, p) for n, p in placed if elf.sections[n].type != SHT_SYMTAB and elf.sections[n].name != ".strtab"
    ]
    regions = sorted((r for r in image.regions if len(image.regions[r])), key=lambda r: image.bases[r])
    n_ph = len(regions)
    ehsize, phsize = ehdr.size, phdr.size
    offset = ehsize + n_ph * phsize
    page = image.layout.page_size
    body, region_off = _region_contents(image, regions, offset)
    # Sections: index map old -> new.
    new_index: dict[int, int] = {}
    sections: list[tuple[int, int, int, int, int, int, int, int, int, int]] = [(0,) * 10]
    for n, p in placed:
        s = elf.sections[n]
        new_index[n] = len(sections)
        flags = p.flags & (SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR)
        file_off = region_off[p.region] + p.offset if p.region in region_off else 0
        sections.append(
            (
                name_off(s.name),
                s.type,
                flags,
                image.section_addresses[n] & word_mask,
                file_off,
                s.size,
                0,
                0,
                s.addralign,
                0,
            )
        )
    symdata, strtab, n_locals = _symbol_table(mod, image, new_index, sym, word_mask)
    tail = bytearray()
    tail_base = offset + len(body)
    symtab_off = tail_base
    tail.extend(symdata)
    strtab_off = tail_base + len(tail)
    tail.extend(strtab)
    symtab_index = len(sections)
    sections.append(
        (name_off(".symtab"), SHT_SYMTAB, 0, 0, symtab_off, len(symdata), symtab_index + 1, 1 + n_locals,
         8 if is64 else 4, sym.size)
    )  # fmt: skip
    sections.append((name_off(".strtab"), SHT_STRTAB, 0, 0, strtab_off, len(strtab), 0, 0, 1, 0))
    shstrndx = len(sections)
    name_off(".shstrtab")
    shstr_off = tail_base + len(tail)
    sections.append((shstr.index(b".shstrtab\0"), SHT_STRTAB, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0))
    tail.extend(shstr)
    while (tail_base + len(tail)) % 8:
        tail.append(0)
    shoff = tail_base + len(tail)
    ident = ELFMAG + bytes(
        [ELFCLASS64 if is64 else ELFCLASS32, ELFDATA2LSB if elf.little_endian else ELFDATA2MSB, 1]
    ) + bytes(9)  # fmt: skip
    out = bytearray(
        ehdr.pack(
            ident,
            ET_EXEC,
            elf.e_machine,
            1,
            0,
            ehsize if n_ph else 0,
            shoff,
            0,
            ehsize,
            phsize,
            n_ph,
            shdr.size,
            len(sections),
            shstrndx,
        )
    )
    for r in regions:
        flags = _region_flags(image, r)
        size = len(image.regions[r])
        filesz = size
        if is64:
            out.extend(
                phdr.pack(PT_LOAD, flags, region_off[r], image.bases[r], image.bases[r], filesz, size, page)
            )
        else:
            out.extend(
                phdr.pack(PT_LOAD, region_off[r], image.bases[r], image.bases[r], filesz, size, flags, page)
            )
    out.extend(body)
    out.extend(tail)
    for fields in sections:
        out.extend(shdr.pack(*fields))
    return bytes(out)


def _region_contents(image: LinkedImage, regions: list[str], offset: int) -> tuple[bytearray, dict[str, int]]:
    """Region contents laid out page-aligned in the file from ``offset`` (file offset == vaddr
    mod page, as PT_LOAD wants), and each region's file offset."""
    page = image.layout.page_size
    region_off: dict[str, int] = {}
    body = bytearray()
    for r in regions:
        base = image.bases[r]
        pad = (base - (offset + len(body))) % page
        body.extend(bytes(pad))
        region_off[r] = offset + len(body)
        body.extend(image.regions[r])
    return body, region_off


def _symbol_table(
    mod: ModuleFile, image: LinkedImage, new_index: dict[int, int], sym: struct.Struct, word_mask: int
) -> tuple[bytes, bytearray, int]:
    """The linked ELF's symbol table (locals first), its strings and the number of locals:
    every symbol at its final value; imports become absolute."""
    is64 = mod.elf.elfclass == 64
    strtab = bytearray(b"\0")
    locals_: list[bytes] = []
    globals_: list[bytes] = []
    values = image.symbol_values
    for y in mod.elf.symbols()[1:]:
        if y.size > word_mask:
            continue  # cannot be written in this class (only a hostile header says so)
        if y.shndx == SHN_UNDEF:
            shndx = SHN_ABS if y.name in image.resolved else SHN_UNDEF
        elif y.shndx in new_index:
            shndx = new_index[y.shndx]
        elif y.shndx >= 0xFF00:
            shndx = y.shndx
        else:
            shndx = SHN_ABS  # in a section the kernel does not load
        noff = 0
        if y.name:
            noff = len(strtab)
            strtab.extend(y.name.encode("utf-8", "surrogateescape") + b"\0")
        v = values[y.number] & word_mask  # a hostile st_value wraps as a linker's arithmetic does
        packed = (
            sym.pack(noff, y.info, y.other, shndx, v, y.size)
            if is64
            else sym.pack(noff, v, y.size, y.info, y.other, shndx)
        )
        (locals_ if y.bind == STB_LOCAL else globals_).append(packed)
    return bytes(sym.size) + b"".join(locals_) + b"".join(globals_), strtab, len(locals_)


def _region_flags(image: LinkedImage, region: str) -> int:
    flags = PF_R
    for p in image.layout.placements.values():
        if p.region == region:
            if p.flags & SHF_EXECINSTR:
                flags |= PF_X
            if p.flags & SHF_WRITE:
                flags |= PF_W
    return flags

"""An ELF file of a kernel image's recovered symbols, for gdb and other disassemblers
(``lkm kallsyms --from-image IMAGE --elf OUT``), as vmlinux-to-elf makes one.

The file is an ``ET_EXEC`` of the image's architecture (x86_64, i386: ELF64/ELF32 as the
vmlinux inside a bzImage; arm64: ELF64 ``EM_AARCH64``), little-endian:

- the kernel's memory as sections at their link-time addresses (those of a ``nokaslr`` boot,
  the addresses kallsyms gives): for an x86 image, the allocated sections of the ELF vmlinux
  it carries, with their names, flags and bytes (``SHT_NOBITS`` ones such as ``.bss`` without
  bytes); for a raw arm64 ``Image``, the file as one ``.text`` section at ``_text`` (the
  image's first byte) and, up to ``_end``, a ``.bss``; one ``PT_LOAD`` per section;
- ``.symtab``/``.strtab``: every recovered symbol.  Its type and binding come from the
  kallsyms letter as ``nm`` prints them (``t``/``T`` code: ``STT_FUNC``; ``d b r`` and their
  upper cases, ``a``/``A`` absolute: ``STT_OBJECT``; lower case: ``STB_LOCAL``, upper case:
  ``STB_GLOBAL``, ``w``/``W``/``v``/``V``: ``STB_WEAK``); its size is the distance to the next
  higher symbol address, not past the end of its section; it lies in the section holding its
  address, else is ``SHN_ABS`` with size 0 (per-cpu offsets outside every section).  Exports kallsyms
  does not list (data of a kernel without CONFIG_KALLSYMS_ALL) are global objects.  Local
  symbols come first, as the ELF specification requires (``sh_info``: the first global).

Nothing here is read back by lkm: the test is gdb's answers (``info symbol``, ``info
address``) and binutils' ``readelf``.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from lkm.elf.constants import (
    EM_386,
    EM_AARCH64,
    EM_X86_64,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    STT_OBJECT,
)
from lkm.elf.file import ElfFile
from lkm.errors import LkmError
from lkm.symbols.ksymtab import raw_image_exports
from lkm.symbols.sources import raw_load_address
from lkm.symbols.symbol import KernelSymbol

ET_EXEC = 2
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4

_MACHINES = {"x86_64": (EM_X86_64, 64), "i386": (EM_386, 32), "arm64": (EM_AARCH64, 64)}
_SPELLINGS = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64", "i686": "i386", "x86": "i386"}


@dataclass(slots=True, unsafe_hash=True)
class ImageSection:
    """One section of the kernel's memory: name, address, size, flags (``SHF_*``), alignment
    and bytes (None: ``SHT_NOBITS``)."""

    name: str
    addr: int
    size: int
    flags: int
    align: int
    data: bytes | memoryview | None


def image_sections(kernel: bytes, symbols: Sequence[KernelSymbol]) -> list[ImageSection]:
    """The memory of a decompressed kernel (:func:`lkm.symbols.image.decompress_kernel_image`):
    an ELF vmlinux's allocated sections, or a raw Image placed at its ``_text``."""
    if kernel[:4] == b"\x7fELF":
        elf = ElfFile(kernel)
        out = []
        for s in elf.sections:
            if not s.flags & SHF_ALLOC or s.size == 0:
                continue
            data = None if s.type == SHT_NOBITS else elf.section_bytes(s)
            out.append(ImageSection(s.name, s.addr, s.size, s.flags, max(1, s.addralign), data))
        return out
    where = {s.name: s.address for s in symbols if s.type is not None and s.address is not None}
    text = where.get("_text")
    if text is None:  # arm64's kallsyms starts at _stext: place the image by its exports
        text = raw_load_address(raw_image_exports(kernel), list(symbols))
    if text is None:
        raise LkmError("the raw image's load address is unknown (no _text, no exports kallsyms lists)")
    out = [ImageSection(".text", text, len(kernel), SHF_ALLOC | SHF_EXECINSTR | SHF_WRITE, 4096, kernel)]
    end = where.get("_end")
    if end is not None and end > text + len(kernel):
        out.append(
            ImageSection(".bss", text + len(kernel), end - text - len(kernel), SHF_ALLOC | SHF_WRITE, 8, None)
        )
    return out


def _kind(letter: str | None) -> tuple[int, int]:
    """(binding, type) of an nm/kallsyms letter (None: an export kallsyms does not list)."""
    if letter is None:
        return STB_GLOBAL, STT_OBJECT
    low = letter.lower()
    bind = STB_WEAK if low in "wv" else STB_GLOBAL if letter.isupper() else STB_LOCAL
    if low in "tw":
        return bind, STT_FUNC
    if low in "dbrgsva":
        return bind, STT_OBJECT
    return bind, STT_NOTYPE


def _symbol_rows(
    secs: list[ImageSection], symbols: Sequence[KernelSymbol], bits: int
) -> tuple[list[tuple[int, int, int, int, int, int]], bytearray]:
    """The symbol table's rows (name offset, value, size, info, section index, binding), locals
    first, each in kallsyms order, and their string table: each symbol sized to the next higher
    address, within its section (``secs``, sorted by address)."""
    starts = [s.addr for s in secs]
    syms = [s for s in symbols if s.address is not None and s.name]
    addrs = sorted({s.address for s in syms if s.address is not None})
    rows: list[tuple[int, int, int, int, int, int]] = []
    strtab = bytearray(b"\0")
    names: dict[str, int] = {}
    mask = (1 << bits) - 1
    for s in syms:
        a = s.address or 0
        bind, typ = _kind(s.type)
        i = bisect.bisect_right(starts, a) - 1
        sec = secs[i] if i >= 0 and a < secs[i].addr + secs[i].size else None
        nxt = bisect.bisect_right(addrs, a)
        limit = sec.addr + sec.size if sec is not None else None
        size = 0
        if nxt < len(addrs):
            size = addrs[nxt] - a
        if limit is not None and (size == 0 or a + size > limit):
            size = limit - a
        shndx = (i + 1) if sec is not None and s.type not in ("a", "A") else SHN_ABS
        if shndx == SHN_ABS:
            size = 0  # a per-cpu offset or a value, not memory
        off = names.get(s.name)
        if off is None:
            off = names[s.name] = len(strtab)
            strtab += s.name.encode("utf-8", "surrogateescape") + b"\0"
        rows.append((off, a & mask, size, (bind << 4) | typ, shndx, bind))
    rows.sort(key=lambda r: r[5] != STB_LOCAL)  # stable: locals first, each in kallsyms order
    return rows, strtab


def kernel_elf(arch: str, sections: Sequence[ImageSection], symbols: Sequence[KernelSymbol]) -> bytes:
    """The ELF file (see the module's description) of *sections* and *symbols*."""
    arch = _SPELLINGS.get(arch.lower(), arch.lower())
    if arch not in _MACHINES:
        raise LkmError(f"no ELF machine for architecture {arch!r} (x86_64, i386, arm64)")
    machine, bits = _MACHINES[arch]
    is64 = bits == 64
    ehsize, phentsize, shentsize, symentsize = (64, 56, 64, 24) if is64 else (52, 32, 40, 16)
    secs = sorted(sections, key=lambda s: s.addr)

    rows, strtab = _symbol_rows(secs, symbols, bits)
    first_global = 1 + sum(1 for r in rows if r[5] == STB_LOCAL)

    shstr = bytearray(b"\0")

    def shname(n: str) -> int:
        off = len(shstr)
        shstr.extend(n.encode() + b"\0")
        return off

    phnum = len(secs)
    out = bytearray(ehsize + phentsize * phnum)
    headers: list[tuple[int, int, int, int, int, int, int, int, int, int]] = [(0,) * 10]
    phdrs = []
    for sec in secs:
        nobits = sec.data is None
        if not nobits:
            # File offset and address congruent modulo the page size, as PT_LOAD wants.
            pad = (sec.addr - len(out)) % 4096
            out += b"\0" * pad
        offset = len(out)
        if not nobits:
            assert sec.data is not None
            out += bytes(sec.data[: sec.size])
        typ = SHT_NOBITS if nobits else SHT_PROGBITS
        headers.append((shname(sec.name), typ, sec.flags, sec.addr, offset, sec.size, 0, 0, sec.align, 0))
        flags = PF_R | (PF_W if sec.flags & SHF_WRITE else 0) | (PF_X if sec.flags & SHF_EXECINSTR else 0)
        phdrs.append(
            (
                PT_LOAD,
                flags,
                offset,
                sec.addr,
                0 if nobits else sec.size,
                sec.size,
                4096 if not nobits else sec.align,
            )
        )

    def align_out(n: int) -> None:
        out.extend(b"\0" * ((-len(out)) % n))

    align_out(8)
    symtab_off = len(out)
    sym_fmt = "<IBBHQQ" if is64 else "<IIIBBH"
    out += b"\0" * symentsize
    for name_off, value, size, info, shndx, _bind in rows:
        if is64:
            out += struct.pack(sym_fmt, name_off, info, 0, shndx, value, size)
        else:
            out += struct.pack(sym_fmt, name_off, value, size & 0xFFFFFFFF, info, 0, shndx)
    symtab_size = len(out) - symtab_off
    strtab_off = len(out)
    out += strtab
    symtab_index = len(headers)
    headers.append(
        (
            shname(".symtab"),
            SHT_SYMTAB,
            0,
            0,
            symtab_off,
            symtab_size,
            symtab_index + 1,
            first_global,
            8,
            symentsize,
        )
    )
    headers.append((shname(".strtab"), SHT_STRTAB, 0, 0, strtab_off, len(strtab), 0, 0, 1, 0))
    shstr_index = len(headers)
    name_off = shname(".shstrtab")
    shstr_off = len(out)
    out += shstr
    headers.append((name_off, SHT_STRTAB, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0))
    align_out(8)
    shoff = len(out)
    sh_fmt = "<IIQQQQIIQQ" if is64 else "<IIIIIIIIII"
    for h in headers:
        out += struct.pack(sh_fmt, *h)

    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1, 0]) + b"\0" * 8
    entry = secs[0].addr if secs else 0
    if is64:
        eh = struct.pack("<16sHHIQQQIHHHHHH", ident, ET_EXEC, machine, 1, entry, ehsize, shoff, 0,
                         ehsize, phentsize, phnum, shentsize, len(headers), shstr_index)  # fmt: skip
    else:
        eh = struct.pack("<16sHHIIIIIHHHHHH", ident, ET_EXEC, machine, 1, entry, ehsize, shoff, 0,
                         ehsize, phentsize, phnum, shentsize, len(headers), shstr_index)  # fmt: skip
    out[:ehsize] = eh
    ph_fmt = "<IIQQQQQQ" if is64 else "<IIIIIIII"
    for k, (ptype, pflags, poff, vaddr, filesz, memsz, palign) in enumerate(phdrs):
        at = ehsize + k * phentsize
        if is64:
            out[at : at + phentsize] = struct.pack(
                ph_fmt, ptype, pflags, poff, vaddr, vaddr, filesz, memsz, palign
            )
        else:
            out[at : at + phentsize] = struct.pack(
                ph_fmt, ptype, poff, vaddr, vaddr, filesz, memsz, pflags, palign
            )
    return bytes(out)


__all__ = ["ImageSection", "image_sections", "kernel_elf"]

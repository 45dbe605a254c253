"""Exports of a linked kernel (vmlinux, ET_EXEC or ET_DYN), read from its own export tables.

``__ksymtab`` and ``__ksymtab_gpl`` hold ``struct kernel_symbol`` entries, sorted by name:

* PREL32 (x86, arm64 and others with CONFIG_HAVE_ARCH_PREL32_RELOCATIONS): ``{ int value_offset;
  int name_offset; int namespace_offset; }``, each field's target = the field's address + its
  value (namespace_offset 0: none); before 5.4 without the namespace field (8 bytes);
* otherwise absolute pointers ``{ unsigned long value; const char *name; const char *namespace; }``
  (before 5.4, and 2.4/2.6: ``{ value, name }``).

Names and namespaces are read at their virtual addresses (normally in ``__ksymtab_strings``;
2.4: ``.kstrtab``), through the section headers' sh_addr/sh_offset.  The layout is the one
under which every name lands in the string section, tried PREL32 first on x86/arm64.  CRCs
come from ``__kcrctab``/``__kcrctab_gpl``, arrays parallel to the tables (u32 since 4.10, an
unsigned long before).  In a 2.4 kernel, GPL-only exports are the names prefixed ``GPLONLY_``
and versioned names carry ``_R<crc>``: both are decoded as /proc/ksyms is
(:func:`lkm.symbols.sources.parse_ksyms`).

Limits: ``__ksymtab_unused*`` and ``__ksymtab_gpl_future`` (2.6.17 to 5.x) are not read, nor
CONFIG_MODULE_REL_CRCS' relative CRC entries (ppc64, 4.10 to 5.18).
"""

from __future__ import annotations

import struct
from bisect import bisect_right

from lkm.elf import ElfFile, Section
from lkm.elf.constants import EM_386, EM_486, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, SHT_NOBITS
from lkm.errors import LkmError
from lkm.symbols.symbol import GPLONLY_PREFIX, KernelSymbol, split_versioned_name, version_prefix

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from mmap import mmap

__all__ = ["PREL32_FIRST", "SHF_ALLOC", "STRING_SECTIONS", "TABLES", "parse_vmlinux", "vmlinux_exports"]

SHF_ALLOC = 0x2
TABLES = (("__ksymtab", False, "__kcrctab"), ("__ksymtab_gpl", True, "__kcrctab_gpl"))
STRING_SECTIONS = ("__ksymtab_strings", ".kstrtab")
PREL32_FIRST = frozenset({EM_X86_64, EM_386, EM_486, EM_AARCH64})


class _Memory:
    """The file's allocated sections by virtual address."""

    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        secs = sorted(
            (s for s in elf.sections if s.number and s.flags & SHF_ALLOC and s.type != SHT_NOBITS and s.size),
            key=lambda s: s.addr,
        )
        for s in secs:
            elf.check_bounds(s)
        self.starts = [s.addr for s in secs]
        self.secs = secs

    def section_at(self, addr: int) -> Section | None:
        i = bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        s = self.secs[i]
        return s if addr < s.addr + s.size else None

    def string(self, addr: int, within: Section | None = None) -> str | None:
        """The NUL-terminated string at ``addr`` (None if no section holds it)."""
        s = within if within is not None and within.addr <= addr < within.addr + within.size else None
        if s is None:
            s = self.section_at(addr)
            if s is None:
                return None
        data = self.elf.data
        start, end = s.offset + addr - s.addr, s.offset + s.size
        nul = data.find(b"\0", start, end)
        return bytes(data[start : nul if nul >= 0 else end]).decode("utf-8", "surrogateescape")


class _Layout:
    __slots__ = ("entsize", "fields", "prel", "width")

    def __init__(self, prel: bool, fields: int, width: int) -> None:
        self.prel, self.fields, self.width = prel, fields, width
        self.entsize = fields * width

    def __repr__(self) -> str:
        return f"{'PREL32' if self.prel else 'absolute'} {self.fields}x{self.width}"


def _targets(elf: ElfFile, sec: Section, lay: _Layout) -> list[tuple[int, ...]]:
    """Per entry, the addresses its fields point at (0 for a null field)."""
    n = sec.size // lay.entsize
    order = "<" if elf.little_endian else ">"
    mask = (1 << (8 * elf.word_size)) - 1
    if lay.prel:
        raw = struct.unpack_from(f"{order}{n * lay.fields}i", elf.data, sec.offset)
        base = sec.addr
        out = []
        for i in range(n):
            at = base + i * lay.entsize
            f = raw[i * lay.fields : (i + 1) * lay.fields]
            out.append(tuple((at + 4 * j + v) & mask if v else 0 for j, v in enumerate(f)))
        return out
    code = "Q" if lay.width == 8 else "I"
    raw = struct.unpack_from(f"{order}{n * lay.fields}{code}", elf.data, sec.offset)
    return [raw[i * lay.fields : (i + 1) * lay.fields] for i in range(n)]


def _fit(
    elf: ElfFile, mem: _Memory, tabs: list[Section], lay: _Layout, strings: list[Section]
) -> list[list[tuple[int, ...]]] | None:
    """Each table's field targets under ``lay``, or None unless every entry's name (and
    namespace, if not null) points into a string section."""

    def inside(addr: int) -> bool:
        if strings:
            return any(s.addr <= addr < s.addr + s.size for s in strings)
        return mem.section_at(addr) is not None

    out = []
    for sec in tabs:
        if sec.size % lay.entsize:
            return None
        targets = _targets(elf, sec, lay)
        for t in targets:
            if not inside(t[1]) or (lay.fields == 3 and t[2] and not inside(t[2])):
                return None
        out.append(targets)
    return out


def _layout(
    elf: ElfFile, mem: _Memory, tabs: list[Section], strings: list[Section]
) -> tuple[_Layout, list[list[tuple[int, ...]]]]:
    w = elf.word_size
    prel = [_Layout(True, 3, 4), _Layout(True, 2, 4)]
    absolute = [_Layout(False, 3, w), _Layout(False, 2, w)]
    for lay in prel + absolute if elf.e_machine in PREL32_FIRST else absolute + prel:
        targets = _fit(elf, mem, tabs, lay, strings)
        if targets is not None:
            return lay, targets
    where = " or ".join(s.name for s in strings) or "an allocated section"
    raise LkmError(
        f"cannot decode {tabs[0].name}: under no struct kernel_symbol layout do the names land in {where}",
        path=elf.path,
    )


def _crcs(elf: ElfFile, sec: Section | None, n: int) -> list[int] | None:
    if sec is None or sec.type == SHT_NOBITS or n == 0:
        return None
    elf.check_bounds(sec)
    order = "<" if elf.little_endian else ">"
    if sec.size == 4 * n:
        return list(struct.unpack_from(f"{order}{n}I", elf.data, sec.offset))
    if sec.size == 8 * n and elf.word_size == 8:
        return [v & 0xFFFFFFFF for v in struct.unpack_from(f"{order}{n}Q", elf.data, sec.offset)]
    raise LkmError(
        f"{sec.name} holds {sec.size} bytes for {n} exports (expected {4 * n} or {elf.word_size * n})",
        path=elf.path,
    )


def vmlinux_exports(elf: ElfFile) -> list[KernelSymbol]:
    """The exports of a linked kernel, in table order: __ksymtab, then __ksymtab_gpl."""
    if elf.e_type not in (ET_EXEC, ET_DYN):
        raise LkmError(
            f"ELF type {elf.e_type} is not a linked kernel (ET_EXEC or ET_DYN); "
            "a module's exports are read by lkm.module",
            path=elf.path,
        )
    found = []
    for name, gpl, crc_name in TABLES:
        sec = elf.section(name)
        if sec is not None and sec.type != SHT_NOBITS and sec.size:
            elf.check_bounds(sec)
            found.append((sec, gpl, elf.section(crc_name)))
    if not found:
        return []
    mem = _Memory(elf)
    strings = [s for s in (elf.section(n) for n in STRING_SECTIONS) if s is not None and s.type != SHT_NOBITS]
    lay, per_table = _layout(elf, mem, [f[0] for f in found], strings)
    out: list[KernelSymbol] = []
    for (sec, gpl, crc_sec), targets in zip(found, per_table, strict=True):
        crcs = _crcs(elf, crc_sec, len(targets))
        string = mem.string
        for i, t in enumerate(targets):
            nm = string(t[1], strings[0] if strings else None)
            if not nm:
                raise LkmError(f"{sec.name} entry {i}: empty symbol name", path=elf.path)
            ns = string(t[2]) if lay.fields == 3 and t[2] else None
            crc = crcs[i] if crcs is not None else None
            out.append(KernelSymbol(nm, t[0], None, None, True, gpl, crc, ns or None))
    if lay.fields == 2 and not any(f[2] for f in found):
        out = _decode_24_names(out)
    return out


def _decode_24_names(syms: list[KernelSymbol]) -> list[KernelSymbol]:
    """2.4 names: ``GPLONLY_`` into gpl_only; a ``_R`` version suffix into crc, but only when a
    well-known symbol shows the kernel's names are versioned (so that no modern name that
    happens to end in _R and 8 hex digits is cut)."""

    bare = [s.name[len(GPLONLY_PREFIX) :] if s.name.startswith(GPLONLY_PREFIX) else s.name for s in syms]
    prefix = version_prefix(bare)
    if prefix is None and not any(s.name.startswith(GPLONLY_PREFIX) for s in syms):
        return syms
    out = []
    for s, name in zip(syms, bare, strict=True):
        crc = None
        if prefix is not None:
            name, crc = split_versioned_name(name, prefix)
        gpl = s.gpl_only or s.name.startswith(GPLONLY_PREFIX)
        out.append(KernelSymbol(name, s.address, None, None, True, gpl, crc, None))
    return out


def parse_vmlinux(
    data: bytes | bytearray | mmap | memoryview, *, path: str | None = None
) -> list[KernelSymbol]:
    """The exports of a vmlinux image (an ELF file's bytes)."""
    return vmlinux_exports(ElfFile(data, path=path))

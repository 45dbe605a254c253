"""A module's exports and modversions as libkmod lists them (modprobe --show-exports and
--show-modversions): exports from the ``__crc_<name>`` symbols in symbol-table order (the
CRC is the symbol's value when absolute, else the u32 it points at), or, without any, the
names in ``__ksymtab_strings`` with CRC 0."""

from __future__ import annotations

import errno

from lkm.elf.constants import SHN_ABS, SHN_UNDEF
from lkm.errors import InvalidModule
from lkm.module.file import ModuleFile

CRC_PREFIX = "__crc_"


def kmod_exports(mod: ModuleFile) -> list[tuple[str, int]]:
    elf = mod.elf
    out: list[tuple[str, int]] = []
    for sym in elf.symbols():
        if not sym.name.startswith(CRC_PREFIX):
            continue
        crc = sym.value
        if sym.shndx not in (SHN_ABS, SHN_UNDEF):
            where = elf.section_at(sym.shndx)
            crc = elf.u32(where.offset + sym.value) if sym.value + 4 <= where.size else 0xFFFFFFFFFFFFFFFF
        out.append((sym.name[len(CRC_PREFIX) :], crc))
    if out:
        return out
    strings = elf.section("__ksymtab_strings")
    if strings is None:
        raise InvalidModule("no exported symbols", errno.ENOENT, path=mod.path)
    names = elf.section_bytes(strings).split(b"\0")
    return [(n.decode("utf-8", "surrogateescape"), 0) for n in names if n]


def kmod_modversions(mod: ModuleFile) -> list[tuple[str, int]]:
    """``__versions`` entries; a module without the section has none to give (ENOENT)."""
    if mod.elf.section("__versions") is None:
        raise InvalidModule("no __versions section", errno.ENOENT, path=mod.path)
    return mod.versions

"""A module's exports and modversions as libkmod lists them (depmod's symbol table, modprobe
--show-exports and --show-modversions): exports from the ``__crc_<name>`` symbols in
symbol-table order (the CRC is the symbol's value when absolute, else the u32 it points at),
or, without any, every string in ``__ksymtab_strings`` with CRC 0 (namespace names too, as
libkmod takes them)."""

from __future__ import annotations

import errno

from lkm.elf.constants import SHN_ABS, SHN_UNDEF
from lkm.errors import InvalidModule
from lkm.module.file import ModuleFile

__all__ = ["CRC_PREFIX", "kmod_export_names", "kmod_exports", "kmod_modversions"]


CRC_PREFIX = "__crc_"


def kmod_exports(mod: ModuleFile) -> list[tuple[str, int]]:
    """(name, crc) of every export; InvalidModule(ENOENT) when there is nothing to list."""
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


def kmod_export_names(mod: ModuleFile) -> list[str]:
    """The names :func:`kmod_exports` gives, found fast: the ``__crc_`` strings of .strtab
    (every such string names a symbol), in string-table order; depmod needs no CRCs."""
    elf = mod.elf
    strtab = elf.section(".strtab")
    if strtab is not None:
        data = elf.section_bytes(strtab)
        names: list[str] = []
        i = data.find(b"\0__crc_")
        while i >= 0:
            j = data.find(b"\0", i + 7)
            if j < 0:
                j = len(data)
            names.append(data[i + 7 : j].decode("utf-8", "surrogateescape"))
            i = data.find(b"\0__crc_", j)
        if names:
            return names
    strings = elf.section("__ksymtab_strings")
    if strings is None:
        return []
    return [n.decode("utf-8", "surrogateescape") for n in elf.section_bytes(strings).split(b"\0") if n]


def kmod_modversions(mod: ModuleFile) -> list[tuple[str, int]]:
    """``__versions`` entries; a module without the section has none to give (ENOENT)."""
    if mod.elf.section("__versions") is None:
        raise InvalidModule("no __versions section", errno.ENOENT, path=mod.path)
    return mod.versions

"""Linking a laid-out module: copy sections into their regions, give every symbol its final
value (the kernel's simplify_symbols), apply every relocation (apply_relocations), and return
the memory image as a :class:`LinkedImage`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from lkm.elf.constants import (
    SHN_ABS,
    SHN_COMMON,
    SHN_LIVEPATCH,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    STB_WEAK,
)

__all__ = ["LinkError", "LinkedImage", "link_module"]
from lkm.arch import for_machine
from lkm.errors import LinkError
from lkm.link.layout import Layout
from lkm.module.file import ModuleFile


@dataclass(slots=True, unsafe_hash=True)
class LinkedImage:
    """The linked module: each region's bytes, each placed section's address and every
    symbol's final value (index-aligned with the module's symbol table)."""

    name: str
    layout: Layout
    bases: dict[str, int]
    regions: dict[str, bytearray]
    section_addresses: dict[int, int]
    symbol_values: list[int]
    relocations: int
    resolved: dict[str, int] = field(
        default_factory=dict
    )  # undefined symbol -> the address it was resolved to

    def section_bytes(self, number: int) -> bytes:
        p = self.layout.placements[number]
        return bytes(self.regions[p.region][p.offset : p.offset + p.size])


def link_module(
    mod: ModuleFile,
    layout: Layout,
    bases: dict[str, int],
    resolve: Callable[[str], int | None],
    *,
    percpu_base: int = 0,
) -> LinkedImage:
    """Link ``mod`` laid out as ``layout`` at region ``bases``; ``resolve`` gives the address of
    an undefined symbol (None: not found).  Raises :class:`LinkError` as the kernel refuses."""
    elf = mod.elf
    name = mod.name
    arch = for_machine(elf.e_machine)
    if arch is None:
        raise LinkError(f"{name}: no relocation rules for machine {elf.e_machine}", path=mod.path)
    missing = [r for r in {p.region for p in layout.placements.values()} if r not in bases]
    if missing:
        raise ValueError(f"no base address for region(s) {', '.join(sorted(missing))}")
    top = 1 << (64 if elf.elfclass == 64 else 32)
    for r, size in layout.sizes.items():
        if r in bases and not 0 <= bases[r] <= top - size:
            raise LinkError(
                f"{name}: region {r} at {bases[r]:#x} (+{size:#x}) does not fit the address space",
                errno.EINVAL,
                path=mod.path,
            )
    regions = {r: bytearray(size) for r, size in layout.sizes.items()}
    addresses: dict[int, int] = {}
    for n, p in layout.placements.items():
        addresses[n] = bases[p.region] + p.offset
        sec = elf.sections[n]
        if sec.type != SHT_NOBITS and n not in layout.nobits and sec.size:
            regions[p.region][p.offset : p.offset + sec.size] = elf.section_bytes(sec)
    resolved: dict[str, int] = {}

    def record(sym: str) -> int | None:
        v = resolve(sym)
        if v is not None:
            resolved[sym] = v
        return v

    values = _simplify_symbols(mod, addresses, record, percpu_base)
    plts: dict[int, int] = {}  # arm64: PLT section -> entries emitted
    count = 0
    for rs in elf.sections:
        if rs.type not in (SHT_REL, SHT_RELA) or rs.info >= elf.e_shnum or rs.info not in layout.placements:
            continue
        count += arch.apply_relocations(mod, rs.number, layout, regions, addresses, values, plts)
    return LinkedImage(name, layout, bases, regions, addresses, values, count, resolved)


def _simplify_symbols(
    mod: ModuleFile, addresses: dict[int, int], resolve: Callable[[str], int | None], percpu_base: int
) -> list[int]:
    elf = mod.elf
    percpu = elf.section(".data..percpu")
    pcpu = percpu.number if percpu is not None else -1
    values = [0]
    errors: list[str] = []
    for s in elf.symbols()[1:]:
        v = s.value
        if s.shndx == SHN_COMMON:
            if not s.name.startswith("__gnu_lto"):
                errors.append("please compile with -fno-common")
        elif s.shndx in (SHN_ABS, SHN_LIVEPATCH):
            pass
        elif s.shndx == SHN_UNDEF:
            found = resolve(s.name) if s.name else None
            if found is not None:
                v = found
            elif not (s.bind == STB_WEAK or s.name == "_GLOBAL_OFFSET_TABLE_"):
                errors.append(f"Unknown symbol {s.name} (err {-errno.ENOENT})")
        elif s.shndx == pcpu:
            v += percpu_base
        elif s.shndx in addresses:
            v += addresses[s.shndx]
        values.append(v)
    if errors:
        # The kernel reports each one and fails the load with the last error.
        code = errno.ENOEXEC if "fno-common" in errors[-1] else errno.ENOENT
        raise LinkError(
            f"{mod.name}: " + "; ".join(errors),
            code,
            path=mod.path,
            printk=tuple(f"{mod.name}: {e}" for e in errors),  # pr_warn("%s: ...", mod->name)
        )
    return values

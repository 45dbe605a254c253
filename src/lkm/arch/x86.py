"""x86 relocation, one table per architecture (x86_64, i386): what each type computes, how
wide it writes, and what the kernel checks (arch/x86/kernel/module.c apply_relocate_add /
apply_relocate), and the engine that applies a table (:func:`apply_relocate`, bound to each
architecture's record in :mod:`lkm.arch`); arm64 has its own table and engine
(:mod:`lkm.arch.arm64`).

A type is (name, width, pc-relative, range check).  ``val = S + A`` (RELA) or ``*loc + S`` (REL);
pc-relative types subtract P, the final address of the patched bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from lkm.elf import Section
from lkm.elf.constants import SHT_RELA
from lkm.errors import LinkError

if TYPE_CHECKING:
    from lkm.link.layout import Layout
    from lkm.module.file import ModuleFile

__all__ = [
    "ARCHES",
    "I386",
    "NONZERO_TARGET",
    "R_386_32",
    "R_386_PC32",
    "R_386_PLT32",
    "R_X86_64_32",
    "R_X86_64_32S",
    "R_X86_64_64",
    "R_X86_64_NONE",
    "R_X86_64_PC32",
    "R_X86_64_PC64",
    "R_X86_64_PLT32",
    "X86_64",
    "RelocArch",
    "RelocType",
    "apply_relocate",
]


R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24

R_386_32 = 1
R_386_PC32 = 2
R_386_PLT32 = 4


@dataclass(frozen=True, slots=True)
class RelocType:
    """``check``: "u32" (value must fit unsigned 32 bits), "s32" (signed), or "" (none).
    ``width`` 0 means the type does nothing (R_*_NONE)."""

    name: str
    width: int
    pcrel: bool
    check: str = ""


@dataclass(frozen=True, slots=True)
class RelocArch:
    """An architecture's relocation rules: its types, whether addends are in place (REL) and
    whether the kernel insists the target bytes are zero before writing (x86_64)."""

    name: str
    types: dict[int, RelocType]
    rela: bool
    zero_target: bool


X86_64 = RelocArch(
    "x86_64",
    {
        R_X86_64_NONE: RelocType("R_X86_64_NONE", 0, False),
        R_X86_64_64: RelocType("R_X86_64_64", 8, False),
        R_X86_64_32: RelocType("R_X86_64_32", 4, False, "u32"),
        R_X86_64_32S: RelocType("R_X86_64_32S", 4, False, "s32"),
        R_X86_64_PC32: RelocType("R_X86_64_PC32", 4, True),
        R_X86_64_PLT32: RelocType("R_X86_64_PLT32", 4, True),
        R_X86_64_PC64: RelocType("R_X86_64_PC64", 8, True),
    },
    rela=True,
    zero_target=True,
)

I386 = RelocArch(
    "i386",
    {
        R_386_32: RelocType("R_386_32", 4, False),
        R_386_PC32: RelocType("R_386_PC32", 4, True),
        R_386_PLT32: RelocType("R_386_PLT32", 4, True),
    },
    rela=False,
    zero_target=False,
)

ARCHES: dict[str, RelocArch] = {"x86_64": X86_64, "i386": I386}


_KINDS: dict[tuple[str, bool], dict[int, tuple[int, bool, str, Callable[..., None], int, bytes]]] = {}


def _kinds(
    arch: RelocArch, little: bool
) -> dict[int, tuple[int, bool, str, Callable[..., None], int, bytes]]:
    """type -> (width, pc-relative, check, pack_into, value mask, zero bytes), made once."""
    got = _KINDS.get((arch.name, little))
    if got is None:
        e = "<" if little else ">"
        got = _KINDS[(arch.name, little)] = {
            k: (t.width, t.pcrel, t.check, struct.Struct(e + ("Q" if t.width == 8 else "I")).pack_into,
                (1 << (8 * t.width)) - 1, bytes(t.width))
            for k, t in arch.types.items()
        }  # fmt: skip
    return got


def apply_relocate(
    arch: RelocArch,
    mod: ModuleFile,
    relsec: int,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    values: list[int],
    plts: dict[int, int] | None = None,
) -> int:
    """x86_64/i386 apply_relocate(_add) over one section: a tight loop over the raw entries;
    anything the kernel refuses is re-examined by :func:`_refuse` for its one-line reason.
    ``plts`` is arm64's (x86 modules need no PLT)."""
    elf = mod.elf
    rs = elf.sections[relsec]
    target = elf.sections[rs.info]
    place = layout.placements[rs.info]
    buf = regions[place.region]
    lay = elf.layout
    data = elf.section_data(rs)
    rela = rs.type == SHT_RELA
    st = lay.rela if rela else lay.rel
    rows = list(st.iter_unpack(data[: len(data) // st.size * st.size]))
    shift, mask = lay.r_sym_shift, lay.r_type_mask
    kinds = _kinds(arch, elf.little_endian)
    s32 = struct.Struct(("<" if elf.little_endian else ">") + "i").unpack_from
    nvals, size, base_off, base_addr = len(values), target.size, place.offset, addresses[rs.info]
    check_zero = arch.zero_target
    for row in rows:
        off, info = row[0], row[1]
        sym, rtype = info >> shift, info & mask
        kind = kinds.get(rtype)
        if kind is None or sym >= nvals:
            _refuse(mod, target, off, sym, rtype, "kind")
        width, pcrel, check, pack_into, wmask, zero = kind
        if not width:
            continue
        if off + width > size:
            _refuse(mod, target, off, sym, rtype, "end")
        loc = base_off + off
        val = values[sym] + (row[2] if rela else s32(buf, loc)[0])
        if pcrel:
            val -= base_addr + off
        val &= 0xFFFFFFFFFFFFFFFF
        if check and (val > 0xFFFFFFFF if check == "u32" else 0x7FFFFFFF < val < 0xFFFFFFFF80000000):
            _refuse(mod, target, off, sym, rtype, f"overflow in relocation type {rtype} val {val:x}")
        if check_zero and buf[loc : loc + width] != zero:
            _refuse(mod, target, off, sym, rtype, NONZERO_TARGET)
        pack_into(buf, loc, val & wmask)
    return len(rows)


NONZERO_TARGET = "Invalid relocation target, existing value is nonzero"


def _refuse(mod: ModuleFile, target: Section, off: int, sym: int, rtype: int, why: str) -> NoReturn:
    """Raise the LinkError for a relocation the kernel would refuse, naming module, section,
    offset and symbol."""
    where = f"{mod.name}: {target.name}+{off:#x}"
    if why == "kind":
        if sym >= len(mod.elf.symbols()):
            why = f"relocation symbol index {sym} out of range"
            raise LinkError(f"{where}: {why}", path=mod.path)
        why = f"Unknown relocation type {rtype}"
    elif why == "end":
        raise LinkError(f"{where}: relocation past the end of the section", path=mod.path)
    s = mod.elf.symbol(sym)
    name = s.name if s is not None and s.name else str(sym)
    raise LinkError(f"{where} ({name}): {why}", path=mod.path)

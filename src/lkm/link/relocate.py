"""Relocation, one table per architecture: what each type computes, how wide it writes, and
what the kernel checks (arch/x86/kernel/module.c apply_relocate_add / apply_relocate); the
linker (:mod:`lkm.link.image`) applies them, arm64 has its own table (:mod:`lkm.link.arm64`).

A type is (name, width, pc-relative, range check).  ``val = S + A`` (RELA) or ``*loc + S`` (REL);
pc-relative types subtract P, the final address of the patched bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from lkm.record import Record

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


class RelocType(Record):
    """``check``: "u32" (value must fit unsigned 32 bits), "s32" (signed), or "" (none).
    ``width`` 0 means the type does nothing (R_*_NONE)."""

    __slots__ = ("name", "width", "pcrel", "check")

    def __init__(self, name: str, width: int, pcrel: bool, check: str = "") -> None:
        self.name = name
        self.width = width
        self.pcrel = pcrel
        self.check = check


class RelocArch(Record):
    """An architecture's relocation rules: its types, whether addends are in place (REL) and
    whether the kernel insists the target bytes are zero before writing (x86_64)."""

    __slots__ = ("name", "types", "rela", "zero_target")

    def __init__(self, name: str, types: dict[int, RelocType], rela: bool, zero_target: bool) -> None:
        self.name = name
        self.types = types
        self.rela = rela
        self.zero_target = zero_target


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


# -- 2.4 insmod, i386 (modutils obj/obj_i386.c arch_apply_relocation) ---------------------------
# Every type writes the word at P.  In the formulas: A the word already there (REL addend), S the
# symbol's final value, P the word's address, G the address of the module's .got, O the
# symbol's slot offset in it, B the module's base.  GOT32 also stores S in the slot, once.

R_386_NONE = 0
R_386_GOT32 = 3
R_386_GLOB_DAT = 6
R_386_JMP_SLOT = 7
R_386_RELATIVE = 8
R_386_GOTOFF = 9
R_386_GOTPC = 10

INSMOD24_I386: dict[int, tuple[str, str]] = {
    # type: (name, formula)
    R_386_NONE: ("R_386_NONE", "A"),
    R_386_32: ("R_386_32", "A + S"),
    R_386_PC32: ("R_386_PC32", "A + S - P"),
    R_386_PLT32: ("R_386_PLT32", "A + S - P"),
    R_386_GLOB_DAT: ("R_386_GLOB_DAT", "S"),
    R_386_JMP_SLOT: ("R_386_JMP_SLOT", "S"),
    R_386_RELATIVE: ("R_386_RELATIVE", "A + B"),
    R_386_GOTPC: ("R_386_GOTPC", "A + G - P"),
    R_386_GOT32: ("R_386_GOT32", "A + O"),
    R_386_GOTOFF: ("R_386_GOTOFF", "A + S - G"),
}
# The formulas as functions of (A, S, P, G, O, B); 32-bit wrap-around is the caller's.
FORMULAS_24: dict[str, Callable[[int, int, int, int, int, int], int]] = {
    "A": lambda a, s, p, g, o, b: a,
    "A + S": lambda a, s, p, g, o, b: a + s,
    "A + S - P": lambda a, s, p, g, o, b: a + s - p,
    "S": lambda a, s, p, g, o, b: s,
    "A + B": lambda a, s, p, g, o, b: a + b,
    "A + G - P": lambda a, s, p, g, o, b: a + g - p,
    "A + O": lambda a, s, p, g, o, b: a + o,
    "A + S - G": lambda a, s, p, g, o, b: a + s - g,
}
GOT_TYPES_24 = frozenset({R_386_GOTPC, R_386_GOTOFF})  # need a .got (maybe empty)

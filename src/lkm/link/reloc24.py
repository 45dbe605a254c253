"""2.4's insmod relocations for i386 (modutils obj/obj_i386.c arch_apply_relocation): each
type as a formula over the word already in place and the symbol, module and GOT addresses."""

from __future__ import annotations

from collections.abc import Callable

from lkm.arch.x86 import R_386_32, R_386_PC32, R_386_PLT32

__all__ = [
    "FORMULAS_24",
    "GOT_TYPES_24",
    "INSMOD24_I386",
    "R_386_GLOB_DAT",
    "R_386_GOT32",
    "R_386_GOTOFF",
    "R_386_GOTPC",
    "R_386_JMP_SLOT",
    "R_386_NONE",
    "R_386_RELATIVE",
]

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

"""Architectures
=============

One :class:`Arch` record per architecture lkm links, loads and decodes for: its ELF machine
numbers, the names it goes by (``uname -m``, Debian's), the relocation engine and table the
kernel applies (arch/*/kernel/module.c ``apply_relocate(_add)``), the hook that rewrites
section headers before layout (arm64's ``module_frob_arch_sections``, module-plts.c) and
the facts other layers need (per-CPU addressing, ``va_list``, the oops' register names).

Adding an architecture is one record here plus its relocation table and engine in a module
of this package (:mod:`lkm.arch.x86`, :mod:`lkm.arch.arm64`); :func:`for_machine` and
:func:`by_name` find it.  The emulator's CPU facts (unicorn registers, memory map) stay in
:mod:`lkm.emulate.arch`, keyed by the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from lkm.arch.arm64 import PltPlan, apply_relocate_add, frob_arch_sections
from lkm.arch.x86 import I386 as I386_RELOCS
from lkm.arch.x86 import X86_64 as X86_64_RELOCS
from lkm.arch.x86 import RelocArch, apply_relocate
from lkm.elf.constants import EM_386, EM_486, EM_AARCH64, EM_X86_64

if TYPE_CHECKING:
    from lkm.elf import ElfFile
    from lkm.kernels import KernelConfig
    from lkm.link.layout import Layout
    from lkm.module.file import ModuleFile

__all__ = ["ARCHES", "ARM64", "I386", "X86_64", "Arch", "by_name", "for_machine", "register"]

#: apply_relocate(_add) over one relocation section: (module, relocation section number,
#: layout, region bytes, section addresses, symbol values, PLT entries used) -> entries applied.
ApplyRelocations = Callable[
    ["ModuleFile", int, "Layout", dict[str, bytearray], dict[int, int], list[int], dict[int, int]], int
]


@dataclass(frozen=True, slots=True)
class Arch:
    """One architecture.

    ``machines``: e_machine values elf_check_arch accepts; ``uname``: what ``uname -m``
    prints for its kernels; ``aliases``: other spellings users and Debian use (``686``,
    ``amd64``); ``relocations``: the REL/RELA type table (None: the arch has its own engine);
    ``apply_relocations``: the engine; ``frob_arch_sections``: None or the hook run before
    layout; ``abs_relocs``: absolute data relocation type -> width, to read a per-CPU
    address back; ``adrp_relocs``: arm64's (ADRP types, ADD_LO12 type) for the same;
    ``percpu_relative``: per-CPU symbols are offsets from a segment base (x86) rather than
    addresses; ``va_list_pointer``: a ``va_list`` argument is a pointer to the state (x86_64's
    array type) rather than the state itself; ``pc_name``: the oops' name of the program
    counter; ``code_marks_trap``: the oops' Code: line brackets the trapping instruction."""

    name: str
    machines: frozenset[int]
    bits: int
    uname: str
    aliases: tuple[str, ...]
    relocations: RelocArch | None
    apply_relocations: ApplyRelocations
    frob_arch_sections: Callable[[ElfFile, KernelConfig], PltPlan] | None
    abs_relocs: dict[int, int]
    adrp_relocs: tuple[tuple[int, ...], int] | None
    percpu_relative: bool
    va_list_pointer: bool
    pc_name: str
    code_marks_trap: bool

    def __str__(self) -> str:
        return self.name


X86_64 = Arch(
    "x86_64",
    frozenset({EM_X86_64}),
    64,
    "x86_64",
    ("amd64", "x86-64"),
    X86_64_RELOCS,
    partial(apply_relocate, X86_64_RELOCS),
    None,
    {1: 8, 11: 4},  # R_X86_64_64, R_X86_64_32S
    None,
    True,
    True,
    "RIP",
    True,
)

I386 = Arch(
    "i386",
    frozenset({EM_386, EM_486}),
    32,
    "i686",
    ("x86", "686", "i686", "686-pae"),
    I386_RELOCS,
    partial(apply_relocate, I386_RELOCS),
    None,
    {1: 4},  # R_386_32
    None,
    True,
    False,
    "EIP",
    True,
)

ARM64 = Arch(
    "arm64",
    frozenset({EM_AARCH64}),
    64,
    "aarch64",
    ("aarch64",),
    None,
    apply_relocate_add,
    frob_arch_sections,
    {},
    # R_AARCH64_ADR_PREL_PG_HI21(_NC), R_AARCH64_ADD_ABS_LO12_NC
    ((275, 276), 277),
    False,
    False,
    "pc",
    False,
)

#: Every known architecture by name.
ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64, I386, ARM64)}


def register(arch: Arch) -> None:
    """Make ``arch`` known to :func:`for_machine` and :func:`by_name`."""
    ARCHES[arch.name] = arch


def for_machine(e_machine: int) -> Arch | None:
    """The architecture of an ELF machine number (None: not one lkm knows)."""
    for a in ARCHES.values():
        if e_machine in a.machines:
            return a
    return None


def by_name(name: str) -> Arch | None:
    """The architecture called ``name`` (its own name, its ``uname -m`` or an alias)."""
    a = ARCHES.get(name)
    if a is not None:
        return a
    return next((a for a in ARCHES.values() if name == a.uname or name in a.aliases), None)

"""The kernel's acceptance checks on a module's ELF image (kernel/module/main.c
``elf_validity_check`` and the section lookups after it), as tables per kernel version.

:func:`check_module` raises :class:`~lkm.errors.InvalidModule` with the errno the kernel would
return (always ENOEXEC for these) and a one-line reason worded after the kernel's pr_err.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from lkm.elf import ElfFile
from lkm.elf.constants import (
    EM_386,
    EM_486,
    EM_AARCH64,
    EM_X86_64,
    ET_REL,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHT_NOBITS,
    SHT_NULL,
    SHT_SYMTAB,
)
from lkm.errors import InvalidModule

THIS_MODULE = ".gnu.linkonce.this_module"

# elf_check_arch per architecture.
ARCH_MACHINES: dict[str, frozenset[int]] = {
    "x86_64": frozenset({EM_X86_64}),
    "i386": frozenset({EM_386, EM_486}),
    "arm64": frozenset({EM_AARCH64}),
}
MACHINE_ARCH: dict[int, str] = {m: a for a, ms in ARCH_MACHINES.items() for m in ms}


@dataclass(frozen=True)
class KernelRules:
    """What one kernel version checks beyond the common ELF rules."""

    version: str
    modinfo_must_be_alloc: bool  # 6.1: find_sec(".modinfo") sees only SHF_ALLOC sections
    one_modinfo: bool  # 6.12: more than one .modinfo is rejected
    one_symtab: bool  # 6.12: exactly one SHT_SYMTAB
    this_module_strict: bool  # 6.12: exactly one, PROGBITS, ALLOC, sizeof(struct module)


KERNEL_RULES: dict[str, KernelRules] = {
    "6.1": KernelRules("6.1", True, False, False, False),
    "6.12": KernelRules("6.12", False, True, True, True),
}


def _fail(reason: str, path: str | None) -> InvalidModule:
    return InvalidModule(reason, errno.ENOEXEC, path=path)


def check_structure(elf: ElfFile) -> None:
    """The kernel's checks of the section headers themselves (elf_validity_check): section 0
    is SHT_NULL, every section with contents lies inside the file, the symbol table's string
    table exists, allocated sections' names lie in the section name table.  Plus what a
    linker must know before it computes anything from a header (the kernel lays sections out
    in unsigned int sizes, so a size or alignment of 4 GiB or more cannot be represented):
    ENOEXEC for each."""
    p = elf.path
    if not elf.sections:
        raise _fail("no section headers", p)
    if elf.e_shstrndx >= len(elf.sections):
        raise _fail(f"invalid e_shstrndx {elf.e_shstrndx}", p)
    shstr = elf.sections[elf.e_shstrndx]
    s0 = elf.sections[0]
    if s0.type != SHT_NULL or s0.size != 0 or s0.addr != 0:
        raise _fail("ELF section 0 is not SHT_NULL", p)
    for s in elf.sections[1:]:
        if s.type not in (SHT_NULL, SHT_NOBITS):
            if s.type == SHT_SYMTAB and (s.link == 0 or s.link >= elf.e_shnum):
                raise _fail(f"invalid sh_link {s.link} of symbol table {s.number}", p)
            if s.offset + s.size > elf.size:
                raise _fail(f"section {s.number} ({s.name}) past end of file", p)
            if s.flags & SHF_ALLOC and s.name_offset >= shstr.size:
                raise _fail(f"section {s.number} name offset {s.name_offset} past section name table", p)
        if s.flags & SHF_ALLOC and (s.size >= 1 << 32 or s.addralign >= 1 << 32):
            raise _fail(f"section {s.number} ({s.name}) size or alignment too large", p)


def check_module(
    elf: ElfFile,
    *,
    kernel: str = "6.12",
    arch: str | None = None,
    struct_module_size: int | None = None,
    strict_rwx: bool = True,
) -> None:
    """Raise InvalidModule if the kernel ``kernel`` would refuse this ELF image.

    ``arch`` defaults to the object's own machine (so only consistency is checked);
    ``struct_module_size`` is sizeof(struct module) of the target kernel, if known.
    """
    rules = KERNEL_RULES[kernel]
    p = elf.path
    if elf.e_type != ET_REL:
        raise _fail(f"not a relocatable object (e_type {elf.e_type})", p)
    machines = ARCH_MACHINES.get(arch or MACHINE_ARCH.get(elf.e_machine, ""), frozenset())
    if elf.e_machine not in machines:
        raise _fail(f"wrong machine {elf.e_machine} for {arch or 'any supported architecture'}", p)
    check_structure(elf)
    modinfos = [s for s in elf.sections_named(".modinfo")]
    if rules.one_modinfo and len(modinfos) > 1:
        raise _fail("module has multiple .modinfo sections", p)
    symtabs = elf.sections_of_type(SHT_SYMTAB)
    if rules.one_symtab and len(symtabs) != 1:
        why = "module has multiple symbol tables" if symtabs else "module has no symbols (stripped?)"
        raise _fail(why, p)
    if not symtabs:
        raise _fail("module has no symbols (stripped?)", p)
    this = [s for s in elf.sections_named(THIS_MODULE) if rules.this_module_strict or s.flags & SHF_ALLOC]
    if not this:
        raise _fail("no module found in object (.gnu.linkonce.this_module missing)", p)
    if rules.this_module_strict:
        if len(this) != 1:
            raise _fail(f"{len(this)} {THIS_MODULE} sections", p)
        t = this[0]
        if t.type == SHT_NOBITS:
            raise _fail(f"{THIS_MODULE} is NOBITS", p)
        if not t.flags & SHF_ALLOC:
            raise _fail(f"{THIS_MODULE} is not SHF_ALLOC", p)
        if struct_module_size is not None and t.size != struct_module_size:
            raise _fail(f"{THIS_MODULE} has size {t.size}, expected {struct_module_size}", p)
    if strict_rwx:
        for s in elf.sections:
            if s.flags & SHF_WRITE and s.flags & SHF_EXECINSTR:
                raise _fail(f"section {s.name} is both writable and executable", p)

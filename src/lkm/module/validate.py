"""The kernel's acceptance checks on a module's ELF image (kernel/module/main.c
``elf_validity_check`` and the section lookups after it), with each kernel version's rules
from its record (:class:`lkm.kernels.ValidityRules`).

:func:`check_module` raises :class:`~lkm.errors.InvalidModule` with the errno the kernel would
return (always ENOEXEC for these) and a one-line reason worded after the kernel's pr_err.
"""

from __future__ import annotations

import errno

from lkm.arch import by_name as arch_by_name
from lkm.arch import for_machine
from lkm.elf import ElfFile
from lkm.elf.constants import (
    ET_REL,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHT_NOBITS,
    SHT_NULL,
    SHT_SYMTAB,
)
from lkm.errors import InvalidModule
from lkm.kernels import KernelVersion, by_name

__all__ = ["THIS_MODULE", "check_module", "check_structure"]

THIS_MODULE = ".gnu.linkonce.this_module"


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
    kernel: str | KernelVersion = "6.12",
    arch: str | None = None,
    struct_module_size: int | None = None,
    strict_rwx: bool = True,
) -> None:
    """Raise InvalidModule if the kernel ``kernel`` would refuse this ELF image.

    ``arch`` defaults to the object's own machine (so only consistency is checked);
    ``struct_module_size`` is sizeof(struct module) of the target kernel, if known.
    """
    rules = by_name(kernel).validity
    if rules is None:
        raise ValueError(f"{kernel}: the kernel does not check a module's ELF image (insmod links it)")
    p = elf.path
    if elf.e_type != ET_REL:
        raise _fail(f"not a relocatable object (e_type {elf.e_type})", p)
    # elf_check_arch
    target = arch_by_name(arch) if arch else for_machine(elf.e_machine)
    if target is None or elf.e_machine not in target.machines:
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

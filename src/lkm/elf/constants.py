"""ELF constants used by lkm, spelled as in <elf.h>."""

from __future__ import annotations

__all__ = [
    "ELFCLASS32",
    "ELFCLASS64",
    "ELFDATA2LSB",
    "ELFDATA2MSB",
    "ELFMAG",
    "EM_386",
    "EM_486",
    "EM_AARCH64",
    "EM_ARM",
    "EM_PPC64",
    "EM_RISCV",
    "EM_S390",
    "EM_X86_64",
    "ET_DYN",
    "ET_EXEC",
    "ET_REL",
    "MACHINE_NAMES",
    "NT_GNU_BUILD_ID",
    "SHF_ALLOC",
    "SHF_EXECINSTR",
    "SHF_GROUP",
    "SHF_INFO_LINK",
    "SHF_MERGE",
    "SHF_RO_AFTER_INIT",
    "SHF_STRINGS",
    "SHF_WRITE",
    "SHN_ABS",
    "SHN_COMMON",
    "SHN_LIVEPATCH",
    "SHN_LORESERVE",
    "SHN_UNDEF",
    "SHN_XINDEX",
    "SHT_DYNAMIC",
    "SHT_DYNSYM",
    "SHT_FINI_ARRAY",
    "SHT_GROUP",
    "SHT_HASH",
    "SHT_INIT_ARRAY",
    "SHT_NOBITS",
    "SHT_NOTE",
    "SHT_NULL",
    "SHT_PROGBITS",
    "SHT_REL",
    "SHT_RELA",
    "SHT_STRTAB",
    "SHT_SYMTAB",
    "SHT_SYMTAB_SHNDX",
    "STB_GLOBAL",
    "STB_LOCAL",
    "STB_WEAK",
    "STT_FILE",
    "STT_FUNC",
    "STT_NOTYPE",
    "STT_OBJECT",
    "STT_SECTION",
]

ELFMAG = b"\x7fELF"
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

ET_REL = 1
ET_EXEC = 2
ET_DYN = 3

# Machines lkm knows, with the names readelf and the kernel use.
EM_386 = 3
EM_486 = 6
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
MACHINE_NAMES: dict[int, str] = {
    EM_386: "i386",
    EM_486: "i486",
    EM_PPC64: "ppc64",
    EM_S390: "s390",
    EM_ARM: "arm",
    EM_X86_64: "x86_64",
    EM_AARCH64: "aarch64",
    EM_RISCV: "riscv",
}

SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_HASH = 5
SHT_DYNAMIC = 6
SHT_NOTE = 7
SHT_NOBITS = 8
SHT_REL = 9
SHT_DYNSYM = 11
SHT_INIT_ARRAY = 14
SHT_FINI_ARRAY = 15
SHT_GROUP = 17
SHT_SYMTAB_SHNDX = 18

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_MERGE = 0x10
SHF_STRINGS = 0x20
SHF_INFO_LINK = 0x40
SHF_GROUP = 0x200
# Kernel-internal flag set on .data..ro_after_init and __jump_table by layout_and_allocate.
SHF_RO_AFTER_INIT = 0x00200000

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_LIVEPATCH = 0xFF20
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4

NT_GNU_BUILD_ID = 3

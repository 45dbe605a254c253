"""A zero-copy reader for ELF relocatable objects (ELF32/ELF64, both byte orders).

:class:`ElfFile` works over ``bytes``, ``memoryview`` or ``mmap`` and decodes only what is asked
for: section headers at open, symbols and relocations of one section on request.
"""

from lkm.elf.file import ElfFile, Relocation, Section, Symbol, cstring

__all__ = ["ElfFile", "Relocation", "Section", "Symbol", "cstring"]

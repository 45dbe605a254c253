"""What libkmod does to a module file before a forced ``init_module`` (insmod -f on a file
the kernel is not handed directly): ``__versions`` loses SHF_ALLOC, so the kernel does not see
the CRCs, and the ``vermagic=`` string in ``.modinfo`` is overwritten with NULs."""

from __future__ import annotations

from lkm.elf import ElfFile
from lkm.elf.constants import SHF_ALLOC

__all__ = ["strip_for_force"]

_VERMAGIC = b"vermagic="


def strip_for_force(data: bytes) -> bytes:
    """A copy of the module file *data* with modversions and vermagic hidden from the kernel."""
    elf = ElfFile(data)
    out = bytearray(data)
    lay = elf.layout
    word = lay.word.size
    for sec in elf.sections_named("__versions"):
        # sh_flags follows sh_name and sh_type (two u32) in both classes.
        at = elf.e_shoff + sec.number * elf.e_shentsize + 8
        flags = sec.flags & ~SHF_ALLOC
        out[at : at + word] = flags.to_bytes(word, "little" if elf.little_endian else "big")
    modinfo = elf.section(".modinfo")
    if modinfo is not None:
        start, end = modinfo.offset, modinfo.offset + modinfo.size
        i = start
        while i < end:
            j = out.find(b"\0", i, end)
            j = end if j < 0 else j
            if out.startswith(_VERMAGIC, i):
                out[i:j] = bytes(j - i)
            i = j + 1
    return bytes(out)

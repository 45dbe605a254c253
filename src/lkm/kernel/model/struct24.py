"""2.4's module structures as they sit in kernel memory (include/linux/module.h, 2.4.20), for
a word size of 4 (i386) or 8 bytes: struct module, module_symbol, module_ref, module_info and
get_kernel_syms' struct kernel_sym.  Field order is the table; offsets follow from it."""

from __future__ import annotations

import struct

from lkm.kernels import STRUCT_MODULE_24

__all__ = [
    "EXCEPTION_ENTRY_SIZE",
    "KERNEL_SYM_NAME",
    "LAYOUTS",
    "MODULE_FIELDS",
    "MOD_AUTOCLEAN",
    "MOD_DELETED",
    "MOD_INITIALIZING",
    "MOD_JUST_FREED",
    "MOD_RUNNING",
    "MOD_USED_ONCE",
    "MOD_VISITED",
    "QM_DEPS",
    "QM_INFO",
    "QM_MODULES",
    "QM_REFS",
    "QM_SYMBOLS",
    "Layout24",
    "cstring",
    "versioned_name",
]


# struct module, in order, every field one word on i386 (no ``gp``): insmod's own table.
MODULE_FIELDS: tuple[str, ...] = STRUCT_MODULE_24

MOD_RUNNING = 1
MOD_DELETED = 2
MOD_AUTOCLEAN = 4
MOD_VISITED = 8
MOD_USED_ONCE = 16
MOD_JUST_FREED = 32
MOD_INITIALIZING = 64

QM_MODULES, QM_DEPS, QM_REFS, QM_SYMBOLS, QM_INFO = 1, 2, 3, 4, 5
EXCEPTION_ENTRY_SIZE = 8  # struct exception_table_entry { unsigned long insn, fixup; }
KERNEL_SYM_NAME = 60  # struct kernel_sym { unsigned long value; char name[60]; }


class Layout24:
    """Offsets and packers for one word size."""

    def __init__(self, word: int) -> None:
        self.word = word
        c = "I" if word == 4 else "Q"
        self.module = struct.Struct("<" + c * len(MODULE_FIELDS))
        self.offsets = {f: i * word for i, f in enumerate(MODULE_FIELDS)}
        self.symbol = struct.Struct("<" + c * 2)  # { value, name }
        self.ref = struct.Struct("<" + c * 3)  # { dep, ref, next_ref }
        self.info = struct.Struct("<" + c * 3 + c.lower())  # { addr, size, flags, long usecount }
        self.kernel_sym = struct.Struct(f"<{c}{KERNEL_SYM_NAME}s")

    @property
    def sizeof_module(self) -> int:
        return self.module.size

    def unpack_module(self, data: bytes, size_of_struct: int) -> dict[str, int]:
        """The fields present in ``size_of_struct`` bytes (mod_member_present); others 0."""
        raw = bytes(data[: min(size_of_struct, self.module.size)]).ljust(self.module.size, b"\0")
        values = dict(zip(MODULE_FIELDS, self.module.unpack(raw), strict=True))
        for f, off in self.offsets.items():
            if off + self.word > size_of_struct:
                values[f] = 0
        return values

    def pack_module(self, fields: dict[str, int]) -> bytes:
        return self.module.pack(*(fields.get(f, 0) & ((1 << (8 * self.word)) - 1) for f in MODULE_FIELDS))

    def member_present(self, field: str, size_of_struct: int) -> bool:
        return self.offsets[field] + self.word <= size_of_struct


LAYOUTS = {4: Layout24(4), 8: Layout24(8)}


def cstring(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    return data[offset : end if end >= 0 else len(data)].decode("latin-1")


def versioned_name(name: str, crc: int | None, smp: bool = False) -> str:
    """A 2.4 symbol name under CONFIG_MODVERSIONS: ``printk_R1b7d4074`` (``_Rsmp_`` on SMP)."""
    if crc is None:
        return name
    return f"{name}_R{'smp_' if smp else ''}{crc & 0xFFFFFFFF:08x}"

"""Per-architecture facts the emulator needs: unicorn's CPU, the calling convention, and
where the fake kernel puts its stack, heap, per-cpu area and synthetic symbols.

The addresses follow each kernel's own memory map so that oopses and ``%px`` look familiar:
x86_64 modules at MODULES_VADDR (0xffffffffc0000000), the heap in the direct map
(page_offset_base 0xffff888000000000); i386 (3G/1G split) modules in the vmalloc area.
"""

from __future__ import annotations

import unicorn
from unicorn import arm64_const as a64
from unicorn import x86_const as x86

from lkm import arch
from lkm.arch import Arch
from lkm.kernels import LINUX_2_4, LINUX_6_1, KernelVersion
from lkm.record import Record

__all__ = ["ARCHES", "ARCHES_24", "ARM64", "I386", "I386_CDECL", "X86_64", "ArchSpec", "row_for"]


class ArchSpec(Record):
    """One architecture's row.  ``base``: the architecture's :class:`lkm.arch.Arch` record;
    ``version``: the kernel design the emulated base kernel follows (the cdecl i386 row is
    2.4's); ``percpu_reg``/``current_reg``: the register holding the per-CPU base (x86_64's
    GS base, arm64's TPIDR_EL1) and ``current`` (arm64's SP_EL0), None where not emulated;
    ``varargs_stack``: variadic arguments are on the stack (i386, regparm or not);
    ``amd64_tables``: the base kernel is Debian's 6.1 amd64 (its per-CPU offsets, stack
    canary at gs:0x28, __bug_table entries, ftrace's __fentry__ NOPs, booted tables)."""

    __slots__ = (
        "name", "uc_arch", "uc_mode", "word", "pc", "sp", "ret", "args", "link", "fixed_regs",
        "module_base", "synthetic_base", "heap_base", "stack_base", "stack_size", "percpu_base",
        "user_base", "page_offset", "trap_lo", "trap_hi", "base", "version", "percpu_reg",
        "current_reg", "varargs_stack", "amd64_tables",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        uc_arch: int,
        uc_mode: int,
        word: int,
        pc: int,
        sp: int,
        ret: int,
        args: tuple[int, ...],
        link: int | None,
        module_base: int,
        synthetic_base: int,
        heap_base: int,
        stack_base: int,
        stack_size: int,
        percpu_base: int,
        user_base: int,
        page_offset: int,
        trap_lo: int,
        trap_hi: int,
        fixed_regs: int | None = None,
        *,
        base: Arch,
        version: KernelVersion = LINUX_6_1,
        percpu_reg: int | None = None,
        current_reg: int | None = None,
        varargs_stack: bool = False,
        amd64_tables: bool = False,
    ) -> None:
        self.name = name
        self.uc_arch = uc_arch
        self.uc_mode = uc_mode
        self.word = word  # bytes in a long / pointer
        self.pc = pc
        self.sp = sp
        self.ret = ret  # return-value register
        self.args = args  # integer argument registers, in order (i386: regparm)
        self.link = link  # link register (arm64), None: return address on the stack
        self.module_base = module_base
        self.synthetic_base = synthetic_base  # where imports without a known address get a slot
        self.heap_base = heap_base
        self.stack_base = stack_base
        self.stack_size = stack_size  # THREAD_SIZE
        self.percpu_base = percpu_base  # GS base (x86_64) for the one CPU
        self.user_base = user_base  # buffers handed to file_operations as __user pointers
        self.page_offset = page_offset
        self.trap_lo = trap_lo  # [trap_lo, trap_hi): the kernel's own text and the synthetic slots,
        self.trap_hi = trap_hi  # where executing an instruction means calling the Python kernel
        self.fixed_regs = fixed_regs
        self.base = base
        self.version = version
        self.percpu_reg = percpu_reg
        self.current_reg = current_reg
        self.varargs_stack = varargs_stack
        self.amd64_tables = amd64_tables

    def replace(self, **fields: object) -> ArchSpec:
        """A copy with ``fields`` changed."""
        new = object.__new__(ArchSpec)
        for name in self.__slots__:
            object.__setattr__(new, name, fields.get(name, getattr(self, name)))
        return new

    @property
    def mask(self) -> int:
        return (1 << (8 * self.word)) - 1


X86_64 = ArchSpec(
    "x86_64", unicorn.UC_ARCH_X86, unicorn.UC_MODE_64, 8, x86.UC_X86_REG_RIP, x86.UC_X86_REG_RSP,
    x86.UC_X86_REG_RAX,
    (x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_R8,
     x86.UC_X86_REG_R9),
    None,
    module_base=0xFFFFFFFFC0000000, synthetic_base=0xFFFFFFFFA0000000, heap_base=0xFFFF888100000000,
    stack_base=0xFFFFC90000000000, stack_size=0x4000, percpu_base=0xFFFF88813BC00000,
    user_base=0x00007F0000000000, page_offset=0xFFFF888000000000,
    trap_lo=0xFFFFFFFF80000000, trap_hi=0xFFFFFFFFB0000000,
    base=arch.X86_64, percpu_reg=x86.UC_X86_REG_GS_BASE, amd64_tables=True,
)  # fmt: skip

# i386: the 6.x kernel passes the first three arguments in eax, edx, ecx (-mregparm=3);
# 2.4 objects are plain cdecl (ARCHES["i386-cdecl"]).  Variadic functions are always cdecl.
I386 = ArchSpec(
    "i386", unicorn.UC_ARCH_X86, unicorn.UC_MODE_32, 4, x86.UC_X86_REG_EIP, x86.UC_X86_REG_ESP,
    x86.UC_X86_REG_EAX, (x86.UC_X86_REG_EAX, x86.UC_X86_REG_EDX, x86.UC_X86_REG_ECX), None,
    module_base=0xD0800000, synthetic_base=0xC7000000, heap_base=0xCC000000, stack_base=0xCBF00000,
    stack_size=0x2000, percpu_base=0xCBE00000, user_base=0x40000000, page_offset=0xC0000000,
    trap_lo=0xC0000000, trap_hi=0xC8000000,
    base=arch.I386, varargs_stack=True,
)  # fmt: skip

# 2.4: modules in its vmalloc area
I386_CDECL = I386.replace(args=(), module_base=0xC8800000, version=LINUX_2_4)

ARM64 = ArchSpec(
    "arm64", unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM, 8, a64.UC_ARM64_REG_PC, a64.UC_ARM64_REG_SP,
    a64.UC_ARM64_REG_X0, tuple(getattr(a64, f"UC_ARM64_REG_X{i}") for i in range(8)), a64.UC_ARM64_REG_X30,
    module_base=0xFFFF800000000000, synthetic_base=0xFFFF80000E000000, heap_base=0xFFFF000100000000,
    stack_base=0xFFFF800010000000, stack_size=0x4000, percpu_base=0xFFFF80000F000000,
    user_base=0x0000FFFF00000000, page_offset=0xFFFF000000000000,
    trap_lo=0xFFFF800008000000, trap_hi=0xFFFF800010000000,
    base=arch.ARM64, percpu_reg=a64.UC_ARM64_REG_TPIDR_EL1, current_reg=a64.UC_ARM64_REG_SP_EL0,
)  # fmt: skip

ARCHES: dict[str, ArchSpec] = {"x86_64": X86_64, "i386": I386, "i386-cdecl": I386_CDECL, "arm64": ARM64}
#: The row a module built for a user-space-linking (2.4) kernel runs on, by architecture.
ARCHES_24: dict[str, str] = {"i386": "i386-cdecl"}


def row_for(module_arch: Arch, version: KernelVersion) -> str:
    """The emulator row of a module of ``module_arch`` built for kernel ``version``."""
    name = module_arch.name
    return ARCHES_24.get(name, name) if version.user_space_link else name

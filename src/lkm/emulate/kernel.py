"""The emulated kernel: one :class:`Machine`, the base kernel's Python functions behind the
addresses a module imports, the heap, the per-cpu area and the :class:`KernelState`.

Kernel symbols get their real addresses when a symbol table (the kernel's kallsyms) is given,
else a synthetic slot each.  A function the module imports is a trap: the Python
implementation registered for its name (:data:`FUNCTIONS`) or, without one, a recorder that
logs the call and returns 0 (strict mode: fails the run).  Imported data symbols are zeroed
memory, sized up to the next kernel symbol, with a few given their boot values (:data:`DATA`).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, is_not, itemgetter
from typing import TYPE_CHECKING

import unicorn

from lkm.emulate.arch import ARCHES, ArchSpec
from lkm.emulate.machine import PAGE, EmulationFault, Machine, TrapCall
from lkm.emulate.state import KernelState
from lkm.record import cached
from lkm.symbols.table import paused_gc

if TYPE_CHECKING:
    from lkm.emulate.module import EmulatedModule
    from lkm.symbols.table import SymbolTable

__all__ = [
    "DATA",
    "DATA_TYPES",
    "DEFAULT_MEMORY_BUDGET",
    "FUNCTIONS",
    "HEAP_CHUNK",
    "KMALLOC_MAX_SIZE",
    "MODULE_PERCPU_OFFSET",
    "NATIVE",
    "NATIVE_SLOT",
    "PERCPU_61",
    "PERCPU_SIZE",
    "RECORD_ONLY",
    "STACK_CANARY",
    "TASK_SIZE",
    "BaseKernel",
    "KFunc",
    "OutOfMemory",
    "SymbolSpace",
    "TraceEntry",
    "Unimplemented",
    "kdata",
    "kfunc",
    "memory_budget",
]


PERCPU_SIZE = 0x80000
DATA_TYPES = frozenset("DdBbRrGgSsVvAa")  # nm letters of data; the rest (T t W w ...) is code
MODULE_PERCPU_OFFSET = 0x40000  # module per-cpu sections go after the kernel's (0x35000 on 6.1)
HEAP_CHUNK = 0x100000
# The emulated heap (kmalloc, vmalloc, pages...) is bounded: past it an allocation fails as the
# kernel's does (NULL), so a vmalloc(1 << 40) or a kmalloc loop ends instead of eating the host.
DEFAULT_MEMORY_BUDGET = 256 << 20  # $LKM_EMULATE_MEMORY / lkm run --memory
KMALLOC_MAX_SIZE = 1 << 22  # x86_64 SLUB: 1 << (MAX_ORDER + PAGE_SHIFT - 1) = 4 MiB


class OutOfMemory(EmulationFault):
    """The heap budget cannot hold an allocation: the allocator kfuncs return NULL for it; an
    allocation the base kernel itself needed ends the call as a budget fault."""

    def __init__(self, reason: str) -> None:
        super().__init__("budget", reason)


def memory_budget() -> int:
    raw = os.environ.get("LKM_EMULATE_MEMORY", "").strip()
    try:
        value = int(raw, 0) if raw else DEFAULT_MEMORY_BUDGET
    except ValueError:
        return DEFAULT_MEMORY_BUDGET
    return value if value > 0 else DEFAULT_MEMORY_BUDGET


STACK_CANARY = 0x5A17C0DE2B8F4E00  # %gs:0x28 (low byte 0, as the kernel's canary)
TASK_SIZE = 0x2800  # sizeof(struct task_struct) on 6.1 amd64 is 9792

# Per-cpu offsets of 6.1 amd64 (its kallsyms), for a synthetic symbol space.
PERCPU_61 = {
    "fixed_percpu_data": 0x0, "cpu_number": 0x199E0, "this_cpu_off": 0x199E8, "__preempt_count": 0x1FB40,
    "current_task": 0x1FB80,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class KFunc:
    name: str
    fn: Callable[[BaseKernel, TrapCall], int]
    nargs: int
    varargs: bool


FUNCTIONS: dict[str, KFunc] = {}
# The modules of record-only / no-op registrations (driver registrations kept as a list,
# timers and work that never run) that a fuller implementation imported later may replace;
# any other function implemented twice is an error.
RECORD_ONLY = frozenset(("lkm.emulate.base.devices", "lkm.emulate.base.sync"))
# name -> initializer(kernel, address, size) for imported data symbols
DATA: dict[str, Callable[[BaseKernel, int, int], None]] = {}

_F = Callable[["BaseKernel", TrapCall], int]


def _x86_thunks(regs: tuple[str, ...]) -> dict[str, bytes]:
    """The retpoline / return thunks as the CPU runs them without the mitigations: a ret, and
    ``jmp *%reg`` (ff /4; r8-r15 with REX.B)."""
    out = {"__x86_return_thunk": b"\xc3"}
    for i, reg in enumerate(regs):
        code = (b"\x41" if i >= 8 else b"") + bytes((0xFF, 0xE0 | (i & 7)))
        out[f"__x86_indirect_thunk_{reg}"] = out[f"__x86_indirect_jump_thunk_{reg}"] = code
    return out


# Kernel functions a module reaches on every return or indirect call (the x86 thunks): when
# lkm links the module they get machine code of their own on a page outside the trapped
# kernel text, so that module code runs through them on the CPU with no call into Python.
# A module linked elsewhere (the model kernel's images) reaches their kallsyms address: the
# Python implementations there do the same.
_X86_64_REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
                 "r13", "r14", "r15")  # fmt: skip
NATIVE: dict[str, dict[str, bytes]] = {
    "x86_64": _x86_thunks(_X86_64_REGS),
    "i386": _x86_thunks(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")),
}
NATIVE_SLOT = 16  # bytes of the native page per function


def kfunc(*names: str, nargs: int = 3, varargs: bool = False) -> Callable[[_F], _F]:
    """Register a Python implementation of the kernel functions ``names`` (ValueError for a
    name another subsystem file implements already, but for RECORD_ONLY's)."""

    def register(fn: _F) -> _F:
        for name in names:
            old = FUNCTIONS.get(name)
            if old is not None and old.fn.__module__ not in RECORD_ONLY | {fn.__module__}:
                raise ValueError(
                    f"kernel function {name} implemented twice ({old.fn.__module__}, {fn.__module__})"
                )
            FUNCTIONS[name] = KFunc(name, fn, nargs, varargs)
        return fn

    return register


def kdata(
    *names: str,
) -> Callable[[Callable[[BaseKernel, int, int], None]], Callable[[BaseKernel, int, int], None]]:
    def register(fn: Callable[[BaseKernel, int, int], None]) -> Callable[[BaseKernel, int, int], None]:
        for name in names:
            DATA[name] = fn
        return fn

    return register


@dataclass(slots=True, unsafe_hash=True)
class TraceEntry:
    """One kernel call: ``site`` is where it was called from (the return address, as the
    kernel's ``%pS`` of it: ``init_module+0x1a/0x40 [mod]``), kept for unimplemented calls."""

    name: str
    args: tuple[int, ...]
    result: int
    module: str | None
    implemented: bool
    site: str = ""


class Unimplemented(EmulationFault):
    """Strict mode: a call to a kernel function lkm does not implement ended the run."""

    def __init__(self, name: str, site: str, pc: int) -> None:
        super().__init__("unimplemented", f"call to unimplemented kernel function {name} from {site}", pc=pc)
        self.function = name
        self.site = site

    def __reduce__(self) -> tuple[type[Unimplemented], tuple[str, str, int]]:
        return (Unimplemented, (self.function, self.site, self.pc))


class SymbolSpace:
    """A kernel symbol table prepared for address lookups (kallsyms order)."""

    def __init__(self, table: SymbolTable, arch: str | None = None) -> None:
        self.table = table
        self.arch = arch  # the architecture whose kernel these are (None: any)

    @cached
    def entries(self) -> list[tuple[int, str, str]]:
        """(address, name, type) sorted by address, built in C (94 000 symbols of a kernel
        image) on first use: a replayed session that only resolves names never sorts them."""
        every = list(self.table)
        addrs = list(map(attrgetter("address"), every))
        has = list(map(is_not, addrs, repeat(None)))
        types = [t or "?" for t in map(attrgetter("type"), compress(every, has))]
        names = list(map(attrgetter("name"), compress(every, has)))
        syms: list[tuple[int, str, str]] = paused_gc(
            sorted, zip(compress(addrs, has), names, types, strict=True)
        )
        return syms

    @cached
    def addresses(self) -> list[int]:
        return list(map(itemgetter(0), self.entries))

    def size_at(self, address: int) -> int:
        i = bisect.bisect_right(self.addresses, address)
        nxt = self.addresses[i] if i < len(self.addresses) else address + PAGE
        return max(8, min(nxt - address, 0x10000))

    def name_at(self, address: int) -> tuple[str, int, int] | None:
        """(name, offset, size) of the kernel text symbol containing ``address``."""
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0 or address - self.addresses[i] > 0x100000:
            return None
        a, n, t = self.entries[i]
        if t in DATA_TYPES:
            return None
        return n, address - a, self.size_at(a)


class BaseKernel:
    """A fresh emulated kernel for one architecture."""

    def __init__(
        self,
        arch: str | ArchSpec = "x86_64",
        symbols: SymbolSpace | None = None,
        state: KernelState | None = None,
        *,
        strict: bool = False,
        insn_budget: int | None = None,
        time_budget: float | None = None,
        memory_budget: int | None = None,
    ) -> None:
        import lkm.emulate.base  # noqa: F401 - registers the base kernel's functions

        self.memory_budget = memory_budget if memory_budget is not None else globals()["memory_budget"]()
        self.arch = ARCHES[arch] if isinstance(arch, str) else arch
        self.version = self.arch.version  # 2.4's row: "<N>" printk levels, no __GFP_ZERO
        kw: dict[str, float] = {}
        if insn_budget is not None:
            kw["insn_budget"] = insn_budget
        if time_budget is not None:
            kw["time_budget"] = time_budget
        self.machine = Machine(self.arch, **kw)  # type: ignore[arg-type]
        self.machine.symbolize = self.symbolize
        self.machine.on_invalid_opcode = self._warn
        self.machine.on_unknown_text = self._late_function
        self.machine.on_unmapped = self._late_data
        self.machine.on_tick = lambda: self.advance_jiffies(1)
        self.symbols = symbols
        self.state = state if state is not None else KernelState()
        self.strict = strict
        self.addresses: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.exports: dict[str, int] = {}  # symbols exported by loaded modules
        self.trace: list[TraceEntry] = []
        self.modules: dict[str, EmulatedModule] = {}
        self.current: str | None = None  # the module whose code is running
        # The kernel this one runs inside (the model kernel): its request_module(name, wait).
        self.request_module: Callable[[str, bool], int] | None = None
        self._slot = self.arch.synthetic_base
        self._native = NATIVE.get(self.arch.name, {}) if not self.arch.version.user_space_link else {}
        self._native_next = self.arch.trap_hi  # the native page: after the trapped text
        self._heap_next = self.arch.heap_base
        self._heap_end = self.arch.heap_base
        self.allocations: dict[int, int] = {}  # live heap objects: address -> size
        self._percpu_next = 0x1000
        self.percpu_base = self.arch.percpu_base
        self.machine.map(self.percpu_base, PERCPU_SIZE, "percpu")
        # x86_64: %gs-relative offsets from the area's base.  arm64: per-cpu variables have
        # kernel addresses (adrp reaches them) and tpidr_el1 is this CPU's offset, 0 here.
        self.percpu_relative = self.arch.base.percpu_relative
        self.machine.set_percpu_base(self.percpu_base if self.percpu_relative else 0)
        self.task = self.alloc(TASK_SIZE, zero=True)
        self.machine.set_current(self.task)
        if self.arch.amd64_tables:
            self.machine.write_int(self.percpu_base + 0x28, 8, STACK_CANARY)  # fixed_percpu_data.stack_canary
            for name, value in (("current_task", self.task), ("this_cpu_off", self.percpu_base)):
                self.machine.write_word(self.percpu_base + self.percpu_offset(name), value)
        self.machine.write(self.task + 2976, b"insmod\0")  # task_struct.comm (6.1 amd64)

    # -- symbols ---------------------------------------------------------------------------
    def percpu_offset(self, name: str) -> int:
        if self.symbols is not None:
            s = self.symbols.table.lookup(name)
            if s is not None and s.address is not None and s.address < PERCPU_SIZE:
                return s.address
        if name in PERCPU_61:
            return PERCPU_61[name]
        off = self._percpu_next
        self._percpu_next += 64
        return off

    def resolve(self, name: str) -> int | None:
        """The address of kernel symbol ``name`` (mapped, trapped or initialised on first use)."""
        addr = self.addresses.get(name)
        if addr is not None:
            return addr
        if name in self.exports:
            return self.exports[name]
        code = self._native.get(name)
        if code is not None:
            addr = self._native_next
            self._native_next += NATIVE_SLOT
            self.machine.map(addr, NATIVE_SLOT, "kernel text", code)
            self.addresses[name] = addr
            self.names[addr] = name
            return addr
        sym = self.symbols.table.lookup(name) if self.symbols is not None else None
        if sym is not None and sym.address is not None:
            addr = sym.address
            if sym.type == "A" and addr < PERCPU_SIZE:
                pass  # a per-cpu variable: an offset into the (mapped) per-cpu area
            elif (sym.type or "t") not in DATA_TYPES or name in FUNCTIONS:
                self._trap(addr, name)
            else:
                size = self.symbols.size_at(addr) if self.symbols is not None else PAGE
                self.machine.map(addr, size, "kernel data")
                self._init_data(name, addr, size)
        elif self.arch.amd64_tables and name in PERCPU_61:
            addr = PERCPU_61[name]
        else:
            addr = self._slot
            self._slot += PAGE
            self.machine.map(addr, PAGE, "synthetic")
            if name in DATA:
                self._init_data(name, addr, PAGE)
            else:
                self._trap(addr, name, text=False)  # unknown: maybe data, so left zeroed
        self.addresses[name] = addr
        self.names[addr] = name
        return addr

    def advance_jiffies(self, ticks: int) -> None:
        """Time passes (a timer tick, a sleep): jiffies and its memory move on."""
        self.state.jiffies += ticks
        for name in ("jiffies", "jiffies_64"):
            addr = self.addresses.get(name)
            if addr is not None and self.machine.is_mapped(addr, 8):
                self.machine.write_int(addr, 8 if self.arch.word == 8 else 4, self.state.jiffies)

    def _late_function(self, addr: int) -> bool:
        """A call to a kernel function the module was linked to elsewhere (the model kernel's
        own linking hands over memory, not an import list): trap it by its kallsyms name."""
        found = self.symbols.name_at(addr) if self.symbols is not None else None
        if found is None or found[1] != 0:
            return False
        if found[0] in self._native and addr not in self.machine.traps:
            self._trap(addr, found[0])  # linked to its kallsyms address: the Python thunk
            return True
        if found[0] in self.addresses:
            return False
        return self.resolve(found[0]) == addr

    def _late_data(self, addr: int) -> bool:
        """An access to a kernel symbol not handed out by resolve (data, or the fetch of a
        function's first instruction): map it now."""
        if self.symbols is None:
            return False
        if self._late_function(addr):
            return True
        i = bisect.bisect_right(self.symbols.addresses, addr) - 1
        if i < 0:
            return False
        base, name, typ = self.symbols.entries[i]
        if typ not in DATA_TYPES or typ in "Aa" or name in self.addresses:
            return False
        if addr - base >= self.symbols.size_at(base):
            return False
        return self.resolve(name) == base

    def _init_data(self, name: str, addr: int, size: int) -> None:
        init = DATA.get(name)
        if init is not None:
            init(self, addr, size)

    def _trap(self, addr: int, name: str, *, text: bool = True) -> None:
        f = FUNCTIONS.get(name)
        handler = self._dispatcher(name, f)
        self.machine.add_trap(addr, name, handler, varargs=f is not None and f.varargs, text=text)

    def _dispatcher(self, name: str, f: KFunc | None) -> Callable[[TrapCall], int]:
        state = self.state

        if f is None:

            def unimplemented(c: TrapCall) -> int:
                state.calls[name] += 1
                state.unimplemented[name] += 1
                args = tuple(c.arg(i) for i in range(len(self.arch.args) or 3))
                ret = self.return_address(c)
                site = self.symbolize(ret)
                self.trace.append(TraceEntry(name, args, 0, self.current, False, site))
                if self.strict:
                    raise Unimplemented(name, site, ret)
                return 0

            return unimplemented
        fn, nargs = f.fn, f.nargs

        def implemented(c: TrapCall) -> int:
            state.calls[name] += 1
            args = tuple(c.arg(i) for i in range(nargs))
            try:
                result = fn(self, c)
            except unicorn.UcError as exc:  # the function followed a bad pointer it was given
                caller = self.symbolize(self.return_address(c))
                why = f"{name}() called from {caller} with a bad pointer: {exc}"
                raise EmulationFault("oops", why, pc=c.machine.reg(self.arch.pc)) from None
            if nargs >= 0:
                self.trace.append(TraceEntry(name, args, result & self.arch.mask, self.current, True))
            return result

        return implemented

    def return_address(self, c: TrapCall) -> int:
        """Where the trapped call returns to: the link register (arm64), else the top of the
        stack (the trap is the callee's first instruction)."""
        m = self.machine
        if self.arch.link is not None:
            return m.reg(self.arch.link) & self.arch.mask
        return m.read_word(m.reg(self.arch.sp))

    def add_function(self, name: str) -> int:
        """A trap for a kernel function the module does not import (e.g. a callback the base
        kernel hands out): its address."""
        return self.resolve(name) or 0

    def symbolize(self, addr: int, offset: bool = True) -> str:
        for mod in self.modules.values():
            s = mod.symbol_at(addr)
            if s is not None:
                name, off, size = s
                return f"{name}+{off:#x}/{size:#x} [{mod.name}]" if offset else f"{name} [{mod.name}]"
        if addr in self.names:
            return f"{self.names[addr]}+0x0/0x1" if offset else self.names[addr]
        if self.symbols is not None:
            t = self.symbols.name_at(addr)
            if t is not None:
                return f"{t[0]}+{t[1]:#x}/{t[2]:#x}" if offset else t[0]
        return f"{addr:#x}"

    def symbol_name(self, addr: int, offset: bool) -> str | None:
        name = self.symbolize(addr, offset)
        return None if name.startswith("0x") else name

    def _warn(self, pc: int) -> bool:
        """report_bug: a ud2 listed in a module's __bug_table as a warning prints the kernel's
        WARNING lines and execution goes on; BUG() and unknown ud2s are fatal (False)."""
        for mod in self.modules.values():
            entry = mod.bug_entry(pc)
            if entry is not None:
                file, line, warning = entry
                if not warning:
                    self.state.printk(0, False, f"kernel BUG at {file}:{line}!\n", mod.name)
                    return False
                self.state.printk(4, False, "------------[ cut here ]------------\n", None)
                where = f"{file}:{line} {self.symbolize(pc)}"
                self.state.printk(4, False, f"WARNING: CPU: 0 PID: 1 at {where}\n", None)
                return True
        return False

    # -- memory ----------------------------------------------------------------------------
    def alloc(self, size: int, *, zero: bool = True, align: int = 16) -> int:
        """A heap object (the direct map on x86_64).  Raises :class:`OutOfMemory` past the
        memory budget (the allocator kfuncs return NULL then, as the kernel's do)."""
        size = max(size, 1)
        addr = (self._heap_next + align - 1) & ~(align - 1)
        end = addr + size
        if size > self.memory_budget or end - self.arch.heap_base > self.memory_budget:
            raise OutOfMemory(f"allocation of {size} bytes exceeds the memory budget of {self.memory_budget}")
        if end > self._heap_end:
            grow = (end - self._heap_end + HEAP_CHUNK - 1) & ~(HEAP_CHUNK - 1)
            self.machine.map(self._heap_end, grow, "heap")
            self._heap_end += grow
        self._heap_next = end + 16  # a red zone between objects
        self.allocations[addr] = size
        if not zero:
            self.machine.write(addr, b"\x6b" * min(size, 1 << 20))  # slab poison, as SLUB debug
        return addr

    def log_oom(self, size: int, reason: str) -> None:
        """An allocation refused (NULL returned): said once per call site in the kernel log,
        marked as the emulator's own line (the real kernel's warning depends on the allocator)."""
        self.state.printk(4, False, f"lkm: allocation of {size} bytes failed: {reason}\n", self.current)

    def free(self, addr: int) -> bool:
        return self.allocations.pop(addr, None) is not None

    def cstring(self, addr: int, limit: int = 4096) -> str:
        data = self.machine.read_cstr(addr, limit) if addr else None
        return (data or b"").decode("utf-8", "replace")

    def new_string(self, text: bytes) -> int:
        addr = self.alloc(len(text) + 1)
        self.machine.write(addr, text + b"\0")
        return addr

    # -- calls into module code ------------------------------------------------------------
    def call(self, addr: int, args: tuple[int, ...] = (), module: str | None = None) -> int:
        previous, self.current = self.current, module
        try:
            return self.machine.call(addr, args)
        finally:
            self.current = previous

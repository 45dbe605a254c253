"""The emulated CPU: unicorn with the fake kernel's memory, traps into Python, and budgets.

Every address in ``[arch.trap_lo, arch.trap_hi)`` is kernel text as far as the module can
tell; executing an instruction there runs the Python implementation registered for that
address (:meth:`Machine.add_trap`) and returns to the caller as a ``ret`` would.  Module code
itself runs at unicorn's own speed: the only hook on it is unicorn's instruction counter (in
C) for the budget and the timer ticks; Python runs only for a call into the kernel (one dict
lookup and the function), a memory fault and a TLB fill.  A call
(:meth:`Machine.call`) runs until the function returns to a sentinel return address, or
stops with an :class:`EmulationFault`: an invalid memory access (reported as the kernel's
oops), an instruction or wall-clock budget exceeded, or a Python trap that fails the run.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import unicorn

from lkm.emulate.arch import ArchSpec
from lkm.emulate.oops import invalid_opcode_report, page_fault_report
from lkm.emulate.ucdirect import Registers, add_code_hook
from lkm.errors import LkmError

__all__ = [
    "DEFAULT_INSN_BUDGET",
    "DEFAULT_TIME_BUDGET",
    "HANDLED",
    "MAX_MAP",
    "PAGE",
    "RET_INSN",
    "TICK_INSNS",
    "EmulationFault",
    "Machine",
    "Trap",
    "TrapCall",
    "pack_words",
]


PAGE = 0x1000
DEFAULT_INSN_BUDGET = 5_000_000
DEFAULT_TIME_BUDGET = 5.0  # seconds of wall clock per call
TICK_INSNS = 100_000  # emulated instructions per timer tick (jiffies += 1 between slices)
HANDLED = -(1 << 80)  # a trap handler's return meaning "I have set PC myself"
RET_INSN = {"x86_64": b"\xc3", "i386": b"\xc3", "arm64": bytes.fromhex("c0035fd6")}

_ACCESS = {
    unicorn.UC_MEM_READ_UNMAPPED: ("read", False),
    unicorn.UC_MEM_WRITE_UNMAPPED: ("write", False),
    unicorn.UC_MEM_FETCH_UNMAPPED: ("fetch", False),
    unicorn.UC_MEM_READ_PROT: ("read", True),
    unicorn.UC_MEM_WRITE_PROT: ("write", True),
    unicorn.UC_MEM_FETCH_PROT: ("fetch", True),
}


MAX_MAP = 1 << 30  # one mapping: above any module region (lkm.limits) or heap budget


class EmulationFault(LkmError):
    """A call that did not return normally.  ``kind``: oops (invalid memory access), bug
    (BUG()/invalid opcode), panic (__stack_chk_fail), budget, timeout, unimplemented (strict
    mode), kernel-text (a jump into kernel code that is not a function entry)."""

    def __init__(self, kind: str, reason: str, *, pc: int = 0, address: int = 0, report: str = "") -> None:
        super().__init__(reason)
        self.kind = kind
        self.pc = pc
        self.address = address
        self.report = report  # the kernel's console text for it (oops, panic), may be ""


@dataclass(frozen=True, slots=True)
class Trap:
    name: str
    handler: Callable[[TrapCall], int]
    varargs: bool = False
    text: bool = False


class TrapCall:
    """The view a Python kernel function has of its call: arguments and memory."""

    __slots__ = ("machine", "name", "_cdecl", "_sp")

    def __init__(self, machine: Machine, name: str, cdecl: bool) -> None:
        self.machine = machine
        self.name = name
        self._cdecl = cdecl
        self._sp = -1  # read on the first stack argument (most calls have none)

    def arg(self, i: int) -> int:
        """Argument ``i`` (0-based) as an unsigned machine word."""
        m = self.machine
        regs = () if self._cdecl else m.arch.args
        if i < len(regs):
            return m.reg(regs[i]) & m.arch.mask
        w = m.arch.word
        if self._sp < 0:
            self._sp = m.reg(m.arch.sp)
        # x86: the return address is on top of the stack; arm64 passes the rest from sp.
        skip = 0 if m.arch.link is not None else w
        return m.read_word(self._sp + skip + w * (i - len(regs)))

    def sarg(self, i: int, bits: int = 0) -> int:
        """Argument ``i`` sign-extended from ``bits`` (default: a machine word)."""
        bits = bits or 8 * self.machine.arch.word
        v = self.arg(i) & ((1 << bits) - 1)
        return v - (1 << bits) if v >> (bits - 1) else v


class Machine:
    """One emulated CPU and its memory."""

    def __init__(
        self,
        arch: ArchSpec,
        *,
        insn_budget: int = DEFAULT_INSN_BUDGET,
        time_budget: float = DEFAULT_TIME_BUDGET,
    ) -> None:
        self.arch = arch
        self.uc = unicorn.Uc(arch.uc_arch, arch.uc_mode)
        # Registers through unicorn's C functions directly (lkm.emulate.ucdirect).
        self._regs = Registers(self.uc)
        self.reg = self._regs.read  # type: ignore[method-assign]
        self.set_reg = self._regs.write  # type: ignore[method-assign]
        # Kernel addresses are above unicorn's physical address width: the CPU runs on
        # virtual addresses through a TLB hook, physical = virtual's low 48 bits (one-to-one
        # over canonical addresses); reads and writes from Python use physical addresses.
        self.pmask = (1 << 48) - 1 if arch.word == 8 else (1 << 32) - 1
        if arch.word == 8:
            self.uc.ctl_set_tlb_mode(unicorn.UC_TLB_VIRTUAL)
            self.uc.hook_add(unicorn.UC_HOOK_TLB_FILL, self._on_tlb)
        self.insn_budget = insn_budget
        self.time_budget = time_budget
        self.traps: dict[int, Trap] = {}
        self.mapped: dict[int, str] = {}  # page -> name of the region it belongs to
        self.symbolize: Callable[[int], str] = lambda a: f"{a:#x}"
        # An invalid opcode at pc: True when it was a WARN() the kernel reported (go on after it).
        self.on_invalid_opcode: Callable[[int], bool] = lambda pc: False
        # Code in the trap range without a trap / an access to unmapped memory: True when the
        # kernel knew the address (a symbol it had not handed out yet) and set it up.
        self.on_unknown_text: Callable[[int], bool] = lambda addr: False
        self.on_unmapped: Callable[[int], bool] = lambda addr: False
        self.on_tick: Callable[[], None] = lambda: None
        self._pending: BaseException | None = None
        self._interrupted = False  # Ctrl-C arrived while module code ran
        self._fault: tuple[str, bool, int] | None = None
        self.calls = 0  # traps taken
        self._depth = 0  # calls running (more than one: a trap called back into module code)
        self._runs = 0  # calls started, nested ones included
        self._contexts: list[unicorn.UcContext] = []  # CPU states saved around nested calls
        self._executed: set[int] = set()  # kernel text run without a trap there (a fault)
        # Trap pages are mapped in unicorn on first touch (most imported functions are never
        # called, and each mapping costs unicorn a rebuild of its memory map): page -> the
        # trap addresses to write a ret at then.  They are in ``mapped`` from the start.
        self._lazy: dict[int, list[int]] = {}
        self.stack_top = arch.stack_base + arch.stack_size
        self.map(arch.stack_base, arch.stack_size, "stack")
        self.return_address = arch.synthetic_base - PAGE
        self.map(self.return_address, PAGE, "return")
        # The code hook covers only the kernel's text: module code is translated without it.
        self._code_hook = add_code_hook(self.uc, self._on_code_raw, arch.trap_lo, arch.trap_hi - 1)
        self.uc.hook_add(unicorn.UC_HOOK_MEM_INVALID, self._on_invalid)

    # -- memory ------------------------------------------------------------------------
    def map(self, addr: int, size: int, name: str, data: bytes = b"") -> None:
        """Map ``[addr, addr+size)`` read/write/execute (pages already mapped are kept)."""
        first = addr & ~(PAGE - 1)
        end = (addr + max(size, 1) + PAGE - 1) & ~(PAGE - 1)
        if end - first > MAX_MAP:
            raise EmulationFault(
                "budget", f"cannot map {size:#x} bytes at {addr:#x} (more than {MAX_MAP:#x})"
            )
        run = None
        for page in range(first, end, PAGE):
            if page in self.mapped:
                if run is not None:
                    self._mem_map(run, page - run)
                    run = None
                continue
            self.mapped[page] = name
            if run is None:
                run = page
        if run is not None:
            self._mem_map(run, end - run)
        if data:
            self.write(addr, data)
            # Memory handed out again (a module's freed init area, now another module's):
            # code translated from the old bytes must not run in place of the new.
            self.uc.ctl_remove_cache(first & self.pmask, end & self.pmask)

    def unmap_range(self, start: int, size: int) -> None:
        """Unmap every mapped page of ``[start, start+size)``, one unicorn call per contiguous
        run (page by page is quadratic in unicorn's region list: minutes for a large module)."""
        first = start & ~(PAGE - 1)
        end = (start + size + PAGE - 1) & ~(PAGE - 1)
        run = None
        for page in range(first, end + PAGE, PAGE):
            if page < end and page in self.mapped and self._lazy.pop(page, None) is None:
                del self.mapped[page]
                if run is None:
                    run = page
                continue
            if page < end:
                self.mapped.pop(page, None)  # a trap page never mapped in unicorn
            if run is not None:
                self.uc.mem_unmap(run & self.pmask, page - run)
                run = None

    def unmap_page(self, page: int) -> None:
        if self._lazy.pop(page, None) is None:
            self.uc.mem_unmap(page & self.pmask, PAGE)
        del self.mapped[page]

    def _materialize(self, addr: int, size: int) -> bool:
        """Map the lazily mapped trap pages of ``[addr, addr+size)``; False if there are none."""
        found = False
        for page in range(addr & ~(PAGE - 1), addr + max(size, 1), PAGE):
            rets = self._lazy.pop(page, None)
            if rets is None:
                continue
            found = True
            self._mem_map(page, PAGE)
            for a in rets:
                self.uc.mem_write(a & self.pmask, RET_INSN[self.arch.name])
        return found

    def is_mapped(self, addr: int, size: int = 1) -> bool:
        return all(p in self.mapped for p in range(addr & ~(PAGE - 1), addr + max(size, 1), PAGE))

    def _mem_read(self, addr: int, size: int) -> bytearray:
        """Memory read on behalf of the Python kernel; an unmapped address is the module's
        fault (a bad pointer it passed), reported as one, never a unicorn error."""
        try:
            data: bytearray = self.uc.mem_read(addr & self.pmask, size)
            return data
        except (unicorn.UcError, OverflowError, ValueError):
            if self._lazy and self._materialize(addr, size):
                return self._mem_read(addr, size)
            raise EmulationFault(
                "oops", f"kernel read of {size} bytes at unmapped address {addr:#x}", address=addr
            ) from None

    def _mem_write(self, addr: int, data: bytes) -> None:
        try:
            self.uc.mem_write(addr & self.pmask, data)
        except (unicorn.UcError, OverflowError, ValueError):
            if self._lazy and self._materialize(addr, len(data)):
                return self._mem_write(addr, data)
            raise EmulationFault(
                "oops", f"kernel write of {len(data)} bytes at unmapped address {addr:#x}", address=addr
            ) from None

    def _mem_map(self, addr: int, size: int) -> None:
        try:
            self.uc.mem_map(addr & self.pmask, size)
        except unicorn.UcError as exc:
            raise EmulationFault(
                "budget", f"cannot map {size:#x} bytes at {addr:#x}: {exc}", address=addr
            ) from None

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self._mem_read(addr, size))

    def write(self, addr: int, data: bytes) -> None:
        self._mem_write(addr, data)

    def read_word(self, addr: int) -> int:
        return int.from_bytes(self._mem_read(addr, self.arch.word), "little")

    def write_word(self, addr: int, value: int) -> None:
        self._mem_write(addr, (value & self.arch.mask).to_bytes(self.arch.word, "little"))

    def read_int(self, addr: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self._mem_read(addr, size), "little", signed=signed)

    def write_int(self, addr: int, size: int, value: int) -> None:
        self._mem_write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def read_cstr(self, addr: int, limit: int = 1 << 16) -> bytes | None:
        """The NUL-terminated string at ``addr`` (at most ``limit`` bytes); None if unmapped."""
        out = bytearray()
        while len(out) < limit:
            if not self.is_mapped(addr):
                return None if not out else bytes(out)
            chunk = self.read(addr, min(PAGE - (addr & (PAGE - 1)), limit - len(out)))
            nul = chunk.find(0)
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
            addr += len(chunk)
        return bytes(out)

    def reg(self, reg: int) -> int:
        return self._regs.read(reg)

    def set_reg(self, reg: int, value: int) -> None:
        self._regs.write(reg, value)

    # -- traps -------------------------------------------------------------------------
    def add_trap(
        self,
        addr: int,
        name: str,
        handler: Callable[[TrapCall], int],
        varargs: bool = False,
        *,
        text: bool = True,
    ) -> None:
        """Calls to ``addr`` run ``handler``.  ``text``: the address is only code (a ``ret``
        is written there, ending the translated block); else it may also be read as data."""
        if not self.arch.trap_lo <= addr < self.arch.trap_hi:
            raise ValueError(f"trap {name} at {addr:#x} outside the kernel text range")
        # The page after too: translating the block at the trap reads on past the entry.
        # Both are mapped in unicorn when first touched (_materialize).
        page = addr & ~(PAGE - 1)
        for p in (page, page + PAGE):
            if p not in self.mapped:
                self.mapped[p] = "kernel text"
                self._lazy[p] = []
        if text:
            if page in self._lazy:
                self._lazy[page].append(addr)
            else:
                self.write(addr, RET_INSN[self.arch.name])
        if self._depth:
            # Set up while code runs (often from a fault on this very address, which unicorn
            # retries once): mapped now.
            self._materialize(page, 2 * PAGE)
        # The ret runs on the CPU only for traps set up before module code runs and at an
        # address never executed before: code translated from the bytes before the ret (a
        # fetch that faulted first, a jump into kernel text) may still be cached.  Python
        # returns from those.
        native = text and not self._depth and addr not in self._executed
        self.traps[addr] = Trap(name, handler, varargs, native)

    def _on_code_raw(self, address: int, size: int) -> None:
        try:
            self._on_code(self.uc, address, size, None)
        except BaseException as exc:  # never out of a C callback
            self._stop(exc)

    def _on_code(self, uc: unicorn.Uc, address: int, size: int, _data: object) -> None:
        if address == self.return_address:
            uc.emu_stop()
            return
        trap = self.traps.get(address)
        if trap is None and self.on_unknown_text(address):
            trap = self.traps.get(address)
        if trap is None:
            self._executed.add(address)
            self._stop(EmulationFault(
                "kernel-text", f"jump into kernel text at {self.symbolize(address)} (not a function entry)",
                pc=address, address=address))  # fmt: skip
            return
        self.calls += 1
        runs = self._runs
        try:
            value = trap.handler(TrapCall(self, trap.name, trap.varargs and self.arch.varargs_stack))
        except BaseException as exc:
            self._stop(exc)
            return
        if value != HANDLED:
            self.set_reg(self.arch.ret, value)
            if not trap.text or runs != self._runs:
                # No ret at the address, or module code ran inside the call (the CPU state
                # was put back): return from Python, which restarts translation there.
                self.do_return()
            # else the ret written at the trap address returns, at the CPU's speed

    def do_return(self) -> None:
        """Return from the current function (its arguments untouched: the caller pops them)."""
        a = self.arch
        if a.link is not None:
            self.set_reg(a.pc, self.reg(a.link))
            return
        sp = self.reg(a.sp)
        self.set_reg(a.pc, self.read_word(sp))
        self.set_reg(a.sp, sp + a.word)

    def _stop(self, exc: BaseException) -> None:
        if self._pending is None:
            self._pending = exc
        self.uc.emu_stop()

    def _on_tlb(self, uc: unicorn.Uc, vaddr: int, access: int, entry: object, _d: object) -> bool:
        entry.paddr = vaddr & self.pmask  # type: ignore[attr-defined]
        entry.perms = unicorn.UC_PROT_ALL  # type: ignore[attr-defined]
        return True

    def _on_invalid(
        self, uc: unicorn.Uc, access: int, address: int, size: int, value: int, _d: object
    ) -> bool:
        kind, present = _ACCESS.get(access, ("read", False))
        if self.arch.word == 8 and (1 << 47) <= address < (1 << 48):
            address |= ~self.pmask & self.arch.mask  # a fetch reports the physical address: canonical again
        if not present and self._lazy and self._materialize(address, size):
            return True  # a trap page touched for the first time: mapped now, retried
        if not present and self.on_unmapped(address):
            return True  # mapped now: the access is retried
        self._fault = (kind, present, address)
        return False

    # -- calls -------------------------------------------------------------------------
    def call(self, addr: int, args: tuple[int, ...] | list[int] = ()) -> int:
        """Call the function at ``addr`` with integer ``args``; its return value (unsigned
        machine word).  Raises :class:`EmulationFault` when it does not return."""
        if self._depth:
            return self._nested_call(addr, args)
        return self._call(addr, args, self.stack_top - 64)

    def _nested_call(self, addr: int, args: tuple[int, ...] | list[int]) -> int:
        """A call made from inside a trap (a kernel function that runs module code: a module's
        init asking for another module, whose init runs now).  It runs on the same stack below
        the interrupted frame; the interrupted CPU state is put back when it returns."""
        # One saved context per nesting level, reused (a sort calls its comparator thousands
        # of times: allocating a context each time was a good part of a call's cost).
        level = self._depth - 1
        if level < len(self._contexts):
            context = self._contexts[level]
            self.uc.context_update(context)
        else:
            context = self.uc.context_save()
            self._contexts.append(context)
        saved = self._pending, self._fault
        try:
            return self._call(addr, args, self.reg(self.arch.sp) - 512)
        finally:
            self.uc.context_restore(context)
            self._pending, self._fault = saved

    def _call(self, addr: int, args: tuple[int, ...] | list[int], sp: int) -> int:
        a = self.arch
        sp &= ~0xF
        regs = a.args
        for reg, value in zip(regs, args, strict=False):
            self.set_reg(reg, value)
        rest = list(args[len(regs) :])
        if a.link is not None:
            sp -= a.word * len(rest)
            sp &= ~0xF
            for i, v in enumerate(rest):
                self.write_word(sp + a.word * i, v)
            self.set_reg(a.link, self.return_address)
        else:
            if a.word == 8 and len(rest) % 2:
                sp -= 8  # keep rsp+8 16-byte aligned at the callee's entry
            for v in reversed(rest):
                sp -= a.word
                self.write_word(sp, v)
            sp -= a.word
            self.write_word(sp, self.return_address)
        self.set_reg(a.sp, sp)
        self._depth += 1
        self._runs += 1
        try:
            self._run(addr)
        finally:
            self._depth -= 1
        return self.reg(a.ret) & a.mask

    def _run(self, start: int) -> None:
        """Run in slices of TICK_INSNS instructions; between slices the timer ticks
        (``on_tick``: jiffies advance, as the timer interrupt would make them)."""
        if self._depth == 1:
            with self._interruptible():
                self._run_slices(start)
        else:
            self._run_slices(start)

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Ctrl-C while module code runs: the CPU is stopped between two instructions and the
        run raises KeyboardInterrupt from Python, never from inside one of unicorn's callbacks
        (where it would be "ignored" and the emulation would go on)."""

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(_sig: int, _frame: object) -> None:
            self._interrupted = True
            self.uc.emu_stop()

        self._interrupted = False
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self._interrupted:
            raise KeyboardInterrupt

    def _run_slices(self, start: int) -> None:
        a = self.arch
        pc = start
        t0 = time.monotonic()
        resumes = used = 0
        while True:
            if self._interrupted:
                raise KeyboardInterrupt
            self._pending = None
            self._fault = None
            left = self.time_budget - (time.monotonic() - t0)
            count = TICK_INSNS if not self.insn_budget else min(TICK_INSNS, self.insn_budget - used)
            if left <= 0 or count <= 0:
                break
            try:
                # The wall clock is checked between slices (TICK_INSNS instructions), not by
                # unicorn's timeout: that is a thread started per run, polling every few
                # microseconds (half a core on a tight loop) and joined at its end.
                self.uc.emu_start(pc, self.return_address, count=count)
            except unicorn.UcError as exc:
                if self._pending is not None:
                    raise self._pending from None
                pc = self.reg(a.pc)
                if self._fault is not None:
                    raise self.oops(*self._fault) from None
                if exc.errno == unicorn.UC_ERR_INSN_INVALID:
                    # WARN(): the kernel reports it and goes on after the ud2 (a bounded number of times)
                    if resumes < 64 and self.on_invalid_opcode(pc):
                        resumes += 1
                        pc += 2
                        continue
                    raise self.invalid_opcode(pc) from None
                raise EmulationFault("oops", f"CPU exception at {self.symbolize(pc)}: {exc}", pc=pc) from None
            if self._pending is not None:
                raise self._pending
            pc = self.reg(a.pc)
            if pc == self.return_address:
                return
            used += count
            self.on_tick()
        pc = self.reg(a.pc)
        if time.monotonic() - t0 >= self.time_budget * 0.99:
            raise EmulationFault("timeout", f"wall-clock budget of {self.time_budget:g} s exceeded at "
                                 f"{self.symbolize(pc)}", pc=pc)  # fmt: skip
        raise EmulationFault("budget", f"instruction budget of {self.insn_budget} exceeded at "
                             f"{self.symbolize(pc)}", pc=pc)  # fmt: skip

    # -- the kernel's reports ----------------------------------------------------------
    def oops(self, access: str, present: bool, address: int) -> EmulationFault:
        pc = self.reg(self.arch.pc)
        report = page_fault_report(self, access, present, address, pc)
        what = "NULL pointer dereference" if address < PAGE else "page fault"
        reason = f"{what}: {access} of {address:#x} at {self.symbolize(pc)}"
        return EmulationFault("oops", reason, pc=pc, address=address, report=report)

    def invalid_opcode(self, pc: int) -> EmulationFault:
        report = invalid_opcode_report(self, pc)
        return EmulationFault("bug", f"invalid opcode at {self.symbolize(pc)}", pc=pc, report=report)

    def set_percpu_base(self, base: int) -> None:
        """x86: the GS base (x86_64) / FS base (i386) per-cpu accesses go through."""
        # arm64: TPIDR_EL1 holds this CPU's offset (my_cpu_offset).  i386: 2.4 has no per-cpu
        # segment; 6.x i386's %fs per-cpu needs a GDT (not emulated).
        if self.arch.percpu_reg is not None:
            self.uc.reg_write(self.arch.percpu_reg, base)

    def set_current(self, task: int) -> None:
        """arm64 keeps ``current`` in sp_el0; x86_64 reads it from the per-cpu area."""
        if self.arch.current_reg is not None:
            self.uc.reg_write(self.arch.current_reg, task)


def pack_words(words: list[int], word: int) -> bytes:
    return struct.pack(f"<{len(words)}{'Q' if word == 8 else 'I'}", *words)

"""The model kernel's executor (lkm.kernel.executor's protocol) backed by the emulator.

The model kernel links a module itself and hands over its memory (base -> bytes) and the
address of a routine to call.  This executor maps each module's memory the first time it
sees it (later calls see what earlier ones left there: init's writes are there for exit),
runs the routine on an emulated CPU against the Python base kernel, and returns its result.
Kernel functions and data are recognised by address from the kernel's symbols (the same
kallsyms/profile the model linked against); the base kernel's tables and log are
``executor.kernel.state``.
"""

from __future__ import annotations

from typing import Protocol

from lkm.emulate.arch import ARCHES
from lkm.emulate.kernel import BaseKernel, SymbolSpace
from lkm.emulate.machine import EmulationFault
from lkm.emulate.state import KernelState
from lkm.kernel.model.profile import load_profile
from lkm.symbols.table import SymbolTable

__all__ = ["EmulatingExecutor", "Image", "ModuleRequester", "for_profile"]


class Image(Protocol):
    """lkm.kernel.executor.LoadedImage, structurally."""

    name: str
    memory: dict[int, bytes]
    symbols: dict[str, int]


class ModuleRequester(Protocol):
    """A kernel that can load a module by name (lkm.kernel.model.ModelKernel)."""

    def request_module(self, name: str, wait: bool = True) -> int: ...


class EmulatingExecutor:
    """``call(image, address, args) -> int`` on an emulated CPU.  A routine that does not
    return (oops, budget) comes back as -EFAULT; the fault is kept in ``faults`` and its oops
    text is in the kernel log."""

    def __init__(
        self,
        arch: str = "x86_64",
        symbols: SymbolSpace | None = None,
        *,
        strict: bool = False,
        state: KernelState | None = None,
    ) -> None:
        self.kernel = BaseKernel(arch, symbols, state, strict=strict)
        self.mapped: set[tuple[str, int]] = set()
        self.faults: list[EmulationFault] = []

    def bind_kernel(self, kernel: ModuleRequester) -> None:
        """Run inside ``kernel`` (the model kernel calls this): a module's __request_module
        becomes that kernel's request_module, which may load (and run) further modules."""
        self.kernel.request_module = kernel.request_module

    def call(self, image: Image, address: int, args: tuple[int, ...] = ()) -> int:
        k = self.kernel
        for base, data in image.memory.items():
            if (image.name, base) not in self.mapped:
                k.machine.map(base, len(data), f"module {image.name}", bytes(data))
                self.mapped.add((image.name, base))
        for name, addr in image.symbols.items():
            k.addresses.setdefault(name, addr)
        try:
            v = k.call(address, tuple(args), image.name) & 0xFFFFFFFF
        except EmulationFault as exc:
            self.faults.append(exc)
            for line in exc.report.splitlines():
                k.state.printk(1, False, line + "\n", image.name)
            return -14  # -EFAULT: the caller sees a failed routine
        return v - (1 << 32) if v >> 31 else v


def for_profile(profile: str, *, booted: bool = True) -> EmulatingExecutor:
    """An executor for a model kernel booted from ``profile`` (lkm.kernel.model.profile): its
    symbols, its architecture (2.4 i386 profiles: cdecl calls), the booted kernel's tables."""

    prof = load_profile(profile)
    arch = "i386-cdecl" if prof.fields.get("range") == "i386-2.4" else prof.arch
    state = KernelState.booted() if booted and ARCHES[arch].amd64_tables else None
    return EmulatingExecutor(arch, SymbolSpace(SymbolTable(prof.symbols), arch.split("-")[0]), state=state)

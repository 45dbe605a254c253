"""A module in the emulated kernel: linked at module addresses against the kernel's symbols,
mapped, its ``__fentry__`` call sites NOPed as ftrace does at load, its parameters parsed,
then init and exit run as do_init_module and delete_module run them.

After a failed init the module is as the kernel leaves it: init returned < 0 -> freed (its
memory unmapped, whatever it registered left dangling); init oopsed -> stuck in "Loading"
(the insmod process died holding it); init returned > 0 -> the kernel's warning, loaded anyway.
A successful init frees the init region.
"""

from __future__ import annotations

import bisect
import errno as _errno
import struct
from dataclasses import dataclass

from lkm.arch import for_machine
from lkm.elf.constants import STT_FUNC
from lkm.emulate.arch import row_for
from lkm.emulate.kernel import MODULE_PERCPU_OFFSET, BaseKernel
from lkm.emulate.machine import EmulationFault
from lkm.emulate.vsprintf import to_signed
from lkm.errors import LkmError
from lkm.link import link
from lkm.link.image import LinkedImage
from lkm.link.layout import KernelConfig, default_layout, layout_module, sequential_bases
from lkm.module.file import ModuleFile

__all__ = ["NOP5", "EmulatedModule", "InitResult", "arch_for", "load", "run_exit", "run_init"]


NOP5 = bytes.fromhex("0f1f440000")  # ftrace_nop_replace (x86 ideal 5-byte NOP)


def arch_for(mod: ModuleFile) -> str:
    """The emulator row a module runs on (2.4 i386 objects: plain cdecl)."""
    arch = for_machine(mod.elf.e_machine)
    if arch is None:
        raise LkmError(f"no emulator for machine {mod.elf.e_machine}", path=mod.path)
    return row_for(arch, mod.version)


@dataclass(frozen=True, slots=True)
class InitResult:
    """What insmod's init_module(2) call came to."""

    module: str
    value: int
    fault: EmulationFault | None
    state: str

    @property
    def ok(self) -> bool:
        return self.fault is None and self.value >= 0


class EmulatedModule:
    """One module's image in the emulated kernel."""

    def __init__(self, kernel: BaseKernel, mod: ModuleFile, image: LinkedImage, percpu: int) -> None:
        self.kernel = kernel
        self.file = mod
        self.name = mod.name
        self.image = image
        self.percpu = percpu
        self.state = "Loading"
        syms = []
        for s in mod.elf.symbols()[1:]:
            if s.shndx and s.name and s.shndx < len(mod.elf.sections) and s.shndx in image.section_addresses:
                syms.append((image.symbol_values[s.number], s.name, s.size if s.type == STT_FUNC else 0))
        syms.sort()
        self._syms = syms
        self._addrs = [a for a, _n, _s in syms]

    def symbol(self, name: str) -> int | None:
        for s in self.file.elf.symbols():
            if s.name == name and s.shndx:
                return self.image.symbol_values[s.number]
        return None

    def symbol_at(self, addr: int) -> tuple[str, int, int] | None:
        if not self.contains(addr):
            return None
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        a, name, size = self._syms[i]
        return name, addr - a, size or 1

    def bug_entry(self, pc: int) -> tuple[str, int, bool] | None:
        """The __bug_table entry for a ud2 at ``pc``: (file, line, is a warning).  x86_64 6.1
        entries: s32 bug_addr_disp, s32 file_disp (relative to the field), u16 line, u16 flags."""
        if not self.kernel.arch.amd64_tables:
            return None
        sec = self.section_address("__bug_table")
        if sec is None:
            return None
        addr, size = sec
        m = self.kernel.machine
        if not m.is_mapped(addr, size):
            return None
        raw = m.read(addr, size)
        for off in range(0, size - 11, 12):
            at = addr + off + int.from_bytes(raw[off : off + 4], "little", signed=True)
            if at & m.arch.mask != pc:
                continue
            file_at = addr + off + 4 + int.from_bytes(raw[off + 4 : off + 8], "little", signed=True)
            line = int.from_bytes(raw[off + 8 : off + 10], "little")
            flags = int.from_bytes(raw[off + 10 : off + 12], "little")
            name = (m.read_cstr(file_at & m.arch.mask, 256) or b"?").decode("utf-8", "replace")
            return name, line, bool(flags & 1)  # BUGFLAG_WARNING
        return None

    def contains(self, addr: int) -> bool:
        return any(b <= addr < b + self.image.layout.alloc_size(r) for r, b in self.image.bases.items())

    def section_address(self, name: str) -> tuple[int, int] | None:
        sec = self.file.elf.section(name)
        if sec is None or sec.number not in self.image.section_addresses:
            return None
        return self.image.section_addresses[sec.number], self.image.layout.placements[sec.number].size

    def unmap(self, regions: tuple[str, ...] | None = None) -> None:
        m = self.kernel.machine
        for r, base in self.image.bases.items():
            if regions is not None and r not in regions:
                continue
            m.unmap_range(base, self.image.layout.alloc_size(r))


def load(kernel: BaseKernel, mod: ModuleFile, *, base: int | None = None) -> EmulatedModule:
    """Link ``mod`` into ``kernel``'s address space and map it (init not run yet)."""
    if mod.name in kernel.modules:
        raise LkmError(f"{mod.name}: module is already loaded (EEXIST)", path=mod.path)
    arch = kernel.arch
    lay = layout_module(mod.elf, default_layout(mod), KernelConfig())
    at = base if base is not None else getattr(kernel, "_module_next", arch.module_base)
    bases, end = sequential_bases(lay, at)
    kernel._module_next = end + 0x1000  # type: ignore[attr-defined]
    pcpu_sec = mod.elf.section(".data..percpu")
    percpu = 0
    if pcpu_sec is not None and pcpu_sec.size:
        used = getattr(kernel, "_module_percpu", MODULE_PERCPU_OFFSET)
        percpu = (used + 63) & ~63
        kernel._module_percpu = percpu + pcpu_sec.size  # type: ignore[attr-defined]
        kernel.machine.write(kernel.percpu_base + percpu, mod.elf.section_bytes(pcpu_sec))
        if not kernel.percpu_relative:
            percpu += kernel.percpu_base  # arm64: the variables' own addresses
    image = link(mod, kernel.resolve, bases=bases, layout=lay, percpu_base=percpu)
    if arch.amd64_tables:
        _nop_mcount(kernel, mod, image)
    for region, data in image.regions.items():
        kernel.machine.map(
            bases[region], max(lay.alloc_size(region), len(data)), f"module {mod.name}", bytes(data)
        )
    em = EmulatedModule(kernel, mod, image, percpu)
    kernel.modules[mod.name] = em
    for exp in mod.exports:
        addr = em.symbol(exp.name)
        if addr is not None:
            kernel.exports[exp.name] = addr
    return em


def _nop_mcount(kernel: BaseKernel, mod: ModuleFile, image: LinkedImage) -> None:
    """ftrace_module_init: every __fentry__ call site listed in __mcount_loc becomes a NOP
    (in the linked image, before it is mapped)."""
    sec = mod.elf.section("__mcount_loc")
    fentry = kernel.addresses.get("__fentry__")
    if sec is None or fentry is None or sec.number not in image.section_addresses:
        return
    place = image.layout.placements[sec.number]
    table = bytes(image.regions[place.region][place.offset : place.offset + place.size])
    spans = [(image.bases[r], data) for r, data in image.regions.items()]
    mask = kernel.arch.mask
    for (site,) in struct.iter_unpack("<Q", table[: len(table) & ~7]):
        for base, data in spans:
            off = site - base
            if off >= 0 and off + 5 <= len(data):
                rel = int.from_bytes(data[off + 1 : off + 5], "little", signed=True)
                if data[off] == 0xE8 and (site + 5 + rel) & mask == fentry:
                    data[off : off + 5] = NOP5
                break


def run_init(kernel: BaseKernel, em: EmulatedModule) -> InitResult:
    """do_init_module: call init, then leave the module as the kernel would."""
    init = em.symbol("init_module")
    value = 0
    fault = None
    if init is not None:
        try:
            value = to_signed(kernel.call(init, (), em.name), 32)
        except EmulationFault as exc:
            fault = exc
    if fault is not None:
        for line in fault.report.splitlines():
            kernel.state.printk(1, False, line + "\n", em.name)
        em.state = "Loading"
        return InitResult(em.name, 0, fault, em.state)
    if value < 0:
        _free(kernel, em)
        return InitResult(em.name, value, None, "Gone")
    if value > 0:
        msg = (f"do_init_module: '{em.name}'->init suspiciously returned {value}, it should follow 0/-E "
               f"convention\ndo_init_module: loading module anyway...\n")  # fmt: skip
        kernel.state.printk(4, False, msg, None)
    em.state = "Live"
    em.unmap(tuple(r for r in em.image.bases if r.startswith("init")))
    return InitResult(em.name, value, None, em.state)


def run_exit(kernel: BaseKernel, em: EmulatedModule) -> EmulationFault | None:
    """delete_module: the exit routine, then the module is freed.  A module without one cannot
    be removed (EBUSY), as with the real kernel without --force."""
    if em.state != "Live":
        raise LkmError(f"{em.name}: module is not live ({em.state})")
    cleanup = em.symbol("cleanup_module")
    if cleanup is None:
        raise LkmError(f"{em.name}: module has no exit routine: {_errno.errorcode[_errno.EBUSY]}")
    em.state = "Unloading"
    try:
        kernel.call(cleanup, (), em.name)
    except EmulationFault as exc:
        for line in exc.report.splitlines():
            kernel.state.printk(1, False, line + "\n", em.name)
        return exc
    _free(kernel, em)
    return None


def _free(kernel: BaseKernel, em: EmulatedModule) -> None:
    em.unmap()
    em.state = "Gone"
    kernel.modules.pop(em.name, None)
    for exp in em.file.exports:
        kernel.exports.pop(exp.name, None)

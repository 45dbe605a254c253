"""Memory-mapped and port I/O to emulated devices (arch/x86/mm/ioremap.c, lib/iomap.c).

ioremap() hands out a virtual window onto a physical range; the window is unicorn MMIO, so the
driver's inline ``readl``/``writel`` (plain moves on x86) reach the device model as well as the
exported ``ioread32``/``iowrite32``.  ``in``/``out`` instructions (inline ``inb``/``outb``) are
hooked.  Every access is traced in :attr:`lkm.emulate.hw.Hardware.trace`; nothing claims an
address: reads give all ones (a bus without a device), writes are dropped.
"""

from __future__ import annotations

import unicorn

from lkm.emulate.hw import Access, Device, Hardware, Window, hw_of
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import PAGE, TrapCall

__all__ = [
    "ENOMEM",
    "PIO_MASK",
    "PIO_OFFSET",
    "PIO_RESERVED",
    "caller_pc",
    "device_named",
    "install",
    "io_read",
    "io_write",
    "ioremap",
    "iounmap",
    "mem_access",
    "port_access",
]


PIO_OFFSET, PIO_MASK, PIO_RESERVED = 0x10000, 0xFFFF, 0x40000  # lib/iomap.c (x86)
ENOMEM = 12


def _ones(size: int) -> int:
    return (1 << (8 * size)) - 1


def caller_pc(k: BaseKernel) -> int:
    """The return address of the kernel function being run (the module's call site)."""
    m = k.machine
    if k.arch.link is not None:
        return m.reg(k.arch.link)
    return m.read_word(m.reg(k.arch.sp))


# -- the device model ----------------------------------------------------------------------------
def mem_access(hw: Hardware, w: Window, off: int, size: int, value: int | None, pc: int) -> int:
    dev = w.device
    op = "read" if value is None else "write"
    if dev is None:
        hw.trace.append(
            Access(
                op, "", "mmio", w.phys + off, w.virt + off, size, _ones(size) if value is None else value, pc
            )
        )
        return _ones(size)
    bar = dev.bar(w.bar)
    space = f"bar{w.bar}"
    boff = w.phys + off - (bar.start if bar is not None else w.phys)
    if value is None:
        value = dev.read_reg(space, boff, size)
    else:
        dev.write_reg(space, boff, size, value)
    hw.trace.append(Access(op, dev.name, space, boff, w.virt + off, size, value, pc))
    return value


def port_access(hw: Hardware, port: int, size: int, value: int | None, pc: int) -> int:
    op = "in" if value is None else "out"
    found = hw.find_bar(port, "io")
    if found is None:
        v = _ones(size) if value is None else value
        hw.trace.append(Access(op, "", "port", port, port, size, v, pc))
        return _ones(size)
    dev, bar = found
    space = f"bar{bar.index}"
    if value is None:
        value = dev.read_reg(space, port - bar.start, size)
    else:
        dev.write_reg(space, port - bar.start, size, value)
    hw.trace.append(Access(op, dev.name, space, port - bar.start, port, size, value, pc))
    return value


def install(k: BaseKernel, hw: Hardware) -> None:
    """Hook the CPU's ``in`` and ``out`` instructions (x86)."""
    if k.arch.name not in ("x86_64", "i386") or hw.installed:
        return
    from unicorn import x86_const as x86

    pc_reg = k.arch.pc

    def on_in(uc: unicorn.Uc, port: int, size: int, _d: object) -> int:
        return port_access(hw, port, size, None, int(uc.reg_read(pc_reg)))

    def on_out(uc: unicorn.Uc, port: int, size: int, value: int, _d: object) -> None:
        port_access(hw, port, size, value & _ones(size), int(uc.reg_read(pc_reg)))

    k.machine.uc.hook_add(unicorn.UC_HOOK_INSN, on_in, None, 1, 0, x86.UC_X86_INS_IN)
    k.machine.uc.hook_add(unicorn.UC_HOOK_INSN, on_out, None, 1, 0, x86.UC_X86_INS_OUT)
    hw.installed = True


def ioremap(k: BaseKernel, phys: int, size: int) -> int:
    """A virtual window onto ``[phys, phys+size)``: unicorn MMIO pages answered by the device
    model."""
    hw = hw_of(k)
    size = max(size, 1)
    first = phys & ~(PAGE - 1)
    span = ((phys + size + PAGE - 1) & ~(PAGE - 1)) - first
    base = hw.new_virtual(span)
    found = hw.find_bar(phys, "mem")
    dev, bar = (found[0], found[1].index) if found is not None else (None, -1)
    w = Window(base + (phys - first), size, phys, dev, bar)
    m = k.machine
    pc_reg = k.arch.pc

    def rd(uc: unicorn.Uc, off: int, sz: int, _d: object) -> int:
        return mem_access(hw, w, off - (phys - first), sz, None, int(uc.reg_read(pc_reg)))

    def wr(uc: unicorn.Uc, off: int, sz: int, value: int, _d: object) -> None:
        mem_access(hw, w, off - (phys - first), sz, value & _ones(sz), int(uc.reg_read(pc_reg)))

    m.uc.mmio_map(base & m.pmask, span, rd, None, wr, None)
    for page in range(base, base + span, PAGE):
        m.mapped[page] = "mmio"
    hw.windows.append(w)
    return w.virt


def iounmap(k: BaseKernel, virt: int) -> None:
    hw = hw_of(k)
    w = hw.window_at(virt)
    if w is None:
        return
    hw.windows.remove(w)
    first = w.virt & ~(PAGE - 1)
    k.machine.unmap_range(first, ((w.virt + w.size + PAGE - 1) & ~(PAGE - 1)) - first)


def io_read(k: BaseKernel, addr: int, size: int) -> int:
    """ioread8/16/32 on an __iomem cookie: a port (pci_iomap of an I/O BAR) or MMIO."""
    hw = hw_of(k)
    pc = caller_pc(k)
    if PIO_OFFSET < addr < PIO_RESERVED:
        return port_access(hw, addr & PIO_MASK, size, None, pc)
    w = hw.window_at(addr)
    if w is None:
        return k.machine.read_int(addr, size)
    return mem_access(hw, w, addr - w.virt, size, None, pc)


def io_write(k: BaseKernel, addr: int, size: int, value: int) -> None:
    hw = hw_of(k)
    pc = caller_pc(k)
    value &= _ones(size)
    if PIO_OFFSET < addr < PIO_RESERVED:
        port_access(hw, addr & PIO_MASK, size, value, pc)
        return
    w = hw.window_at(addr)
    if w is None:
        k.machine.write_int(addr, size, value)
        return
    mem_access(hw, w, addr - w.virt, size, value, pc)


def _swap(value: int, size: int) -> int:
    return int.from_bytes(value.to_bytes(size, "little"), "big")


# -- the kernel's functions ----------------------------------------------------------------------
@kfunc(
    "ioremap",
    "ioremap_wc",
    "ioremap_uc",
    "ioremap_cache",
    "ioremap_wt",
    "ioremap_prot",
    "ioremap_encrypted",
    nargs=2,
)
def _ioremap(k: BaseKernel, c: TrapCall) -> int:
    return ioremap(k, c.arg(0), c.arg(1))


@kfunc("devm_ioremap", "devm_ioremap_wc", "devm_ioremap_uc", "devm_ioremap_np", nargs=3)
def _devm_ioremap(k: BaseKernel, c: TrapCall) -> int:
    return ioremap(k, c.arg(1), c.arg(2))


@kfunc("iounmap", nargs=1)
def _iounmap(k: BaseKernel, c: TrapCall) -> int:
    iounmap(k, c.arg(0))
    return 0


@kfunc("devm_iounmap", nargs=2)
def _devm_iounmap(k: BaseKernel, c: TrapCall) -> int:
    iounmap(k, c.arg(1))
    return 0


_READS = {"ioread8": 1, "ioread16": 2, "ioread32": 4, "ioread64_lo_hi": 8, "ioread64_hi_lo": 8}
_READS_BE = {"ioread16be": 2, "ioread32be": 4, "ioread64be_lo_hi": 8, "ioread64be_hi_lo": 8}
_WRITES = {"iowrite8": 1, "iowrite16": 2, "iowrite32": 4, "iowrite64_lo_hi": 8, "iowrite64_hi_lo": 8}
_WRITES_BE = {"iowrite16be": 2, "iowrite32be": 4, "iowrite64be_lo_hi": 8, "iowrite64be_hi_lo": 8}


@kfunc(*_READS, *_READS_BE, nargs=1)
def _ioread(k: BaseKernel, c: TrapCall) -> int:
    size = _READS.get(c.name) or _READS_BE[c.name]
    v = io_read(k, c.arg(0), size)
    return _swap(v, size) if c.name in _READS_BE else v


@kfunc(*_WRITES, *_WRITES_BE, nargs=2)
def _iowrite(k: BaseKernel, c: TrapCall) -> int:
    size = _WRITES.get(c.name) or _WRITES_BE[c.name]
    v = c.arg(0) & _ones(size)
    io_write(k, c.arg(1), size, _swap(v, size) if c.name in _WRITES_BE else v)
    return 0


@kfunc("ioread8_rep", "ioread16_rep", "ioread32_rep", nargs=3)
def _ioread_rep(k: BaseKernel, c: TrapCall) -> int:
    size = {"ioread8_rep": 1, "ioread16_rep": 2, "ioread32_rep": 4}[c.name]
    addr, buf, count = c.arg(0), c.arg(1), c.arg(2) & 0xFFFFFFFF
    for i in range(min(count, 1 << 16)):
        k.machine.write_int(buf + i * size, size, io_read(k, addr, size))
    return 0


@kfunc("iowrite8_rep", "iowrite16_rep", "iowrite32_rep", nargs=3)
def _iowrite_rep(k: BaseKernel, c: TrapCall) -> int:
    size = {"iowrite8_rep": 1, "iowrite16_rep": 2, "iowrite32_rep": 4}[c.name]
    addr, buf, count = c.arg(0), c.arg(1), c.arg(2) & 0xFFFFFFFF
    for i in range(min(count, 1 << 16)):
        io_write(k, addr, size, k.machine.read_int(buf + i * size, size))
    return 0


@kfunc("memcpy_fromio", "__memcpy_fromio", nargs=3)
def _memcpy_fromio(k: BaseKernel, c: TrapCall) -> int:
    dst, src, n = c.arg(0), c.arg(1), c.arg(2)
    for i in range(min(n, 1 << 20)):
        k.machine.write_int(dst + i, 1, io_read(k, src + i, 1))
    return 0


@kfunc("memcpy_toio", "__memcpy_toio", nargs=3)
def _memcpy_toio(k: BaseKernel, c: TrapCall) -> int:
    dst, src, n = c.arg(0), c.arg(1), c.arg(2)
    for i in range(min(n, 1 << 20)):
        io_write(k, dst + i, 1, k.machine.read_int(src + i, 1))
    return 0


@kfunc("memset_io", nargs=3)
def _memset_io(k: BaseKernel, c: TrapCall) -> int:
    dst, value, n = c.arg(0), c.arg(1) & 0xFF, c.arg(2)
    for i in range(min(n, 1 << 20)):
        io_write(k, dst + i, 1, value)
    return 0


@kfunc("ioport_map", nargs=2)
def _ioport_map(k: BaseKernel, c: TrapCall) -> int:
    return PIO_OFFSET + (c.arg(0) & PIO_MASK)


@kfunc("ioport_unmap", nargs=1)
def _ioport_unmap(k: BaseKernel, c: TrapCall) -> int:
    return 0


def device_named(k: BaseKernel, name: str) -> Device | None:
    return next((d for d in hw_of(k).devices if d.name == name), None)

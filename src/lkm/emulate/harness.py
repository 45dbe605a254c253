"""A test harness for module authors: load a module into an emulated kernel with emulated
devices, drive it (file operations, ioctls, interrupts, time) and assert on what it did
(printk, registrations, kernel calls, device accesses).  No root, no VM, no hardware::

    from lkm.emulate.harness import Harness

    h = Harness(devices=["pci:v1234d11E8,bar0=mem:0x100000,irq=10"])
    edu = h.devices[0]
    edu.set(0, 0x00, 0x010000ED)                       # the identification register
    h.load("pcidemo.ko")                               # init runs, probe() with it
    assert "pcidemo 0000:00:03.0: irq 10, /dev/pcidemo" in h.dmesg
    f = h.open("pcidemo")                              # a misc or char device by name
    edu.set(0, 0x24, 1)
    assert h.irq(10) == 1                              # handlers that returned IRQ_HANDLED
    assert f.read(100) == b"irqs=1 tasklets=1 works=1 timers=0\\n"
    h.advance(1000)                                    # timers fire on the virtual clock
    h.unload()                                         # exit: remove() runs
    assert [a.op for a in h.accesses(space="bar0")][:2] == ["read", "write"]

A network driver's registered device is :meth:`Harness.netdev` (a :class:`NetDevice`: its
name and MAC, ``open``/``stop``/``xmit``/``stats`` as the core calls its netdev ops, the frames
it ``received``); NAPI polls and woken transmit queues run at an interrupt's exit.

Calls that do not return (an oops in the module, a budget exceeded) raise
:class:`lkm.emulate.machine.EmulationFault` with the kernel's report.  A pytest fixture,
``lkm_harness``, is in :mod:`lkm.emulate.pytest_plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from lkm.emulate.base import skbuff
from lkm.emulate.base.bus import add_device, hotplug
from lkm.emulate.base.irq import advance, raise_irq, run_pending
from lkm.emulate.base.net import ND
from lkm.emulate.base.netdev import NETDEV
from lkm.emulate.devfile import OpenFile, dev_ioctl, dev_open, dev_read, dev_release, dev_write
from lkm.emulate.hw import Access, Device, Hardware, hw_of
from lkm.emulate.kernel import BaseKernel, SymbolSpace, TraceEntry
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import InitResult
from lkm.emulate.replay import ReplayReport, device_from_spec, replay_devices, report
from lkm.emulate.session import Session
from lkm.emulate.state import Registration
from lkm.errors import LkmError
from lkm.symbols.table import SymbolTable

USER_ARGS = 0x100000  # ioctl argument memory: above the read/write buffer of lkm.emulate.devfile
USER_ARGS_SIZE = 0x10000


class HarnessError(LkmError):
    """The harness was asked for something that is not there (a device, a module)."""


class File:
    """An open /dev node of the module's: its file operations, called in the emulator."""

    def __init__(self, h: Harness, f: OpenFile) -> None:
        self.h = h
        self.f = f

    def read(self, count: int = 4096) -> bytes:
        """->read: the bytes read; a negative return raises OSError with its errno."""
        ret, data = dev_read(self.h.kernel, self.f, count)
        if ret < 0:
            raise OSError(-ret, os.strerror(-ret))
        return data

    def write(self, data: bytes) -> int:
        ret = dev_write(self.h.kernel, self.f, data)
        if ret < 0:
            raise OSError(-ret, os.strerror(-ret))
        return ret

    def ioctl(self, cmd: int, arg: int = 0) -> int:
        """->unlocked_ioctl's return value (negative: an errno); a pointer argument comes from
        :meth:`Harness.user`."""
        return self.h._signed(dev_ioctl(self.h.kernel, self.f, cmd, arg))

    def close(self) -> int:
        return dev_release(self.h.kernel, self.f)


class NetDevice:
    """A network device the module registered (register_netdev): what ``ip link`` would
    show of it, and its netdev ops called as the core calls them."""

    def __init__(self, h: Harness, address: int) -> None:
        self.h = h
        self.address = address  # struct net_device

    @property
    def name(self) -> str:
        return self.h.kernel.cstring(self.address, 16)

    @property
    def mac(self) -> str:
        """dev->dev_addr as ``ip link`` prints it (aa:bb:cc:dd:ee:ff)."""
        m = self.h.kernel.machine
        n = m.read_int(self.address + ND["addr_len"], 1)
        return ":".join(f"{b:02x}" for b in m.read(m.read_word(self.address + ND["dev_addr"]), n))

    @property
    def ifindex(self) -> int:
        return self.h.kernel.machine.read_int(self.address + NETDEV["ifindex"], 4)

    @property
    def mtu(self) -> int:
        return self.h.kernel.machine.read_int(self.address + ND["mtu"], 4)

    @property
    def up(self) -> bool:
        """IFF_UP: opened and not stopped."""
        return bool(self.h.kernel.machine.read_int(self.address + skbuff.NETDEV_FLAGS, 4) & skbuff.IFF_UP)

    @property
    def carrier(self) -> bool:
        """netif_carrier_ok(): the driver said the link is up."""
        return not self.h.kernel.machine.read_word(self.address + NETDEV["state"]) & (1 << 2)

    @property
    def queue_stopped(self) -> bool:
        """netif_queue_stopped(): the driver stopped its transmit queue."""
        return skbuff.queue_stopped(self.h.kernel, self.address)

    @property
    def queued(self) -> int:
        """Frames waiting in the device's queue (the driver stopped it)."""
        return skbuff.queued(self.h.kernel, self.address)

    def open(self) -> int:
        """``ip link set NAME up``: dev_open (ndo_validate_addr, ndo_open); its return value."""
        return skbuff.dev_open(self.h.kernel, self.address)

    def stop(self) -> None:
        """``ip link set NAME down``: dev_close (ndo_stop)."""
        skbuff.dev_close(self.h.kernel, self.address)

    def xmit(self, frame: bytes) -> int:
        """dev_queue_xmit of ``frame`` (from its Ethernet header on, as a packet socket sends
        it): queued, then handed to ndo_start_xmit while the driver's queue runs; how many
        queued frames the driver took (0: it stopped its queue), -ENETDOWN when down."""
        return skbuff.dev_xmit(self.h.kernel, self.address, frame)

    def stats(self) -> dict[str, int]:
        """dev_get_stats: the counters of ndo_get_stats64 (or ndo_get_stats, dev->stats)."""
        return skbuff.get_stats(self.h.kernel, self.address)

    @property
    def received(self) -> list[bytes]:
        """The frames the driver handed up (netif_rx, napi_gro_receive...), oldest first."""
        return [f.data for f in skbuff.received(self.h.kernel) if f.device == self.name]

    @property
    def frames(self) -> list[skbuff.Frame]:
        """The same with the protocol and packet type eth_type_trans gave them."""
        return [f for f in skbuff.received(self.h.kernel) if f.device == self.name]

    def __repr__(self) -> str:
        return f"NetDevice({self.name}, {self.mac})"


class Harness:
    """One emulated kernel with devices (``devices``: specs as ``lkm run --device`` takes).
    Kernel symbols: ``kallsyms`` (a /proc/kallsyms, System.map or kernel image), or a prepared
    ``symbols``; else synthetic addresses."""

    def __init__(
        self,
        devices: Iterable[str] = (),
        *,
        kallsyms: str | None = None,
        symbols: SymbolSpace | None = None,
        strict: bool = False,
        insn_budget: int | None = None,
        time_budget: float | None = None,
    ) -> None:
        if kallsyms is not None:
            symbols = SymbolSpace(SymbolTable.from_files(kallsyms), "x86_64")
        self.session = Session(
            symbols, strict=strict, insn_budget=insn_budget, time_budget=time_budget, devices=list(devices)
        )
        self.session.kernel_for("x86_64")
        self._user_next = 0
        self._logs: dict[str, list[str]] = {}  # the last load's and unload's printk lines

    # -- the kernel ----------------------------------------------------------------------------
    @property
    def kernel(self) -> BaseKernel:
        return self.session.k

    @property
    def hw(self) -> Hardware:
        return hw_of(self.kernel)

    @property
    def devices(self) -> list[Device]:
        return self.hw.devices

    def device(self, name: str) -> Device:
        """A device by its bus name ("0000:00:03.0", "1-1:1.0", a platform name)."""
        for d in self.devices:
            if d.name == name:
                return d
        raise HarnessError(f"no device {name!r} (have: {', '.join(d.name for d in self.devices)})")

    def add_device(self, spec: str) -> Device:
        """Plug a device in now: drivers already registered probe it."""
        d = device_from_spec(spec)
        if d is None:
            raise HarnessError("auto is a --device for a whole run, not a device to plug in")
        add_device(self.kernel, d)
        hotplug(self.kernel, d)
        return d

    # -- modules -------------------------------------------------------------------------------
    def load(self, path: str, *params: str, check: bool = True) -> InitResult:
        """insmod: the module's init runs (and the probes its registrations trigger).  With
        ``check`` an init that fails or does not return raises."""
        res, out = self.session.insmod(path, " ".join(params))
        self._logs["probe"] = out.log
        if check and res.fault is not None:
            raise res.fault
        if check and res.value < 0:
            raise HarnessError(f"{res.module}: init returned {res.value}")
        return res

    def unload(self, name: str | None = None) -> None:
        """rmmod (the newest module by default): its exit runs, remove() with it."""
        if name is None:
            if not self.kernel.modules:
                raise HarnessError("no module loaded")
            name = list(self.kernel.modules)[-1]
        out = self.session.rmmod(name)
        self._logs["remove"] = out.log
        if out.fault is not None:
            raise out.fault

    # -- driving -------------------------------------------------------------------------------
    def open(self, name: str) -> File:
        """open("/dev/NAME") of a misc or char device the module registered."""
        f, ret = dev_open(self.kernel, name)
        if ret < 0:
            raise OSError(-ret, f"/dev/{name}: {os.strerror(-ret)}")
        return File(self, f)

    def netdev(self, name: str | None = None) -> NetDevice:
        """A registered network device by name (the only one / the first by default)."""
        regs = [r for r in self.registrations if r.kind == "netdev"]
        for r in regs:
            if name is None or r.name == name or self.kernel.cstring(r.address, 16) == name:
                return NetDevice(self, r.address)
        have = ", ".join(r.name for r in regs) or "none"
        raise HarnessError(f"no network device {name or ''!r} (have: {have})")

    @property
    def netdevs(self) -> list[NetDevice]:
        return [NetDevice(self, r.address) for r in self.registrations if r.kind == "netdev"]

    @property
    def skbs(self) -> int:
        """sk_buffs allocated and not freed (a leak when the driver is done with its frames)."""
        return skbuff.live_skbs(self.kernel)

    def dma(self, bus_address: int, size: int) -> bytes:
        """What a device reads at ``bus_address`` (a dma_map_single/dma_alloc_coherent handle
        the driver wrote to its registers)."""
        return self.kernel.machine.read(bus_address + self.kernel.arch.page_offset, size)

    def user(self, data: bytes | int) -> int:
        """User memory holding ``data`` (or that many zero bytes): a pointer for an ioctl."""
        k = self.kernel
        raw = bytes(data) if isinstance(data, int) else data
        base = k.arch.user_base + USER_ARGS
        k.machine.map(base, USER_ARGS_SIZE, "user")
        if self._user_next + len(raw) > USER_ARGS_SIZE:
            self._user_next = 0
        addr = base + self._user_next
        self._user_next += (len(raw) + 15) & ~15
        k.machine.write(addr, raw)
        return addr

    def peek(self, addr: int, size: int) -> bytes:
        return self.kernel.machine.read(addr, size)

    def irq(self, line: int) -> int:
        """Interrupt ``line`` fires; handlers that returned IRQ_HANDLED (their tasklets and
        work run after)."""
        return raise_irq(self.kernel, line)  # NAPI polls and woken queues run at its exit

    def advance(self, ms: int) -> int:
        """The virtual clock moves ``ms`` milliseconds on; timer callbacks run."""
        return advance(self.kernel, ms)

    def run_pending(self) -> int:
        """Queued work items and scheduled tasklets run now."""
        return run_pending(self.kernel) + skbuff.net_softirq(self.kernel)

    # -- what happened -------------------------------------------------------------------------
    @property
    def dmesg(self) -> list[str]:
        return self.kernel.state.dmesg()

    @property
    def registrations(self) -> list[Registration]:
        return self.kernel.state.registrations

    def calls(self, name: str | None = None) -> list[TraceEntry]:
        return [t for t in self.kernel.trace if name is None or t.name == name]

    @property
    def unimplemented(self) -> list[str]:
        return sorted(self.kernel.state.unimplemented)

    def accesses(
        self, device: str | None = None, *, op: str | None = None, space: str | None = None
    ) -> list[Access]:
        return [
            a
            for a in self.hw.trace
            if (device is None or a.device == device)
            and (op is None or a.op == op)
            and (space is None or a.space == space)
        ]

    def replay(self) -> list[ReplayReport]:
        """How each recorded device (``replay:TRACE``) was followed, the kernel log of the last
        load (probe) and unload (remove) compared with the recording guest's."""
        return [report(d, self.hw, self._logs) for d in replay_devices(self.hw)]

    def _signed(self, v: int) -> int:
        bits = 8 * self.kernel.arch.word
        v &= (1 << bits) - 1
        return v - (1 << bits) if v >> (bits - 1) else v


__all__ = ["EmulationFault", "File", "Harness", "HarnessError", "NetDevice"]

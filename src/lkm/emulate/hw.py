"""Emulated hardware: devices on virtual PCI, USB and platform buses, their register model, the
trace of every access a driver makes, interrupt lines and the virtual clock's pending work.

A device comes from a small spec (:func:`parse_device`)::

    pci:v8086d100E                       vendor 0x8086, device 0x100e (other ids 0)
    pci:v8086d100Esv1AF4sd1100c020000    + subsystem ids, class (24 bits)
    pci:v00008086d0000100Esv*sd*bc02sc00i*   a modalias as modinfo's alias: lines print it
    usb:v046DpC52B   usb:v046DpC52Bd0111dc00dsc00dp00ic03isc01ip02in00
    platform:serial8250
    auto                                 one device per registered driver, from its id table

followed by options: ``,bar0=mem:0x20000`` (a BAR: mem or io, its size), ``,irq=11``,
``,rev=2``, ``,bar0+0x8=0x80000000`` (the 32-bit value a register reads before the driver
writes it).  Registers read as last written, or as given, else 0; every access is traced
(:class:`Access`).  Addresses nothing claims read as all ones, as a bus with no device answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lkm.errors import LkmError

if TYPE_CHECKING:
    from lkm.emulate.kernel import BaseKernel

__all__ = [
    "DEFAULT_IRQ",
    "DEFAULT_PCI_BARS",
    "IOREMAP_BASE",
    "MEM_BASE",
    "PCI_ANY_ID",
    "PORT_BASE",
    "Access",
    "Bar",
    "Device",
    "DeviceSpecError",
    "Hardware",
    "IrqAction",
    "Window",
    "hw_of",
    "parse_device",
]


MEM_BASE = 0xFE000000  # physical addresses of emulated memory BARs and resources
PORT_BASE = 0xC000  # I/O port BARs
IOREMAP_BASE = 0xFFFFC90100000000  # ioremap()'s virtual addresses (vmalloc area, above the stack)
DEFAULT_PCI_BARS = ((0, "mem", 0x100000), (1, "io", 0x100), (2, "mem", 0x100000), (4, "mem", 0x4000))
DEFAULT_IRQ = 11
PCI_ANY_ID = 0xFFFFFFFF


class DeviceSpecError(LkmError):
    """A --device spec that cannot be read."""


@dataclass(frozen=True, slots=True)
class Bar:
    """A PCI BAR or a platform memory/port resource: where it is and how big."""

    index: int
    kind: str
    start: int
    size: int


@dataclass(slots=True, unsafe_hash=True)
class Access:
    """One access a driver made to its hardware."""

    op: str  # read, write (memory), in, out (ports), cfg-read, cfg-write, usb-ctrl
    device: str  # the device's name ("0000:00:03.0"), "" for nothing claimed
    space: str  # "bar0".."bar5", "config", "port", "mmio" (nothing claimed)
    offset: int  # in that space
    address: int  # the address the driver used (virtual, port, or config offset)
    size: int
    value: int
    pc: int  # the instruction (or the caller of the kernel function) that made it
    site: str = field(
        default="", init=False
    )  # pc symbolised ("e1000_probe+0x1a/0x8c0 [e1000]"), filled in by the session

    def json(self) -> dict[str, object]:
        return {"op": self.op, "device": self.device, "space": self.space, "offset": self.offset,
                "address": f"{self.address:#x}", "size": self.size, "value": f"{self.value:#x}",
                "pc": f"{self.pc:#x}", "site": self.site}  # fmt: skip


class Device:
    """One emulated device: its ids, resources, register file and binding."""

    def __init__(self, bus: str, ids: dict[str, int], name: str = "", spec: str = "") -> None:
        self.bus = bus
        self.ids = ids
        self.name = name  # platform: the device name; else the bus name once added ("0000:00:03.0")
        self.spec = spec
        self.bars: list[Bar] = []
        self.irq = DEFAULT_IRQ
        self.presets: dict[tuple[int, int], tuple[int, int]] = {}  # (bar, offset) -> (size, value)
        self.regs: dict[tuple[str, int], int] = {}  # (space, byte offset) -> byte
        self.address = 0  # struct pci_dev / usb_interface / platform_device
        self.dev = 0  # its struct device
        self.extra: dict[str, int] = {}  # other objects made for it (usb_device, bus...)
        self.driver = 0  # the bound driver (struct pci_driver...), 0: none
        self.driver_name = ""
        self.module: str | None = None
        self.probe_result: int | None = None  # probe()'s return value, None: not returned (yet)
        self.probed = False  # a driver's probe() was called for it
        self.removed = False
        self.auto_for = 0  # the driver whose table this device was made from (--device auto)
        self.config = bytearray(256)  # PCI configuration space
        self.devres: list[tuple[int, int]] = []  # devm actions: (function, data), run on unbind
        self.bar_specs: list[tuple[int, str, int]] | None = None  # BARs the spec gave
        self.fixed_bars: list[Bar] | None = None  # BARs at given addresses (a recorded device's)
        self.devfn: int | None = None  # PCI slot and function given (a recorded device's), else the next
        # a register's behaviour beyond "reads as last written" (lkm.emulate.harness):
        self.read_hooks: dict[tuple[str, int], Callable[[], int]] = {}
        self.write_hooks: dict[tuple[str, int], Callable[[int], None]] = {}

    def read_reg(self, space: str, offset: int, size: int) -> int:
        hook = self.read_hooks.get((space, offset))
        if hook is not None:
            return hook() & ((1 << (8 * size)) - 1)
        value = 0
        for i in range(size):
            value |= self.regs.get((space, offset + i), 0) << (8 * i)
        return value

    def write_reg(self, space: str, offset: int, size: int, value: int) -> None:
        hook = self.write_hooks.get((space, offset))
        if hook is not None:
            hook(value)
            return
        for i in range(size):
            self.regs[(space, offset + i)] = (value >> (8 * i)) & 0xFF

    def set(self, bar: int, offset: int, value: int, size: int = 4) -> None:
        """The value register ``offset`` of BAR ``bar`` reads (until the driver writes it)."""
        self.write_reg(f"bar{bar}", offset, size, value)

    def get(self, bar: int, offset: int, size: int = 4) -> int:
        """What register ``offset`` of BAR ``bar`` holds (no access traced)."""
        return self.read_reg(f"bar{bar}", offset, size)

    def on_read(self, bar: int, offset: int, fn: Callable[[], int]) -> None:
        """Reads of register ``offset`` of BAR ``bar`` return ``fn()``."""
        self.read_hooks[(f"bar{bar}", offset)] = fn

    def on_write(self, bar: int, offset: int, fn: Callable[[int], None]) -> None:
        """Writes to register ``offset`` of BAR ``bar`` call ``fn(value)`` instead of storing it."""
        self.write_hooks[(f"bar{bar}", offset)] = fn

    def bar(self, index: int) -> Bar | None:
        return next((b for b in self.bars if b.index == index), None)

    def __repr__(self) -> str:
        return f"Device({self.bus}:{self.name or self.spec})"


@dataclass(frozen=True, slots=True)
class Window:
    """An ioremap()ed range: virtual address -> a device's BAR (or nothing)."""

    virt: int
    size: int
    phys: int
    device: Device | None
    bar: int


@dataclass(frozen=True, slots=True)
class IrqAction:
    irq: int
    handler: int
    thread_fn: int
    flags: int
    name: str
    dev_id: int
    module: str | None
    devm: int = 0


class Hardware:
    """The emulated machine's devices, drivers, interrupt lines and deferred work."""

    def __init__(self) -> None:
        self.devices: list[Device] = []
        self.auto = False
        self.trace: list[Access] = []
        self.windows: list[Window] = []
        self.irqs: list[IrqAction] = []
        self.timers: dict[int, int] = {}  # struct timer_list -> expiry (jiffies)
        self.timer_order: dict[int, int] = {}  # timer -> sequence (ties fire in order of arming)
        self.delayed: dict[int, tuple[int, int]] = {}  # timer of a delayed_work -> (work, expiry)
        self.work: list[int] = []  # queued struct work_struct, in order
        self.tasklets: list[int] = []  # scheduled struct tasklet_struct, in order
        self.drivers: list[tuple[str, int, str | None]] = []  # (bus, struct address, module)
        self._next_mem = MEM_BASE
        self._next_port = PORT_BASE
        self._next_virt = IOREMAP_BASE
        self._seq = 0
        self.installed = False
        self.pci_slots = 0
        self.pci_bus = 0  # the struct pci_bus every emulated PCI device is on
        self.usb_ports = 0
        self.usb_minors: set[int] = set()

    # -- resources ---------------------------------------------------------------------------
    def place(self, dev: Device, index: int, kind: str, size: int) -> Bar:
        size = max(size, 0x10 if kind == "io" else 0x1000)
        size = 1 << (size - 1).bit_length()  # BARs are powers of two, naturally aligned
        if kind == "io":
            start = (self._next_port + size - 1) & ~(size - 1)
            self._next_port = start + size
        else:
            start = (self._next_mem + size - 1) & ~(size - 1)
            self._next_mem = start + size
        bar = Bar(index, kind, start, size)
        dev.bars = [b for b in dev.bars if b.index != index] + [bar]
        dev.bars.sort(key=lambda b: b.index)
        return bar

    def add(self, dev: Device) -> Device:
        bars = dev.bar_specs
        if bars is None:
            bars = list(DEFAULT_PCI_BARS) if dev.bus == "pci" else [(0, "mem", 0x10000)]
        if dev.fixed_bars is not None:
            dev.bars = sorted(dev.fixed_bars, key=lambda b: b.index)
            bars = []
        for index, kind, size in bars:
            self.place(dev, index, kind, size)
        for (bar, off), (size, value) in dev.presets.items():
            dev.set(bar, off, value, size)
        self.devices.append(dev)
        return dev

    def find_bar(self, addr: int, kind: str) -> tuple[Device, Bar] | None:
        for d in self.devices:
            for b in d.bars:
                if b.kind == kind and b.start <= addr < b.start + b.size:
                    return d, b
        return None

    def new_virtual(self, size: int) -> int:
        virt = self._next_virt
        self._next_virt += (size + 0xFFFF) & ~0xFFF  # a guard gap between windows
        return virt

    def window_at(self, virt: int) -> Window | None:
        for w in self.windows:
            if w.virt <= virt < w.virt + w.size:
                return w
        return None

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def accesses(self, device: str | None = None) -> list[Access]:
        return [a for a in self.trace if device is None or a.device == device]


def hw_of(k: BaseKernel) -> Hardware:
    """The kernel's hardware (made, and its port I/O hooks installed, on first use)."""
    hw = k.__dict__.get("hw")
    if hw is None:
        hw = Hardware()
        k.__dict__["hw"] = hw
        from lkm.emulate.base.io import install

        install(k, hw)
    assert isinstance(hw, Hardware)
    return hw


# -- specs ---------------------------------------------------------------------------------------
_PCI_KEYS = {"v": "vendor", "d": "device", "sv": "subvendor", "sd": "subdevice", "bc": "baseclass",
             "sc": "subclass", "i": "progif", "c": "class"}  # fmt: skip
_USB_KEYS = {"v": "vendor", "p": "product", "d": "bcd", "dc": "class", "dsc": "subclass", "dp": "protocol",
             "ic": "ifclass", "isc": "ifsubclass", "ip": "ifprotocol", "in": "ifnumber"}  # fmt: skip
_VIRTIO_KEYS = {"d": "device", "v": "vendor"}


def _fields(text: str, keys: dict[str, str], spec: str) -> dict[str, int]:
    names = sorted(keys, key=len, reverse=True)
    pat = re.compile("(" + "|".join(names) + r")([0-9A-F]+|\*)")  # ids in upper case, as a modalias
    out: dict[str, int] = {}
    pos = 0
    while pos < len(text):
        m = pat.match(text, pos)
        if m is None:
            raise DeviceSpecError(
                f"--device {spec}: cannot read {text[pos:]!r} (fields such as v8086d100E: lower-case "
                "letters, upper-case hexadecimal)"
            )
        if m.group(2) != "*":
            out[keys[m.group(1)]] = int(m.group(2), 16)
        pos = m.end()
    return out


def parse_device(spec: str) -> Device | None:
    """A device from its spec; None for ``auto``."""
    head, *opts = spec.split(",")
    bus, colon, rest = head.partition(":")
    if head == "auto":
        if opts:
            raise DeviceSpecError(f"--device {spec}: auto takes no options")
        return None
    if not colon:
        raise DeviceSpecError(f"--device {spec}: BUS:IDS expected (pci:, usb:, platform:) or auto")
    if bus == "pci":
        f = _fields(rest, _PCI_KEYS, spec)
        if "class" not in f:
            f["class"] = (f.get("baseclass", 0) << 16) | (f.get("subclass", 0) << 8) | f.get("progif", 0)
        dev = Device("pci", f, spec=spec)
    elif bus == "usb":
        dev = Device("usb", _fields(rest, _USB_KEYS, spec), spec=spec)
    elif bus == "virtio":
        dev = Device("virtio", _fields(rest, _VIRTIO_KEYS, spec), spec=spec)
    elif bus == "platform":
        if not rest:
            raise DeviceSpecError(f"--device {spec}: platform:NAME expected")
        dev = Device("platform", {}, name=rest, spec=spec)
    else:
        raise DeviceSpecError(f"--device {spec}: unknown bus {bus!r} (pci, usb, platform, virtio)")
    bars: dict[int, tuple[str, int]] = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        try:
            if not eq:
                raise ValueError(opt)
            if key == "irq":
                dev.irq = int(value, 0)
            elif key == "rev":
                dev.ids["revision"] = int(value, 0)
            elif re.fullmatch(r"bar[0-5]", key):
                kind, _c, size = value.partition(":")
                if kind not in ("mem", "io"):
                    raise ValueError(value)
                bars[int(key[3])] = (kind, int(size, 0) if size else 0x1000)
            elif m := re.fullmatch(r"bar([0-5])\+(0x[0-9a-fA-F]+|\d+)(?:/([1248]))?", key):
                dev.presets[(int(m.group(1)), int(m.group(2), 0))] = (int(m.group(3) or 4), int(value, 0))
            else:
                raise ValueError(opt)
        except ValueError:
            raise DeviceSpecError(
                f"--device {spec}: cannot read option {opt!r} (barN=mem:SIZE, barN=io:SIZE, "
                "barN+OFFSET=VALUE, irq=N, rev=N)"
            ) from None
    if bars:
        dev.bar_specs = [(i, k, s) for i, (k, s) in sorted(bars.items())]
    return dev

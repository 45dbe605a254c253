"""The driver core (drivers/base/dd.c, bus.c) for the emulated PCI, USB and platform buses: a
driver's registration matches it against the devices present (pci_match_id, usb_match_id,
platform_match), binds and calls ``probe()``; unregistration calls ``remove()``/``disconnect()``
and releases the device's devm resources.  A device added later (platform_device_register)
is matched against the drivers registered before it.

The structures handed to drivers (struct pci_dev, usb_interface, usb_device, platform_device)
are laid out at the 6.1 amd64 offsets of :mod:`lkm.emulate.devlayouts`.
"""

from __future__ import annotations

from lkm.emulate.devlayouts import (
    USB_DEVICE_DESCRIPTOR_SIZE,
    USB_ENDPOINT_DESCRIPTOR_SIZE,
    USB_INTERFACE_DESCRIPTOR_SIZE,
    device_layout,
)
from lkm.emulate.hw import PCI_ANY_ID, Device, Hardware, hw_of
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.replay import device_from_spec
from lkm.emulate.state import Registration
from lkm.emulate.vsprintf import to_signed

__all__ = [
    "EBUSY",
    "EINVAL",
    "ENODEV",
    "ENXIO",
    "IORESOURCE_IO",
    "IORESOURCE_IRQ",
    "IORESOURCE_MEM",
    "IORESOURCE_SIZEALIGN",
    "IORESOURCE_TYPE_BITS",
    "M_DEV_CLASS",
    "M_DEV_HI",
    "M_DEV_LO",
    "M_DEV_PROTOCOL",
    "M_DEV_SUBCLASS",
    "M_INT_CLASS",
    "M_INT_NUMBER",
    "M_INT_PROTOCOL",
    "M_INT_SUBCLASS",
    "M_PRODUCT",
    "M_VENDOR",
    "PLATFORM_DEVID_AUTO",
    "PLATFORM_DEVID_NONE",
    "USB_CLASS_VENDOR_SPEC",
    "USB_ENDPOINTS",
    "L",
    "add_device",
    "attach",
    "attach_driver",
    "hotplug",
    "init_device",
    "make_pci",
    "make_platform",
    "make_usb",
    "pci_device_from_id",
    "pci_id_at",
    "pci_match",
    "platform_ids",
    "platform_match",
    "platform_resource",
    "release_devres",
    "set_dev_name",
    "unbind",
    "usb_device_from_id",
    "usb_id_at",
    "usb_match",
]


ENODEV, ENXIO, EINVAL, EBUSY = 19, 6, 22, 16
IORESOURCE_IO, IORESOURCE_MEM, IORESOURCE_IRQ = 0x100, 0x200, 0x400
IORESOURCE_SIZEALIGN = 0x40000
IORESOURCE_TYPE_BITS = 0x1F00
PLATFORM_DEVID_NONE, PLATFORM_DEVID_AUTO = -1, -2
# usb_device_id.match_flags (include/linux/mod_devicetable.h)
M_VENDOR, M_PRODUCT, M_DEV_LO, M_DEV_HI = 0x1, 0x2, 0x4, 0x8
M_DEV_CLASS, M_DEV_SUBCLASS, M_DEV_PROTOCOL = 0x10, 0x20, 0x40
M_INT_CLASS, M_INT_SUBCLASS, M_INT_PROTOCOL, M_INT_NUMBER = 0x80, 0x100, 0x200, 0x400
USB_CLASS_VENDOR_SPEC = 0xFF


def L(k: BaseKernel) -> dict[str, int]:
    return device_layout(k.arch.name)


def set_dev_name(k: BaseKernel, dev: int, name: str) -> None:
    k.machine.write_word(dev + L(k)["device_kobj"] + L(k)["kobject_name"], k.new_string(name.encode()))


def init_device(k: BaseKernel, dev: int, name: str, bus_type: str, parent: int = 0) -> None:
    lay = L(k)
    m = k.machine
    set_dev_name(k, dev, name)
    m.write_word(dev + lay["device_bus"], k.resolve(bus_type) or 0)
    m.write_word(dev + lay["device_parent"], parent)
    m.write_int(dev + lay["device_coherent_dma_mask"], 8, 0xFFFFFFFF)


# -- binding -------------------------------------------------------------------------------------
def _probe(
    k: BaseKernel,
    d: Device,
    drv: int,
    drv_name: str,
    fn: int,
    args: tuple[int, ...],
    driver_struct: int,
    module: str | None,
) -> int:
    """really_probe: dev->driver set, probe called; a failure unbinds (and is said, as 6.1
    says it for errors other than -ENODEV/-ENXIO)."""
    hw = hw_of(k)
    lay = L(k)
    k.machine.write_word(d.dev + lay["device_driver"], driver_struct)
    d.driver, d.driver_name, d.module = drv, drv_name, module
    d.probed = True
    ret = to_signed(k.call(fn, args, module), 32) if fn else 0
    d.probe_result = ret
    if ret < 0:
        release_devres(k, hw, d)
        k.machine.write_word(d.dev + lay["device_driver"], 0)
        d.driver = 0
        if ret not in (-ENODEV, -ENXIO, -517):  # -EPROBE_DEFER: only a debug message
            k.state.printk(4, False, f"{drv_name}: probe of {d.name} failed with error {ret}\n", None)
    return ret


def release_devres(k: BaseKernel, hw: Hardware, d: Device) -> None:
    """devres_release_all: devm actions in reverse order, devm interrupts freed."""
    while d.devres:
        fn, data = d.devres.pop()
        k.call(fn, (data,), d.module)
    hw.irqs = [a for a in hw.irqs if a.devm != d.dev or not d.dev]


def unbind(k: BaseKernel, d: Device, fn: int, args: tuple[int, ...]) -> None:
    """device_release_driver: remove(), devres released, dev->driver cleared."""
    if not d.driver:
        return
    if fn:
        k.call(fn, args, d.module)
    release_devres(k, hw_of(k), d)
    k.machine.write_word(d.dev + L(k)["device_driver"], 0)
    d.driver = 0
    d.removed = True


def _register(k: BaseKernel, kind: str, drv: int, name: str) -> None:
    k.state.registrations.append(Registration(kind, name, drv, k.current))
    hw_of(k).drivers.append((kind, drv, k.current))


def _drivers(k: BaseKernel, bus: str) -> list[tuple[int, str | None]]:
    return [(a, mod) for b, a, mod in hw_of(k).drivers if b == bus]


def _unregister(k: BaseKernel, bus: str, drv: int) -> None:
    hw = hw_of(k)
    hw.drivers = [x for x in hw.drivers if not (x[0] == bus and x[1] == drv)]


# -- PCI -----------------------------------------------------------------------------------------
def pci_id_at(k: BaseKernel, ids: int) -> list[int]:
    """The entries of a pci_device_id table (to its zero terminator)."""
    lay = L(k)
    m = k.machine
    out: list[int] = []
    step = lay["pci_device_id_size"]
    while ids and len(out) < 4096 and m.is_mapped(ids, step):
        vendor = m.read_int(ids + lay["pci_device_id_vendor"], 4)
        subvendor = m.read_int(ids + lay["pci_device_id_subvendor"], 4)
        mask = m.read_int(ids + lay["pci_device_id_class_mask"], 4)
        if not (vendor or subvendor or mask):
            break
        out.append(ids)
        ids += step
    return out


def pci_match(k: BaseKernel, ids: int, d: Device) -> int:
    """pci_match_id: the first entry matching ``d``, 0 for none."""
    lay = L(k)
    m = k.machine
    for e in pci_id_at(k, ids):
        f = [
            m.read_int(e + lay[f"pci_device_id_{n}"], 4)
            for n in ("vendor", "device", "subvendor", "subdevice", "class", "class_mask")
        ]
        have = [
            d.ids.get("vendor", 0),
            d.ids.get("device", 0),
            d.ids.get("subvendor", 0),
            d.ids.get("subdevice", 0),
        ]
        if all(f[i] in (PCI_ANY_ID, have[i]) for i in range(4)) and not (f[4] ^ d.ids.get("class", 0)) & f[5]:
            return e
    return 0


def pci_device_from_id(k: BaseKernel, e: int) -> Device:
    lay = L(k)
    m = k.machine

    def raw(n: str) -> int:
        return m.read_int(e + lay[f"pci_device_id_{n}"], 4)

    def g(n: str) -> int:
        v = raw(n)
        return 0 if v == PCI_ANY_ID else v

    ids = {
        "vendor": g("vendor"),
        "device": g("device"),
        "subvendor": g("subvendor"),
        "subdevice": g("subdevice"),
        "class": raw("class") & raw("class_mask") & 0xFFFFFF,
    }
    spec = f"pci:v{ids['vendor']:04X}d{ids['device']:04X}sv{ids['subvendor']:04X}sd{ids['subdevice']:04X}"
    return Device("pci", ids, spec=spec + f"c{ids['class']:06X}")


def make_pci(k: BaseKernel, hw: Hardware, d: Device) -> None:
    lay = L(k)
    m = k.machine
    if not hw.pci_bus:
        hw.pci_bus = k.alloc(lay["pci_bus_size"])
    taken = {x.devfn for x in hw.devices if x is not d and x.bus == "pci"}
    while d.devfn is None or d.devfn in taken:  # the next free slot from 3 (a recorded one kept)
        d.devfn = (3 + hw.pci_slots) << 3
        hw.pci_slots += 1
    d.name = f"0000:00:{d.devfn >> 3:02x}.{d.devfn & 7}"
    p = k.alloc(lay["pci_dev_size"])
    d.address, d.dev = p, p + lay["pci_dev_dev"]
    ids = d.ids
    m.write_word(p + lay["pci_dev_bus"], hw.pci_bus)
    m.write_int(p + lay["pci_dev_devfn"], 4, d.devfn)
    for field, key in (
        ("vendor", "vendor"),
        ("device", "device"),
        ("subsystem_vendor", "subvendor"),
        ("subsystem_device", "subdevice"),
    ):
        m.write_int(p + lay[f"pci_dev_{field}"], 2, ids.get(key, 0))
    m.write_int(p + lay["pci_dev_class"], 4, ids.get("class", 0) & 0xFFFFFF)
    m.write_int(p + lay["pci_dev_revision"], 1, ids.get("revision", 0))
    m.write_int(p + lay["pci_dev_pin"], 1, 1)
    m.write_int(p + lay["pci_dev_irq"], 4, d.irq)
    m.write_int(p + lay["pci_dev_cfg_size"], 4, 256)
    m.write_int(p + lay["pci_dev_dma_mask"], 8, 0xFFFFFFFF)
    for b in d.bars:
        r = p + lay["pci_dev_resource"] + b.index * lay["resource_size"]
        m.write_word(r + lay["resource_start"], b.start)
        m.write_word(r + lay["resource_end"], b.start + b.size - 1)
        m.write_word(r + lay["resource_name"], k.new_string(d.name.encode()))
        flags = (IORESOURCE_MEM if b.kind == "mem" else IORESOURCE_IO) | IORESOURCE_SIZEALIGN
        m.write_word(r + lay["resource_flags"], flags)
    init_device(k, d.dev, d.name, "pci_bus_type")
    m.write_word(d.dev + lay["device_dma_mask"], p + lay["pci_dev_dma_mask"])
    cfg = d.config
    cfg[0:2] = ids.get("vendor", 0).to_bytes(2, "little")
    cfg[2:4] = ids.get("device", 0).to_bytes(2, "little")
    cfg[8] = ids.get("revision", 0) & 0xFF
    cfg[9:12] = (ids.get("class", 0) & 0xFFFFFF).to_bytes(3, "little")
    cfg[0x2C:0x2E] = ids.get("subvendor", 0).to_bytes(2, "little")
    cfg[0x2E:0x30] = ids.get("subdevice", 0).to_bytes(2, "little")
    cfg[0x3C] = d.irq & 0xFF
    cfg[0x3D] = 1
    for b in d.bars:
        at = 0x10 + 4 * b.index
        cfg[at : at + 4] = ((b.start & ~0xF) | (1 if b.kind == "io" else 0)).to_bytes(4, "little")


def _pci_probe(k: BaseKernel, d: Device, drv: int, module: str | None) -> None:
    lay = L(k)
    m = k.machine
    if d.driver:
        return
    e = pci_match(k, m.read_word(drv + lay["pci_driver_id_table"]), d)
    if not e:
        return
    name = k.cstring(m.read_word(drv + lay["pci_driver_name"]), 64)
    m.write_word(d.address + lay["pci_dev_driver"], drv)
    ret = _probe(
        k,
        d,
        drv,
        name,
        m.read_word(drv + lay["pci_driver_probe"]),
        (d.address, e),
        drv + lay["pci_driver_driver"],
        module,
    )
    if ret < 0:
        m.write_word(d.address + lay["pci_dev_driver"], 0)


@kfunc("__pci_register_driver", nargs=3)
def _pci_register_driver(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    drv, owner, modname = c.arg(0), c.arg(1), c.arg(2)
    name_ptr = m.read_word(drv + lay["pci_driver_name"])
    d0 = drv + lay["pci_driver_driver"]
    m.write_word(d0 + lay["device_driver_name"], name_ptr)
    m.write_word(d0 + lay["device_driver_bus"], k.resolve("pci_bus_type") or 0)
    m.write_word(d0 + lay["device_driver_owner"], owner)
    m.write_word(d0 + lay["device_driver_mod_name"], modname)
    _register(k, "pci", drv, k.cstring(name_ptr, 64))
    attach_driver(k, "pci", drv, k.current)
    return 0


@kfunc("pci_unregister_driver", nargs=1)
def _pci_unregister_driver(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    drv = c.arg(0)
    for d in hw_of(k).devices:
        if d.bus == "pci" and d.driver == drv:
            unbind(k, d, k.machine.read_word(drv + lay["pci_driver_remove"]), (d.address,))
            k.machine.write_word(d.address + lay["pci_dev_driver"], 0)
    _unregister(k, "pci", drv)
    return 0


# -- USB -----------------------------------------------------------------------------------------
_USB_FIELDS = (
    ("idVendor", 2, "vendor", M_VENDOR),
    ("idProduct", 2, "product", M_PRODUCT),
    ("bDeviceClass", 1, "class", M_DEV_CLASS),
    ("bDeviceSubClass", 1, "subclass", M_DEV_SUBCLASS),
    ("bDeviceProtocol", 1, "protocol", M_DEV_PROTOCOL),
    ("bInterfaceClass", 1, "ifclass", M_INT_CLASS),
    ("bInterfaceSubClass", 1, "ifsubclass", M_INT_SUBCLASS),
    ("bInterfaceProtocol", 1, "ifprotocol", M_INT_PROTOCOL),
    ("bInterfaceNumber", 1, "ifnumber", M_INT_NUMBER),
)


def usb_id_at(k: BaseKernel, ids: int) -> list[dict[str, int]]:
    """The entries of a usb_device_id table: each as {field: value, "flags", "address"}."""
    lay = L(k)
    m = k.machine
    out: list[dict[str, int]] = []
    step = lay["usb_device_id_size"]
    while ids and len(out) < 4096 and m.is_mapped(ids, step):
        e = {"flags": m.read_int(ids + lay["usb_device_id_match_flags"], 2), "address": ids}
        for f, size, _key, _flag in _USB_FIELDS:
            e[f] = m.read_int(ids + lay[f"usb_device_id_{f}"], size)
        e["bcdDevice_lo"] = m.read_int(ids + lay["usb_device_id_bcdDevice_lo"], 2)
        e["bcdDevice_hi"] = m.read_int(ids + lay["usb_device_id_bcdDevice_hi"], 2)
        e["driver_info"] = m.read_word(ids + lay["usb_device_id_driver_info"])
        if not (
            e["idVendor"] or e["idProduct"] or e["bDeviceClass"] or e["bInterfaceClass"] or e["driver_info"]
        ):
            break
        out.append(e)
        ids += step
    return out


def usb_match(k: BaseKernel, ids: int, d: Device, *, single: bool = False) -> int:
    """usb_match_id (``single``: usb_match_one_id) for the device's (only) interface."""
    bcd = d.ids.get("bcd", 0)
    entries = usb_id_at(k, ids)
    if single:
        entries = entries[:1] or []
    for e in entries:
        fl = e["flags"]
        ok = True
        for f, _size, key, flag in _USB_FIELDS[:5]:
            if fl & flag and e[f] != d.ids.get(key, 0):
                ok = False
        if (fl & M_DEV_LO and e["bcdDevice_lo"] > bcd) or (fl & M_DEV_HI and e["bcdDevice_hi"] < bcd):
            ok = False
        if (
            d.ids.get("class", 0) == USB_CLASS_VENDOR_SPEC
            and not fl & M_VENDOR
            and fl & (M_INT_CLASS | M_INT_SUBCLASS | M_INT_PROTOCOL | M_INT_NUMBER)
        ):
            ok = False
        for f, _size, key, flag in _USB_FIELDS[5:]:
            if fl & flag and e[f] != d.ids.get(key, 0):
                ok = False
        if ok:
            return e["address"]
    return 0


def usb_device_from_id(e: dict[str, int]) -> Device:
    ids: dict[str, int] = {}
    for f, _size, key, flag in _USB_FIELDS:
        if e["flags"] & flag:
            ids[key] = e[f]
    if e["flags"] & M_DEV_LO:
        ids["bcd"] = e["bcdDevice_lo"]
    spec = f"usb:v{ids.get('vendor', 0):04X}p{ids.get('product', 0):04X}"
    return Device("usb", ids, spec=spec)


# bulk-in, bulk-out, interrupt-in: what usb_find_common_endpoints looks for
USB_ENDPOINTS = ((0x81, 2, 512), (0x02, 2, 512), (0x83, 3, 64))


def make_usb(k: BaseKernel, hw: Hardware, d: Device) -> None:
    lay = L(k)
    m = k.machine
    port = 1 + hw.usb_ports
    hw.usb_ports += 1
    udev = k.alloc(lay["usb_device_size"])
    bus = k.alloc(lay["usb_bus_size"])
    m.write_int(bus + lay["usb_bus_busnum"], 4, 1)
    m.write_word(bus + lay["usb_bus_bus_name"], k.new_string(b"0000:00:14.0"))
    m.write_int(udev + lay["usb_device_devnum"], 4, 1 + port)
    m.write(udev + lay["usb_device_devpath"], f"{port}".encode() + b"\0")
    m.write_int(udev + lay["usb_device_state"], 4, 7)  # USB_STATE_CONFIGURED
    m.write_int(udev + lay["usb_device_speed"], 4, 3)  # USB_SPEED_HIGH
    m.write_word(udev + lay["usb_device_bus"], bus)
    ep0 = udev + lay["usb_device_ep0"]
    m.write(ep0, bytes([USB_ENDPOINT_DESCRIPTOR_SIZE, 5, 0, 0, 64, 0, 0]))
    m.write_word(udev + lay["usb_device_ep_in"], ep0)
    m.write_word(udev + lay["usb_device_ep_out"], ep0)
    ids = d.ids
    desc = (
        bytes(
            [
                USB_DEVICE_DESCRIPTOR_SIZE,
                1,
                0x00,
                0x02,
                ids.get("class", 0),
                ids.get("subclass", 0),
                ids.get("protocol", 0),
                64,
            ]
        )
        + b"".join(ids.get(f, 0).to_bytes(2, "little") for f in ("vendor", "product", "bcd"))
        + bytes([0, 0, 0, 1])
    )
    m.write(udev + lay["usb_device_descriptor"], desc)
    udev_name = f"1-{port}"
    init_device(k, udev + lay["usb_device_dev"], udev_name, "usb_bus_type")
    intf = k.alloc(lay["usb_interface_size"])
    alt = k.alloc(lay["usb_host_interface_size"])
    eps = k.alloc(lay["usb_host_endpoint_size"] * len(USB_ENDPOINTS))
    for i, (addr, attr, size) in enumerate(USB_ENDPOINTS):
        e = eps + i * lay["usb_host_endpoint_size"]
        m.write(
            e, bytes([USB_ENDPOINT_DESCRIPTOR_SIZE, 5, addr, attr]) + size.to_bytes(2, "little") + b"\x01"
        )
        m.write_word(
            udev + lay["usb_device_ep_in" if addr & 0x80 else "usb_device_ep_out"] + 8 * (addr & 0xF), e
        )
    m.write(
        alt,
        bytes(
            [
                USB_INTERFACE_DESCRIPTOR_SIZE,
                4,
                ids.get("ifnumber", 0),
                0,
                len(USB_ENDPOINTS),
                ids.get("ifclass", 0),
                ids.get("ifsubclass", 0),
                ids.get("ifprotocol", 0),
                0,
            ]
        ),
    )
    m.write_word(alt + lay["usb_host_interface_endpoint"], eps)
    m.write_word(intf + lay["usb_interface_altsetting"], alt)
    m.write_word(intf + lay["usb_interface_cur_altsetting"], alt)
    m.write_int(intf + lay["usb_interface_num_altsetting"], 4, 1)
    m.write_int(intf + lay["usb_interface_minor"], 4, 0xFFFFFFFF)
    cfg = k.alloc(lay["usb_host_config_size"])  # the active configuration: this one interface
    m.write(cfg, bytes([9, 2, 9 + USB_INTERFACE_DESCRIPTOR_SIZE, 0, 1, 1, 0, 0x80, 50]))
    m.write_word(cfg + lay["usb_host_config_interface"], intf)
    m.write_word(udev + lay["usb_device_config"], cfg)
    m.write_word(udev + lay["usb_device_actconfig"], cfg)
    d.name = f"{udev_name}:1.{ids.get('ifnumber', 0)}"
    d.address, d.dev = intf, intf + lay["usb_interface_dev"]
    d.extra["usb_device"] = udev
    init_device(k, d.dev, d.name, "usb_bus_type", parent=udev + lay["usb_device_dev"])


def _usb_probe(k: BaseKernel, d: Device, drv: int, module: str | None) -> None:
    lay = L(k)
    m = k.machine
    if d.driver:
        return
    e = usb_match(k, m.read_word(drv + lay["usb_driver_id_table"]), d)
    if not e:
        return
    name = k.cstring(m.read_word(drv + lay["usb_driver_name"]), 64)
    _probe(
        k,
        d,
        drv,
        name,
        m.read_word(drv + lay["usb_driver_probe"]),
        (d.address, e),
        drv + lay["usb_driver_driver"],
        module,
    )


@kfunc("usb_register_driver", nargs=3)
def _usb_register_driver(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    drv, owner, modname = c.arg(0), c.arg(1), c.arg(2)
    name_ptr = m.read_word(drv + lay["usb_driver_name"])
    d0 = drv + lay["usb_driver_driver"]
    m.write_word(d0 + lay["device_driver_name"], name_ptr)
    m.write_word(d0 + lay["device_driver_bus"], k.resolve("usb_bus_type") or 0)
    m.write_word(d0 + lay["device_driver_owner"], owner)
    m.write_word(d0 + lay["device_driver_mod_name"], modname)
    name = k.cstring(name_ptr, 64)
    _register(k, "usb", drv, name)
    k.state.printk(6, False, f"usbcore: registered new interface driver {name}\n", None)
    attach_driver(k, "usb", drv, k.current)
    return 0


@kfunc("usb_deregister", nargs=1)
def _usb_deregister(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    drv = c.arg(0)
    name = k.cstring(k.machine.read_word(drv + lay["usb_driver_name"]), 64)
    k.state.printk(6, False, f"usbcore: deregistering interface driver {name}\n", None)
    for d in hw_of(k).devices:
        if d.bus == "usb" and d.driver == drv:
            unbind(k, d, k.machine.read_word(drv + lay["usb_driver_disconnect"]), (d.address,))
    _unregister(k, "usb", drv)
    return 0


# -- platform ------------------------------------------------------------------------------------
def platform_ids(k: BaseKernel, ids: int) -> list[tuple[str, int]]:
    lay = L(k)
    m = k.machine
    out: list[tuple[str, int]] = []
    step = lay["platform_device_id_size"]
    while ids and len(out) < 4096 and m.is_mapped(ids, step):
        name = (m.read_cstr(ids + lay["platform_device_id_name"], 20) or b"").decode("utf-8", "replace")
        if not name:
            break
        out.append((name, ids))
        ids += step
    return out


def _platform_name(k: BaseKernel, d: Device) -> str:
    lay = L(k)
    return k.cstring(k.machine.read_word(d.address + lay["platform_device_name"]), 64)


def make_platform(k: BaseKernel, hw: Hardware, d: Device) -> None:
    """A platform device of ours (--device platform:NAME): a memory resource per BAR and the IRQ."""
    lay = L(k)
    m = k.machine
    p = k.alloc(lay["platform_device_size"])
    m.write_word(p + lay["platform_device_name"], k.new_string(d.name.encode()))
    m.write_int(p + lay["platform_device_id"], 4, PLATFORM_DEVID_NONE)
    res = k.alloc(lay["resource_size"] * (len(d.bars) + 1))
    for i, b in enumerate(d.bars):
        r = res + i * lay["resource_size"]
        m.write_word(r + lay["resource_start"], b.start)
        m.write_word(r + lay["resource_end"], b.start + b.size - 1)
        m.write_word(r + lay["resource_flags"], IORESOURCE_MEM if b.kind == "mem" else IORESOURCE_IO)
    r = res + len(d.bars) * lay["resource_size"]
    m.write_word(r + lay["resource_start"], d.irq)
    m.write_word(r + lay["resource_end"], d.irq)
    m.write_word(r + lay["resource_flags"], IORESOURCE_IRQ)
    m.write_int(p + lay["platform_device_num_resources"], 4, len(d.bars) + 1)
    m.write_word(p + lay["platform_device_resource"], res)
    d.address, d.dev = p, p + lay["platform_device_dev"]
    init_device(k, d.dev, d.name, "platform_bus_type")


def platform_match(k: BaseKernel, drv: int, d: Device) -> tuple[bool, int]:
    """platform_match without OF/ACPI: the id table by name, else the driver's name."""
    lay = L(k)
    m = k.machine
    name = _platform_name(k, d)
    ids = m.read_word(drv + lay["platform_driver_id_table"])
    if ids:
        for n, e in platform_ids(k, ids):
            if n == name:
                return True, e
        return False, 0
    drv_name = k.cstring(m.read_word(drv + lay["platform_driver_driver"] + lay["device_driver_name"]), 64)
    return drv_name == name, 0


def _platform_probe(k: BaseKernel, d: Device, drv: int, module: str | None) -> None:
    lay = L(k)
    m = k.machine
    if d.driver:
        return
    ok, e = platform_match(k, drv, d)
    if not ok:
        return
    m.write_word(d.address + lay["platform_device_id_entry"], e)
    name = k.cstring(m.read_word(drv + lay["platform_driver_driver"] + lay["device_driver_name"]), 64)
    _probe(
        k,
        d,
        drv,
        name,
        m.read_word(drv + lay["platform_driver_probe"]),
        (d.address,),
        drv + lay["platform_driver_driver"],
        module,
    )


def _platform_register(k: BaseKernel, drv: int, owner: int) -> int:
    lay = L(k)
    m = k.machine
    d0 = drv + lay["platform_driver_driver"]
    m.write_word(d0 + lay["device_driver_bus"], k.resolve("platform_bus_type") or 0)
    m.write_word(d0 + lay["device_driver_owner"], owner)
    name = k.cstring(m.read_word(d0 + lay["device_driver_name"]), 64)
    _register(k, "platform", drv, name)
    attach_driver(k, "platform", drv, k.current)
    return 0


@kfunc("__platform_driver_register", "platform_driver_register", nargs=2)
def _platform_driver_register(k: BaseKernel, c: TrapCall) -> int:
    return _platform_register(k, c.arg(0), c.arg(1))


@kfunc("__platform_driver_probe", "platform_driver_probe", nargs=3)
def _platform_driver_probe(k: BaseKernel, c: TrapCall) -> int:
    """__platform_driver_probe: register with probe set; -ENODEV when nothing bound."""
    lay = L(k)
    drv = c.arg(0)
    k.machine.write_word(drv + lay["platform_driver_probe"], c.arg(1))
    _platform_register(k, drv, c.arg(2))
    if not any(d.driver == drv for d in hw_of(k).devices):
        _platform_unregister(k, drv)
        return -ENODEV
    return 0


@kfunc("__platform_register_drivers", nargs=3)
def _platform_register_drivers(k: BaseKernel, c: TrapCall) -> int:
    arr, count = c.arg(0), c.arg(1) & 0xFFFFFFFF
    for i in range(min(count, 256)):
        _platform_register(k, k.machine.read_word(arr + 8 * i), c.arg(2))
    return 0


def _platform_unregister(k: BaseKernel, drv: int) -> None:
    lay = L(k)
    for d in hw_of(k).devices:
        if d.bus == "platform" and d.driver == drv:
            unbind(k, d, k.machine.read_word(drv + lay["platform_driver_remove"]), (d.address,))
    _unregister(k, "platform", drv)


@kfunc("platform_driver_unregister", nargs=1)
def _platform_driver_unregister(k: BaseKernel, c: TrapCall) -> int:
    _platform_unregister(k, c.arg(0))
    return 0


@kfunc("platform_unregister_drivers", nargs=2)
def _platform_unregister_drivers(k: BaseKernel, c: TrapCall) -> int:
    arr, count = c.arg(0), c.arg(1) & 0xFFFFFFFF
    for i in reversed(range(min(count, 256))):
        _platform_unregister(k, k.machine.read_word(arr + 8 * i))
    return 0


def _adopt_platform(k: BaseKernel, p: int) -> int:
    """platform_device_add of a module's struct platform_device: named, matched."""
    lay = L(k)
    m = k.machine
    hw = hw_of(k)
    name = k.cstring(m.read_word(p + lay["platform_device_name"]), 64)
    pid = to_signed(m.read_int(p + lay["platform_device_id"], 4), 32)
    if pid == PLATFORM_DEVID_AUTO:
        full = f"{name}.{sum(1 for d in hw.devices if d.bus == 'platform')}.auto"
    else:
        full = name if pid == PLATFORM_DEVID_NONE else f"{name}.{pid}"
    if any(d.address == p for d in hw.devices):
        return -EBUSY
    d = Device("platform", {}, name=full, spec=f"platform:{name}")
    d.address, d.dev = p, p + lay["platform_device_dev"]
    if not k.machine.read_word(d.dev + lay["device_kobj"] + lay["kobject_name"]):
        set_dev_name(k, d.dev, full)
    m.write_word(d.dev + lay["device_bus"], k.resolve("platform_bus_type") or 0)
    hw.devices.append(d)
    for drv, module in _drivers(k, "platform"):
        _platform_probe(k, d, drv, module)
    return 0


@kfunc("platform_device_register", "platform_device_add", nargs=1)
def _platform_device_add(k: BaseKernel, c: TrapCall) -> int:
    return _adopt_platform(k, c.arg(0))


@kfunc("platform_device_alloc", nargs=2)
def _platform_device_alloc(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    p = k.alloc(lay["platform_device_size"] + 64)
    k.machine.write_word(p + lay["platform_device_name"], k.new_string(k.cstring(c.arg(0), 64).encode()))
    k.machine.write_int(p + lay["platform_device_id"], 4, c.arg(1))
    return p


@kfunc("platform_device_unregister", "platform_device_del", nargs=1)
def _platform_device_del(k: BaseKernel, c: TrapCall) -> int:
    hw = hw_of(k)
    lay = L(k)
    for d in [d for d in hw.devices if d.address == c.arg(0) and d.bus == "platform"]:
        if d.driver:
            unbind(k, d, k.machine.read_word(d.driver + lay["platform_driver_remove"]), (d.address,))
        hw.devices.remove(d)
    return 0


@kfunc("platform_device_put", nargs=1)
def _platform_device_put(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("platform_device_add_resources", nargs=3)
def _platform_device_add_resources(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    p, res, n = c.arg(0), c.arg(1), c.arg(2) & 0xFFFFFFFF
    size = lay["resource_size"] * n
    copy = k.alloc(max(size, 1))
    if res and size:
        k.machine.write(copy, k.machine.read(res, size))
    k.machine.write_word(p + lay["platform_device_resource"], copy)
    k.machine.write_int(p + lay["platform_device_num_resources"], 4, n)
    return 0


@kfunc("platform_device_add_data", nargs=3)
def _platform_device_add_data(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    p, data, size = c.arg(0), c.arg(1), c.arg(2)
    copy = 0
    if data and size:
        copy = k.alloc(size)
        k.machine.write(copy, k.machine.read(data, min(size, 1 << 20)))
    k.machine.write_word(p + lay["platform_device_dev"] + lay["device_platform_data"], copy)
    return 0


def _resources(k: BaseKernel, p: int) -> list[int]:
    lay = L(k)
    m = k.machine
    n = m.read_int(p + lay["platform_device_num_resources"], 4)
    base = m.read_word(p + lay["platform_device_resource"])
    return [base + i * lay["resource_size"] for i in range(min(n, 64))] if base else []


def platform_resource(k: BaseKernel, p: int, kind: int, num: int) -> int:
    lay = L(k)
    for r in _resources(k, p):
        if k.machine.read_word(r + lay["resource_flags"]) & IORESOURCE_TYPE_BITS == kind:
            if num == 0:
                return r
            num -= 1
    return 0


@kfunc("platform_get_resource", nargs=3)
def _platform_get_resource(k: BaseKernel, c: TrapCall) -> int:
    return platform_resource(k, c.arg(0), c.arg(1) & 0xFFFFFFFF, c.arg(2) & 0xFFFFFFFF)


@kfunc("platform_get_irq", "platform_get_irq_optional", nargs=2)
def _platform_get_irq(k: BaseKernel, c: TrapCall) -> int:
    r = platform_resource(k, c.arg(0), IORESOURCE_IRQ, c.arg(1) & 0xFFFFFFFF)
    if not r:
        if c.name == "platform_get_irq":
            name = "?"
            d = next((d for d in hw_of(k).devices if d.address == c.arg(0)), None)
            if d is not None:
                name = d.name
            k.state.printk(
                3, False, f"{d.driver_name if d else ''} {name}: IRQ index {c.arg(1)} not found\n", None
            )
        return -ENXIO
    return k.machine.read_word(r + L(k)["resource_start"])


@kfunc("devm_platform_ioremap_resource", nargs=2)
def _devm_platform_ioremap_resource(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.io import ioremap

    r = platform_resource(k, c.arg(0), IORESOURCE_MEM, c.arg(1) & 0xFFFFFFFF)
    if not r:
        return -EINVAL & k.arch.mask
    lay = L(k)
    start = k.machine.read_word(r + lay["resource_start"])
    end = k.machine.read_word(r + lay["resource_end"])
    return ioremap(k, start, end - start + 1)


@kfunc("devm_platform_get_and_ioremap_resource", nargs=3)
def _devm_platform_get_and_ioremap_resource(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.io import ioremap

    r = platform_resource(k, c.arg(0), IORESOURCE_MEM, c.arg(1) & 0xFFFFFFFF)
    if c.arg(2):
        k.machine.write_word(c.arg(2), r)
    if not r:
        return -EINVAL & k.arch.mask
    lay = L(k)
    start = k.machine.read_word(r + lay["resource_start"])
    return ioremap(k, start, k.machine.read_word(r + lay["resource_end"]) - start + 1)


@kfunc("devm_ioremap_resource", nargs=2)
def _devm_ioremap_resource(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.io import ioremap

    r = c.arg(1)
    if not r:
        return -EINVAL & k.arch.mask
    lay = L(k)
    start = k.machine.read_word(r + lay["resource_start"])
    return ioremap(k, start, k.machine.read_word(r + lay["resource_end"]) - start + 1)


# -- devices added from specs --------------------------------------------------------------------
def add_device(k: BaseKernel, d: Device, *, auto_for: int = 0) -> Device:
    """Put ``d`` on its bus: resources placed, its structures made (not matched yet)."""
    hw = hw_of(k)
    d.auto_for = auto_for
    hw.add(d)
    if d.bus == "pci":
        make_pci(k, hw, d)
    elif d.bus == "usb":
        make_usb(k, hw, d)
    elif d.bus == "platform":
        make_platform(k, hw, d)
    return d


def attach(k: BaseKernel, specs: list[str]) -> list[Device]:
    """Devices for --device specs on ``k``'s buses (``auto``: made from each driver's table)."""
    out = []
    hw = hw_of(k)
    for spec in specs:
        d = device_from_spec(spec)
        if d is None:
            hw.auto = True
            continue
        out.append(add_device(k, d))
    return out


# -- the driver core's own calls -----------------------------------------------------------------
@kfunc("devm_add_action", "devm_add_action_or_reset", nargs=3)
def _devm_add_action(k: BaseKernel, c: TrapCall) -> int:
    dev, fn, data = c.arg(0), c.arg(1), c.arg(2)
    d = next((d for d in hw_of(k).devices if d.dev == dev), None)
    if d is not None:
        d.devres.append((fn, data))
    return 0


@kfunc("get_device", "usb_get_dev", "usb_get_intf", "pci_dev_get", nargs=1)
def _get(k: BaseKernel, c: TrapCall) -> int:
    return c.arg(0)


@kfunc("put_device", "usb_put_dev", "usb_put_intf", "pci_dev_put", nargs=1)
def _put(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("dev_driver_string", nargs=1)
def _dev_driver_string(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    drv = k.machine.read_word(c.arg(0) + lay["device_driver"])
    if drv:
        return k.machine.read_word(drv + lay["device_driver_name"])
    return k.new_string(b"")


def hotplug(k: BaseKernel, d: Device) -> None:
    """bus_probe_device: a device added after its driver registered is probed now."""
    probe = {"pci": _pci_probe, "usb": _usb_probe, "platform": _platform_probe}.get(d.bus)
    if probe is None:
        return
    for drv, module in _drivers(k, d.bus):
        probe(k, d, drv, module)


# -- platform_device_register_full (platform_device_register_simple/_resndata/_data inline to it) --
@kfunc("platform_device_register_full", nargs=1)
def _platform_device_register_full(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    m = k.machine
    info = c.arg(0)
    p = k.alloc(lay["platform_device_size"] + 64)
    name = k.cstring(m.read_word(info + lay["platform_device_info_name"]), 64)
    m.write_word(p + lay["platform_device_name"], k.new_string(name.encode()))
    m.write_int(p + lay["platform_device_id"], 4, m.read_int(info + lay["platform_device_info_id"], 4))
    dev = p + lay["platform_device_dev"]
    m.write_word(dev + lay["device_parent"], m.read_word(info + lay["platform_device_info_parent"]))
    n = m.read_int(info + lay["platform_device_info_num_res"], 4)
    res = m.read_word(info + lay["platform_device_info_res"])
    if res and n:
        size = lay["resource_size"] * min(n, 64)
        copy = k.alloc(size)
        m.write(copy, m.read(res, size))
        m.write_word(p + lay["platform_device_resource"], copy)
        m.write_int(p + lay["platform_device_num_resources"], 4, min(n, 64))
    data, size_data = (
        m.read_word(info + lay["platform_device_info_data"]),
        m.read_word(info + lay["platform_device_info_size_data"]),
    )
    if data and size_data:
        copy = k.alloc(size_data)
        m.write(copy, m.read(data, min(size_data, 1 << 20)))
        m.write_word(dev + lay["device_platform_data"], copy)
    ret = _adopt_platform(k, p)
    return p if ret == 0 else ret & k.arch.mask


# -- the driver core's generic calls ---------------------------------------------------------------
@kfunc("bus_register", nargs=1)
def _bus_register(k: BaseKernel, c: TrapCall) -> int:
    name = k.cstring(k.machine.read_word(c.arg(0) + L(k)["bus_type_name"]), 64)
    k.state.registrations.append(Registration("bus", name, c.arg(0), k.current))
    return 0


@kfunc("bus_unregister", nargs=1)
def _unregister_generic(k: BaseKernel, c: TrapCall) -> int:
    return 0


def _devices_where(k: BaseKernel, member: str, value: int) -> list[int]:
    lay = L(k)
    return [d.dev for d in hw_of(k).devices if d.dev and k.machine.read_word(d.dev + lay[member]) == value]


def _for_each(k: BaseKernel, devs: list[int], start: int, data: int, fn: int) -> int:
    if start in devs:
        devs = devs[devs.index(start) + 1 :]
    for dev in devs:
        ret = to_signed(k.call(fn, (dev, data), k.current), 32)
        if ret:
            return ret
    return 0


@kfunc("driver_for_each_device", nargs=4)
def _driver_for_each_device(k: BaseKernel, c: TrapCall) -> int:
    return _for_each(k, _devices_where(k, "device_driver", c.arg(0)), c.arg(1), c.arg(2), c.arg(3))


@kfunc("bus_for_each_dev", nargs=4)
def _bus_for_each_dev(k: BaseKernel, c: TrapCall) -> int:
    return _for_each(k, _devices_where(k, "device_bus", c.arg(0)), c.arg(1), c.arg(2), c.arg(3))


@kfunc("bus_find_device", "driver_find_device", nargs=4)
def _bus_find_device(k: BaseKernel, c: TrapCall) -> int:
    member = "device_bus" if c.name == "bus_find_device" else "device_driver"
    devs = _devices_where(k, member, c.arg(0))
    if c.arg(1) in devs:
        devs = devs[devs.index(c.arg(1)) + 1 :]
    for dev in devs:
        if k.call(c.arg(3), (dev, c.arg(2)), k.current) & 0xFFFFFFFF:
            return dev
    return 0


@kfunc("dev_set_name", "kobject_set_name", nargs=2, varargs=True)
def _dev_set_name(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.printk import fmt_call

    name = fmt_call(k, c, 1)
    k.machine.write_word(c.arg(0) + L(k)["kobject_name"], k.new_string(name))
    return 0


_DEVICE_ZERO = (
    "device_initialize", "device_del", "device_unregister", "device_remove_file", "device_set_wakeup_capable",
    "device_wakeup_enable", "device_wakeup_disable", "device_init_wakeup", "device_set_wakeup_enable",
    "device_remove_group", "device_remove_groups", "device_release_driver", "dev_pm_set_wake_irq",
    "pm_runtime_enable", "pm_runtime_allow", "pm_runtime_forbid", "__pm_runtime_disable",
    "pm_runtime_set_autosuspend_delay", "__pm_runtime_use_autosuspend", "pm_runtime_no_callbacks",
    "device_enable_async_suspend", "devm_device_add_group", "devm_device_add_groups", "device_create_file",
    "device_add_group", "device_add_groups", "devm_pm_runtime_enable", "__pm_runtime_set_status",
    "__pm_runtime_idle", "__pm_runtime_suspend", "pm_runtime_get_if_active",
)  # fmt: skip


@kfunc(*_DEVICE_ZERO, nargs=2)
def _device_zero(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("__pm_runtime_resume", nargs=2)
def _pm_runtime_resume(k: BaseKernel, c: TrapCall) -> int:
    return 1  # already active


@kfunc("device_register", "device_add", nargs=1)
def _device_add(k: BaseKernel, c: TrapCall) -> int:
    """A struct device the module made itself (a class device, a child): named, not on a bus
    the emulated ones know."""
    return 0


def _auto_device(k: BaseKernel, bus: str, drv: int) -> None:
    """--device auto: a device from the first entry of the driver's id table (once per driver)."""
    hw = hw_of(k)
    if not hw.auto or any(d.auto_for == drv for d in hw.devices):
        return
    lay = L(k)
    m = k.machine
    if bus == "pci":
        pids = pci_id_at(k, m.read_word(drv + lay["pci_driver_id_table"]))
        if pids:
            add_device(k, pci_device_from_id(k, pids[0]), auto_for=drv)
    elif bus == "usb":
        uids = usb_id_at(k, m.read_word(drv + lay["usb_driver_id_table"]))
        if uids:
            add_device(k, usb_device_from_id(uids[0]), auto_for=drv)
    elif bus == "platform":
        names = platform_ids(k, m.read_word(drv + lay["platform_driver_id_table"]))
        d0 = drv + lay["platform_driver_driver"]
        dname = names[0][0] if names else k.cstring(m.read_word(d0 + lay["device_driver_name"]), 64)
        if dname and not any(d.bus == "platform" and d.name == dname for d in hw.devices):
            add_device(k, Device("platform", {}, name=dname, spec=f"platform:{dname}"), auto_for=drv)


def attach_driver(k: BaseKernel, bus: str, drv: int, module: str | None) -> None:
    """driver_attach: every unbound device of the bus that the driver's table matches is probed."""
    _auto_device(k, bus, drv)
    probe = {"pci": _pci_probe, "usb": _usb_probe, "platform": _platform_probe}[bus]
    for d in [d for d in hw_of(k).devices if d.bus == bus]:
        probe(k, d, drv, module)


_EMBEDDED = {"pci": "pci_driver_driver", "usb": "usb_driver_driver", "platform": "platform_driver_driver"}


@kfunc("driver_attach", nargs=1)
def _driver_attach(k: BaseKernel, c: TrapCall) -> int:
    """For a pci/usb/platform driver's embedded struct device_driver (usb-serial's drivers get
    their id table after registering, then attach)."""
    lay = L(k)
    for bus, drv, module in list(hw_of(k).drivers):
        if bus in _EMBEDDED and drv + lay[_EMBEDDED[bus]] == c.arg(0):
            attach_driver(k, bus, drv, module)
    return 0


@kfunc("usb_match_id", nargs=2)
def _usb_match_id(k: BaseKernel, c: TrapCall) -> int:
    d = next((d for d in hw_of(k).devices if d.bus == "usb" and d.address == c.arg(0)), None)
    return usb_match(k, c.arg(1), d) if d is not None and c.arg(1) else 0


@kfunc("usb_match_one_id", nargs=2)
def _usb_match_one_id(k: BaseKernel, c: TrapCall) -> int:
    d = next((d for d in hw_of(k).devices if d.bus == "usb" and d.address == c.arg(0)), None)
    return int(d is not None and c.arg(1) != 0 and usb_match(k, c.arg(1), d, single=True) != 0)


# -- i2c and spi: drivers are registered (lkm.emulate.base.devices records them), no device is
# on these buses, and nothing answers a transfer (an address not acknowledged: -ENXIO)
@kfunc("i2c_del_driver", "spi_unregister_driver", "i2c_del_adapter", "spi_unregister_controller", nargs=1)
def _i2c_spi_void(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("i2c_add_adapter", "i2c_add_numbered_adapter", nargs=1)
def _i2c_add_adapter(k: BaseKernel, c: TrapCall) -> int:
    k.state.registrations.append(Registration("i2c-adapter", "", c.arg(0), k.current))
    return 0


@kfunc("i2c_transfer", "__i2c_transfer", "i2c_transfer_buffer_flags", "i2c_smbus_xfer", "__i2c_smbus_xfer",
       "i2c_smbus_read_byte", "i2c_smbus_write_byte", "i2c_smbus_read_byte_data", "i2c_smbus_write_byte_data",
       "i2c_smbus_read_word_data", "i2c_smbus_write_word_data", "i2c_smbus_read_block_data",
       "i2c_smbus_write_block_data", "i2c_smbus_read_i2c_block_data", "i2c_smbus_write_i2c_block_data",
       nargs=3)  # fmt: skip
def _i2c_no_answer(k: BaseKernel, c: TrapCall) -> int:
    return -ENXIO

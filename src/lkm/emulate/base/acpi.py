"""ACPI and PnP drivers, the ACPI namespace and tables (drivers/acpi/bus.c, scan.c,
drivers/pnp/driver.c, ACPICA's acpi_get_table/acpi_get_devices), answered for the machine
the corpus's guests boot on: QEMU's i440FX PC with SeaBIOS, whose ACPI tables are RSDT,
FACP, DSDT, FACS, APIC, HPET and WAET (the captured guest's dmesg lists them) and whose
DSDT holds the PCI root bridge, its interrupt links, the ISA devices (RTC, PS/2 keyboard and
mouse, floppy controller, parallel and serial ports), the HPET, QEMU's fw_cfg, the CPUs and
the fixed power button.

A driver whose ids name none of those devices is registered on its bus and binds to nothing,
as on that machine.  One that would bind to a device QEMU has (button.ko's LNXPWRBN, a PnP
driver for PNP0400...) would have its add()/probe() called on an acpi_device/pnp_dev that
this emulator does not model: such a call is reported as unimplemented (strict mode stops
there), as is a request for a table QEMU has (its bytes are not modelled) or a namespace
walk that would find devices.  Offsets: 6.1 amd64, offsetof() against its headers."""

from __future__ import annotations

from lkm.emulate.base.drvcore import register_on_bus, unregister_from_bus
from lkm.emulate.devlayouts import device_layout
from lkm.emulate.kernel import BaseKernel, TraceEntry, Unimplemented, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "ACPI_DEVICE_ID_SIZE",
    "ACPI_DRIVER_DRV",
    "ACPI_DRIVER_IDS",
    "ACPI_DRIVER_NAME",
    "ACPI_DRIVER_OWNER",
    "ACPI_ID_LEN",
    "AE_BAD_PARAMETER",
    "AE_NOT_FOUND",
    "AE_OK",
    "PNP_DEVICE_ID_SIZE",
    "PNP_DRIVER_DRIVER",
    "PNP_DRIVER_ID_TABLE",
    "PNP_DRIVER_NAME",
    "PNP_ID_LEN",
    "QEMU_ACPI_IDS",
    "QEMU_PNP_IDS",
    "QEMU_TABLES",
    "not_modelled",
]


# struct acpi_driver: name[80], class[80], ids, flags, ops {add, remove, notify}, drv, owner
ACPI_DRIVER_NAME, ACPI_DRIVER_IDS, ACPI_DRIVER_DRV, ACPI_DRIVER_OWNER = 0, 160, 200, 344
ACPI_DEVICE_ID_SIZE, ACPI_ID_LEN = 32, 16  # struct acpi_device_id {id[16], driver_data, cls, cls_msk}
# struct pnp_driver: name, id_table, flags, probe, remove, shutdown, suspend, resume, driver
PNP_DRIVER_NAME, PNP_DRIVER_ID_TABLE, PNP_DRIVER_DRIVER = 0, 8, 64
PNP_DEVICE_ID_SIZE, PNP_ID_LEN = 16, 8  # struct pnp_device_id {id[8], driver_data}

AE_OK, AE_NOT_FOUND, AE_BAD_PARAMETER = 0, 0x0005, 0x1001

# The ids (_HID, _CID) of the ACPI devices the kernel enumerates on QEMU's i440FX PC: the
# system and bus roots, CPUs (ACPI0007 and their container), the fixed power button, the
# PCI root (PNP0A03) and its interrupt links (PNP0C0F), the GPE/hotplug resource holders
# (PNP0A06), HPET (PNP0103), fw_cfg (QEMU0002) and the ISA devices below.
QEMU_ACPI_IDS = frozenset(("LNXSYSTM", "LNXSYBUS", "LNXCPU", "ACPI0007", "ACPI0010", "LNXPWRBN",
                           "PNP0A03", "PNP0C0F", "PNP0A06", "PNP0103", "QEMU0002"))  # fmt: skip
# The PnP devices of its DSDT (pnpacpi): RTC, PS/2 keyboard and mouse, floppy, LPT, COM.
QEMU_PNP_IDS = frozenset(("PNP0B00", "PNP0303", "PNP0F13", "PNP0700", "PNP0400", "PNP0501"))
# Its ACPI tables (the guest's "ACPI: XXXX 0x..." lines).
QEMU_TABLES = frozenset(("RSDT", "FACP", "DSDT", "FACS", "APIC", "HPET", "WAET"))


def not_modelled(k: BaseKernel, c: TrapCall) -> int:
    """The call would need a device or table this emulator does not model: it counts as an
    unimplemented call (a warning with its call site; strict mode stops here), returning 0."""
    k.state.unimplemented[c.name] += 1
    ret = k.return_address(c)
    site = k.symbolize(ret)
    args = tuple(c.arg(i) for i in range(3))
    k.trace.append(TraceEntry(c.name, args, 0, k.current, False, site))
    if k.strict:
        raise Unimplemented(c.name, site, ret)
    return 0


def _ids(k: BaseKernel, at: int, step: int, length: int, *, cls: bool = False) -> list[str]:
    """The id strings of an id table up to its terminator (an empty id, and for ACPI no class)."""
    m = k.machine
    out: list[str] = []
    while at and len(out) < 4096 and m.is_mapped(at, step):
        raw = m.read(at, length).split(b"\0", 1)[0]
        if not raw and not (cls and m.read_int(at + 24, 4)):
            break
        out.append(raw.decode("latin-1"))
        at += step
    return out


def _driver_register(k: BaseKernel, drv: int, name_ptr: int, bus_name: str, owner: int, kind: str) -> int:
    """What acpi_bus_register_driver and pnp_register_driver do for their embedded
    device_driver: the name set, then the bus driver's registration (bus and owner set,
    -EBUSY for a name taken)."""
    k.machine.write_word(drv + device_layout(k.arch.name)["device_driver_name"], name_ptr)
    return register_on_bus(k, drv, bus_name, owner, kind, k.cstring(name_ptr, 64))


# -- ACPI drivers (drivers/acpi/bus.c) -------------------------------------------------------------
@kfunc("acpi_bus_register_driver", nargs=1)
def _acpi_bus_register_driver(k: BaseKernel, c: TrapCall) -> int:
    """acpi_bus_register_driver(driver): drv.name = driver->name, on acpi_bus_type (ACPI is
    enabled on QEMU's PC), driver_register; bound to the QEMU devices its ids name."""
    drv = c.arg(0)
    m = k.machine
    ret = _driver_register(
        k,
        drv + ACPI_DRIVER_DRV,
        drv + ACPI_DRIVER_NAME,
        "acpi_bus_type",
        m.read_word(drv + ACPI_DRIVER_OWNER),
        "acpi",
    )
    if ret:
        return ret
    ids = _ids(k, m.read_word(drv + ACPI_DRIVER_IDS), ACPI_DEVICE_ID_SIZE, ACPI_ID_LEN, cls=True)
    if any(i in QEMU_ACPI_IDS for i in ids):
        return not_modelled(k, c)
    return 0


@kfunc("acpi_bus_unregister_driver", nargs=1)
def _acpi_bus_unregister_driver(k: BaseKernel, c: TrapCall) -> int:
    unregister_from_bus(k, c.arg(0) + ACPI_DRIVER_DRV, "acpi")
    return 0


# -- PnP drivers (drivers/pnp/driver.c) ------------------------------------------------------------
@kfunc("pnp_register_driver", nargs=1)
def _pnp_register_driver(k: BaseKernel, c: TrapCall) -> int:
    """pnp_register_driver(drv): driver.name = drv->name, on pnp_bus_type, driver_register;
    bound to the QEMU PnP devices its ids name (compare_pnp_id: case-insensitive)."""
    drv = c.arg(0)
    m = k.machine
    ret = _driver_register(
        k, drv + PNP_DRIVER_DRIVER, m.read_word(drv + PNP_DRIVER_NAME), "pnp_bus_type", 0, "pnp"
    )
    if ret:
        return ret
    ids = _ids(k, m.read_word(drv + PNP_DRIVER_ID_TABLE), PNP_DEVICE_ID_SIZE, PNP_ID_LEN)
    if any(i.upper() in QEMU_PNP_IDS for i in ids):
        return not_modelled(k, c)
    return 0


@kfunc("pnp_unregister_driver", nargs=1)
def _pnp_unregister_driver(k: BaseKernel, c: TrapCall) -> int:
    unregister_from_bus(k, c.arg(0) + PNP_DRIVER_DRIVER, "pnp")
    return 0


# -- the namespace and tables (ACPICA) -------------------------------------------------------------
@kfunc("acpi_get_table", nargs=3)
def _acpi_get_table(k: BaseKernel, c: TrapCall) -> int:
    """acpi_get_table(signature, instance, &table): AE_BAD_PARAMETER without a signature or
    out pointer; AE_NOT_FOUND for a table QEMU's PC does not have (ERST, BERT, IBFT, ...)."""
    sig, out = c.arg(0), c.arg(2)
    if not sig or not out:
        return AE_BAD_PARAMETER
    name = k.machine.read(sig, 4).decode("latin-1")
    if name in QEMU_TABLES and c.arg(1) & 0xFFFFFFFF <= 1:
        return not_modelled(k, c)
    return AE_NOT_FOUND


@kfunc("acpi_get_devices", nargs=4)
def _acpi_get_devices(k: BaseKernel, c: TrapCall) -> int:
    """acpi_get_devices(hid, callback, context, ret): the callback for each device whose
    _HID or _CID is ``hid``; AE_OK, with no call, for an id QEMU's PC has no device of.
    AE_BAD_PARAMETER without a callback."""
    if not c.arg(1):
        return AE_BAD_PARAMETER
    hid = k.cstring(c.arg(0), ACPI_ID_LEN) if c.arg(0) else ""
    if not hid or hid in QEMU_ACPI_IDS or hid.upper() in QEMU_PNP_IDS:
        return not_modelled(k, c)
    return AE_OK


@kfunc("acpi_dev_found", nargs=1)
def _acpi_dev_found(k: BaseKernel, c: TrapCall) -> int:
    """acpi_dev_found(hid): whether a device with that _HID or _CID is present."""
    hid = k.cstring(c.arg(0), ACPI_ID_LEN)
    return int(hid in QEMU_ACPI_IDS or hid in QEMU_PNP_IDS)


@kfunc("acpi_dev_present", nargs=3)
def _acpi_dev_present(k: BaseKernel, c: TrapCall) -> int:
    """acpi_dev_present(hid, uid, hrv): false for an id no QEMU device has; one it has, with
    a _UID or _HRV to compare, is not modelled."""
    hid = k.cstring(c.arg(0), ACPI_ID_LEN)
    if hid not in QEMU_ACPI_IDS and hid not in QEMU_PNP_IDS:
        return 0
    if c.arg(1) or (c.arg(2) & 0xFFFFFFFF) != 0xFFFFFFFF:
        return not_modelled(k, c)
    return 1

"""What a USB interface driver's probe calls (drivers/usb/core): endpoints of the emulated
interface, URBs (accepted, never completed: the device does not answer on its own), control and
bulk transfers (traced as the device's accesses; an IN transfer reads zeros), the USB class
device minor."""

from __future__ import annotations

from lkm.emulate.base.bus import L
from lkm.emulate.base.io import caller_pc
from lkm.emulate.hw import Access, hw_of
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = ["ENOMEM", "ENXIO", "URB_SIZE", "USB_DIR_IN"]


ENXIO, ENOMEM = 6, 12
URB_SIZE = 0x100  # above sizeof(struct urb) on 6.1 amd64 (184), plus iso descriptors
USB_DIR_IN = 0x80


def _usb_name(k: BaseKernel, udev: int) -> str:
    d = next((d for d in hw_of(k).devices if d.extra.get("usb_device") == udev), None)
    return d.name if d is not None else ""


@kfunc("usb_find_common_endpoints", "usb_find_common_endpoints_reverse", nargs=5)
def _usb_find_common_endpoints(k: BaseKernel, c: TrapCall) -> int:
    """The interface's first bulk-in, bulk-out, interrupt-in, interrupt-out endpoints."""
    lay = L(k)
    m = k.machine
    alt = c.arg(0)
    n = m.read_int(alt + 4, 1)  # desc.bNumEndpoints
    eps = m.read_word(alt + lay["usb_host_interface_endpoint"])
    want = {1: (2, True), 2: (2, False), 3: (3, True), 4: (3, False)}  # arg -> (type, in)
    found = {i: 0 for i in want}
    order = range(n) if c.name == "usb_find_common_endpoints" else range(n - 1, -1, -1)
    for i in order:
        e = eps + i * lay["usb_host_endpoint_size"]
        addr, attr = m.read_int(e + 2, 1), m.read_int(e + 3, 1)
        for arg, (typ, is_in) in want.items():
            if not found[arg] and attr & 3 == typ and bool(addr & USB_DIR_IN) == is_in:
                found[arg] = e
    ok = True
    for arg in want:
        if c.arg(arg):
            m.write_word(c.arg(arg), found[arg])
            ok &= bool(found[arg])
    return 0 if ok else -ENXIO & k.arch.mask


@kfunc("usb_alloc_urb", nargs=2)
def _usb_alloc_urb(k: BaseKernel, c: TrapCall) -> int:
    return k.alloc(URB_SIZE + 16 * (c.arg(0) & 0xFFFF))


@kfunc(
    "usb_free_urb",
    "usb_kill_urb",
    "usb_poison_urb",
    "usb_unpoison_urb",
    "usb_unlink_urb",
    "usb_kill_anchored_urbs",
    "usb_poison_anchored_urbs",
    "usb_unlink_anchored_urbs",
    "usb_anchor_urb",
    "usb_unanchor_urb",
    "usb_scuttle_anchored_urbs",
    nargs=1,
)
def _usb_urb_noop(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("usb_submit_urb", nargs=2)
def _usb_submit_urb(k: BaseKernel, c: TrapCall) -> int:
    return 0  # queued: it completes when the device answers, which it does not on its own


@kfunc("usb_wait_anchor_empty_timeout", nargs=2)
def _usb_wait_anchor(k: BaseKernel, c: TrapCall) -> int:
    return 1


@kfunc("usb_alloc_coherent", nargs=4)
def _usb_alloc_coherent(k: BaseKernel, c: TrapCall) -> int:
    virt = k.alloc(max(c.arg(1), 1), align=64)
    if c.arg(3):
        k.machine.write_word(c.arg(3), virt - k.arch.page_offset)
    return virt


@kfunc("usb_free_coherent", nargs=4)
def _usb_free_coherent(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(2))
    return 0


@kfunc("usb_control_msg", nargs=9)
def _usb_control_msg(k: BaseKernel, c: TrapCall) -> int:
    """A control transfer: the request traced; IN data reads as zeros, all of it transferred."""
    udev, request, rtype, value, index = c.arg(0), c.arg(2) & 0xFF, c.arg(3) & 0xFF, c.arg(4), c.arg(5)
    data, size = c.arg(6), c.arg(7) & 0xFFFF
    if rtype & USB_DIR_IN and data and size:
        k.machine.write(data, bytes(size))
    hw_of(k).trace.append(
        Access(
            "usb-ctrl",
            _usb_name(k, udev),
            "ep0",
            (rtype << 8) | request,
            (value & 0xFFFF) << 16 | (index & 0xFFFF),
            size,
            0,
            caller_pc(k),
        )
    )
    return size


@kfunc("usb_control_msg_send", "usb_control_msg_recv", nargs=9)
def _usb_control_msg_sr(k: BaseKernel, c: TrapCall) -> int:
    udev, request, rtype = c.arg(0), c.arg(2) & 0xFF, c.arg(3) & 0xFF
    data, size = c.arg(6), c.arg(7) & 0xFFFF
    if c.name.endswith("recv") and data and size:
        k.machine.write(data, bytes(size))
    hw_of(k).trace.append(
        Access(
            "usb-ctrl",
            _usb_name(k, udev),
            "ep0",
            (rtype << 8) | request,
            (c.arg(4) & 0xFFFF) << 16 | (c.arg(5) & 0xFFFF),
            size,
            0,
            caller_pc(k),
        )
    )
    return 0


@kfunc("usb_bulk_msg", "usb_interrupt_msg", nargs=6)
def _usb_bulk_msg(k: BaseKernel, c: TrapCall) -> int:
    udev, pipe, data, size, actual = c.arg(0), c.arg(1), c.arg(2), c.arg(3) & 0xFFFFFFFF, c.arg(4)
    if pipe & USB_DIR_IN and data and size:
        k.machine.write(data, bytes(min(size, 1 << 20)))
    if actual:
        k.machine.write_int(actual, 4, size)
    hw_of(k).trace.append(
        Access("usb-bulk", _usb_name(k, udev), f"ep{(pipe >> 15) & 0xF}", 0, pipe, size, 0, caller_pc(k))
    )
    return 0


@kfunc(
    "usb_set_interface",
    "usb_reset_configuration",
    "usb_reset_device",
    "usb_clear_halt",
    "usb_driver_claim_interface",
    "usb_autopm_get_interface",
    "usb_autopm_get_interface_async",
    "usb_enable_autosuspend",
    "usb_disable_autosuspend",
    nargs=3,
)
def _usb_zero(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc(
    "usb_autopm_put_interface",
    "usb_autopm_put_interface_async",
    "usb_autopm_get_interface_no_resume",
    "usb_autopm_put_interface_no_suspend",
    "usb_driver_release_interface",
    "usb_deregister_dev",
    nargs=2,
)
def _usb_void(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("usb_string", nargs=4)
def _usb_string(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(2) and c.arg(3):
        k.machine.write(c.arg(2), b"\0")
    return 0


@kfunc("usb_ifnum_to_if", nargs=2)
def _usb_ifnum_to_if(k: BaseKernel, c: TrapCall) -> int:
    for d in hw_of(k).devices:
        if d.extra.get("usb_device") == c.arg(0) and d.ids.get("ifnumber", 0) == c.arg(1) & 0xFFFFFFFF:
            return d.address
    return 0


@kfunc("usb_register_dev", nargs=2)
def _usb_register_dev(k: BaseKernel, c: TrapCall) -> int:
    """A minor of the USB major (180) for the interface: the first free from minor_base."""
    hw = hw_of(k)
    lay = L(k)
    intf, cls = c.arg(0), c.arg(1)
    base = k.machine.read_int(cls + 24, 4)  # struct usb_class_driver: name, devnode, fops, minor_base
    minor = next(i for i in range(base, 256 + base) if i not in hw.usb_minors)
    hw.usb_minors.add(minor)
    k.machine.write_int(intf + lay["usb_interface_minor"], 4, minor)
    return 0

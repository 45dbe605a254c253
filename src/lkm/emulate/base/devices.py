"""Registrations: character devices (fs/char_dev.c), misc devices, block majors, filesystems,
and the driver registrations the corpus uses most (recorded in KernelState.registrations; no
device ever matches, so no probe runs).  Struct offsets are 6.1 amd64 (lkm.emulate.layouts)."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.layouts import layout_for
from lkm.emulate.machine import TrapCall
from lkm.emulate.state import ChrDev, MiscDev, Registration

__all__ = [
    "DEVRES_HEADER",
    "DRIVERS",
    "DYNAMIC_MINORS",
    "EBUSY",
    "EINVAL",
    "ENODEV",
    "ENOENT",
    "IORESOURCE_BUSY",
    "MINORBITS",
    "MISC_DYNAMIC_MINOR",
    "RESOURCE_SIZE",
    "mkdev",
]


EBUSY, EINVAL, ENOENT, ENODEV = 16, 22, 2, 19
MISC_DYNAMIC_MINOR = 255
DYNAMIC_MINORS = 128  # drivers/char/misc.c (6.1)
MINORBITS = 20


def mkdev(major: int, minor: int) -> int:
    return (major << MINORBITS) | minor


# -- character devices -------------------------------------------------------------------------
@kfunc("__register_chrdev", nargs=5)
def _register_chrdev_61(k: BaseKernel, c: TrapCall) -> int:
    major, baseminor, count, name, fops = (c.arg(i) for i in range(5))
    got = k.state.register_chrdev_region(
        major & 0xFFFFFFFF, baseminor, count, k.cstring(name), fops, k.current
    )
    if got < 0:
        return got
    return 0 if major else got


@kfunc("register_chrdev", nargs=3)
def _register_chrdev_24(k: BaseKernel, c: TrapCall) -> int:
    """2.4's register_chrdev(major, name, fops) (6.x inlines it into __register_chrdev)."""
    major, name, fops = c.arg(0), c.arg(1), c.arg(2)
    got = k.state.register_chrdev_region(major, 0, 256, k.cstring(name), fops, k.current)
    if got < 0:
        return got
    return 0 if major else got


@kfunc("__unregister_chrdev", nargs=4)
def _unregister_chrdev_61(k: BaseKernel, c: TrapCall) -> int:
    k.state.unregister_chrdev_region(c.arg(0), c.arg(1), c.arg(2))
    return 0


@kfunc("unregister_chrdev", nargs=2)
def _unregister_chrdev_24(k: BaseKernel, c: TrapCall) -> int:
    major = c.arg(0)
    name = k.cstring(c.arg(1))
    for cd in list(k.state.chrdevs):
        if cd.major == major and cd.name == name:
            k.state.chrdevs.remove(cd)
            return 0
    return -EINVAL


@kfunc("alloc_chrdev_region", nargs=4)
def _alloc_chrdev_region(k: BaseKernel, c: TrapCall) -> int:
    dev, baseminor, count, name = (c.arg(i) for i in range(4))
    got = k.state.register_chrdev_region(0, baseminor, count, k.cstring(name), 0, k.current)
    if got < 0:
        return got
    k.machine.write_int(dev, 4, mkdev(got, baseminor))
    return 0


@kfunc("register_chrdev_region", nargs=3)
def _register_chrdev_region(k: BaseKernel, c: TrapCall) -> int:
    dev, count, name = c.arg(0) & 0xFFFFFFFF, c.arg(1), c.arg(2)
    got = k.state.register_chrdev_region(
        dev >> MINORBITS, dev & 0xFFFFF, count, k.cstring(name), 0, k.current
    )
    return got if got < 0 else 0


@kfunc("unregister_chrdev_region", nargs=2)
def _unregister_chrdev_region(k: BaseKernel, c: TrapCall) -> int:
    dev = c.arg(0) & 0xFFFFFFFF
    k.state.unregister_chrdev_region(dev >> MINORBITS, dev & 0xFFFFF, c.arg(1))
    return 0


@kfunc("cdev_init", nargs=2)
def _cdev_init(k: BaseKernel, c: TrapCall) -> int:
    lay = layout_for(k.arch.name)
    k.machine.write(c.arg(0), bytes(lay["cdev_size"]))
    k.machine.write_word(c.arg(0) + lay["cdev_ops"], c.arg(1))
    return 0


@kfunc("cdev_alloc", nargs=0)
def _cdev_alloc(k: BaseKernel, c: TrapCall) -> int:
    return k.alloc(layout_for(k.arch.name)["cdev_size"])


@kfunc("cdev_add", nargs=3)
def _cdev_add(k: BaseKernel, c: TrapCall) -> int:
    lay = layout_for(k.arch.name)
    cdev, dev, count = c.arg(0), c.arg(1) & 0xFFFFFFFF, c.arg(2)
    k.machine.write_int(cdev + lay["cdev_dev"], 4, dev)
    k.machine.write_int(cdev + lay["cdev_count"], 4, count)
    fops = k.machine.read_word(cdev + lay["cdev_ops"])
    major, minor = dev >> MINORBITS, dev & 0xFFFFF
    for i, cd in enumerate(k.state.chrdevs):
        if cd.major == major and cd.baseminor <= minor < cd.baseminor + cd.count:
            k.state.chrdevs[i] = ChrDev(cd.major, cd.baseminor, cd.count, cd.name, fops, cd.module)
    return 0


@kfunc("cdev_del", "cdev_device_del", nargs=1)
def _cdev_del(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("cdev_device_add", nargs=2)
def _cdev_device_add(k: BaseKernel, c: TrapCall) -> int:
    return 0


# -- misc devices ------------------------------------------------------------------------------
@kfunc("misc_register", nargs=1)
def _misc_register(k: BaseKernel, c: TrapCall) -> int:
    lay = layout_for(k.arch.name)
    misc = c.arg(0)
    m = k.machine
    minor = m.read_int(misc + lay["misc_minor"], 4)
    used = {d.minor for d in k.state.misc}
    if minor == MISC_DYNAMIC_MINOR:
        free = [i for i in range(DYNAMIC_MINORS - 1, -1, -1) if i not in used]
        if not free:
            return -EBUSY
        minor = free[0]
        m.write_int(misc + lay["misc_minor"], 4, minor)
    elif minor in used:
        return -EBUSY
    name = k.cstring(m.read_word(misc + lay["misc_name"]))
    fops = m.read_word(misc + lay["misc_fops"])
    k.state.misc.insert(0, MiscDev(minor, name, fops, misc, k.current))  # list_add: newest first
    return 0


@kfunc("misc_deregister", nargs=1)
def _misc_deregister(k: BaseKernel, c: TrapCall) -> int:
    k.state.misc = [d for d in k.state.misc if d.address != c.arg(0)]
    return 0


# -- block majors and filesystems -----------------------------------------------------------------
@kfunc("__register_blkdev", "register_blkdev", nargs=2)
def _register_blkdev(k: BaseKernel, c: TrapCall) -> int:
    major, name = c.arg(0) & 0xFFFFFFFF, k.cstring(c.arg(1))
    used = {mj for mj, _n in k.state.blkdevs}
    if major == 0:
        free = [i for i in range(254, 0, -1) if i not in used]
        if not free:
            return -EBUSY
        k.state.blkdevs.append((free[0], name))
        return free[0]
    if major in used:
        return -EBUSY
    k.state.blkdevs.append((major, name))
    return 0


@kfunc("unregister_blkdev", nargs=2)
def _unregister_blkdev(k: BaseKernel, c: TrapCall) -> int:
    k.state.blkdevs = [(mj, n) for mj, n in k.state.blkdevs if mj != c.arg(0)]
    return 0


@kfunc("register_filesystem", nargs=1)
def _register_filesystem(k: BaseKernel, c: TrapCall) -> int:
    lay = layout_for(k.arch.name)
    fs = c.arg(0)
    name = k.cstring(k.machine.read_word(fs + lay["fs_name"]))
    flags = k.machine.read_int(fs + lay["fs_flags"], 4)
    if any(n == name for n, _d, _m in k.state.filesystems):
        return -EBUSY
    k.state.filesystems.append((name, bool(flags & 1), k.current))  # FS_REQUIRES_DEV
    k.state.registrations.append(Registration("filesystem", name, fs, k.current))
    return 0


@kfunc("unregister_filesystem", nargs=1)
def _unregister_filesystem(k: BaseKernel, c: TrapCall) -> int:
    lay = layout_for(k.arch.name)
    name = k.cstring(k.machine.read_word(c.arg(0) + lay["fs_name"]))
    k.state.filesystems = [f for f in k.state.filesystems if f[0] != name]
    return 0


# -- driver registrations: (kind, offset of the driver's name pointer or None) -------------------
DRIVERS = {
    "__pci_register_driver": ("pci", 16), "usb_register_driver": ("usb", 0),
    "__platform_driver_register": ("platform", None), "i2c_register_driver": ("i2c", None),
    "__spi_register_driver": ("spi", None), "__hid_register_driver": ("hid", None),
    "driver_register": ("driver", 0), "register_netdev": ("netdev", 0), "register_netdevice": ("netdev", 0),
    "input_register_device": ("input", 0),
    "snd_card_register": ("sound", None),
    "__serio_register_driver": ("serio", None), "register_virtio_driver": ("virtio", None),
    "usb_serial_register_drivers": ("usb-serial", None), "__acpi_register_driver": ("acpi", None),
    "rc_map_register": ("rc-keymap", None), "__hid_bpf_register": ("hid", None),
    "__class_register": ("class", 0),
}  # fmt: skip


def _register_driver(k: BaseKernel, c: TrapCall) -> int:
    kind, off = DRIVERS[c.name]
    obj = c.arg(0)
    name = ""
    if off is not None and obj and k.machine.is_mapped(obj + off, k.arch.word):
        name = k.cstring(k.machine.read_word(obj + off), 64)
    k.state.registrations.append(Registration(kind, name, obj, k.current))
    return 0


for _n in DRIVERS:
    kfunc(_n, nargs=2)(_register_driver)


# -- objects the kernel hands back (opaque, zeroed) -----------------------------------------------
_OBJECTS = {
    "__class_create": 0x200, "class_create": 0x200, "input_allocate_device": 0x800,
    "devm_input_allocate_device": 0x800, "kthread_create_on_node": 0x2800,
    "platform_device_alloc": 0x400, "platform_device_register_full": 0x400,
    "create_singlethread_workqueue": 0x200,
    "__alloc_workqueue_key": 0x200, "crypto_alloc_shash": 0x100, "crypto_alloc_skcipher": 0x100,
    "crypto_alloc_ahash": 0x100, "crypto_alloc_aead": 0x100,
    "alloc_chrdev": 0x100,
}  # fmt: skip


def _object(k: BaseKernel, c: TrapCall) -> int:
    return k.alloc(_OBJECTS[c.name])


for _n in _OBJECTS:
    kfunc(_n, nargs=3)(_object)


@kfunc("device_create", nargs=5, varargs=True)
def _device_create(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.base.printk import fmt_call

    dev = k.alloc(0x400)
    name = fmt_call(k, c, 4)
    k.machine.write_word(dev, k.new_string(name))  # kobj.name
    k.state.registrations.append(Registration("device", name.decode("utf-8", "replace"), dev, k.current))
    return dev


@kfunc("platform_device_register", "platform_device_add", "device_register", "device_add", nargs=1)
def _device_add(k: BaseKernel, c: TrapCall) -> int:
    return 0


# -- I/O port and memory regions (kernel/resource.c) ------------------------------------------------
RESOURCE_SIZE = 64  # struct resource: start, end, name, flags, desc, parent, sibling, child
IORESOURCE_BUSY = 0x80000000


@kfunc("__request_region", nargs=5)
def _request_region(k: BaseKernel, c: TrapCall) -> int:
    """A region nothing else in this kernel holds is granted (no hardware claims any here)."""
    parent, start, n, name = c.arg(0), c.arg(1), c.arg(2), c.arg(3)
    end = start + n - 1
    for p, s, e, _res in k.state.regions:
        if p == parent and s <= end and start <= e:
            return 0  # busy: NULL
    res = k.alloc(RESOURCE_SIZE)
    m = k.machine
    for off, value in ((0, start), (8, end), (16, name), (24, c.arg(4) | IORESOURCE_BUSY), (40, parent)):
        m.write_word(res + off * k.arch.word // 8, value)
    k.state.regions.append((parent, start, end, res))
    return res


@kfunc("__release_region", nargs=3)
def _release_region(k: BaseKernel, c: TrapCall) -> int:
    parent, start, n = c.arg(0), c.arg(1), c.arg(2)
    k.state.regions = [
        r for r in k.state.regions if not (r[0] == parent and r[1] == start and r[2] == start + n - 1)
    ]
    return 0


# -- bus notifiers and devres (drivers/base/bus.c, devres.c): a fuller driver core may replace these ---
@kfunc("bus_register_notifier", "bus_unregister_notifier", nargs=2)
def _bus_notifier(k: BaseKernel, c: TrapCall) -> int:
    """bus_register_notifier(bus, nb): nb on the bus's notifier chain (-EEXIST when it is
    there already; unregister: -ENOENT when it is not), kept per bus."""
    from lkm.emulate.base.notifier import chain_register, chain_unregister, own_chain

    chain = f"bus@{c.arg(0):#x}"
    head = own_chain(k, chain)
    if c.name == "bus_unregister_notifier":
        return chain_unregister(k, head, c.arg(1), chain)
    return chain_register(k, head, c.arg(1), chain)


DEVRES_HEADER = 40  # struct devres_node {entry, release, name, size} before the data


@kfunc("__devres_alloc_node", nargs=5)
def _devres_alloc(k: BaseKernel, c: TrapCall) -> int:
    """__devres_alloc_node(release, size, gfp, nid, name): zeroed data after a devres header
    (its release function and name kept), NULL without memory."""
    from lkm.emulate.base.registry import zalloc

    res = zalloc(k, DEVRES_HEADER + c.arg(1))
    if not res:
        return 0
    k.machine.write_word(res + 16, c.arg(0))
    k.machine.write_word(res + 24, c.arg(4))
    k.machine.write_word(res + 32, c.arg(1))
    return res + DEVRES_HEADER


@kfunc("devres_add", nargs=2)
def _devres_add(k: BaseKernel, c: TrapCall) -> int:
    """devres_add(dev, res): the resource is the device's (released with it)."""
    k.state.tables.setdefault("devres", {})[c.arg(1)] = c.arg(0)
    return 0


@kfunc("devres_free", nargs=1)
def _devres_free(k: BaseKernel, c: TrapCall) -> int:
    """devres_free(res): a resource never added is freed (NULL allowed)."""
    if c.arg(0):
        k.state.tables.setdefault("devres", {}).pop(c.arg(0), None)
        k.free(c.arg(0) - DEVRES_HEADER)
    return 0


@kfunc("driver_create_file", "driver_remove_file", nargs=2)
def _driver_file(k: BaseKernel, c: TrapCall) -> int:
    """driver_create_file(drv, attr): the attribute file in the driver's sysfs directory
    (-EINVAL for a NULL driver); remove: void."""
    files = k.state.tables.setdefault("driver-files", {})
    if c.name == "driver_remove_file":
        files.pop((c.arg(0), c.arg(1)), None)
        return 0
    if not c.arg(0):
        return -EINVAL
    files[(c.arg(0), c.arg(1))] = k.current
    return 0


@kfunc("dev_get_regmap", nargs=2)
def _dev_get_regmap(k: BaseKernel, c: TrapCall) -> int:
    """dev_get_regmap(dev, name): the device's register map from its devres list; NULL for
    a device that set none up (regmap_init adds it: no regmap here has been)."""
    return 0

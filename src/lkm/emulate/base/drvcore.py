"""The driver core's generic lists (drivers/base/driver.c, bus.c, class.c, core.c,
transport_class.c, attribute_container.c): drivers registered on a bus, device classes with
their attribute files, interfaces and devices, transport classes and attribute containers.

- A driver registered with ``driver_register`` is on its bus's driver list, so that
  ``bus_for_each_drv``/``driver_find`` find it (and the pci/usb/platform drivers of
  :mod:`lkm.emulate.base.bus`, whose embedded ``struct device_driver`` is on its bus too); a
  second driver of the same name on a bus is refused with -EBUSY, as driver_register does.
- A class (``class_register``, ``class_create``, a transport class) is named; a name taken
  is refused with -EEXIST (kset_register -> kobject_add).  Its attribute files, interfaces
  (``class_interface_register``: ``add_dev`` called for each device of the class) and the
  devices ``device_create`` makes in it are kept, so ``class_find_device`` and
  ``class_for_each_device`` walk them.
- An attribute container (``attribute_container_register``, ``anon_transport_class_register``)
  is on the kernel's container list; it holds no device here (no SCSI host, phy or port is
  ever added by the emulated machine at init), so unregistering it succeeds.

Offsets: 6.1 amd64, offsetof() against its headers (linux-headers-6.1.0-56-amd64)."""

from __future__ import annotations

from lkm.emulate.base.registry import EBUSY, EEXIST, EINVAL, ENODEV, err_ptr, table, zalloc
from lkm.emulate.devlayouts import device_layout
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.state import Registration
from lkm.emulate.vsprintf import to_signed

__all__ = [
    "AC_CLASS",
    "AC_FLAGS",
    "ANON_CONTAINER",
    "ATTRIBUTE_CONTAINER_NO_CLASSDEVS",
    "ATTR_NAME",
    "AUX_DRIVER_DRIVER",
    "AUX_DRIVER_ID_TABLE",
    "AUX_DRIVER_NAME",
    "AUX_DRIVER_PROBE",
    "CLASS_INTF_ADD_DEV",
    "CLASS_INTF_CLASS",
    "CLASS_INTF_REMOVE_DEV",
    "CLASS_NAME",
    "CLASS_P",
    "CLASS_SIZE",
    "DEVICE_DRIVER_PROBE_TYPE",
    "ENOENT",
    "PROBE_PREFER_ASYNCHRONOUS",
    "SPI_DRIVER_DRIVER",
    "SPI_DRIVER_PROBE",
    "SPI_DRIVER_REMOVE",
    "SPI_DRIVER_SHUTDOWN",
    "TCLASS_REMOVE",
    "TCLASS_SETUP",
    "L",
    "bus_drivers",
    "class_add_device",
    "class_del_device",
    "class_of",
    "class_register",
    "class_unregister",
    "classes",
    "container_register",
    "container_unregister",
    "find_driver",
    "register_on_bus",
    "unregister_from_bus",
]


# struct class: name, class_groups, dev_groups, ..., p (subsys_private)
CLASS_NAME, CLASS_P, CLASS_SIZE = 0, 112, 120
# struct class_interface: node (list_head), class, add_dev, remove_dev
CLASS_INTF_CLASS, CLASS_INTF_ADD_DEV, CLASS_INTF_REMOVE_DEV = 16, 24, 32
# struct transport_class: class, setup, configure, remove
TCLASS_SETUP, TCLASS_REMOVE = 120, 136
# struct anon_transport_class: tclass, container
ANON_CONTAINER = 144
# struct attribute_container: node, containers (klist), class, grp, attrs, match, flags
AC_CLASS, AC_FLAGS = 56, 88
ATTRIBUTE_CONTAINER_NO_CLASSDEVS = 1
# struct class_attribute: attr {name, mode}, show, store
ATTR_NAME = 0


def L(k: BaseKernel) -> dict[str, int]:
    return device_layout(k.arch.name)


def _name(k: BaseKernel, ptr_at: int, limit: int = 64) -> str:
    if not ptr_at or not k.machine.is_mapped(ptr_at, k.arch.word):
        return ""
    p = k.machine.read_word(ptr_at)
    if not p or not k.machine.is_mapped(p, 1):
        return ""
    return k.cstring(p, limit)


# -- drivers on a bus (drivers/base/driver.c, bus.c) ------------------------------------------------
def bus_drivers(k: BaseKernel, bus: int) -> list[int]:
    """The struct device_driver of every driver on ``bus``, in registration order: those
    registered with driver_register and the pci/usb/platform drivers' embedded ones."""
    from lkm.emulate.base.bus import _EMBEDDED
    from lkm.emulate.hw import hw_of

    lay = L(k)
    m = k.machine
    out = [d for d, b in table(k, "bus-drivers").items() if b == bus and isinstance(d, int)]
    for kind, drv, _mod in hw_of(k).drivers:
        if kind in _EMBEDDED:
            dd = drv + lay[_EMBEDDED[kind]]
            if dd not in out and m.read_word(dd + lay["device_driver_bus"]) == bus:
                out.append(dd)
    return out


def find_driver(k: BaseKernel, name: str, bus: int) -> int:
    lay = L(k)
    for drv in bus_drivers(k, bus):
        if _name(k, drv + lay["device_driver_name"]) == name:
            return drv
    return 0


@kfunc("driver_register", nargs=1)
def _driver_register(k: BaseKernel, c: TrapCall) -> int:
    """driver_register(drv): -EBUSY ("Error: Driver '%s' is already registered, aborting...")
    when a driver of that name is on the bus; else it joins the bus's driver list.  No
    device is on a module's own bus here (devices of the emulated machine are pci/usb/
    platform ones, matched by lkm.emulate.base.bus), so nothing is probed."""
    lay = L(k)
    drv = c.arg(0)
    bus = k.machine.read_word(drv + lay["device_driver_bus"])
    name = _name(k, drv + lay["device_driver_name"])
    if bus and find_driver(k, name, bus):
        k.state.printk(3, False, f"Error: Driver '{name}' is already registered, aborting...\n", None)
        return -EBUSY
    table(k, "bus-drivers")[drv] = bus
    k.state.registrations.append(Registration("driver", name, drv, k.current))
    return 0


@kfunc("driver_unregister", nargs=1)
def _driver_unregister(k: BaseKernel, c: TrapCall) -> int:
    table(k, "bus-drivers").pop(c.arg(0), None)
    k.state.registrations = [
        r for r in k.state.registrations if not (r.kind == "driver" and r.address == c.arg(0))
    ]
    return 0


@kfunc("driver_find", nargs=2)
def _driver_find(k: BaseKernel, c: TrapCall) -> int:
    """driver_find(name, bus): the driver of that name on the bus, NULL when there is none."""
    return find_driver(k, k.cstring(c.arg(0), 64), c.arg(1))


@kfunc("bus_for_each_drv", nargs=4)
def _bus_for_each_drv(k: BaseKernel, c: TrapCall) -> int:
    """bus_for_each_drv(bus, start, data, fn): fn(drv, data) for each driver on the bus after
    ``start``; the first non-zero return ends the walk and is returned (-EINVAL for NULL bus)."""
    bus, start, data, fn = c.arg(0), c.arg(1), c.arg(2), c.arg(3)
    if not bus:
        return -EINVAL
    drivers = bus_drivers(k, bus)
    if start in drivers:
        drivers = drivers[drivers.index(start) + 1 :]
    for drv in drivers:
        ret = to_signed(k.call(fn, (drv, data), k.current), 32)
        if ret:
            return ret
    return 0


# -- classes (drivers/base/class.c) -------------------------------------------------------------------
class _Class:
    __slots__ = ("name", "files", "interfaces", "devices", "module")

    def __init__(self, name: str, module: str | None) -> None:
        self.name = name
        self.files: dict[str, int] = {}  # attribute name -> struct class_attribute
        self.interfaces: list[int] = []  # struct class_interface, in registration order
        self.devices: list[int] = []  # struct device made in the class, in order
        self.module = module


def classes(k: BaseKernel) -> dict[object, object]:
    """struct class address -> :class:`_Class` of the registered classes."""
    return table(k, "class")


def class_of(k: BaseKernel, cls: int) -> _Class | None:
    """The registered class at ``cls``; a class of the kernel image itself (a data symbol
    the module imports) was registered at boot, so it is known from its first use."""
    v = classes(k).get(cls)
    if isinstance(v, _Class):
        return v
    boot = k.names.get(cls)
    if boot is None or not cls:
        return None
    entry = _Class(_name(k, cls + CLASS_NAME) or boot, None)
    classes(k)[cls] = entry
    return entry


def class_register(k: BaseKernel, cls: int) -> int:
    """__class_register: -EEXIST for a class name taken (kobject_add_internal's complaint,
    as the kernel logs it), else the class is registered (its p set, so class_get works)."""
    name = _name(k, cls + CLASS_NAME)
    if cls in classes(k) or any(isinstance(v, _Class) and v.name == name for v in classes(k).values()):
        k.state.printk(4, False, f"sysfs: cannot create duplicate filename '/class/{name}'\n", None)
        k.state.printk(
            3,
            False,
            f"kobject_add_internal failed for {name} with -EEXIST, don't try to register things "
            "with the same name in the same directory.\n",
            None,
        )
        return -EEXIST
    p = zalloc(k, 0x200)  # struct subsys_private
    if not p:
        return -12
    k.machine.write_word(cls + CLASS_P, p)
    classes(k)[cls] = _Class(name, k.current)
    k.state.registrations.append(Registration("class", name, cls, k.current))
    return 0


def class_unregister(k: BaseKernel, cls: int) -> None:
    if classes(k).pop(cls, None) is not None:
        k.machine.write_word(cls + CLASS_P, 0)
        k.state.registrations = [
            r for r in k.state.registrations if not (r.kind == "class" and r.address == cls)
        ]


@kfunc("__class_register", nargs=2)
def _class_register(k: BaseKernel, c: TrapCall) -> int:
    return class_register(k, c.arg(0))


@kfunc("class_unregister", nargs=1)
def _class_unregister(k: BaseKernel, c: TrapCall) -> int:
    class_unregister(k, c.arg(0))
    return 0


@kfunc("__class_create", nargs=3)
def _class_create(k: BaseKernel, c: TrapCall) -> int:
    """__class_create(owner, name, key): a new struct class of that name, registered; an
    ERR_PTR of __class_register's error (-EEXIST for a name taken), -ENOMEM without memory."""
    cls = zalloc(k, CLASS_SIZE)
    if not cls:
        return err_ptr(k, 12)
    k.machine.write_word(cls + CLASS_NAME, c.arg(1))
    ret = class_register(k, cls)
    if ret:
        k.free(cls)
        return err_ptr(k, -ret)
    return cls


@kfunc("class_destroy", nargs=1)
def _class_destroy(k: BaseKernel, c: TrapCall) -> int:
    """class_destroy(cls): NULL and error pointers are ignored, as IS_ERR_OR_NULL checks."""
    cls = c.arg(0)
    if cls and cls < (-4095 & k.arch.mask):
        class_unregister(k, cls)
    return 0


@kfunc("class_create_file_ns", nargs=3)
def _class_create_file_ns(k: BaseKernel, c: TrapCall) -> int:
    """class_create_file_ns(cls, attr, ns): the file in /sys/class/NAME; -EINVAL for a NULL
    class, -EEXIST (with sysfs's duplicate-filename complaint) for a name taken."""
    cls, attr = c.arg(0), c.arg(1)
    if not cls:
        return -EINVAL
    entry = class_of(k, cls)
    name = _name(k, attr + ATTR_NAME)
    if entry is None:
        # a class never registered has no subsys_private: the kernel follows cls->p (NULL)
        return -EINVAL
    if name in entry.files:
        dup = f"sysfs: cannot create duplicate filename '/class/{entry.name}/{name}'\n"
        k.state.printk(4, False, dup, None)
        return -EEXIST
    entry.files[name] = attr
    return 0


@kfunc("class_remove_file_ns", nargs=3)
def _class_remove_file_ns(k: BaseKernel, c: TrapCall) -> int:
    entry = class_of(k, c.arg(0))
    if entry is not None:
        name = _name(k, c.arg(1) + ATTR_NAME)
        if entry.files.get(name) == c.arg(1):
            del entry.files[name]
    return 0


@kfunc("class_interface_register", nargs=1)
def _class_interface_register(k: BaseKernel, c: TrapCall) -> int:
    """class_interface_register(intf): -ENODEV without an interface or class, -EINVAL for a
    class not registered (class_get finds no subsystem); else the interface is on the
    class's list and its add_dev(dev, intf) is called for each device already in the class."""
    intf = c.arg(0)
    if not intf:
        return -ENODEV
    m = k.machine
    cls = m.read_word(intf + CLASS_INTF_CLASS)
    if not cls:
        return -ENODEV
    entry = class_of(k, cls)
    if entry is None:
        return -EINVAL
    entry.interfaces.append(intf)
    add = m.read_word(intf + CLASS_INTF_ADD_DEV)
    if add:
        for dev in list(entry.devices):
            k.call(add, (dev, intf), k.current)
    return 0


@kfunc("class_interface_unregister", nargs=1)
def _class_interface_unregister(k: BaseKernel, c: TrapCall) -> int:
    """class_interface_unregister(intf): remove_dev(dev, intf) for each device of the class,
    the interface taken off the class's list."""
    intf = c.arg(0)
    if not intf:
        return 0
    m = k.machine
    entry = class_of(k, m.read_word(intf + CLASS_INTF_CLASS))
    if entry is None or intf not in entry.interfaces:
        return 0
    entry.interfaces.remove(intf)
    remove = m.read_word(intf + CLASS_INTF_REMOVE_DEV)
    if remove:
        for dev in list(entry.devices):
            k.call(remove, (dev, intf), k.current)
    return 0


def _class_devices(k: BaseKernel, cls: int, start: int) -> list[int]:
    entry = class_of(k, cls)
    devs = list(entry.devices) if entry is not None else []
    if start in devs:
        devs = devs[devs.index(start) + 1 :]
    return devs


@kfunc("class_for_each_device", nargs=4)
def _class_for_each_device(k: BaseKernel, c: TrapCall) -> int:
    """class_for_each_device(cls, start, data, fn): -EINVAL for NULL class or one never
    registered ("%s: class %p not registered yet" is logged); fn(dev, data) for each device
    after ``start``, the first non-zero return ends the walk and is returned."""
    cls = c.arg(0)
    if not cls:
        return -EINVAL
    if class_of(k, cls) is None:
        k.state.printk(4, False, f"class_for_each_device: class {cls:#x} not registered yet\n", None)
        return -EINVAL
    for dev in _class_devices(k, cls, c.arg(1)):
        ret = to_signed(k.call(c.arg(3), (dev, c.arg(2)), k.current), 32)
        if ret:
            return ret
    return 0


@kfunc("class_find_device", nargs=4)
def _class_find_device(k: BaseKernel, c: TrapCall) -> int:
    """class_find_device(cls, start, data, match): the first device after ``start`` that
    match(dev, data) accepts; NULL for none, a NULL class or one never registered."""
    cls = c.arg(0)
    if not cls or class_of(k, cls) is None:
        return 0
    for dev in _class_devices(k, cls, c.arg(1)):
        if k.call(c.arg(3), (dev, c.arg(2)), k.current) & 0xFFFFFFFF:
            return dev
    return 0


def class_add_device(k: BaseKernel, cls: int, dev: int) -> None:
    """device_add's class part: the device is on the class's list, then each interface's
    add_dev(dev, intf) is called."""
    entry = class_of(k, cls)
    if entry is None:
        return
    entry.devices.append(dev)
    for intf in list(entry.interfaces):
        add = k.machine.read_word(intf + CLASS_INTF_ADD_DEV)
        if add:
            k.call(add, (dev, intf), k.current)


def class_del_device(k: BaseKernel, dev: int) -> None:
    for v in classes(k).values():
        if isinstance(v, _Class) and dev in v.devices:
            for intf in list(v.interfaces):
                remove = k.machine.read_word(intf + CLASS_INTF_REMOVE_DEV)
                if remove:
                    k.call(remove, (dev, intf), k.current)
            v.devices.remove(dev)


@kfunc("device_create", nargs=5, varargs=True)
def _device_create(k: BaseKernel, c: TrapCall) -> int:
    """device_create(cls, parent, devt, drvdata, fmt, ...): a struct device of the class, named
    from the format, with its devt, parent and driver data; the class's interfaces see it
    (add_dev).  An ERR_PTR(-ENODEV) for a NULL or error class (device_create_groups_vargs)."""
    from lkm.emulate.base.printk import fmt_call

    lay = L(k)
    m = k.machine
    cls = c.arg(0)
    if not cls or cls >= (-4095 & k.arch.mask):
        return err_ptr(k, ENODEV)
    dev = zalloc(k, lay["device_size"])
    if not dev:
        return err_ptr(k, 12)
    name = fmt_call(k, c, 4)
    m.write_word(dev + lay["device_kobj"] + lay["kobject_name"], k.new_string(name))
    m.write_int(dev + lay["device_devt"], 4, c.arg(2) & 0xFFFFFFFF)
    m.write_word(dev + lay["device_class"], cls)
    m.write_word(dev + lay["device_parent"], c.arg(1))
    m.write_word(dev + lay["device_driver_data"], c.arg(3))
    k.state.registrations.append(Registration("device", name.decode("utf-8", "replace"), dev, k.current))
    class_add_device(k, cls, dev)
    return dev


@kfunc("device_destroy", nargs=2)
def _device_destroy(k: BaseKernel, c: TrapCall) -> int:
    """device_destroy(cls, devt): the class's device with that devt is unregistered."""
    lay = L(k)
    entry = class_of(k, c.arg(0))
    if entry is None:
        return 0
    for dev in list(entry.devices):
        if k.machine.read_int(dev + lay["device_devt"], 4) == c.arg(1) & 0xFFFFFFFF:
            class_del_device(k, dev)
            k.state.registrations = [
                r for r in k.state.registrations if not (r.kind == "device" and r.address == dev)
            ]
            break
    return 0


# -- transport classes and attribute containers (drivers/base/transport_class.c,
# attribute_container.c) ------------------------------------------------------------------------------
@kfunc("transport_class_register", nargs=1)
def _transport_class_register(k: BaseKernel, c: TrapCall) -> int:
    """transport_class_register(tclass): class_register(&tclass->class)."""
    return class_register(k, c.arg(0))


@kfunc("transport_class_unregister", nargs=1)
def _transport_class_unregister(k: BaseKernel, c: TrapCall) -> int:
    class_unregister(k, c.arg(0))
    return 0


def container_register(k: BaseKernel, cont: int) -> int:
    """attribute_container_register: on the kernel's container list (always 0)."""
    table(k, "attribute-container")[cont] = k.current
    k.state.registrations.append(Registration("attribute-container", "", cont, k.current))
    return 0


def container_unregister(k: BaseKernel, cont: int) -> int:
    """attribute_container_unregister: -EBUSY while devices are in it (none ever are here)."""
    table(k, "attribute-container").pop(cont, None)
    k.state.registrations = [
        r for r in k.state.registrations if not (r.kind == "attribute-container" and r.address == cont)
    ]
    return 0


@kfunc("attribute_container_register", nargs=1)
def _attribute_container_register(k: BaseKernel, c: TrapCall) -> int:
    return container_register(k, c.arg(0))


@kfunc("attribute_container_unregister", nargs=1)
def _attribute_container_unregister(k: BaseKernel, c: TrapCall) -> int:
    return container_unregister(k, c.arg(0))


@kfunc("anon_transport_class_register", nargs=1)
def _anon_transport_class_register(k: BaseKernel, c: TrapCall) -> int:
    """anon_transport_class_register(atc): its container's class is the transport class's
    (which is not registered: anonymous), no class devices, on the container list; setup and
    remove are the kernel's anon_transport_dummy_function (returns 0)."""
    atc = c.arg(0)
    m = k.machine
    cont = atc + ANON_CONTAINER
    m.write_word(cont + AC_CLASS, atc)
    m.write_int(cont + AC_FLAGS, 8, m.read_int(cont + AC_FLAGS, 8) | ATTRIBUTE_CONTAINER_NO_CLASSDEVS)
    ret = container_register(k, cont)
    if ret:
        return ret
    dummy = k.add_function("anon_transport_dummy_function")
    m.write_word(atc + TCLASS_SETUP, dummy)
    m.write_word(atc + TCLASS_REMOVE, dummy)
    return 0


@kfunc("anon_transport_class_unregister", nargs=1)
def _anon_transport_class_unregister(k: BaseKernel, c: TrapCall) -> int:
    """anon_transport_class_unregister(atc): its container unregistered (a failure is a
    kernel BUG there; none can happen here)."""
    container_unregister(k, c.arg(0) + ANON_CONTAINER)
    return 0


@kfunc("anon_transport_dummy_function", nargs=3)
def _anon_transport_dummy_function(k: BaseKernel, c: TrapCall) -> int:
    """static int anon_transport_dummy_function(tc, dev, cdev) { return 0; } (the kernel's)."""
    return 0


# -- drivers of other buses: registered on their bus, no device of which is ever present here
# (auxiliary devices are made by other drivers' probes, serdev devices by serial controllers'
# ACPI/DT children, spi devices by spi controllers; the emulated machine has none) ------------------
AUX_DRIVER_PROBE, AUX_DRIVER_NAME, AUX_DRIVER_DRIVER, AUX_DRIVER_ID_TABLE = 0, 40, 48, 192
SPI_DRIVER_PROBE, SPI_DRIVER_REMOVE, SPI_DRIVER_SHUTDOWN, SPI_DRIVER_DRIVER = 8, 16, 24, 32
PROBE_PREFER_ASYNCHRONOUS = 1
DEVICE_DRIVER_PROBE_TYPE = 36  # enum probe_type in struct device_driver


def register_on_bus(k: BaseKernel, drv: int, bus_name: str, owner: int, kind: str, name: str = "") -> int:
    """driver_register for a bus driver's embedded device_driver: bus and owner set; -EBUSY
    for a name taken on the bus."""
    lay = L(k)
    m = k.machine
    bus = k.resolve(bus_name) or 0
    m.write_word(drv + lay["device_driver_bus"], bus)
    m.write_word(drv + lay["device_driver_owner"], owner)
    name = name or _name(k, drv + lay["device_driver_name"])
    if find_driver(k, name, bus):
        k.state.printk(3, False, f"Error: Driver '{name}' is already registered, aborting...\n", None)
        return -EBUSY
    table(k, "bus-drivers")[drv] = bus
    k.state.registrations.append(Registration(kind, name, drv, k.current))
    return 0


def unregister_from_bus(k: BaseKernel, drv: int, kind: str) -> None:
    table(k, "bus-drivers").pop(drv, None)
    k.state.registrations = [r for r in k.state.registrations if not (r.kind == kind and r.address == drv)]


@kfunc("__auxiliary_driver_register", nargs=3)
def _auxiliary_driver_register(k: BaseKernel, c: TrapCall) -> int:
    """__auxiliary_driver_register(auxdrv, owner, modname): -EINVAL (with a WARN) without a
    probe or id table; driver.name is "modname.name" (or modname), on auxiliary_bus_type."""
    m = k.machine
    aux, owner, modname = c.arg(0), c.arg(1), c.arg(2)
    if not m.read_word(aux + AUX_DRIVER_PROBE) or not m.read_word(aux + AUX_DRIVER_ID_TABLE):
        return -EINVAL
    mod = k.cstring(modname, 64)
    own = _name(k, aux + AUX_DRIVER_NAME)
    name = f"{mod}.{own}" if own else mod
    drv = aux + AUX_DRIVER_DRIVER
    lay = L(k)
    m.write_word(drv + lay["device_driver_name"], k.new_string(name.encode()))
    m.write_word(drv + lay["device_driver_mod_name"], modname)
    return register_on_bus(k, drv, "auxiliary_bus_type", owner, "auxiliary", name)


@kfunc("auxiliary_driver_unregister", nargs=1)
def _auxiliary_driver_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister_from_bus(k, c.arg(0) + AUX_DRIVER_DRIVER, "auxiliary")
    return 0


@kfunc("__serdev_device_driver_register", nargs=2)
def _serdev_device_driver_register(k: BaseKernel, c: TrapCall) -> int:
    """__serdev_device_driver_register(sdrv, owner): on serdev_bus_type, probe type
    PROBE_PREFER_ASYNCHRONOUS, driver_register (serdev_device_driver_unregister is inline)."""
    drv = c.arg(0)
    k.machine.write_int(drv + DEVICE_DRIVER_PROBE_TYPE, 4, PROBE_PREFER_ASYNCHRONOUS)
    return register_on_bus(k, drv, "serdev_bus_type", c.arg(1), "serdev")


@kfunc("spi_mem_driver_register_with_owner", nargs=2)
def _spi_mem_driver_register_with_owner(k: BaseKernel, c: TrapCall) -> int:
    """spi_mem_driver_register_with_owner(memdrv, owner): the spi driver's probe, remove and
    shutdown become spi-mem's, then __spi_register_driver (on spi_bus_type)."""
    m = k.machine
    spidrv = c.arg(0)
    for off, fn in ((SPI_DRIVER_PROBE, "spi_mem_probe"), (SPI_DRIVER_REMOVE, "spi_mem_remove"),
                    (SPI_DRIVER_SHUTDOWN, "spi_mem_shutdown")):  # fmt: skip
        m.write_word(spidrv + off, k.add_function(fn))
    return register_on_bus(k, spidrv + SPI_DRIVER_DRIVER, "spi_bus_type", c.arg(1), "spi")


@kfunc("spi_mem_driver_unregister", nargs=1)
def _spi_mem_driver_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister_from_bus(k, c.arg(0) + SPI_DRIVER_DRIVER, "spi")
    return 0


@kfunc("device_bind_driver", nargs=1)
def _device_bind_driver(k: BaseKernel, c: TrapCall) -> int:
    """device_bind_driver(dev): binds the device to the driver its dev->driver names
    (driver_sysfs_add's links, driver_bound): 0; the device is then the driver's."""
    lay = L(k)
    dev = c.arg(0)
    drv = k.machine.read_word(dev + lay["device_driver"])
    table(k, "bound-devices")[dev] = drv
    return 0


# -- managed regions (kernel/resource.c) ----------------------------------------------------------------
@kfunc("__devm_request_region", nargs=5)
def _devm_request_region(k: BaseKernel, c: TrapCall) -> int:
    """__devm_request_region(dev, parent, start, n, name): __request_region(parent, start, n,
    name, 0) -- the region, or NULL when something in this kernel holds part of it -- released
    with the device (devres)."""
    from lkm.emulate.base.devices import IORESOURCE_BUSY, RESOURCE_SIZE

    parent, start, n, name = c.arg(1), c.arg(2), c.arg(3), c.arg(4)
    end = start + n - 1
    for p, s, e, _res in k.state.regions:
        if p == parent and s <= end and start <= e:
            return 0
    res = zalloc(k, RESOURCE_SIZE)
    if not res:
        return 0
    m = k.machine
    for off, value in ((0, start), (8, end), (16, name), (24, IORESOURCE_BUSY), (40, parent)):
        m.write_word(res + off, value)
    k.state.regions.append((parent, start, end, res))
    table(k, "devres")[res] = c.arg(0)
    return res


# -- GPIO descriptors (drivers/gpio/gpiolib.c) ------------------------------------------------------
ENOENT = 2


@kfunc("gpiod_get", "devm_gpiod_get", "gpiod_get_optional", "devm_gpiod_get_optional", nargs=3)
def _gpiod_get(k: BaseKernel, c: TrapCall) -> int:
    """gpiod_get(dev, con_id, flags): QEMU's PC describes no GPIO for any device (no GPIO
    controller, no GpioIo resources in its DSDT, no lookup tables), so gpiod_find finds none:
    ERR_PTR(-ENOENT); the _optional variants turn that into NULL."""
    return 0 if c.name.endswith("_optional") else err_ptr(k, ENOENT)


@kfunc("gpiod_get_index", "devm_gpiod_get_index", "gpiod_get_index_optional", "devm_gpiod_get_index_optional",
       nargs=4)  # fmt: skip
def _gpiod_get_index(k: BaseKernel, c: TrapCall) -> int:
    """gpiod_get_index(dev, con_id, idx, flags): as gpiod_get (no GPIO is described)."""
    return 0 if c.name.endswith("_optional") else err_ptr(k, ENOENT)


# -- DMA engines (drivers/dma/dmaengine.c): QEMU's PC has none (no IOAT or other DMA engine) ----------
@kfunc("dmaengine_get", "dmaengine_put", nargs=0)
def _dmaengine_get(k: BaseKernel, c: TrapCall) -> int:
    """dmaengine_get()/dmaengine_put(): the client reference count (void); with no DMA device
    registered there is no channel to take a reference on."""
    tab = table(k, "dmaengine")
    count = tab.get("ref", 0)
    assert isinstance(count, int)
    tab["ref"] = count + 1 if c.name == "dmaengine_get" else max(count - 1, 0)
    return 0


@kfunc("dma_find_channel", nargs=1)
def _dma_find_channel(k: BaseKernel, c: TrapCall) -> int:
    """dma_find_channel(tx_type): the per-cpu channel table's entry: NULL without DMA engines."""
    return 0


# -- asynchronous function calls (kernel/async.c) ---------------------------------------------------
@kfunc("async_schedule_node", "async_schedule_node_domain", nargs=4)
def _async_schedule_node(k: BaseKernel, c: TrapCall) -> int:
    """async_schedule_node(func, data, node): func(data, cookie) runs in a worker of
    system_unbound_wq, and do_init_module waits for it (async_synchronize_full) before the
    load completes; here the worker runs it at once (one of the orders the kernel allows).
    Returns the cookie (from 1 up)."""
    tab = table(k, "async")
    cookie = tab.get("next", 1)
    assert isinstance(cookie, int)
    tab["next"] = cookie + 1
    k.call(c.arg(0), (c.arg(1), cookie), k.current)
    return cookie


@kfunc("async_synchronize_full", "async_synchronize_full_domain", "async_synchronize_cookie",
       "async_synchronize_cookie_domain", nargs=2)  # fmt: skip
def _async_synchronize(k: BaseKernel, c: TrapCall) -> int:
    """async_synchronize_*: every scheduled function has run already (see above)."""
    return 0


# -- platform bundles (drivers/base/platform.c) ------------------------------------------------------
@kfunc("__platform_create_bundle", nargs=7)
def _platform_create_bundle(k: BaseKernel, c: TrapCall) -> int:
    """__platform_create_bundle(driver, probe, res, n_res, data, size, module): a platform
    device named as the driver (PLATFORM_DEVID_NONE) with copies of the resources and data is
    added, then __platform_driver_probe(driver, probe, module); when that fails (nothing
    bound: -ENODEV) the device is deleted and ERR_PTR(error) returned, else the device."""
    from lkm.emulate.base.bus import (
        PLATFORM_DEVID_NONE,
        _adopt_platform,
        _platform_register,
        _platform_unregister,
    )
    from lkm.emulate.hw import hw_of

    lay = L(k)
    m = k.machine
    drv, probe, res, n_res, data, size, module = (c.arg(i) for i in range(7))
    n_res &= 0xFFFFFFFF
    p = zalloc(k, lay["platform_device_size"] + 64)
    if not p:
        return err_ptr(k, 12)
    d0 = drv + lay["platform_driver_driver"]
    m.write_word(p + lay["platform_device_name"], m.read_word(d0 + lay["device_driver_name"]))
    m.write_int(p + lay["platform_device_id"], 4, PLATFORM_DEVID_NONE & 0xFFFFFFFF)
    if res and n_res:
        n = min(n_res, 64)
        copy = k.alloc(lay["resource_size"] * n)
        m.write(copy, m.read(res, lay["resource_size"] * n))
        m.write_word(p + lay["platform_device_resource"], copy)
        m.write_int(p + lay["platform_device_num_resources"], 4, n)
    if data and size:
        copy = k.alloc(size)
        m.write(copy, m.read(data, min(size, 1 << 20)))
        m.write_word(p + lay["platform_device_dev"] + lay["device_platform_data"], copy)
    ret = _adopt_platform(k, p)
    if ret:
        return err_ptr(k, -ret)
    m.write_word(drv + lay["platform_driver_probe"], probe)
    _platform_register(k, drv, module)
    hw = hw_of(k)
    if not any(d.driver == drv for d in hw.devices):
        _platform_unregister(k, drv)
        hw.devices = [d for d in hw.devices if d.address != p]
        return err_ptr(k, ENODEV)
    return p

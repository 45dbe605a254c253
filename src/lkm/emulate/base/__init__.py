"""The base kernel's functions, in Python, registered by name when this package is imported
(see :func:`lkm.emulate.kernel.kfunc`).  One module per subsystem:

- runtime: compiler-emitted calls, module references, user copies, time, randomness
- mm, lib: allocators; xarray/IDR/IDA, rhashtable, mempools, per-cpu memory, static keys
- strings, printk, sync: lib/string.c, printk/vsprintf, locks/RCU/waits
- devices: character/misc/block devices, filesystems, driver registrations
- dmapool: DMA pools of small coherent blocks
- block: disks, request queues and their limits, blk-mq tag sets
- notifier: notifier chains and the kernel's own chains
- procfs: /proc, debugfs, sysfs and kobjects
- netdev: network devices registering (names, ifindex, carrier, NAPI, addresses)
- skbuff: socket buffers, received frames to the stack, opening/closing/transmitting on a device
- net: address families (sock_register), protocols, netlink, rtnetlink, tc, netfilter, pernet, sysctl
- crypto: algorithm and template registrations
- platform: DMI and CPU matching (the QEMU machine the corpus guests run on)
- firmware: firmware requests (no files: -ENOENT)
- drvcore: drivers on their buses, device classes (files, interfaces, devices), transport
  classes and attribute containers
- acpi: ACPI drivers, namespace and tables, PnP drivers (QEMU's PC: what it has and lacks)
- subsys: LED triggers, keys, input handlers, NLS, kthread workers, bdi, tty drivers, misc registries

A function registered twice is an error at import (:data:`lkm.emulate.kernel.FUNCTIONS`),
but for the record-only ones of devices and sync, which a fuller implementation may replace
(bus, io, irq, pci, uaccess, usb: the driver core, buses, I/O, interrupts and deferred work,
imported after them)."""

# isort: off
from lkm.emulate.base import (
    block,
    crypto,
    devices,
    firmware,
    lib,
    mm,
    net,
    notifier,
    platform,
    printk,
    procfs,
    runtime,
    strings,
    subsys,
    sync,
)

# The driver core, buses, I/O, interrupts and deferred work: imported after the modules above,
# whose record-only versions of the same functions they replace.
from lkm.emulate.base import bus, io, irq, pci, uaccess, usb

# Drivers on their buses, classes, transport classes; ACPI and PnP drivers (after devices,
# whose record-only driver_register, __class_create and device_create they replace).
from lkm.emulate.base import acpi, drvcore

# Network devices registering, socket buffers and DMA pools: fallbacks for what no file above implements.
from lkm.emulate.base import dmapool, netdev, skbuff

# isort: on

__all__ = [
    "acpi",
    "block",
    "bus",
    "crypto",
    "devices",
    "dmapool",
    "drvcore",
    "firmware",
    "io",
    "irq",
    "lib",
    "mm",
    "net",
    "netdev",
    "notifier",
    "pci",
    "platform",
    "printk",
    "procfs",
    "runtime",
    "skbuff",
    "strings",
    "subsys",
    "sync",
    "uaccess",
    "usb",
]

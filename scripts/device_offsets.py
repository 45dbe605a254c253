#!/usr/bin/env python3
"""Print the struct member offsets lkm.emulate.layouts.DEVICES_61 uses (the driver core, PCI,
USB, platform and virtio devices, timers, work items, tasklets), measured by compiling
offsetof()/sizeof() against Debian's 6.1 amd64 kernel headers with kbuild, as
scripts/struct_offsets.sh does for the file/inode/cdev offsets.

Usage: python3 scripts/device_offsets.py [KBUILD_DIR]   (needs linux-headers-6.1.0-*-amd64)
"""

from __future__ import annotations

import glob
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

INCLUDES = """#include <linux/module.h>
#include <linux/device.h>
#include <linux/pci.h>
#include <linux/usb.h>
#include <linux/platform_device.h>
#include <linux/virtio.h>
#include <linux/timer.h>
#include <linux/workqueue.h>
#include <linux/interrupt.h>
#include <linux/mod_devicetable.h>
#include <linux/ioport.h>
"""


def _m(struct_name: str, prefix: str, *members: str, size: bool = True) -> list[tuple[str, str]]:
    out = [(f"{prefix}_{m.replace('.', '_').replace('[', '').replace(']', '')}",
            f"offsetof(struct {struct_name}, {m})") for m in members]  # fmt: skip
    if size:
        out.append((f"{prefix}_size", f"sizeof(struct {struct_name})"))
    return out


FIELDS: list[tuple[str, str]] = [
    *_m("device", "device", "parent", "init_name", "kobj", "driver", "driver_data", "platform_data",
        "bus", "dma_mask", "coherent_dma_mask", "of_node", "fwnode", "devt", "id", "class", "release",
        "type"),
    *_m("kobject", "kobject", "name"),
    *_m("device_driver", "device_driver", "name", "bus", "owner", "mod_name", "of_match_table",
        "acpi_match_table", "probe", "remove"),
    *_m("resource", "resource", "start", "end", "name", "flags", "desc", "parent", "sibling", "child"),
    *_m("pci_dev", "pci_dev", "bus", "devfn", "vendor", "device", "subsystem_vendor", "subsystem_device",
        "class", "revision", "hdr_type", "pin", "driver", "dma_mask", "dev", "irq", "resource",
        "current_state", "cfg_size", "msi_cap", "msix_cap", "pcie_cap"),
    *_m("pci_bus", "pci_bus", "number", "self", "ops"),
    *_m("pci_driver", "pci_driver", "name", "id_table", "probe", "remove", "driver", "shutdown"),
    *_m("pci_device_id", "pci_device_id", "vendor", "device", "subvendor", "subdevice", "class",
        "class_mask", "driver_data"),
    *_m("platform_device", "platform_device", "name", "id", "id_auto", "dev", "num_resources",
        "resource", "id_entry", "driver_override"),
    *_m("platform_driver", "platform_driver", "probe", "remove", "shutdown", "driver", "id_table"),
    *_m("platform_device_id", "platform_device_id", "name", "driver_data"),
    *_m("usb_driver", "usb_driver", "name", "probe", "disconnect", "id_table", "driver"),
    *_m("usb_device_id", "usb_device_id", "match_flags", "idVendor", "idProduct", "bcdDevice_lo",
        "bcdDevice_hi", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol", "bInterfaceClass",
        "bInterfaceSubClass", "bInterfaceProtocol", "bInterfaceNumber", "driver_info"),
    *_m("usb_interface", "usb_interface", "altsetting", "cur_altsetting", "num_altsetting", "minor",
        "dev", "usb_dev"),
    *_m("usb_host_interface", "usb_host_interface", "desc", "extralen", "extra", "endpoint", "string"),
    *_m("usb_host_endpoint", "usb_host_endpoint", "desc"),
    *_m("usb_device", "usb_device", "devnum", "devpath", "state", "speed", "bus", "ep0", "dev",
        "descriptor", "config", "actconfig", "ep_in", "ep_out", "product", "manufacturer", "serial"),
    *_m("usb_host_config", "usb_host_config", "desc", "string", "interface", "intf_cache", "extra"),
    *_m("platform_device_info", "platform_device_info", "parent", "fwnode", "of_node_reused", "name", "id",
        "res", "num_res", "data", "size_data", "dma_mask", "properties"),
    *_m("bus_type", "bus_type", "name", "dev_name", "match", "probe", "remove", "p"),
    *_m("usb_bus", "usb_bus", "controller", "busnum", "bus_name"),
    *_m("virtio_driver", "virtio_driver", "driver", "id_table", "feature_table", "feature_table_size",
        "probe", "remove"),
    *_m("virtio_device_id", "virtio_device_id", "device", "vendor"),
    *_m("virtio_device", "virtio_device", "index", "dev", "id", "config", "vqs", "features", "priv"),
    *_m("scatterlist", "scatterlist", "page_link", "offset", "length", "dma_address", "dma_length"),
    *_m("timer_list", "timer_list", "entry", "expires", "function", "flags"),
    *_m("work_struct", "work_struct", "data", "entry", "func"),
    *_m("delayed_work", "delayed_work", "work", "timer", "wq", "cpu"),
    *_m("tasklet_struct", "tasklet_struct", "next", "state", "count", "use_callback", "func", "callback",
        "data"),
]  # fmt: skip


def main() -> int:
    kdir = sys.argv[1] if len(sys.argv) > 1 else sorted(glob.glob("/usr/src/linux-headers-6.1.*-amd64"))[-1]
    body = ",\n".join(f" {expr}" for _k, expr in FIELDS)
    src = f'{INCLUDES}const unsigned long lkm_offsets[] = {{\n{body}\n}};\nMODULE_LICENSE("GPL");\n'
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "off.c"), "w") as f:
            f.write(src)
        with open(os.path.join(tmp, "Kbuild"), "w") as f:
            f.write("obj-m := off.o\n")
        subprocess.run(["make", "-s", "-C", kdir, f"M={tmp}", "modules"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        from lkm.module.file import ModuleFile

        e = ModuleFile.open(os.path.join(tmp, "off.ko")).elf
        s = next(x for x in e.symbols() if x.name == "lkm_offsets")
        d = e.section_bytes(e.sections[s.shndx])[s.value : s.value + s.size]
        values = struct.unpack(f"<{s.size // 8}Q", d)
    print(f"# {os.path.basename(kdir)}")
    for (key, _e), v in zip(FIELDS, values, strict=True):
        print(f"    {key}={v},")
    return 0


if __name__ == "__main__":
    sys.exit(main())

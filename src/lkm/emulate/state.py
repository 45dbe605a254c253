"""The base kernel's tables that registrations update, and the views /proc shows of them.

A :class:`KernelState` is plain data (it pickles), so the model kernel can keep it between
calls.  It starts from what a real boot of the kernel shows (``KernelState.booted``: the
6.1 amd64 kernel's /proc/devices, /proc/filesystems and /proc/misc captured in QEMU), so
dynamic majors and minors come out as the real kernel hands them out.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "CHRDEV_MAJOR_DYN_END",
    "CHRDEV_MAJOR_DYN_EXT_END",
    "CHRDEV_MAJOR_DYN_EXT_START",
    "CHRDEV_MAJOR_MAX",
    "DYNAMIC_MINORS",
    "MISC_DYNAMIC_MINOR",
    "ChrDev",
    "KernelState",
    "LogRecord",
    "MiscDev",
    "Registration",
]


CHRDEV_MAJOR_MAX = 512  # fs/char_dev.c
CHRDEV_MAJOR_DYN_END = 234
CHRDEV_MAJOR_DYN_EXT_START = 511
CHRDEV_MAJOR_DYN_EXT_END = 384
MISC_DYNAMIC_MINOR = 255
DYNAMIC_MINORS = 128  # drivers/char/misc.c (6.1): minors 255 down to 128


@dataclass(slots=True, unsafe_hash=True)
class LogRecord:
    level: int
    text: str
    module: str | None


@dataclass(frozen=True, slots=True)
class ChrDev:
    major: int
    baseminor: int
    count: int
    name: str
    fops: int
    module: str | None


@dataclass(frozen=True, slots=True)
class MiscDev:
    minor: int
    name: str
    fops: int
    address: int
    module: str | None


@dataclass(frozen=True, slots=True)
class Registration:
    """Any other registration (pci/usb/platform driver, netdev, ...): what, its name, by whom."""

    kind: str
    name: str
    address: int
    module: str | None


class KernelState:
    """Everything the base kernel remembers."""

    def __init__(self) -> None:
        self.log: list[LogRecord] = []
        self.log_open = False  # the last record has no newline yet (KERN_CONT may extend it)
        self.chrdevs: list[ChrDev] = []
        self.blkdevs: list[tuple[int, str]] = []
        self.misc: list[MiscDev] = []
        self.filesystems: list[tuple[str, bool, str | None]] = []  # name, requires a device, module
        self.registrations: list[Registration] = []
        self.calls: Counter[str] = Counter()
        self.unimplemented: Counter[str] = Counter()
        self.locks: Counter[str] = Counter()  # per lock family: acquisitions minus releases
        self.jiffies = 0xFFFEDB08 + 2500  # INITIAL_JIFFIES (HZ=250) plus ten seconds of uptime
        self.module_refs: Counter[str] = Counter()
        self.taints: set[str] = set()
        self.trusted_keys: set[str] = set()  # key ids of module signatures the kernel accepts
        self.regions: list[tuple[int, int, int, int]] = []  # requested I/O regions: parent, start, end, res
        # The other subsystems' tables (lkm.emulate.base.registry): table name -> key -> value
        # (notifier chains, proc entries, xarrays, netlink families, crypto algorithms...).
        self.tables: dict[str, dict[object, object]] = {}

    @classmethod
    def booted(cls) -> KernelState:
        """The tables of a freshly booted 6.1 amd64 kernel (captured by scripts/emulate_dmesg.py)."""
        st = cls()
        data = json.loads(resources.files("lkm.emulate").joinpath("boot-6.1-amd64.json").read_text())
        for major, name in data["chrdevs"]:
            st.chrdevs.append(ChrDev(major, 0, 256, name, 0, None))
        st.blkdevs = [(major, name) for major, name in data["blkdevs"]]
        for minor, name in data["misc"]:
            st.misc.append(MiscDev(minor, name, 0, 0, None))
        for name, requires_dev in data["filesystems"]:
            st.filesystems.append((name, requires_dev, None))
        st.trusted_keys = set(data.get("signing_key_ids", []))
        return st

    # -- printk ---------------------------------------------------------------------------
    def printk(self, level: int, cont: bool, text: str, module: str | None) -> None:
        if cont and self.log_open and self.log:
            last = self.log[-1]
            self.log[-1] = LogRecord(last.level, last.text + text.rstrip("\n"), last.module)
        else:
            self.log.append(LogRecord(level, text.rstrip("\n"), module))
        self.log_open = not text.endswith("\n")

    # -- character devices (fs/char_dev.c) ----------------------------------------------
    def find_dynamic_major(self) -> int | None:
        used = {c.major for c in self.chrdevs}
        for major in range(254, CHRDEV_MAJOR_DYN_END - 1, -1):
            if major not in used:
                return major
        for major in range(CHRDEV_MAJOR_DYN_EXT_START, CHRDEV_MAJOR_DYN_EXT_END - 1, -1):
            if major not in used:
                return major
        return None

    def register_chrdev_region(
        self, major: int, baseminor: int, count: int, name: str, fops: int, module: str | None
    ) -> int:
        """__register_chrdev_region: the major (allocated when 0) or a negative errno."""
        if major == 0:
            found = self.find_dynamic_major()
            if found is None:
                return -16  # -EBUSY
            major = found
        elif major >= CHRDEV_MAJOR_MAX:
            return -22  # -EINVAL
        end = baseminor + count
        for c in self.chrdevs:
            if c.major == major and c.baseminor < end and baseminor < c.baseminor + c.count:
                return -16
        self.chrdevs.append(ChrDev(major, baseminor, count, name, fops, module))
        return major

    def unregister_chrdev_region(self, major: int, baseminor: int, count: int) -> None:
        for c in self.chrdevs:
            if c.major == major and c.baseminor == baseminor and c.count == count:
                self.chrdevs.remove(c)
                return

    def chrdev_by_name(self, name: str) -> ChrDev | None:
        return next((c for c in self.chrdevs if c.name == name and c.fops), None)

    # -- /proc ----------------------------------------------------------------------------
    def proc_devices(self) -> str:
        lines = ["Character devices:"]
        # chrdev_show: every region, by major then (the hash chain's order) minor.
        for c in sorted(self.chrdevs, key=lambda c: (c.major, c.baseminor)):
            lines.append(f"{c.major:3d} {c.name}")
        lines += ["", "Block devices:"]
        lines += [f"{major:3d} {name}" for major, name in sorted(self.blkdevs)]
        return "\n".join(lines) + "\n"

    def proc_filesystems(self) -> str:
        return "".join(f"{'' if dev else 'nodev'}\t{name}\n" for name, dev, _m in self.filesystems)

    def proc_misc(self) -> str:
        return "".join(f"{m.minor:3d} {m.name}\n" for m in self.misc)

    def dmesg(self) -> list[str]:
        return [r.text for r in self.log]

#!/usr/bin/env python3
"""Record real devices for ``lkm run --device-replay``: a corpus kernel in QEMU loads and
removes a driver for one of QEMU's own device models while QEMU traces the device's accesses.

For each recording (``--driver NAME``, repeatable; default all of :data:`RECORDINGS`) this

1. writes an initramfs (:mod:`testing.guest`) with busybox, the driver module and its
   dependencies from the corpus tree (decompressed here), whose ``/init`` loads the
   dependencies, reads the device's configuration space once through sysfs (so that the trace
   holds all of it), then marks the phases by writing one byte to I/O port 0x7e0 (which
   nothing claims) and a line to /dev/kmsg: ``B``, ``insmod DRIVER``, ``P``, ``rmmod DRIVER``,
   ``E``; then prints dmesg between marker lines with its line count and MD5 and powers off;
2. boots the tree's kernel under TCG with ``-device MODEL,addr=03.0`` and QEMU's trace events
   ``memory_region_ops_read/write``, ``pci_cfg_read/write`` and ``pci_update_mappings_add/del``
   written to a log (``-D``), with a hard timeout;
3. turns QEMU's trace into a device trace (:mod:`lkm.emulate.replay`: the device's config
   space, BARs, IRQ, its accesses between the marks, the guest's dmesg of probe and remove)
   and stores, under ``<corpus>/replay/<tree>/<driver>/``: ``trace.json``, ``dmesg.txt``,
   ``console.log`` and ``qemu-trace.log.xz`` (QEMU's whole trace, for re-reading).

A recording whose trace.json is of the tree's build and of this trace format is skipped unless
``--force``.  Progress goes to stderr; exit status 0 when every recording is there.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(_ROOT / "src"))
sys.path.insert(0, str(_ROOT))  # testing/

from lkm.emulate.replay import (  # noqa: E402
    FORMAT,
    MARKER_PORT,
    VERSION,
    TraceError,
    device_trace,
    parse_qemu_trace,
    split_dmesg,
)
from lkm.kernel.load import module_name  # noqa: E402
from testing.captures import replay_is_current  # noqa: E402
from testing.corpus import CorpusTree, corpus_dir, find_tree  # noqa: E402
from testing.guest import GuestError, boot, busybox_for, make_initramfs, qemu_path  # noqa: E402
from testing.vm import _plain, with_dependencies  # noqa: E402

PROG = "guest_replay"
DEFAULT_TREE = "amd64-6.1"
DEFAULT_TIMEOUT = 600.0
SLOT = "00:03.0"
#: driver -> (QEMU device model, pairs of BARs that are one register file in that model).
#: QEMU's rtl8139 maps BAR 1 (memory) as an alias of BAR 0 (I/O): both trace as the ports.
RECORDINGS: dict[str, tuple[str, tuple[tuple[int, int], ...]]] = {
    "e1000": ("e1000", ()),
    "8139cp": ("rtl8139", ((0, 1),)),
    "ne2k-pci": ("ne2k_pci", ()),
    "8139too": ("rtl8139", ((0, 1),)),
    "pcnet32": ("pcnet", ()),
    "e100": ("i82559er", ()),
}
EVENTS = (
    "memory_region_ops_read",
    "memory_region_ops_write",
    "pci_cfg_read",
    "pci_cfg_write",
    "pci_update_mappings_add",
    "pci_update_mappings_del",
)
BEGIN, END = "=====LKM-REPLAY-DMESG-BEGIN=====", "=====LKM-REPLAY-DMESG-END====="

INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B mount -t tmpfs tmp /tmp
echo 1 > /proc/sys/kernel/printk
for m in {deps}; do $B insmod /m/$m.ko || echo "LKM-GUEST: insmod $m failed"; done
mark() {{
  echo "lkm-replay: $1" > /dev/kmsg
  $B printf "$1" | $B dd of=/dev/port bs=1 seek={port} count=1 2>/dev/null
}}
$B dd if=/sys/bus/pci/devices/0000:{slot}/config of=/dev/null bs=256 count=1 2>/dev/null
mark B
$B insmod /m/{driver}.ko || echo "LKM-GUEST: insmod {driver} failed"
mark P
$B rmmod {name} || echo "LKM-GUEST: rmmod {name} failed"
mark E
$B dmesg > /tmp/d
$B echo {begin}
$B cat /tmp/d
$B echo {end}
$B echo "lines $($B wc -l < /tmp/d)"
$B echo "md5 $($B md5sum < /tmp/d)"
$B sync
$B poweroff -f
"""


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def out_dir(tree: CorpusTree, driver: str) -> Path:
    return corpus_dir() / "replay" / tree.name / driver


def console_dmesg(raw: bytes) -> tuple[str | None, str]:
    """The dmesg text between the markers, checked against the guest's count and MD5."""
    text = raw.decode("latin-1").replace("\r\n", "\n").replace("\r", "")
    b = text.find(BEGIN + "\n")
    e = text.find("\n" + END + "\n", b)
    if b < 0 or e < 0:
        return None, "dmesg markers not found on the console"
    body = text[b + len(BEGIN) + 1 : e + 1]
    tail = text[e + len(END) + 2 :].splitlines()
    lines = next((ln.split()[1] for ln in tail if ln.startswith("lines ")), None)
    md5 = next((ln.split()[1] for ln in tail if ln.startswith("md5 ")), None)
    if lines is None or md5 is None:
        return None, "line count / md5 not printed"
    if str(body.count("\n")) != lines or hashlib.md5(body.encode("latin-1")).hexdigest() != md5:
        return None, "the dmesg on the console differs from the guest's (count or MD5)"
    return body, ""


def qemu_version() -> str:
    r = subprocess.run([qemu_path("amd64"), "--version"], capture_output=True, check=False)
    first = r.stdout.decode(errors="replace").splitlines()
    return first[0].removeprefix("QEMU emulator version ").strip() if first else "?"


def record(tree: CorpusTree, driver: str, *, timeout: float = DEFAULT_TIMEOUT, force: bool = False) -> Path:
    """Boot *tree* with the driver's QEMU device, store the recording; its directory."""
    out = out_dir(tree, driver)
    if not force and replay_is_current(out, tree.release):
        log(f"{tree.name}: {driver}: {out} is current")
        return out
    if tree.vmlinuz is None or not tree.vmlinuz.is_file():
        raise SystemExit(f"{PROG}: {tree.name}: the tree has no kernel image")
    model, aliases = RECORDINGS[driver]
    mods = with_dependencies(tree, [module_name(driver)])
    if not mods or module_name(str(mods[-1])) != module_name(driver):
        raise SystemExit(f"{PROG}: {tree.name}: no module {driver}")
    names = [module_name(str(p)) for p in mods]
    files = [(f"m/{n}.ko", _plain(p)) for n, p in zip(names, mods, strict=True)]
    init = INIT.format(
        deps=" ".join(names[:-1]),
        port=MARKER_PORT,
        slot=SLOT,
        driver=names[-1],
        name=names[-1],
        begin=BEGIN,
        end=END,
    )
    try:
        busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    except GuestError as exc:
        raise SystemExit(f"{PROG}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix=f"replay-{driver}-") as tmp:
        initrd, console, qtrace = (
            Path(tmp) / "initramfs.cpio",
            Path(tmp) / "console.log",
            Path(tmp) / "qemu.log",
        )
        initrd.write_bytes(make_initramfs(busybox, init, files))
        extra = ["-device", f"{model},addr={SLOT[3:]}", "-D", str(qtrace)]
        for ev in EVENTS:
            extra += ["-trace", f"enable={ev}"]
        log(f"{tree.name}: {driver}: booting with -device {model} (TCG)")
        t0 = time.monotonic()
        try:
            raw = boot(tree.arch, tree.vmlinuz, initrd, console, timeout, extra=extra, memory_mb=512)
        except GuestError as exc:
            raise SystemExit(f"{PROG}: {tree.name}: {driver}: {exc}") from None
        took = time.monotonic() - t0
        dmesg, why = console_dmesg(raw)
        if dmesg is None:
            raise SystemExit(f"{PROG}: {tree.name}: {driver}: {why}")
        if "LKM-GUEST:" in raw.decode("latin-1"):
            raise SystemExit(f"{PROG}: {tree.name}: {driver}: the guest could not load or remove a module")
        text = qtrace.read_text(errors="replace")
        source = {
            "recorder": "qemu",
            "qemu": qemu_version(),
            "model": model,
            "driver": driver,
            "kernel": tree.release,
            "tree": tree.name,
            "format": f"{FORMAT}/{VERSION}",
        }
        try:
            trace = device_trace(
                parse_qemu_trace(text), SLOT, dmesg=split_dmesg(dmesg), source=source, aliases=aliases
            )
        except TraceError as exc:
            raise SystemExit(f"{PROG}: {tree.name}: {driver}: {exc}") from None
        out.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("dmesg.txt", dmesg.encode("latin-1")),
            ("console.log", raw),
            ("qemu-trace.log.xz", lzma.compress(text.encode())),
        ):
            (out / name).write_bytes(data)
        part = out / "trace.json.part"
        part.write_text(trace.dumps())
        part.replace(out / "trace.json")
        n = sum(1 for a in trace.accesses if a.kind != "cfg")
        log(f"{tree.name}: {driver}: {took:.0f} s; {len(trace.accesses)} accesses ({n} to BARs)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--driver", action="append", choices=sorted(RECORDINGS), help="recording (repeatable)")
    ap.add_argument("--tree", default=DEFAULT_TREE, help=f"corpus tree (default {DEFAULT_TREE})")
    ap.add_argument("--force", action="store_true", help="record again even if current")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per boot (hard limit)")
    args = ap.parse_args(argv)
    tree = find_tree(args.tree)
    for driver in args.driver or list(RECORDINGS):
        print(record(tree, driver, timeout=args.timeout, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())

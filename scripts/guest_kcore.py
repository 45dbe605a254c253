#!/usr/bin/env python3
"""Capture what the real 6.1 amd64 kernel prints for the kcore fixture (the driver core's
lists and QEMU's ACPI answers), as the reference for lkm.emulate's drvcore/acpi base kernel
(tests/emulate/data/kcore-6.1-amd64.json).

Boots the corpus amd64-6.1 vmlinuz in QEMU TCG (testing.guest: busybox, initramfs) with
tests/fixtures/6x/kcore.ko; /init inserts and removes it and prints the kernel log of each
step (``dmesg -c``) between marker lines.
Usage: python3 scripts/guest_kcore.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # testing/
sys.path.insert(0, str(ROOT / "src"))

from testing import guest  # noqa: E402
from testing.corpus import corpus_dir, find_tree  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "6x" / "kcore.ko"
OUT = ROOT / "tests" / "emulate" / "data" / "kcore-6.1-amd64.json"
STEPS = [("insmod", "$B insmod /m/kcore.ko"), ("rmmod", "$B rmmod kcore")]


def init_script() -> str:
    lines = [
        "#!/bin/busybox sh",
        "B=/bin/busybox",
        "$B mount -t proc proc /proc",
        "$B mount -t sysfs sys /sys",
        "$B dmesg -c > /dev/null",
    ]
    for i, (_name, sh) in enumerate(STEPS):
        lines += [f"echo =====STEP {i}=====", f"( {sh} ) 2>&1", f"echo =====DMESG {i}=====", "$B dmesg -c"]
        if i == 0:  # what sysfs shows while it is loaded
            lines += ["echo =====SYSFS=====", "$B ls /sys/class/kcore /sys/bus/kcorebus/drivers 2>&1"]
    lines += ["echo =====END=====", "$B sync", "$B poweroff -f"]
    return "\n".join(lines) + "\n"


def _between(text: str, start: str, end: str) -> list[str]:
    b = text.index(start + "\n") + len(start) + 1
    return text[b : text.index(end, b)].splitlines()


def _strip_time(line: str) -> str:
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


def main() -> int:
    tree = find_tree("amd64-6.1")
    busybox = guest.busybox_for(tree.arch, corpus_dir() / "guest")
    with tempfile.TemporaryDirectory(prefix="guest-kcore-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(guest.make_initramfs(busybox, init_script(), [("m/kcore.ko", FIX.read_bytes())]))
        t0 = time.monotonic()
        assert tree.vmlinuz is not None
        raw = guest.boot(tree.arch, tree.vmlinuz, initrd, Path(tmp) / "console.log", 900.0).decode("latin-1")
        print(f"boot and steps took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    text = raw.replace("\r\n", "\n").replace("\r", "")
    steps = []
    for i, (name, sh) in enumerate(STEPS):
        nxt = "=====SYSFS=====" if i == 0 else "=====END====="
        out = _between(text, f"=====STEP {i}=====", f"=====DMESG {i}=====")
        log = [_strip_time(x) for x in _between(text, f"=====DMESG {i}=====", nxt)]
        steps.append({"step": name, "guest": sh, "output": out, "dmesg": log})
    sysfs = _between(text, "=====SYSFS=====", "=====STEP 1=====")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    part = OUT.with_suffix(".part")
    part.write_text(json.dumps({"kernel": tree.release, "steps": steps, "sysfs": sysfs}, indent=1) + "\n")
    part.replace(OUT)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

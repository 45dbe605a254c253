#!/usr/bin/env python3
"""lkm compat's predictions vs a real kernel's insmod, in QEMU.

Boots a corpus tree's kernel (default amd64-6.12) with an initramfs holding N modules of another
tree (default amd64-6.1, modules without dependencies) and lkm's fixtures; the guest insmods each
and prints the errno, then its dmesg.  The host compares each errno with ``lkm compat``'s verdict
(:func:`lkm.trust.compat.check_module` against the booted tree and its Module.symvers) and checks
that the kernel logged the message of the first fatal reason lkm gives.

    scripts/guest_compat.py [--target amd64-6.12] [--from amd64-6.1] [--count 100] [--out DIR]
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from lkm.compress import decompress, detect  # noqa: E402
from lkm.module.file import ModuleFile  # noqa: E402
from lkm.trust.compat import check_module, load_target  # noqa: E402
from testing.corpus import corpus_dir  # noqa: E402
from testing.guest import boot, busybox_for, insmod_errno, make_initramfs, software_module  # noqa: E402

MESSAGE_KINDS = ("elf", "module_layout", "vermagic", "crc", "unknown_symbol", "namespace", "gpl_only")

INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk
for f in $(cd /t && $B ls); do
  out=$($B insmod /t/$f 2>&1); rc=$?
  echo "LKM-COMPAT-RESULT $f $rc $out"
  if [ $rc = 0 ]; then $B rmmod ${f%%@*} 2>/dev/null; fi
done
$B dmesg | while read l; do echo "LKM-COMPAT-DMESG $l"; done
$B poweroff -f
"""


def plain(path: Path) -> bytes:
    data = path.read_bytes()
    comp = detect(data[:6])
    return decompress(data, comp) if comp else data


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="amd64-6.12")
    ap.add_argument("--from", dest="source", default="amd64-6.1")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=2400)
    ap.add_argument("--out", type=Path, default=Path("guest-compat"))
    a = ap.parse_args()
    c = corpus_dir()
    version = a.target.split("-")[1]
    symvers = sorted((c / f"headers-{version}" / "usr" / "src").glob("linux-headers-*-amd64/Module.symvers"))[
        0
    ]
    target = load_target(str(c / a.target), symvers=str(symvers))
    vmlinuz = sorted((c / a.target / "boot").glob("vmlinuz-*"))[0]
    files: list[tuple[str, bytes, str]] = []
    moddir = sorted((c / a.source / "lib" / "modules").iterdir())[0]
    for p in sorted(moddir.rglob("*.ko*")):
        rel = str(p.relative_to(moddir))
        if not software_module(rel, p.name):
            continue
        data = plain(p)
        m = ModuleFile.from_bytes(data)
        if m.depends:
            continue
        files.append((f"{m.name}@{a.source}.ko", data, str(p)))
        if len(files) >= a.count:
            break
    for f in sorted((ROOT / "tests" / "fixtures" / "6x").glob("*.ko")):
        m = ModuleFile.from_bytes(f.read_bytes())
        files.append((f"{m.name}@fixture-{f.stem}.ko", f.read_bytes(), str(f)))
    a.out.mkdir(parents=True, exist_ok=True)
    busybox = busybox_for("amd64", c / "guest")
    initrd = a.out / "initramfs.cpio"
    initrd.write_bytes(make_initramfs(busybox, INIT, [(f"t/{n}", d) for n, d, _p in files]))
    console = a.out / "console.log"
    t0 = time.monotonic()
    boot("amd64", vmlinuz, initrd, console, a.timeout, memory_mb=2048)
    took = time.monotonic() - t0
    guest: dict[str, tuple[int, str]] = {}
    dmesg: list[str] = []
    for line in console.read_text(errors="replace").splitlines():
        if line.startswith("LKM-COMPAT-RESULT "):
            parts = line.split(" ", 3)
            msg = parts[3] if len(parts) > 3 else ""
            rc = int(parts[2])
            err = insmod_errno(msg) if rc else 0
            guest[parts[1]] = (err, msg)
        elif line.startswith("LKM-COMPAT-DMESG "):
            dmesg.append(line)
    log = "\n".join(dmesg)
    rows, mismatches, msg_missing = [], [], []
    for name, data, path in files:
        v = check_module(path, target, data=data)
        got, msg = guest.get(name, (None, "no result"))
        fatal = [r for r in v.reasons if r.errno and r.kind in MESSAGE_KINDS]
        logged = not fatal or fatal[0].message in log
        row = {"file": name, "lkm": errno.errorcode.get(v.errno, v.errno) if v.errno else 0,
               "guest": errno.errorcode.get(got, got) if got else got, "guest_msg": msg,
               "reason": fatal[0].message if fatal else "", "logged": logged}  # fmt: skip
        rows.append(row)
        if got != v.errno:
            mismatches.append(row)
        if not logged:
            msg_missing.append(row)
    summary = {"target": a.target, "modules_from": a.source, "files": len(files), "results": len(guest),
               "errno_mismatches": len(mismatches), "reason_not_in_dmesg": len(msg_missing),
               "wall_seconds": round(took)}  # fmt: skip
    (a.out / "results.json").write_text(
        json.dumps({"summary": summary, "rows": rows, "dmesg": dmesg}, indent=2)
    )
    print(json.dumps(summary, indent=2))
    for m in (mismatches + msg_missing)[:20]:
        print("MISMATCH", m)
    return 0 if not mismatches and not msg_missing and len(guest) == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())

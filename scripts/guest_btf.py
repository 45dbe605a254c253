#!/usr/bin/env python3
"""Module BTF verdicts of a real kernel vs ``lkm btf``, in QEMU.

Boots a corpus kernel (CONFIG_MODULE_ALLOW_BTF_MISMATCH=y in Debian's builds: a module whose BTF
fails still loads, and the kernel logs ``failed to validate module [NAME] BTF: -ERR``) with an
initramfs of N of its modules without dependencies (signature stripped), as shipped and with
corrupted .BTF sections (the corruptions of tests/trust/test_btf.py).  The guest clears the kernel
log before each insmod and prints the failed-to-validate line it leaves; the host reads, per
file, whether the kernel refused the BTF and with which errno, and
compares with :func:`lkm.trust.btf.check_module_btf` over the image's own vmlinux BTF.

    scripts/guest_btf.py [--tree amd64-6.1] [--count 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from lkm.compress import decompress, detect  # noqa: E402
from lkm.module.file import ModuleFile  # noqa: E402
from lkm.module.signature import module_size  # noqa: E402
from lkm.symbols.image import decompress_kernel_image  # noqa: E402
from lkm.trust.btf import base_from_file, check_module_btf, module_btf  # noqa: E402
from testing.corpus import corpus_dir  # noqa: E402
from testing.guest import boot, busybox_for, make_initramfs  # noqa: E402
from tests.trust.test_btf import BOTH, KERNEL_ONLY, corrupt  # noqa: E402

SOFTWARE_DIRS = ("kernel/fs/", "kernel/crypto/", "kernel/lib/", "kernel/net/")
SKIP_WORDS = ("test", "torture", "kunit", "bench", "dummy", "evil")

INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk
for f in $(cd /t && $B ls); do
  $B dmesg -c > /dev/null
  out=$($B insmod /t/$f 2>&1); rc=$?
  v=$($B dmesg -c | $B grep -o 'failed to validate module [^ ]* BTF: -[0-9]*')
  echo "LKM-BTF-RESULT $f $rc [$v] $out"
  if [ $rc = 0 ]; then $B rmmod ${f%%@*} 2>/dev/null; fi
done
$B poweroff -f
"""


def plain(path: Path) -> bytes:
    data = path.read_bytes()
    comp = detect(data[:6])
    return decompress(data, comp) if comp else data


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=2400)
    ap.add_argument("--out", type=Path, default=Path("guest-btf"))
    a = ap.parse_args()
    tree = corpus_dir() / a.tree
    kernel = "6.12" if a.tree.endswith("6.12") else "6.1"
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))[0]
    base = base_from_file(decompress_kernel_image(vmlinuz.read_bytes()))
    moddir = sorted((tree / "lib" / "modules").iterdir())[0]
    files: list[tuple[str, bytes]] = []
    chosen = 0
    for p in sorted(moddir.rglob("*.ko*")):
        rel = str(p.relative_to(moddir))
        if not rel.startswith(SOFTWARE_DIRS) or any(w in p.name for w in SKIP_WORDS):
            continue
        data = plain(p)
        data = data[: module_size(data)]  # unsigned: a changed byte must not fail the signature first
        m = ModuleFile.from_bytes(data)
        if m.depends or module_btf(data) is None:
            continue
        try:
            variants = [(f"{m.name}@{case}.ko", corrupt(data, case)) for case in [*BOTH, *KERNEL_ONLY]]
        except struct.error:  # an empty string or type section: nothing to corrupt there
            continue
        files += [(f"{m.name}@orig.ko", data), *variants]
        chosen += 1
        if chosen >= a.count:
            break
    a.out.mkdir(parents=True, exist_ok=True)
    busybox = busybox_for("amd64", corpus_dir() / "guest")
    initrd = a.out / "initramfs.cpio"
    initrd.write_bytes(make_initramfs(busybox, INIT, [(f"t/{n}", d) for n, d in files]))
    console = a.out / "console.log"
    t0 = time.monotonic()
    boot("amd64", vmlinuz, initrd, console, a.timeout, memory_mb=2048)
    took = time.monotonic() - t0
    loaded: dict[str, int] = {}
    refused: dict[str, int] = {}
    for line in console.read_text(errors="replace").splitlines():
        if line.startswith("LKM-BTF-RESULT "):
            parts = line.split(" ", 3)
            loaded[parts[1]] = int(parts[2])
            m2 = re.search(r"failed to validate module \[(\S+)\] BTF: (-?\d+)", line)
            if m2:
                refused[parts[1]] = -int(m2.group(2))
    rows, mismatches = [], []
    for name, data in files:
        raw = module_btf(data)
        assert raw is not None
        v = check_module_btf(raw, base, kernel=kernel)
        got = refused.get(name, 0)
        ok = name in loaded and got == v.errno
        rows.append({"file": name, "lkm": v.errno, "lkm_msg": v.message, "guest": got, "match": ok})
        if not ok:
            mismatches.append(rows[-1])
    summary = {"tree": a.tree, "modules": chosen, "files": len(files), "results": len(loaded),
               "refused_by_guest": len(refused), "mismatches": len(mismatches),
               "wall_seconds": round(took)}  # fmt: skip
    (a.out / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(json.dumps(summary, indent=2))
    for m in mismatches[:20]:
        print("MISMATCH", m)
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())

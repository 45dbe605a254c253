"""The VM test harness: a corpus kernel booted under QEMU TCG that sees the host.

The guest's initramfs (busybox-static, made by :mod:`lkm.guest`) loads the virtio and 9p
modules of the booted kernel from the corpus tree, mounts the host's ``/`` read-only over
virtio-9p, a writable share (the run directory, at the same path) over a second one, chroots
into the host's root and runs ``run.sh`` from the share with the host's Python.  Paths are
therefore the same inside and out: the checkout, its virtualenv, the corpus.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from lkm.compress import decompress, detect
from lkm.corpus import CorpusTree, corpus_dir, module_files
from lkm.guest import GuestError, boot, busybox_for, make_initramfs
from lkm.kernel.load import module_name
from lkm.module.file import ModuleFile

ROOT = Path(__file__).resolve().parent.parent.parent
# What the guest needs before it can mount the host: virtio PCI transport and 9p over it.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
BOOT_TIMEOUT = 900.0

INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 0 > /proc/sys/kernel/kptr_restrict
echo 1 > /proc/sys/kernel/printk
for m in {modules}; do $B insmod /m/$m.ko || echo "LKM-GUEST: insmod $m failed"; done
$B mkdir -p /newroot
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot \\
  || echo "LKM-GUEST: mounting the host failed"
for d in proc sys dev; do $B mount --bind /$d /newroot/$d; done
$B mount -t tmpfs tmp /newroot/tmp
$B mkdir -p /newroot{share}
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /newroot{share} \\
  || echo "LKM-GUEST: mounting the share failed"
$B chroot /newroot /bin/sh {share}/run.sh > /newroot{share}/guest.log 2>&1
echo $? > /newroot{share}/rc
$B dmesg > /newroot{share}/dmesg.txt
$B sync
$B umount /newroot{share}
$B poweroff -f
"""


def _by_name(tree: CorpusTree) -> dict[str, Path]:
    return {module_name(str(p)): p for p in module_files(tree)}


def boot_modules(tree: CorpusTree) -> list[Path]:
    """BOOT_MODULES of *tree* and their dependencies, each after what it depends on."""
    files = _by_name(tree)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:  # not a module file: built in
            return
        seen.add(name)
        with ModuleFile.open(files[name]) as mod:
            deps = list(mod.depends)
        for d in deps:
            visit(d)
        order.append(files[name])

    for name in BOOT_MODULES:
        visit(name)
    return order


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    comp = detect(data[:6])
    return decompress(data, comp) if comp else data


def run_in_guest(
    tree: CorpusTree, share: Path, script: str, *, timeout: float = BOOT_TIMEOUT
) -> tuple[int, str]:
    """Boot *tree*, run the shell *script* (as root, in the host's root, cwd the checkout)
    and return (its exit status, its output).  *share* is the guest-writable directory."""
    assert tree.vmlinuz is not None
    share.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(ROOT / "src"),
        "LKM_GUEST": tree.name,
        "LKM_GUEST_SHARE": str(share),
        "LKM_CORPUS": str(corpus_dir()),
        "CI": os.environ.get("CI", ""),
        "LC_ALL": "C",
    }
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    (share / "run.sh").write_text(f"cd {shlex.quote(str(ROOT))}\n{exports}{script}\n")
    for name in ("rc", "guest.log", "dmesg.txt"):
        (share / name).unlink(missing_ok=True)
    mods = boot_modules(tree)
    names = [module_name(str(p)) for p in mods]
    init = INIT.format(modules=" ".join(names), share=str(share))
    busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    files = [(f"m/{n}.ko", _plain(p)) for n, p in zip(names, mods, strict=True)]
    initrd = share / "initramfs.cpio"
    initrd.write_bytes(make_initramfs(busybox, init, files))
    fsdev = [
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=share,path={share},security_model=none",
        "-device", "virtio-9p-pci,fsdev=share,mount_tag=share",
    ]  # fmt: skip
    console = share / "console.log"
    t0 = time.monotonic()
    boot(tree.arch, tree.vmlinuz, initrd, console, timeout, extra=fsdev, memory_mb=2048)
    took = time.monotonic() - t0
    out = (share / "guest.log").read_text(errors="replace") if (share / "guest.log").exists() else ""
    rc_file = share / "rc"
    if not rc_file.exists():
        tail = console.read_text(errors="replace")[-3000:] if console.exists() else ""
        raise GuestError(f"{tree.name}: the guest did not run the script ({took:.0f} s); console:\n{tail}")
    (share / "wall-seconds").write_text(f"{took:.1f}\n")
    return int(rc_file.read_text().strip() or "255"), out

"""The VM test harness: a corpus kernel booted under QEMU TCG that sees the host.

The guest's initramfs (busybox-static, made by :mod:`testing.guest`) loads the virtio and 9p
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
from collections.abc import Sequence
from pathlib import Path

from lkm.compress import decompress, detect
from lkm.kernel.load import module_name
from lkm.module.file import ModuleFile
from testing.corpus import CorpusTree, corpus_dir, module_files
from testing.guest import GuestError, boot, busybox_for, make_initramfs

ROOT = Path(__file__).resolve().parent.parent
# What the guest needs before it can mount the host: virtio PCI transport and 9p over it.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
BOOT_TIMEOUT = 900.0

# The start of every guest's /init: kernel file systems, addresses shown, the boot modules.
INIT_START = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 0 > /proc/sys/kernel/kptr_restrict
echo 1 > /proc/sys/kernel/printk
for m in {modules}; do $B insmod /m/$m.ko || echo "LKM-GUEST: insmod $m failed"; done
"""

INIT = (
    INIT_START
    + """$B mkdir -p /newroot
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot \\
  || echo "LKM-GUEST: mounting the host failed"
for d in proc sys dev; do $B mount --bind /$d /newroot/$d; done
$B mount -t tmpfs tmp /newroot{scratch}
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
)


def _by_name(tree: CorpusTree) -> dict[str, Path]:
    return {module_name(str(p)): p for p in module_files(tree)}


def with_dependencies(tree: CorpusTree, names: Sequence[str]) -> list[Path]:
    """The module files of *names* and their dependencies, each after what it depends on
    (names that are no module file of *tree* are built in, and skipped)."""
    files = _by_name(tree)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        with ModuleFile.open(files[name]) as mod:
            deps = list(mod.depends)
        for d in deps:
            visit(d)
        order.append(files[name])

    for name in names:
        visit(name)
    return order


def boot_modules(tree: CorpusTree) -> list[Path]:
    """BOOT_MODULES of *tree* and their dependencies, in load order."""
    return with_dependencies(tree, BOOT_MODULES)


# Directories of the corpus whose modules load without their hardware; names that run
# self-tests or stress threads at load time are left out.
SOFTWARE_DIRS = ("kernel/fs/", "kernel/crypto/", "kernel/lib/", "kernel/net/")
SKIP_WORDS = ("test", "torture", "kunit", "bench", "dummy", "evil")


def candidates(tree: CorpusTree) -> list[Path]:
    """Corpus modules that load without hardware, sorted."""
    out = []
    for p in module_files(tree):
        rel = str(p.relative_to(tree.modules_dir))
        if rel.startswith(SOFTWARE_DIRS) and not any(w in p.name for w in SKIP_WORDS):
            out.append(p)
    return out


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    comp = detect(data[:6])
    return decompress(data, comp) if comp else data


# Host directories the guest may hide under its writable tmpfs: the first that holds none of
# what the guest reads from the host (a checkout or venv under /tmp must stay visible).
SCRATCH_CANDIDATES = ("/run", "/mnt", "/srv", "/media", "/tmp")


def guest_scratch(share: Path) -> str:
    needed = [ROOT, Path(sys.executable).resolve(), Path(sys.prefix), corpus_dir(), share]
    for cand in SCRATCH_CANDIDATES:
        if Path(cand).is_dir() and not any(str(p).startswith(cand + "/") for p in needed):
            return cand
    raise GuestError("no host directory the guest can hide under a tmpfs (/run, /mnt, /srv, ...)")


def run_in_guest(
    tree: CorpusTree, share: Path, script: str, *, timeout: float = BOOT_TIMEOUT
) -> tuple[int, str]:
    """Boot *tree*, run the shell *script* (as root, in the host's root, cwd the checkout)
    and return (its exit status, its output).  *share* is the guest-writable directory."""
    assert tree.vmlinuz is not None
    share.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": guest_scratch(share),
        "TMPDIR": guest_scratch(share),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
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
    init = INIT.format(modules=" ".join(names), share=str(share), scratch=guest_scratch(share))
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


def alter_saved_byte(snapshot: Path, address: int, flip: int = 0xFF) -> None:
    """XOR the byte at kernel *address* in a snapshot's saved memory (memory/ADDR-SIZE.bin)
    with *flip*: what a negative test of ``lkm verify --snapshot`` starts from."""
    for piece in sorted((snapshot / "memory").iterdir()):
        start, size = (int(x, 16) for x in piece.stem.split("-"))
        if start <= address < start + size:
            data = bytearray(piece.read_bytes())
            data[address - start] ^= flip
            piece.write_bytes(bytes(data))
            return
    raise AssertionError(f"{address:#x} not in the snapshot's saved memory")

#!/usr/bin/env python3
"""Capture what the real 6.1 amd64 kernel prints for the 6.x fixture modules, as the
reference for lkm.emulate (tests/emulate/data/dmesg-6.1-amd64.json), and the booted kernel's
/proc/devices, /proc/filesystems and /proc/misc (src/lkm/emulate/boot-6.1-amd64.json).

Boots the corpus amd64-6.1 vmlinuz in QEMU TCG (testing.guest: busybox, initramfs, boot) with the
fixtures and a few of the tree's own modules in the initramfs; /init runs each step of STEPS with
busybox (insmod, rmmod, reading and writing the char device) and prints, between marker
lines, what the step printed and the kernel log it produced (``dmesg -c``).
Usage: python3 scripts/emulate_dmesg.py
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

FIX = ROOT / "tests" / "fixtures" / "6x"
OUT_TEST = ROOT / "tests" / "emulate" / "data" / "dmesg-6.1-amd64.json"
OUT_BOOT = ROOT / "src" / "lkm" / "emulate" / "boot-6.1-amd64.json"
MODULES = ("params", "chardev", "exporter", "importer")
CORPUS_MODULES = (("tun", "drivers/net/tun"), ("minix", "fs/minix/minix"), ("loop", "drivers/block/loop"),
                  ("brd", "drivers/block/brd"))  # fmt: skip
PARAMS_ALL = (
    "byteval=200 shortval=-300 ushortval=65535 intval=0x10 uintval=4000000000 longval=-9 ulongval=12 "
    "name=hello enable=n disable=y label=abc ints=5,6 words=a,b mask=0x10 level=3"
)

# Each step: (guest shell commands, the same in lkm.emulate's session script language).
# busybox insmod calls finit_module and, when that fails, init_module again with the same
# arguments: a failing insmod is two loads (and two sets of messages) in the real log.
STEPS: list[tuple[str, list[str]]] = [
    ("$B insmod /m/params.ko", ["insmod params.ko"]),
    ("$B rmmod params", ["rmmod params"]),
    (f"$B insmod /m/params.ko {PARAMS_ALL}", [f"insmod params.ko {PARAMS_ALL}"]),
    ("$B rmmod params", ["rmmod params"]),
    ("$B insmod /m/params.ko name=x label=waytoolongforthelabel",
     ["insmod params.ko name=x label=waytoolongforthelabel"] * 2),
    ("$B insmod /m/params.ko ints=1,2,3,4,5", ["insmod params.ko ints=1,2,3,4,5"] * 2),
    ("$B insmod /m/params.ko intval=abc bogus=1", ["insmod params.ko intval=abc bogus=1"] * 2),
    ("$B insmod /m/params.ko words=one,two,three intval=-2147483648 ints=9", [
        "insmod params.ko words=one,two,three intval=-2147483648 ints=9"]),
    ("$B rmmod params", ["rmmod params"]),
    ("$B insmod /m/chardev.ko", ["insmod chardev.ko"]),
    ('M=$($B awk \'$2=="lkmchar"{print $1}\' /proc/devices); echo "major $M"; $B mknod /dev/lkmchar c $M 0; '
     "$B cat /dev/lkmchar; $B cat /dev/lkmchar",
     ["dev open lkmchar", "dev read lkmchar", "dev release lkmchar", "dev open lkmchar", "dev read lkmchar",
      "dev release lkmchar"]),
    ("echo hi > /dev/lkmchar", ["dev open lkmchar", "dev write lkmchar hi\\n", "dev release lkmchar"]),
    ("$B rmmod chardev", ["rmmod chardev"]),
    ("$B insmod /m/exporter.ko", ["insmod exporter.ko"]),
    ("$B insmod /m/importer.ko", ["insmod importer.ko"]),
    ("$B rmmod importer", ["rmmod importer"]),
    ("$B rmmod exporter", ["rmmod exporter"]),
    # Modules of the corpus tree itself (signed with the kernel's key, in-tree, no dependencies)
    # and the /proc tables their registrations change.
    *[(f"$B insmod /m/{name}.ko", [f"insmod {{tree}}/{path}.ko"]) for name, path in CORPUS_MODULES],
    ("$B cat /proc/devices", ["cat /proc/devices"]),
    ("$B cat /proc/misc", ["cat /proc/misc"]),
    ("$B cat /proc/filesystems", ["cat /proc/filesystems"]),
]  # fmt: skip


def init_script() -> str:
    lines = [
        "#!/bin/busybox sh",
        "B=/bin/busybox",
        "$B mount -t proc proc /proc",
        "$B mount -t tmpfs tmp /tmp",
        "$B mount -t devtmpfs dev /dev 2>/dev/null",
        "echo =====PROC-DEVICES=====; $B cat /proc/devices",
        "echo =====PROC-FILESYSTEMS=====; $B cat /proc/filesystems",
        "echo =====PROC-MISC=====; $B cat /proc/misc",
        "$B dmesg -c > /dev/null",
    ]
    for i, (sh, _emu) in enumerate(STEPS):
        lines += [f"echo =====STEP {i}=====", f"( {sh} ) 2>&1", f"echo =====DMESG {i}=====", "$B dmesg -c"]
    lines += ["echo =====END=====", "$B sync", "$B poweroff -f"]
    return "\n".join(lines) + "\n"


def initramfs(busybox: Path, modules_dir: Path) -> bytes:
    files = [(f"m/{m}.ko", (FIX / f"{m}.ko").read_bytes()) for m in MODULES]
    files += [(f"m/{n}.ko", (modules_dir / "kernel" / f"{p}.ko").read_bytes()) for n, p in CORPUS_MODULES]
    return guest.make_initramfs(busybox, init_script(), files)


def _section(text: str, start: str, end: str) -> list[str]:
    b = text.index(start + "\n") + len(start) + 1
    e = text.index("\n" + end, b - 1) if not text[b:].startswith(end) else b - 1
    return text[b:e].splitlines() if e >= b else []


def _strip_time(line: str) -> str:
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


def parse(raw: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    text = raw.replace("\r\n", "\n").replace("\r", "")
    boot = {
        "devices": _section(text, "=====PROC-DEVICES=====", "=====PROC-FILESYSTEMS====="),
        "filesystems": _section(text, "=====PROC-FILESYSTEMS=====", "=====PROC-MISC====="),
        "misc": _section(text, "=====PROC-MISC=====", "=====STEP 0====="),
    }
    steps = []
    for i, (sh, emu) in enumerate(STEPS):
        nxt = f"=====STEP {i + 1}=====" if i + 1 < len(STEPS) else "=====END====="
        out = _section(text, f"=====STEP {i}=====", f"=====DMESG {i}=====")
        log = [_strip_time(x) for x in _section(text, f"=====DMESG {i}=====", nxt)]
        steps.append({"guest": sh, "emulate": emu, "output": out, "dmesg": log})
    return boot, steps


def boot_tables(boot: dict[str, object]) -> dict[str, object]:
    devices = boot["devices"]
    assert isinstance(devices, list)
    chr_, blk, cur = [], [], None
    for line in devices:
        if line.startswith("Character"):
            cur = chr_
        elif line.startswith("Block"):
            cur = blk
        elif line.strip() and cur is not None:
            major, name = line.split(None, 1)
            cur.append([int(major), name])
    misc = [[int(x.split(None, 1)[0]), x.split(None, 1)[1]] for x in boot["misc"] if x.strip()]  # type: ignore[attr-defined]
    fss = [[x.split("\t")[-1], not x.startswith("nodev")] for x in boot["filesystems"] if x.strip()]  # type: ignore[attr-defined]
    return {"chrdevs": chr_, "blkdevs": blk, "misc": misc, "filesystems": fss}


def signing_key_ids(tree: object) -> list[str]:
    """The key the kernel verifies its own modules with (its build-time key, built into the
    image): the key id the tree's modules are signed with."""
    from lkm.module.file import ModuleFile
    from testing.corpus import module_files

    ids = set()
    for path in module_files(tree)[:50]:  # type: ignore[arg-type]
        sig = ModuleFile.open(path).signature
        if sig is not None and sig.key_id:
            ids.add(sig.key_id.hex())
    return sorted(ids)


def main() -> int:
    tree = find_tree("amd64-6.1")
    busybox = guest.busybox_for(tree.arch, corpus_dir() / "guest")
    with tempfile.TemporaryDirectory(prefix="emulate-dmesg-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(initramfs(busybox, tree.modules_dir))
        t0 = time.monotonic()
        assert tree.vmlinuz is not None
        raw = guest.boot(tree.arch, tree.vmlinuz, initrd, Path(tmp) / "console.log", 600.0).decode("latin-1")
        print(f"boot and steps took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    boot, steps = parse(raw)
    release = tree.release
    OUT_TEST.parent.mkdir(parents=True, exist_ok=True)
    for path, data in ((OUT_TEST, {"kernel": release, "tree": tree.name, "steps": steps}),
                       (OUT_BOOT, {"kernel": release, **boot_tables(boot),
                                   "signing_key_ids": signing_key_ids(tree)})):  # fmt: skip
        part = path.with_suffix(".part")
        part.write_text(json.dumps(data, indent=1) + "\n")
        part.replace(path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

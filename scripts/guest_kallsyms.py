#!/usr/bin/env python3
"""Boot a corpus kernel in QEMU (TCG, ``nokaslr``) and save its ``/proc/kallsyms``.

The reference for :mod:`lkm.symbols.image`: what the kernel itself prints.  For each
corpus tree (``--tree NAME``, repeatable, or ``--all``) this

1. installs what is missing, with apt-get: ``qemu-system-x86`` (amd64, i386 guests) or
   ``qemu-system-arm`` (arm64 guests); ``dpkg-deb`` is part of dpkg;
2. fetches Debian's ``busybox-static`` of the guest's architecture with
   ``apt-get download`` and unpacks it with ``dpkg-deb -x`` (cached in
   ``<corpus>/guest/``; one ``apt-get update`` if apt does not know the package);
3. writes an initramfs (newc cpio, made here) holding ``/dev/console``, busybox and an
   ``/init`` that mounts /proc, sets ``kernel.kptr_restrict=0``, copies /proc/kallsyms to
   tmpfs and prints it to the serial console between marker lines, followed by its line
   count and MD5, then powers off;
4. boots the tree's ``vmlinuz`` with ``nokaslr quiet loglevel=0`` under TCG
   (``qemu-system-x86_64`` for amd64, ``qemu-system-i386`` for the 686-pae kernel,
   ``qemu-system-aarch64 -M virt -cpu cortex-a57`` for arm64), with a hard timeout;
5. checks the captured text against the count and MD5 the guest printed (a stray kernel
   message in the middle would fail this; the boot is retried once) and writes it to
   ``<corpus>/<tree>/proc-kallsyms.txt`` (temporary file + rename).

A tree whose file exists is skipped unless ``--force``.  Progress and boot times go to
stderr.  Exit status 0 when every requested tree has its file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))
sys.path.insert(0, str(_SRC.parent))  # testing/

from testing.corpus import CorpusTree, corpus_dir, load_trees  # noqa: E402
from testing.guest import GUESTS, GuestError, boot, busybox_for, make_initramfs  # noqa: E402

PROG = "guest_kallsyms"
RESULT_NAME = "proc-kallsyms.txt"
BEGIN = "=====LKM-KALLSYMS-BEGIN====="
END = "=====LKM-KALLSYMS-END====="
DEFAULT_TIMEOUT = 420.0

INIT = f"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t tmpfs tmp /tmp
echo 0 > /proc/sys/kernel/kptr_restrict
echo 0 > /proc/sys/kernel/printk
$B cat /proc/kallsyms > /tmp/k
$B echo {BEGIN}
$B cat /tmp/k
$B echo {END}
$B echo "lines $($B wc -l < /tmp/k)"
$B echo "md5 $($B md5sum < /tmp/k)"
$B sync
$B poweroff -f
"""


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def apt_install(packages: list[str]) -> None:
    log(f"installing {' '.join(packages)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if os.geteuid() != 0:
        cmd.insert(0, "sudo")
    r = run(cmd, env=env)
    if r.returncode != 0:
        run(["sudo", "apt-get", "update", "-qq"] if os.geteuid() else ["apt-get", "update", "-qq"], env=env)
        r = run(cmd, env=env)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace")
        raise SystemExit(f"{PROG}: apt-get install {' '.join(packages)} failed: {err}")


def ensure_tools(arch: str) -> str:
    qemu, package = GUESTS[arch].qemu, GUESTS[arch].package
    missing = [] if shutil.which(qemu) else [package]
    if not shutil.which("dpkg-deb"):
        missing.append("dpkg")
    if missing:
        apt_install(missing)
    path = shutil.which(qemu)
    if not path:
        raise SystemExit(f"{PROG}: {qemu} still missing after installing {package}")
    return path


def parse_console(raw: bytes) -> tuple[str | None, str]:
    """The kallsyms text between the markers, checked against the guest's count and MD5."""
    text = raw.decode("latin-1").replace("\r\n", "\n").replace("\r", "")
    b = text.find(BEGIN + "\n")
    e = text.find("\n" + END + "\n", b)
    if b < 0 or e < 0:
        return None, "markers not found on the console"
    body = text[b + len(BEGIN) + 1 : e + 1]
    tail = text[e + len(END) + 2 :].splitlines()
    lines = next((ln.split()[1] for ln in tail if ln.startswith("lines ")), None)
    md5 = next((ln.split()[1] for ln in tail if ln.startswith("md5 ")), None)
    if lines is None or md5 is None:
        return None, "line count / md5 not printed"
    if str(body.count("\n")) != lines:
        return None, f"{body.count(chr(10))} lines captured, guest printed {lines}"
    if hashlib.md5(body.encode("latin-1")).hexdigest() != md5:
        return None, "MD5 of the captured text differs from the guest's"
    return body, ""


def result_path(tree: CorpusTree) -> Path:
    return tree.root / RESULT_NAME


def capture(tree: CorpusTree, *, timeout: float = DEFAULT_TIMEOUT, force: bool = False) -> Path:
    """Boot *tree* and write its ``proc-kallsyms.txt``; return the file's path."""
    dest = result_path(tree)
    if dest.is_file() and not force:
        log(f"{tree.name}: {dest} exists")
        return dest
    if tree.arch not in GUESTS:
        raise SystemExit(f"{PROG}: {tree.name}: no QEMU guest set up for architecture {tree.arch}")
    if tree.vmlinuz is None or not tree.vmlinuz.is_file():
        raise SystemExit(f"{PROG}: {tree.name}: the tree has no kernel image")
    qemu = ensure_tools(tree.arch)
    try:
        busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    except GuestError as exc:
        raise SystemExit(f"{PROG}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix=f"guest-{tree.name}-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox, INIT))
        why = ""
        for attempt in (1, 2):
            console_log = Path(tmp) / f"console-{attempt}.log"
            log(f"{tree.name}: booting {tree.vmlinuz.name} in {Path(qemu).name} (TCG), attempt {attempt}")
            t0 = time.monotonic()
            try:
                assert tree.vmlinuz is not None
                raw = boot(tree.arch, tree.vmlinuz, initrd, console_log, timeout)
            except (GuestError, OSError) as exc:
                why = str(exc)
                log(f"{tree.name}: attempt {attempt}: {why}")
                continue
            took = time.monotonic() - t0
            body, why = parse_console(raw)
            if body is not None:
                log(f"{tree.name}: boot + dump + poweroff took {took:.1f} s; {body.count(chr(10))} lines")
                part = dest.with_name(dest.name + ".part")
                part.write_text(body, encoding="latin-1")
                part.replace(dest)
                return dest
            log(f"{tree.name}: attempt {attempt} after {took:.1f} s: {why}")
    raise SystemExit(f"{PROG}: {tree.name}: no usable /proc/kallsyms from the guest ({why})")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--tree", action="append", metavar="NAME", help="corpus tree (repeatable)")
    sel.add_argument("--all", action="store_true", help="every tree of the corpus")
    ap.add_argument("--force", action="store_true", help="boot again even if the file exists")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per boot (hard limit)")
    args = ap.parse_args(argv)
    trees = load_trees()
    by_name = {t.name: t for t in trees}
    if args.all:
        chosen = trees
    else:
        unknown = [n for n in args.tree if n not in by_name]
        if unknown:
            ap.error(f"unknown tree(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in args.tree]
    for tree in chosen:
        path = capture(tree, timeout=args.timeout, force=args.force)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

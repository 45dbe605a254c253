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
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from lkm.corpus import CorpusTree, corpus_dir, load_trees  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qemu_guest import (  # noqa: E402
    GUESTS,
    GuestError,
    boot_and_read,
    busybox_for,
    dump_block,
    ensure_tools,
    make_initramfs,
)

PROG = "guest_kallsyms"
RESULT_NAME = "proc-kallsyms.txt"
BLOCK = "KALLSYMS"
DEFAULT_TIMEOUT = 420.0

INIT = (
    """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t tmpfs tmp /tmp
echo 0 > /proc/sys/kernel/kptr_restrict
echo 0 > /proc/sys/kernel/printk
"""
    + dump_block(BLOCK, "$B cat /proc/kallsyms")
    + """$B sync
$B poweroff -f
"""
)


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


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
    try:
        qemu = ensure_tools(tree.arch)
        busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    except GuestError as exc:
        raise SystemExit(f"{PROG}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix=f"guest-{tree.name}-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox, INIT))
        try:
            _raw, blocks, took = boot_and_read(
                PROG, tree, qemu, initrd, Path(tmp), timeout, "nokaslr quiet loglevel=0 panic=-1", [BLOCK]
            )
        except GuestError as exc:
            raise SystemExit(f"{PROG}: {exc}") from None
        body = blocks[BLOCK]
        log(f"{tree.name}: boot + dump + poweroff took {took:.1f} s; {body.count(chr(10))} lines")
        part = dest.with_name(dest.name + ".part")
        part.write_text(body, encoding="latin-1")
        part.replace(dest)
        return dest


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

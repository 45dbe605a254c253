#!/usr/bin/env python3
"""Boot the corpus amd64 6.1 / 6.12 kernels in QEMU and capture real oops reports.

For each tree (``--tree NAME``, repeatable; default amd64-6.1 and amd64-6.12) this

1. builds the fixture modules of ``fixtures/src/oops`` (oopsmod, oopsinit, pcsym) with kbuild
   against the corpus headers of exactly that kernel (``headers-6.1`` / ``headers-6.12``);
2. writes an initramfs (:mod:`testing.guest`) with busybox, those modules and a few real modules of
   the tree (ext4 and its dependencies, fat, vfat; decompressed here), whose ``/init``
   loads them, triggers a WARN from oopsmod's init, a NULL dereference, a BUG, a page fault
   and a general protection fault through writes to /proc/oopsmod, a page fault in
   oopsinit's ``.init.text``, makes pcsym print ~20,000 addresses picked from its own
   /proc/kallsyms (symbol starts and random nearby addresses) with the kernel's ``%pS``,
   dumps dmesg, /proc/kallsyms, /proc/modules and /sys/module/*/sections, then crashes the
   kernel through sysrq (a panic report with its "Kernel Offset" line);
3. boots with KASLR on (the reports carry randomised addresses), under TCG, hard timeout;
4. stores, under ``<corpus>/oops/<tree>/``: ``console.log`` (the raw serial console),
   ``dmesg.txt``, ``proc-kallsyms.txt``, ``proc-modules.txt``, ``sections.txt`` (lines
   ``MODULE SECTION ADDRESS``), ``pcsym.txt`` (lines ``ADDRESS %pS``) and ``modules/`` (the
   module files the guest loaded, uncompressed, with their DWARF).  Each dump is checked
   against the line count and MD5 the guest printed.

A tree whose directory is complete and from the corpus's build (the "Linux version" its
dmesg.txt begins with) is skipped unless ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
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

from lkm.compress import decompress, detect  # noqa: E402
from testing.captures import oops_is_current  # noqa: E402
from testing.corpus import CorpusTree, HeadersTree, corpus_dir, find_tree, load_headers  # noqa: E402
from testing.guest import GuestError, boot, busybox_for, make_initramfs, qemu_path  # noqa: E402

PROG = "guest_oops"
DEFAULT_TREES = ("amd64-6.1", "amd64-6.12")
DEFAULT_TIMEOUT = 900.0
FIXTURES = ("oopsmod", "oopsinit", "pcsym")
#: Real modules of the tree, in load order (dependencies first).
REAL_MODULES = ("crc16", "mbcache", "jbd2", "ext4", "fat", "vfat")
#: Dumps: block name -> (file stored, guest command).
DUMPS = {
    "DMESG": ("dmesg.txt", "$B dmesg"),
    "KALLSYMS": ("proc-kallsyms.txt", "$B cat /proc/kallsyms"),
    "MODULES": ("proc-modules.txt", "$B cat /proc/modules"),
    "SECTIONS": (
        "sections.txt",
        "for f in /sys/module/*/sections/.* /sys/module/*/sections/*; do"
        ' [ -f "$f" ] || continue; m=${f#/sys/module/}; m=${m%%/*};'
        ' echo "$m ${f##*/sections/} $($B cat $f)"; done',
    ),
    "PCSYM": ("pcsym.txt", "$B cat /proc/pcsym"),
}

# Addresses for pcsym: every module symbol and every 23rd core symbol, each as is, with its
# last two hex digits replaced and with its last three replaced (random, seeded): symbol
# starts, addresses inside functions and data, and addresses past the last symbol.
PICK_ADDRESSES = (
    '$B awk \'BEGIN { srand(7) } { if ($4 == "" && NR % 23) next; a = $1; print a;'
    ' print substr(a, 1, 14) sprintf("%02x", int(rand() * 256));'
    ' print substr(a, 1, 13) sprintf("%03x", int(rand() * 4096)) }\' /proc/kallsyms > /tmp/addrs'
)


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def dump_block(name: str, command: str) -> str:
    """/init lines printing *command*'s output between markers, then its line count and MD5
    (``/tmp`` must be a tmpfs; ``$B`` the busybox path)."""
    return (
        f"{command} > /tmp/dump\n"
        f"$B echo =====LKM-{name}-BEGIN=====\n"
        "$B cat /tmp/dump\n"
        f"$B echo =====LKM-{name}-END=====\n"
        f'$B echo "{name} lines $($B wc -l < /tmp/dump)"\n'
        f'$B echo "{name} md5 $($B md5sum < /tmp/dump)"\n'
    )


def read_block(text: str, name: str) -> tuple[str | None, str]:
    """The text a :func:`dump_block` printed, checked against its line count and MD5;
    (None, why) when it is missing or damaged."""
    begin, end = f"=====LKM-{name}-BEGIN=====", f"=====LKM-{name}-END====="
    b = text.find(begin + "\n")
    e = text.find("\n" + end + "\n", b)
    if b < 0 or e < 0:
        return None, f"{name}: markers not found on the console"
    body = text[b + len(begin) + 1 : e + 1]
    if body == "\n":  # an empty dump: nothing between the markers
        body = ""
    tail = text[e + len(end) + 2 :].splitlines()
    lines = next((ln.split()[2] for ln in tail if ln.startswith(f"{name} lines ")), None)
    md5 = next((ln.split()[2] for ln in tail if ln.startswith(f"{name} md5 ")), None)
    if lines is None or md5 is None:
        return None, f"{name}: line count / md5 not printed"
    if str(body.count("\n")) != lines:
        return None, f"{name}: {body.count(chr(10))} lines captured, guest printed {lines}"
    if hashlib.md5(body.encode("latin-1")).hexdigest() != md5:
        return None, f"{name}: MD5 of the captured text differs from the guest's"
    return body, ""


def console_text(raw: bytes) -> str:
    return raw.decode("latin-1").replace("\r\n", "\n").replace("\r", "")


def boot_and_read(
    tree: CorpusTree, initrd: Path, work: Path, timeout: float, append: str, blocks: list[str]
) -> tuple[bytes, dict[str, str], float]:
    """Boot (at most twice) until every one of *blocks* is read intact from the console; the
    raw console, the blocks' texts and the seconds the good boot took."""
    why = ""
    for attempt in (1, 2):
        console_log = work / f"console-{attempt}.log"
        log(f"{tree.name}: booting {Path(str(tree.vmlinuz)).name} (TCG, KASLR), attempt {attempt}")
        t0 = time.monotonic()
        try:
            raw = boot(tree.arch, Path(str(tree.vmlinuz)), initrd, console_log, timeout, defaults=append)
        except (GuestError, OSError) as exc:
            why = str(exc)
            log(f"{tree.name}: attempt {attempt}: {why}")
            continue
        text = console_text(raw)
        got: dict[str, str] = {}
        for name in blocks:
            body, why = read_block(text, name)
            if body is None:
                break
            got[name] = body
        else:
            return raw, got, time.monotonic() - t0
        log(f"{tree.name}: attempt {attempt} after {time.monotonic() - t0:.1f} s: {why}")
    raise GuestError(f"{tree.name}: no usable output from the guest ({why})")


def make_init(real: Sequence[str]) -> str:
    loads = "".join(f"$B insmod /lib/modules/{m}.ko\n" for m in real)
    trigger = "".join(
        f"$B echo '### lkm: trigger {case}'\n$B sh -c 'echo {case} > /proc/oopsmod'\n$B sleep 1\n"
        for case in ("null", "bug", "fault", "gpf")
    )
    dumps = "".join(dump_block(name, cmd) for name, (_, cmd) in DUMPS.items())
    return f"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t tmpfs tmp /tmp
echo 0 > /proc/sys/kernel/kptr_restrict
echo 0 > /proc/sys/kernel/dmesg_restrict
echo 1 > /proc/sys/kernel/sysrq
{loads}a=$($B awk '$3 == "vfs_read" || $3 == "ext4_readdir" {{ printf "%s0x%s", s, $1; s = "," }}' \\
    /proc/kallsyms)
$B insmod /lib/modules/pcsym.ko addrs=$a
$B echo '### lkm: trigger warn'
$B insmod /lib/modules/oopsmod.ko trigger=warn
$B sleep 1
{trigger}$B echo '### lkm: trigger init'
$B insmod /lib/modules/oopsinit.ko trigger=init
$B sleep 1
echo 1 > /proc/sys/kernel/printk
{PICK_ADDRESSES}
$B cat /tmp/addrs > /proc/pcsym
echo > /proc/pcsym
{dumps}echo 8 > /proc/sys/kernel/printk
$B echo '### lkm: trigger panic'
echo c > /proc/sysrq-trigger
$B poweroff -f
"""


def headers_for(tree: CorpusTree) -> HeadersTree:
    for h in load_headers():
        if h.release == tree.release:
            return h
    raise GuestError(f"{tree.name}: no corpus headers for {tree.release}")


def build_fixtures(tree: CorpusTree, work: Path) -> dict[str, Path]:
    """The fixture modules built with kbuild against *tree*'s own headers."""
    headers = headers_for(tree)
    common = headers.common_dir or next(headers.kbuild_dir.parent.glob("linux-headers-*-common"))
    src = work / "oops-src"
    shutil.copytree(_ROOT / "fixtures" / "src" / "oops", src)
    # -ffile-prefix-map: the WARN/BUG lines and the DWARF name "oopsmod.c", not the temporary path.
    cmd = ["make", "-C", str(headers.kbuild_dir), "-f", str(common / "Makefile"), f"M={src}"]
    cmd += [f"KCFLAGS=-ffile-prefix-map={src}/=", "modules"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise GuestError(f"{tree.name}: kbuild failed: {r.stderr.strip()[-2000:]}")
    return {m: src / f"{m}.ko" for m in FIXTURES}


def real_modules(tree: CorpusTree) -> dict[str, bytes]:
    found = {}
    for name in REAL_MODULES:
        paths = [p for p in tree.modules_dir.rglob(f"{name}.ko*") if p.name.split(".ko")[0] == name]
        if not paths:
            raise GuestError(f"{tree.name}: module {name} not in the tree")
        data = paths[0].read_bytes()
        comp = detect(data[:8])
        found[name] = decompress(data, comp) if comp else data
    return found


def capture(tree: CorpusTree, out: Path, timeout: float) -> None:
    qemu_path(tree.arch)  # GuestError naming the package when QEMU is missing
    busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    with tempfile.TemporaryDirectory(prefix=f"oops-{tree.name}-") as tmp:
        work = Path(tmp)
        built = build_fixtures(tree, work)
        modules = real_modules(tree)
        modules.update({m: p.read_bytes() for m, p in built.items()})
        files = [(f"lib/modules/{m}.ko", data) for m, data in modules.items()]
        initrd = work / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox, make_init(REAL_MODULES), files))
        # KASLR on (no nokaslr) and the whole reports on the console
        raw, blocks, took = boot_and_read(tree, initrd, work, timeout, "loglevel=7 panic=-1", list(DUMPS))
        log(f"{tree.name}: done in {took:.0f} s")
        part = out.with_name(out.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        (part / "modules").mkdir(parents=True)
        (part / "console.log").write_bytes(raw)
        for name, body in blocks.items():
            (part / DUMPS[name][0]).write_text(body, encoding="latin-1")
        for m, data in modules.items():
            (part / "modules" / f"{m}.ko").write_bytes(data)
        shutil.rmtree(out, ignore_errors=True)
        part.replace(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", action="append", metavar="NAME", help="corpus tree (repeatable)")
    ap.add_argument("--force", action="store_true", help="boot again even if the capture exists")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per boot (hard limit)")
    args = ap.parse_args(argv)
    for name in args.tree or DEFAULT_TREES:
        out = corpus_dir() / "oops" / name
        if oops_is_current(out, find_tree(name).release) and not args.force:
            log(f"{name}: {out} exists")
            print(out)
            continue
        try:
            capture(find_tree(name), out, args.timeout)
        except GuestError as exc:
            raise SystemExit(f"{PROG}: {exc}") from None
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from lkm.corpus import CorpusTree, corpus_dir, load_trees  # noqa: E402

PROG = "guest_kallsyms"
RESULT_NAME = "proc-kallsyms.txt"
BEGIN = "=====LKM-KALLSYMS-BEGIN====="
END = "=====LKM-KALLSYMS-END====="
DEFAULT_TIMEOUT = 420.0

#: Debian architecture -> (QEMU binary, its Debian package, machine arguments, console).
GUESTS: dict[str, tuple[str, str, list[str], str]] = {
    "amd64": ("qemu-system-x86_64", "qemu-system-x86", ["-cpu", "qemu64"], "ttyS0"),
    "i386": ("qemu-system-i386", "qemu-system-x86", ["-cpu", "qemu32,+pae,+nx"], "ttyS0"),
    "arm64": ("qemu-system-aarch64", "qemu-system-arm", ["-M", "virt", "-cpu", "cortex-a57"], "ttyAMA0"),
}

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
    qemu, package, _, _ = GUESTS[arch]
    missing = [] if shutil.which(qemu) else [package]
    if not shutil.which("dpkg-deb"):
        missing.append("dpkg")
    if missing:
        apt_install(missing)
    path = shutil.which(qemu)
    if not path:
        raise SystemExit(f"{PROG}: {qemu} still missing after installing {package}")
    return path


def busybox_for(arch: str, cache: Path) -> Path:
    """Debian's static busybox for *arch*, downloaded and unpacked once into *cache*."""
    target = cache / f"busybox-{arch}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="busybox-", dir=cache) as tmp:
        spec = f"busybox-static:{arch}"
        r = run(["apt-get", "download", spec], cwd=tmp)
        if r.returncode != 0:
            log(f"apt-get download {spec} failed; running apt-get update once")
            run(["apt-get", "update", "-qq"] if os.geteuid() == 0 else ["sudo", "apt-get", "update", "-qq"])
            r = run(["apt-get", "download", spec], cwd=tmp)
        debs = sorted(Path(tmp).glob("busybox-static_*.deb"))
        if r.returncode != 0 or not debs:
            raise SystemExit(f"{PROG}: apt-get download {spec} failed: {r.stderr.decode(errors='replace')}")
        root = Path(tmp) / "root"
        r = run(["dpkg-deb", "-x", str(debs[0]), str(root)])
        binary = root / "bin" / "busybox"
        if r.returncode != 0 or not binary.is_file():
            raise SystemExit(f"{PROG}: could not unpack {debs[0].name}: {r.stderr.decode(errors='replace')}")
        part = target.with_suffix(".part")
        shutil.copyfile(binary, part)
        part.chmod(0o755)
        part.replace(target)
    return target


def _cpio_entry(
    name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0
) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    head = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out = head + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def make_initramfs(busybox: Path) -> bytes:
    """A newc cpio archive: /dev/console, /bin/busybox, /init and the mount points."""
    entries = [
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("proc", 0o040755, b"", (0, 0)),
        ("tmp", 0o041777, b"", (0, 0)),
        ("bin", 0o040755, b"", (0, 0)),
        ("bin/busybox", 0o100755, busybox.read_bytes(), (0, 0)),
        ("init", 0o100755, INIT.encode(), (0, 0)),
    ]
    out = b"".join(_cpio_entry(n, m, d, r, i + 1) for i, (n, m, d, r) in enumerate(entries))
    out += _cpio_entry("TRAILER!!!", 0)
    return out + b"\0" * (-len(out) % 512)


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


def boot(tree: CorpusTree, qemu: str, initrd: Path, console_log: Path, timeout: float) -> bytes:
    _, _, machine, console = GUESTS[tree.arch]
    assert tree.vmlinuz is not None
    cmd = [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-accel",
        "tcg",
        *machine,
        "-smp",
        "1",
        "-m",
        "1024",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{console_log}",
        "-no-reboot",
        "-kernel",
        str(tree.vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        f"console={console} nokaslr quiet loglevel=0 panic=-1",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TimeoutError(f"{tree.name}: no poweroff within {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip()
        raise RuntimeError(f"{tree.name}: {Path(qemu).name} exited {proc.returncode}: {msg}")
    return console_log.read_bytes() if console_log.exists() else b""


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
    busybox = busybox_for(tree.arch, corpus_dir() / "guest")
    with tempfile.TemporaryDirectory(prefix=f"guest-{tree.name}-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox))
        why = ""
        for attempt in (1, 2):
            console_log = Path(tmp) / f"console-{attempt}.log"
            log(f"{tree.name}: booting {tree.vmlinuz.name} in {Path(qemu).name} (TCG), attempt {attempt}")
            t0 = time.monotonic()
            try:
                raw = boot(tree, qemu, initrd, console_log, timeout)
            except (TimeoutError, RuntimeError, OSError) as exc:
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

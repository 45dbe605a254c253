"""Booting a Debian kernel in QEMU (TCG) with an initramfs made here.

Shared by scripts/guest_kallsyms.py (dump /proc/kallsyms of a bare boot) and the VM tests
(tests/vm: a guest that mounts the host's root over virtio-9p and runs the test suite in it).
Pieces: the per-architecture QEMU table, Debian's static busybox of the guest's architecture
(``apt-get download`` + ``dpkg-deb -x``, cached), a newc cpio writer and one ``boot`` call with
a hard timeout.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lkm.errors import LkmError
from lkm.record import Record
from testing.lock import build_lock


class GuestError(LkmError):
    """QEMU or the guest's pieces could not be set up, or the guest did not finish."""


class GuestArch(Record):
    """How to run one Debian architecture's kernel under QEMU."""

    __slots__ = ("qemu", "package", "machine", "console")

    def __init__(self, qemu: str, package: str, machine: tuple[str, ...], console: str) -> None:
        self.qemu = qemu  # the qemu-system binary
        self.package = package  # Debian package holding it
        self.machine = machine  # machine/CPU arguments
        self.console = console  # serial console device in the guest


GUESTS: dict[str, GuestArch] = {
    "amd64": GuestArch("qemu-system-x86_64", "qemu-system-x86", ("-cpu", "qemu64"), "ttyS0"),
    "i386": GuestArch("qemu-system-i386", "qemu-system-x86", ("-cpu", "qemu32,+pae,+nx"), "ttyS0"),
    "arm64": GuestArch(
        "qemu-system-aarch64", "qemu-system-arm", ("-M", "virt", "-cpu", "cortex-a57"), "ttyAMA0"
    ),
}

# cpio modes
DIR, FILE, CHARDEV = 0o040755, 0o100755, 0o020600


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def _as_root(cmd: list[str]) -> list[str]:
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def busybox_for(arch: str, cache: Path) -> Path:
    """Debian's static busybox for *arch*, downloaded and unpacked once into *cache*."""
    target = cache / f"busybox-{arch}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with build_lock(target):  # two guests starting at once: one download
        if target.is_file() and os.access(target, os.X_OK):
            return target
        return _fetch_busybox(arch, cache, target)


def _fetch_busybox(arch: str, cache: Path, target: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="busybox-", dir=cache) as tmp:
        spec = f"busybox-static:{arch}"
        r = _run(["apt-get", "download", spec], cwd=tmp)
        if r.returncode != 0:  # apt may not know the package (or the architecture) yet
            _run(_as_root(["apt-get", "update", "-qq"]))
            r = _run(["apt-get", "download", spec], cwd=tmp)
        debs = sorted(Path(tmp).glob("busybox-static_*.deb"))
        if r.returncode != 0 or not debs:
            raise GuestError(f"apt-get download {spec} failed: {r.stderr.decode(errors='replace').strip()}")
        root = Path(tmp) / "root"
        r = _run(["dpkg-deb", "-x", str(debs[0]), str(root)])
        binary = root / "bin" / "busybox"
        if r.returncode != 0 or not binary.is_file():
            raise GuestError(f"could not unpack {debs[0].name}: {r.stderr.decode(errors='replace').strip()}")
        part = Path(tmp) / "busybox.part"
        shutil.copyfile(binary, part)
        part.chmod(0o755)
        part.replace(target)
    return target


def cpio_entry(
    name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0
) -> bytes:
    """One newc cpio member."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    head = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out = head + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def make_initramfs(busybox: Path, init: str, files: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """A newc archive: /dev/console, /proc, /sys, /tmp, /bin/busybox, *init* as /init and
    *files* (path, content), their directories made as needed."""
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        ("dev", DIR, b"", (0, 0)),
        ("dev/console", CHARDEV, b"", (5, 1)),
        ("proc", DIR, b"", (0, 0)),
        ("sys", DIR, b"", (0, 0)),
        ("tmp", 0o041777, b"", (0, 0)),
        ("bin", DIR, b"", (0, 0)),
        ("bin/busybox", FILE, busybox.read_bytes(), (0, 0)),
        ("init", FILE, init.encode(), (0, 0)),
    ]
    dirs = {e[0] for e in entries}
    for path, data in files:
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append((d, DIR, b"", (0, 0)))
        entries.append((path, 0o100644, data, (0, 0)))
    out = b"".join(cpio_entry(n, m, d, r, i + 1) for i, (n, m, d, r) in enumerate(entries))
    out += cpio_entry("TRAILER!!!", 0)
    return out + b"\0" * (-len(out) % 512)


def qemu_path(arch: str) -> str:
    """The QEMU binary for *arch*, or GuestError naming the package to install."""
    g = GUESTS[arch]
    path = shutil.which(g.qemu)
    if not path:
        raise GuestError(f"{g.qemu} not found (apt-get install {g.package})")
    return path


def start(
    arch: str,
    kernel: Path,
    initrd: Path,
    console_log: Path,
    *,
    append: str = "",
    extra: Sequence[str] = (),
    memory_mb: int = 1024,
    kaslr: bool = False,
    defaults: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start QEMU (TCG) on *kernel*; the serial console goes to *console_log*.  The kernel
    arguments are *defaults* (when None: nokaslr unless *kaslr*, quiet) then *append*."""
    g = GUESTS[arch]
    if defaults is None:
        defaults = f"{'' if kaslr else 'nokaslr '}quiet loglevel=0 panic=-1"
    args = f"console={g.console} {defaults} {append}".strip()
    cmd = [
        qemu_path(arch),
        "-nodefaults", "-no-user-config", "-accel", "tcg", *g.machine,
        "-smp", "1", "-m", str(memory_mb), "-display", "none", "-monitor", "none",
        "-serial", f"file:{console_log}", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", args,
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def boot(
    arch: str,
    kernel: Path,
    initrd: Path,
    console_log: Path,
    timeout: float,
    *,
    append: str = "",
    extra: Sequence[str] = (),
    memory_mb: int = 1024,
    defaults: str | None = None,
) -> bytes:
    """Boot *kernel* under TCG until the guest powers off; return what it wrote to the serial
    console.  The kernel arguments are *defaults* (default: nokaslr, quiet) then *append*.
    GuestError on timeout or a QEMU failure."""
    proc = start(
        arch, kernel, initrd, console_log, append=append, extra=extra, memory_mb=memory_mb, defaults=defaults
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise GuestError(f"{kernel.name}: no poweroff within {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip()
        raise GuestError(f"{kernel.name}: {Path(GUESTS[arch].qemu).name} exited {proc.returncode}: {msg}")
    return console_log.read_bytes() if console_log.exists() else b""


class Qmp:
    """A minimal QMP client (QEMU's JSON monitor) over a UNIX socket."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        import json
        import socket
        import time

        self._json = json
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise GuestError(f"no QMP socket at {path}") from None
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self._reply()  # greeting
        self.execute("qmp_capabilities")

    def _reply(self) -> dict[str, object]:
        while True:
            line = self.file.readline()
            if not line:
                raise GuestError("QMP connection closed")
            msg: dict[str, object] = self._json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, **arguments: object) -> object:
        req: dict[str, object] = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.file.write(self._json.dumps(req).encode() + b"\n")
        self.file.flush()
        reply = self._reply()
        if "error" in reply:
            raise GuestError(f"QMP {command}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- what the module-loading guests (scripts/guest_trust.py, guest_compat.py) share --------------

#: Module directories whose modules load without hardware (filesystems, crypto, lib, net).
SOFTWARE_DIRS = ("kernel/fs/", "kernel/crypto/", "kernel/lib/", "kernel/net/")
#: Name parts of modules that test, torture or fake something: never loaded into a guest.
SKIP_WORDS = ("test", "torture", "kunit", "bench", "dummy", "evil")

_STRERROR = {os.strerror(e): e for e in errno.errorcode}
_STRERROR.update(  # busybox insmod's moderror() words for some errnos
    {
        "invalid module format": errno.ENOEXEC,
        "unknown symbol in module, or unknown parameter": errno.ENOENT,
        "module has wrong symbol version": errno.ESRCH,
        "kernel does not support requested operation": errno.ENOSYS,
    }
)


def software_module(rel: str, name: str) -> bool:
    """Whether a module (path relative to lib/modules/R, file name) is one the guests load."""
    return rel.startswith(SOFTWARE_DIRS) and not any(w in name for w in SKIP_WORDS)


def insmod_errno(message: str) -> int:
    """The errno of a busybox ``insmod`` failure message (its strerror or moderror() words at
    the end), or -1 when none is recognised."""
    text = message.rstrip()
    return next((e for s, e in _STRERROR.items() if text.endswith(s)), -1)

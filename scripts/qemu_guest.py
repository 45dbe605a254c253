"""Booting corpus kernels under QEMU (TCG) with a busybox initramfs made here.

Shared by the capture scripts (``guest_kallsyms.py``, ``guest_oops.py``): each writes its
own ``/init`` (a busybox shell script), boots a corpus tree's ``vmlinuz`` with it and reads
what the guest printed on its serial console between marker lines, each block checked
against the line count and MD5 the guest printed after it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from lkm.corpus import CorpusTree  # noqa: E402

#: Debian architecture -> (QEMU binary, its Debian package, machine arguments, console).
GUESTS: dict[str, tuple[str, str, list[str], str]] = {
    "amd64": ("qemu-system-x86_64", "qemu-system-x86", ["-cpu", "qemu64"], "ttyS0"),
    "i386": ("qemu-system-i386", "qemu-system-x86", ["-cpu", "qemu32,+pae,+nx"], "ttyS0"),
    "arm64": ("qemu-system-aarch64", "qemu-system-arm", ["-M", "virt", "-cpu", "cortex-a57"], "ttyAMA0"),
}


class GuestError(Exception):
    """The guest could not be set up, booted or read."""


def log(prog: str, msg: str) -> None:
    print(f"{prog}: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def _sudo(cmd: list[str]) -> list[str]:
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = _sudo(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])
    r = run(cmd, env=env)
    if r.returncode != 0:
        run(_sudo(["apt-get", "update", "-qq"]), env=env)
        r = run(cmd, env=env)
    if r.returncode != 0:
        raise GuestError(f"apt-get install {' '.join(packages)} failed: {r.stderr.decode(errors='replace')}")


def ensure_tools(arch: str) -> str:
    """The QEMU binary for guests of *arch*, installed with apt-get if missing."""
    qemu, package, _, _ = GUESTS[arch]
    missing = [] if shutil.which(qemu) else [package]
    if not shutil.which("dpkg-deb"):
        missing.append("dpkg")
    if missing:
        apt_install(missing)
    path = shutil.which(qemu)
    if not path:
        raise GuestError(f"{qemu} still missing after installing {package}")
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
            run(_sudo(["apt-get", "update", "-qq"]))
            r = run(["apt-get", "download", spec], cwd=tmp)
        debs = sorted(Path(tmp).glob("busybox-static_*.deb"))
        if r.returncode != 0 or not debs:
            raise GuestError(f"apt-get download {spec} failed: {r.stderr.decode(errors='replace')}")
        root = Path(tmp) / "root"
        r = run(["dpkg-deb", "-x", str(debs[0]), str(root)])
        binary = root / "bin" / "busybox"
        if r.returncode != 0 or not binary.is_file():
            raise GuestError(f"could not unpack {debs[0].name}: {r.stderr.decode(errors='replace')}")
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


def make_initramfs(busybox: Path, init: str, files: dict[str, bytes] | None = None) -> bytes:
    """A newc cpio archive: /dev/console, /bin/busybox, the mount points, ``/init`` and
    *files* (path -> contents, regular files under existing or new top-level directories)."""
    entries = [
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("proc", 0o040755, b"", (0, 0)),
        ("sys", 0o040755, b"", (0, 0)),
        ("tmp", 0o041777, b"", (0, 0)),
        ("bin", 0o040755, b"", (0, 0)),
        ("bin/busybox", 0o100755, busybox.read_bytes(), (0, 0)),
        ("init", 0o100755, init.encode(), (0, 0)),
    ]
    dirs = {e[0] for e in entries}
    for path, data in sorted((files or {}).items()):
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append((d, 0o040755, b"", (0, 0)))
        entries.append((path, 0o100644, data, (0, 0)))
    out = b"".join(_cpio_entry(n, m, d, r, i + 1) for i, (n, m, d, r) in enumerate(entries))
    out += _cpio_entry("TRAILER!!!", 0)
    return out + b"\0" * (-len(out) % 512)


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


def boot(tree: CorpusTree, qemu: str, initrd: Path, console_log: Path, timeout: float, append: str) -> bytes:
    """Boot *tree* with *initrd* until the guest powers off (or panics with ``panic=-1``);
    the raw serial console output."""
    _, _, machine, console = GUESTS[tree.arch]
    assert tree.vmlinuz is not None
    cmd = [
        qemu, "-nodefaults", "-no-user-config", "-accel", "tcg", *machine,
        "-smp", "1", "-m", "1024", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console_log}", "-no-reboot",
        "-kernel", str(tree.vmlinuz), "-initrd", str(initrd),
        "-append", f"console={console} {append}",
    ]  # fmt: skip
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


def boot_and_read(
    prog: str, tree: CorpusTree, qemu: str, initrd: Path, work: Path, timeout: float, append: str,
    blocks: list[str],
) -> tuple[bytes, dict[str, str], float]:  # fmt: skip
    """Boot (at most twice) until every one of *blocks* is read intact from the console; the
    raw console, the blocks' texts and the seconds the good boot took."""
    import time

    why = ""
    for attempt in (1, 2):
        console_log = work / f"console-{attempt}.log"
        image = Path(str(tree.vmlinuz)).name
        log(prog, f"{tree.name}: booting {image} in {Path(qemu).name} (TCG), attempt {attempt}")
        t0 = time.monotonic()
        try:
            raw = boot(tree, qemu, initrd, console_log, timeout, append)
        except (TimeoutError, RuntimeError, OSError) as exc:
            why = str(exc)
            log(prog, f"{tree.name}: attempt {attempt}: {why}")
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
        log(prog, f"{tree.name}: attempt {attempt} after {time.monotonic() - t0:.1f} s: {why}")
    raise GuestError(f"{tree.name}: no usable output from the guest ({why})")

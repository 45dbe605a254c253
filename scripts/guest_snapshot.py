#!/usr/bin/env python3
"""Capture a module snapshot (lkm.kernel.snapshot) of a corpus kernel booted in QEMU.

    python3 scripts/guest_snapshot.py --tree arm64-6.1 [--count 130] [--dest DIR] [--force]

For architectures whose guest cannot run the host's Python (arm64, i386) ``lkm verify
--snapshot DIR`` checks what this captures:

1. COUNT corpus modules that load without their hardware (file systems, crypto, lib, net;
   no self-test/torture modules), spread over the tree, each after its dependencies, are put
   in a busybox initramfs (busybox-static of the guest's architecture, lkm.guest);
2. the kernel boots under TCG with KASLR on (no ``nokaslr``: the arm64 virt machine passes a
   seed, so modules land out of direct branch range and use their PLTs); ``/init`` loads the
   modules with busybox insmod, then prints /proc/modules, /proc/kallsyms and every
   /sys/module/*/sections/* between markers, with a line count and MD5, and waits;
3. the host pauses the guest over QMP and saves each module's core region (address and size
   from /proc/modules) with ``memsave``, then quits QEMU and writes the snapshot directory
   (temporary directory + rename), with the tree's kernel config.

Default DIR: <corpus>/snapshots/<tree>.  Exit 0 when the snapshot was written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from lkm.corpus import CorpusTree, corpus_dir, find_tree, module_files  # noqa: E402
from lkm.guest import GUESTS, GuestError, busybox_for, make_initramfs, qemu_path  # noqa: E402
from lkm.kernel.live import parse_proc_modules  # noqa: E402
from lkm.kernel.load import module_name  # noqa: E402
from lkm.kernel.snapshot import write_snapshot  # noqa: E402
from lkm.module.file import ModuleFile  # noqa: E402

PROG = "guest_snapshot"
BEGIN, END, READY = "=====LKM-SNAPSHOT-BEGIN=====", "=====LKM-SNAPSHOT-END=====", "=====LKM-SNAPSHOT-READY====="
MACHINE = {"arm64": "aarch64", "i386": "i686", "amd64": "x86_64"}

# Corpus directories whose modules load without their hardware; names that run self-tests,
# stress threads or need a device at load time are left out.
SOFTWARE_DIRS = ("kernel/fs/", "kernel/crypto/", "kernel/lib/", "kernel/net/")
SKIP_WORDS = ("test", "torture", "kunit", "bench", "dummy", "evil")

INIT = f"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t tmpfs tmp /tmp
echo 0 > /proc/sys/kernel/kptr_restrict
echo 0 > /proc/sys/kernel/printk
for m in $($B cat /modules.order); do $B insmod /m/$m > /dev/null 2>&1 || echo "LKM-FAILED $m"; done
echo 0 > /proc/sys/kernel/printk
{{
  echo "release $($B uname -r)"
  echo "machine $($B uname -m)"
  echo "== modules"
  $B cat /proc/modules
  echo "== kallsyms"
  $B cat /proc/kallsyms
  for d in /sys/module/*/sections; do
    m=${{d#/sys/module/}}
    echo "== sections ${{m%/sections}}"
    for f in $($B ls -a $d); do [ -f $d/$f ] && echo "$f $($B cat $d/$f)"; done
  done
}} > /tmp/out
$B echo {BEGIN}
$B cat /tmp/out
$B echo {END}
$B echo "lines $($B wc -l < /tmp/out)"
$B echo "md5 $($B md5sum < /tmp/out)"
$B echo {READY}
while true; do $B sleep 1000; done
"""


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def candidates(tree: CorpusTree) -> list[Path]:
    out = []
    for p in module_files(tree):
        rel = str(p.relative_to(tree.modules_dir))
        if rel.startswith(SOFTWARE_DIRS) and not any(w in p.name for w in SKIP_WORDS):
            out.append(p)
    return out


def choose_modules(tree: CorpusTree, count: int) -> list[Path]:
    """About *count* candidates spread evenly over the tree, each preceded by what it depends
    on (modules.dep order: dependencies first)."""
    files = {module_name(str(p)): p for p in module_files(tree)}
    cands = candidates(tree)
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

    stride = max(1, len(cands) // max(count, 1))
    for p in cands[::stride]:
        if len(order) >= count:
            break
        visit(module_name(str(p)))
    return order


class Qmp:
    """A minimal QMP client over a unix socket (commands run one at a time)."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self._message()  # greeting
        self.call("qmp_capabilities")

    def _message(self) -> dict[str, object]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise GuestError("QMP connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        msg: dict[str, object] = json.loads(line)
        return msg

    def call(self, command: str, **arguments: object) -> object:
        self.sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        while True:
            msg = self._message()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise GuestError(f"QMP {command}: {msg['error']}")

    def close(self) -> None:
        self.sock.close()


def parse_console(raw: bytes) -> str:
    text = raw.decode("latin-1").replace("\r\n", "\n").replace("\r", "")
    b = text.find(BEGIN + "\n")
    e = text.find("\n" + END + "\n", b)
    if b < 0 or e < 0:
        raise GuestError("snapshot markers not found on the console")
    body = text[b + len(BEGIN) + 1 : e + 1]
    tail = text[e + len(END) + 2 :].splitlines()
    lines = next((ln.split()[1] for ln in tail if ln.startswith("lines ")), None)
    md5 = next((ln.split()[1] for ln in tail if ln.startswith("md5 ")), None)
    if str(body.count("\n")) != lines or hashlib.md5(body.encode("latin-1")).hexdigest() != md5:
        raise GuestError("console text does not match the guest's line count / MD5")
    return body


def split_dump(body: str) -> tuple[dict[str, str], str, str, dict[str, dict[str, int]]]:
    """(facts, /proc/modules, /proc/kallsyms, sections) from the guest's dump."""
    facts: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    sections: dict[str, dict[str, int]] = {}
    cur: list[str] | None = None
    cur_secs: dict[str, int] | None = None
    for line in body.splitlines():
        if line.startswith("== sections "):
            cur, cur_secs = None, sections.setdefault(line[12:], {})
        elif line.startswith("== "):
            cur, cur_secs = parts.setdefault(line[3:], []), None
        elif cur is not None:
            cur.append(line)
        elif cur_secs is not None:
            name, _, addr = line.rpartition(" ")
            cur_secs[name] = int(addr, 16)
        else:
            k, _, v = line.partition(" ")
            facts[k] = v
    text = {k: "".join(ln + "\n" for ln in v) for k, v in parts.items()}
    return facts, text.get("modules", ""), text.get("kallsyms", ""), sections


def _wait_for(console: Path, marker: bytes, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        raw = console.read_bytes() if console.exists() else b""
        if marker in raw:
            return raw
        if proc.poll() is not None:
            raise GuestError(f"QEMU exited {proc.returncode} before the guest was ready")
        time.sleep(0.5)
    raise GuestError(f"guest not ready within {timeout:.0f} s")


def _memsave(qmp: Qmp, tmp: Path, address: int, size: int) -> bytes:
    out = tmp / f"mem-{address:x}.bin"
    for _ in range(5):  # the CPU may be stopped where the module area is not mapped (PTI)
        try:
            signed = address - (1 << 64) if address >= 1 << 63 else address  # QMP's val is an int64
            qmp.call("memsave", val=signed, size=size, filename=str(out))
            return out.read_bytes()
        except GuestError as exc:
            log(str(exc))
            qmp.call("cont")
            time.sleep(0.2)
            qmp.call("stop")
    raise GuestError(f"memsave {address:#x}+{size:#x} failed")


def capture(tree: CorpusTree, dest: Path, count: int, timeout: float = 900.0) -> tuple[Path, list[str]]:
    """Boot *tree* with about *count* modules and write the snapshot to *dest*; also return
    the modules whose insmod failed in the guest."""
    arch = tree.arch
    if arch not in GUESTS or tree.vmlinuz is None:
        raise GuestError(f"{tree.name}: no QEMU guest or kernel image for {arch}")
    busybox = busybox_for(arch, corpus_dir() / "guest")
    chosen = choose_modules(tree, count)
    files = [("modules.order", "".join(p.name + "\n" for p in chosen).encode())]
    files += [(f"m/{p.name}", p.read_bytes()) for p in chosen]
    g = GUESTS[arch]
    with tempfile.TemporaryDirectory(prefix=f"snapshot-{tree.name}-") as tmpdir:
        tmp = Path(tmpdir)
        initrd = tmp / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox, INIT, files))
        console, qmp_sock = tmp / "console.log", tmp / "qmp.sock"
        cmd = [
            qemu_path(arch), "-nodefaults", "-no-user-config", "-accel", "tcg", *g.machine,
            "-smp", "1", "-m", "1024", "-display", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-no-reboot", "-qmp", f"unix:{qmp_sock},server=on,wait=off",
            "-kernel", str(tree.vmlinuz), "-initrd", str(initrd),
            "-append", f"console={g.console} quiet loglevel=0 panic=-1",
        ]  # fmt: skip
        log(f"{tree.name}: booting with {len(chosen)} modules (KASLR on)")
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            raw = _wait_for(console, READY.encode(), proc, timeout)
            log(f"{tree.name}: guest ready after {time.monotonic() - t0:.1f} s")
            body = parse_console(raw)
            failed = [ln.split()[1] for ln in raw.decode("latin-1").splitlines() if ln.startswith("LKM-FAILED ")]
            facts, modules, kallsyms, sections = split_dump(body)
            qmp = Qmp(qmp_sock)
            qmp.call("stop")
            memory = []
            for name, size, _r, _u, _s, address, _t in parse_proc_modules(modules):
                memory.append((address, _memsave(qmp, tmp, address, size), name))
            qmp.call("quit")
            qmp.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    config = tree.config.read_text() if tree.config is not None and tree.config.is_file() else None
    write_snapshot(
        dest,
        release=facts.get("release", tree.release),
        machine=facts.get("machine", MACHINE.get(arch, arch)),
        kallsyms=kallsyms,
        modules=modules,
        sections=sections,
        memory=memory,
        config=config,
    )
    log(f"{tree.name}: {len(memory)} modules in {dest} ({time.monotonic() - t0:.1f} s)")
    return dest, failed


def main() -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", action="append", required=True, help="corpus tree (repeatable)")
    ap.add_argument("--count", type=int, default=130, help="modules to choose (before dependencies)")
    ap.add_argument("--dest", type=Path, help="snapshot directory (one tree only)")
    ap.add_argument("--force", action="store_true", help="capture again if the snapshot exists")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    for name in args.tree:
        tree = find_tree(name)
        dest = args.dest or corpus_dir() / "snapshots" / name
        if dest.exists() and not args.force:
            log(f"{name}: {dest} exists")
            print(dest)
            continue
        try:
            _, failed = capture(tree, dest, args.count, args.timeout)
        except (GuestError, OSError) as exc:
            print(f"{PROG}: {name}: {exc}", file=sys.stderr)
            return 1
        if failed:
            log(f"{name}: insmod failed in the guest for {len(failed)}: {' '.join(failed)}")
        print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main() if os.environ.get("LKM_NO_MAIN") is None else 0)

#!/usr/bin/env python3
"""Capture a snapshot of a QEMU guest for ``lkm verify --snapshot DIR`` (lkm.kernel.snapshot).

    python3 scripts/guest_snapshot.py --tree arm64-6.1 --count 100 --out DIR [--verify]

The guest (the corpus tree's Debian kernel under TCG: ``-M virt`` with KASLR on for arm64, so
modules land out of direct branch range; the 686-pae kernel for i386) gets an initramfs with
busybox-static of its architecture and the chosen modules: it loads the virtio/9p modules,
mounts a share, loads about COUNT corpus modules that need no hardware (with their
dependencies) with busybox's insmod, writes /proc/modules, /proc/kallsyms, every module's
sections and uname into the share, and idles.  The host then stops the guest and saves each
module's memory through QMP ``memsave`` into DIR/memory.  ``--verify`` runs lkm verify over
every module of the snapshot and prints the counts (exit 1 on any difference).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from lkm.kernel.load import module_name  # noqa: E402
from lkm.link.layout import KernelConfig, layout_module  # noqa: E402
from lkm.module.file import ModuleFile  # noqa: E402
from testing.corpus import CorpusTree, corpus_dir, find_tree  # noqa: E402
from testing.guest import GuestError, Qmp, busybox_for, make_initramfs, start  # noqa: E402
from testing.vm import (  # noqa: E402
    INIT_START,
    _by_name,
    _plain,
    boot_modules,
    candidates,
    with_dependencies,
)

INIT = (
    INIT_START
    + """$B mkdir -p /share
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /share || echo "LKM-GUEST: no share"
for m in {sample}; do $B insmod /m/$m.ko 2>/dev/null; done
$B cat /proc/modules > /share/proc-modules.txt
$B cat /proc/kallsyms > /share/proc-kallsyms.txt
for d in /sys/module/*/sections; do
  m=${{d%/sections}}; m=${{m##*/}}
  for f in $d/.[!.]* $d/*; do [ -f "$f" ] && echo "$m ${{f##*/}} $($B cat $f)"; done
done > /share/sections.txt
$B uname -r > /share/release
$B uname -m > /share/machine
$B sync
$B touch /share/ready
$B sync
while true; do $B sleep 1000; done
"""
)

MACHINE_DEVICES = {"arm64": "virtio-9p-pci", "i386": "virtio-9p-pci", "amd64": "virtio-9p-pci"}


def log(msg: str) -> None:
    print(f"guest_snapshot: {msg}", file=sys.stderr, flush=True)


def choose(tree: CorpusTree, count: int) -> list[Path]:
    cands = candidates(tree)
    stride = max(1, len(cands) // int(count * 1.5))
    names = [module_name(str(p)) for p in cands[::stride]]
    return with_dependencies(tree, names)


def memory_ranges(tree: CorpusTree, share: Path) -> list[tuple[int, int]]:
    """The live sections (those lkm's layout puts outside init memory) of every loaded corpus
    module, merged into one range per run of a module's sections."""
    files = _by_name(tree)
    config = KernelConfig.from_config_text(tree.config.read_text()) if tree.config else KernelConfig()
    listed: dict[str, dict[str, int]] = {}
    for line in (share / "sections.txt").read_text().splitlines():
        mod, sec, addr = line.split()
        listed.setdefault(mod, {})[sec] = int(addr, 16)
    spans: list[tuple[str, int, int]] = []
    for mod, addrs in listed.items():
        if mod not in files:
            continue
        with ModuleFile.open(files[mod]) as m:
            lay = layout_module(m.elf, m.version.name, config)
            for p in lay.placements.values():
                if p.name in addrs and p.size and not p.region.startswith("init"):
                    spans.append((mod, addrs[p.name], addrs[p.name] + p.size))
    spans.sort()
    # never across modules: guard pages lie between their allocations
    merged: list[list[int]] = []
    owner = ""
    for mod, a, b in spans:
        if merged and mod == owner and a <= merged[-1][1] + 4096:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
        owner = mod
    return [(a, b - a) for a, b in merged]


def save(qmp: Qmp, mem: Path, addr: int, size: int) -> int:
    """memsave [addr, addr+size) (page by page if the whole fails); the pages not mapped."""

    def one(a: int, n: int) -> bool:
        val = a - (1 << 64) if a >= 1 << 63 else a  # QMP's 'val' is an int64
        try:
            qmp.execute("memsave", val=val, size=n, filename=str(mem / f"{a:x}-{n:x}.bin"))
        except GuestError:
            return False
        return True

    if one(addr, size):
        return 0
    missing = 0
    a = addr
    while a < addr + size:
        n = min((a | 4095) + 1, addr + size) - a
        missing += not one(a, n)
        a += n
    return missing


def capture(tree: CorpusTree, out: Path, count: int, timeout: float, names: list[str] | None = None) -> None:
    """Boot *tree*, load about *count* corpus modules (or the modules *names*, with their
    dependencies) and write the snapshot directory *out*."""
    assert tree.vmlinuz is not None
    boot = boot_modules(tree)
    boot_names = [module_name(str(p)) for p in boot]
    picked = with_dependencies(tree, names) if names else choose(tree, count)
    sample = [p for p in picked if module_name(str(p)) not in boot_names]
    sample_names = [module_name(str(p)) for p in sample]
    with tempfile.TemporaryDirectory(prefix=f"snapshot-{tree.name}-") as tmp:
        share = Path(tmp) / "share"
        share.mkdir()
        init = INIT.format(modules=" ".join(boot_names), sample=" ".join(sample_names))
        files = [(f"m/{module_name(str(p))}.ko", _plain(p)) for p in boot + sample]
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(make_initramfs(busybox_for(tree.arch, corpus_dir() / "guest"), init, files))
        sock = Path(tmp) / "qmp.sock"
        extra = [
            "-fsdev", f"local,id=share,path={share},security_model=none",
            "-device", f"{MACHINE_DEVICES[tree.arch]},fsdev=share,mount_tag=share",
            "-qmp", f"unix:{sock},server=on,wait=off",
        ]  # fmt: skip
        t0 = time.monotonic()
        log(f"{tree.name}: booting with {len(sample)} modules to load")
        proc = start(tree.arch, tree.vmlinuz, initrd, Path(tmp) / "console.log", extra=extra, kaslr=True)
        try:
            while not (share / "ready").exists():
                if proc.poll() is not None or time.monotonic() - t0 > timeout:
                    tail = (Path(tmp) / "console.log").read_text(errors="replace")[-2000:]
                    raise GuestError(f"{tree.name}: the guest did not get ready:\n{tail}")
                time.sleep(0.5)
            log(f"{tree.name}: guest ready after {time.monotonic() - t0:.0f} s; saving memory")
            qmp = Qmp(str(sock))
            qmp.execute("stop")
            mem = share / "memory"
            mem.mkdir()
            ranges = memory_ranges(tree, share)
            unmapped = 0
            for addr, size in ranges:
                unmapped += save(qmp, mem, addr, size)
            if unmapped:
                log(f"{tree.name}: {unmapped} pages not mapped in the guest (not saved)")
            qmp.execute("quit")
            qmp.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        log(f"{tree.name}: {len(ranges)} memory ranges saved; {time.monotonic() - t0:.0f} s in all")
        (share / "ready").unlink()
        if tree.config is not None:
            shutil.copyfile(tree.config, share / "config")
        (share / "System.map").write_text(exports_map(tree, (share / "proc-kallsyms.txt").read_text()))
        part = out.with_name(out.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(share, part)
        shutil.rmtree(out, ignore_errors=True)
        part.rename(out)


def exports_map(tree: CorpusTree, kallsyms_text: str) -> str:
    """System.map lines of the kernel's exports at the guest's addresses: what a kernel without
    CONFIG_KALLSYMS_ALL leaves out of /proc/kallsyms (its data symbols)."""
    from collections import Counter

    from lkm.elf import ElfFile
    from lkm.symbols.image import decompress_kernel_image
    from lkm.symbols.ksymtab import raw_image_exports
    from lkm.symbols.vmlinux import vmlinux_exports

    assert tree.vmlinuz is not None
    kernel = decompress_kernel_image(tree.vmlinuz.read_bytes())
    if kernel[:4] == b"\x7fELF":
        exports = [(s.address, s.name) for s in vmlinux_exports(ElfFile(kernel))]
    else:
        exports = [(e.offset, e.name) for e in raw_image_exports(kernel)]
    running: dict[str, int] = {}
    for line in kallsyms_text.splitlines():
        f = line.split()
        if len(f) == 3:
            running.setdefault(f[2], int(f[0], 16))
    # The load offset (KASLR, or the image's base): the one most exports agree on.
    shift = Counter(running[n] - a for a, n in exports if n in running).most_common(1)[0][0]
    width = 16 if tree.arch != "i386" else 8
    mask = (1 << (4 * width)) - 1
    return "".join(f"{(a + shift) & mask:0{width}x} D {n}\n" for a, n in exports)


def verify_snapshot(tree: CorpusTree, snap: Path) -> int:
    from lkm.kernel.snapshot import SnapshotKernel, SnapshotMemory
    from lkm.kernel.verify import verify_module
    from lkm.symbols.table import SymbolTable

    kernel = SnapshotKernel(str(snap))
    memory = SnapshotMemory(str(snap))
    config = KernelConfig.from_config_text((snap / "config").read_text())
    text = kernel.kallsyms()
    table = SymbolTable.from_files(str(snap / "proc-kallsyms.txt"), str(snap / "System.map"))
    files = _by_name(tree)
    counts = {"modules": 0, "compared": 0, "layout": 0, "bytes": 0, "kallsyms": 0, "errors": 0}
    masked: dict[str, int] = {}
    for m in reversed(kernel.modules()):  # load order: exporters before their users
        if m.name not in files:
            continue
        try:
            mod = ModuleFile.open(files[m.name])
            rep = verify_module(mod, kernel, memory, table, config=config, kallsyms_text=text)
        except Exception as exc:  # each failure is a finding, reported with its module
            counts["errors"] += 1
            print(f"  error: {m.name}: {type(exc).__name__}: {exc}")
            continue
        counts["modules"] += 1
        counts["compared"] += rep.compared
        for k, v in rep.masked.items():
            masked[k] = masked.get(k, 0) + v
        for line in rep.layout:
            print(f"  layout: {m.name}: {line}")
        for addr, sec, off, a, b in rep.bytes:
            print(f"  bytes: {m.name}: {sec}+{off:#x} ({addr:#x}): lkm {a.hex()} kernel {b.hex()}")
        for line in rep.kallsyms:
            print(f"  kallsyms: {m.name}: {line}")
        counts["layout"] += len(rep.layout)
        counts["bytes"] += len(rep.bytes)
        counts["kallsyms"] += len(rep.kallsyms)
    print(f"{tree.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"  masked: {masked}")
    return counts["layout"] + counts["bytes"] + counts["kallsyms"] + counts["errors"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--verify", action="store_true")
    ap.add_argument(
        "--module", action="append", metavar="NAME", help="load NAME (repeatable) instead of a sample"
    )
    args = ap.parse_args()
    tree = find_tree(args.tree)
    try:
        capture(tree, args.out, args.count, args.timeout, args.module)
    except GuestError as exc:
        print(f"guest_snapshot: {exc}", file=sys.stderr)
        return 1
    return 1 if args.verify and verify_snapshot(tree, args.out) else 0


if __name__ == "__main__":
    sys.exit(main())

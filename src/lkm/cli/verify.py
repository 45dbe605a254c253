"""``lkm verify [--config FILE] [--kcore FILE | --snapshot DIR] [-q] MODULE...``: check that
loaded modules are exactly their files.

Each MODULE (a module file; its name is the loaded module's) is relinked by lkm at the
addresses the running kernel gave its sections, and compared with the kernel's memory
(/proc/kcore) and /proc/kallsyms.  Differences are printed one per line; a summary line per
module says how many bytes were compared and how many masked (sites the kernel patches after
relocation, writable data).  Exit 0 when no module differs, 1 otherwise.

--snapshot DIR checks a captured machine instead of this one (lkm.kernel.snapshot describes
DIR; scripts/guest_snapshot.py makes one from an arm64 or i386 QEMU guest).
"""

from __future__ import annotations

import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError
from lkm.safeio import read_text

HELP = __doc__ or ""


def _config(path: str | None, release: str) -> object:
    from lkm.link.layout import KernelConfig

    for p in (path, f"/boot/config-{release}"):
        if p and (p == path or os.path.exists(p)):
            try:
                return KernelConfig.from_config_text(read_text(p, errors="replace"))
            except OSError as exc:
                raise LkmError(exc.strerror or "cannot read", path=p) from None
    return KernelConfig()


def run(prog: str, args: list[str]) -> int:
    out, err = sys.stdout.write, sys.stderr.write
    try:
        opts, operands = parse(args, "qh", ["config=", "kcore=", "snapshot=", "quiet", "help"])
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    config_path = None
    kcore = "/proc/kcore"
    snapshot = None
    quiet = False
    for flag, val in opts:
        if flag in ("-h", "--help"):
            out(HELP)
            return 0
        if flag == "--config":
            config_path = val
        elif flag == "--kcore":
            kcore = val
        elif flag == "--snapshot":
            snapshot = val
        elif flag in ("-q", "--quiet"):
            quiet = True
    if not operands:
        err(f"{prog}: ERROR: missing module file.\n")
        return 1
    from lkm.elf.core import CoreFile
    from lkm.kernel import open_kernel
    from lkm.kernel.verify import Memory, verify_module
    from lkm.link.layout import KernelConfig
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import SymbolTable

    try:
        if snapshot is not None:
            from lkm.kernel.snapshot import SnapshotMemory

            kernel = open_kernel("snapshot", path=snapshot)
            captured = os.path.join(snapshot, "config")
            config = _config(config_path or (captured if os.path.exists(captured) else None), kernel.release)
            kallsyms_path = os.path.join(snapshot, "proc-kallsyms.txt")
            system_map = os.path.join(snapshot, "System.map")
            core: Memory = SnapshotMemory(snapshot)
        else:
            kernel = open_kernel()
            config = _config(config_path, kernel.release)
            kallsyms_path = "/proc/kallsyms"
            system_map = ""
            core = CoreFile(kcore)
        assert isinstance(config, KernelConfig)
        text = kernel.kallsyms()
        sources = [kallsyms_path, *([system_map] if system_map and os.path.exists(system_map) else [])]
        table = SymbolTable.from_files(*sources)
    except LkmError as exc:
        err(f"{prog}: ERROR: {exc}\n")
        return 1
    status = 0
    mods: list[tuple[str, ModuleFile]] = []
    for path in operands:
        try:
            mods.append((path, ModuleFile.open(path)))
        except LkmError as exc:
            err(f"{prog}: ERROR: {exc.path or path}: {exc.reason}\n")
            status = 1
    # Load order (dependencies first): each verified module's exports bind the next ones.
    order = {m.name: i for i, m in enumerate(reversed(kernel.modules()))}
    mods.sort(key=lambda pm: order.get(pm[1].name, -1))
    for path, mod in mods:
        try:
            rep = verify_module(mod, kernel, core, table, config=config, kallsyms_text=text)
        except LkmError as exc:
            err(f"{prog}: ERROR: {exc.path or path}: {exc.reason}\n")
            status = 1
            continue
        for line in rep.layout:
            out(f"{rep.module}: layout: {line}\n")
        for addr, sec, off, ours, theirs in rep.bytes:
            where = f"{sec}+{off:#x} ({addr:#x})"
            out(f"{rep.module}: bytes: {where}: lkm {ours.hex(' ')}, kernel {theirs.hex(' ')}\n")
        for line in rep.kallsyms:
            out(f"{rep.module}: kallsyms: {line}\n")
        if rep.differences:
            status = 1
        if not quiet or rep.differences:
            masked = ", ".join(f"{k} {v}" for k, v in sorted(rep.masked.items()))
            verdict = "OK" if not rep.differences else f"{rep.differences} difference(s)"
            out(f"{rep.module}: {verdict}: {rep.compared} bytes compared, masked: {masked or 'none'}\n")
    return status

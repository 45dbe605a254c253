"""``lkm verify [--config FILE] [--kcore FILE] [-q] MODULE...``: check that loaded modules are
exactly their files.

Each MODULE (a module file; its name is the loaded module's) is relinked by lkm at the
addresses the running kernel gave its sections, and compared with the kernel's memory
(/proc/kcore) and /proc/kallsyms.  Differences are printed one per line; a summary line per
module says how many bytes were compared and how many masked (sites the kernel patches after
relocation, writable data).  Exit 0 when no module differs, 1 otherwise.
"""

from __future__ import annotations

import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

HELP = __doc__ or ""


def _config(path: str | None, release: str) -> object:
    from lkm.link.layout import KernelConfig

    for p in (path, f"/boot/config-{release}"):
        if p and (p == path or os.path.exists(p)):
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    return KernelConfig.from_config_text(f.read())
            except OSError as exc:
                raise LkmError(exc.strerror or "cannot read", path=p) from None
    return KernelConfig()


def run(prog: str, args: list[str]) -> int:
    out, err = sys.stdout.write, sys.stderr.write
    try:
        opts, operands = parse(args, "qh", ["config=", "kcore=", "quiet", "help"])
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    config_path = None
    kcore = "/proc/kcore"
    quiet = False
    for flag, val in opts:
        if flag in ("-h", "--help"):
            out(HELP)
            return 0
        if flag == "--config":
            config_path = val
        elif flag == "--kcore":
            kcore = val
        elif flag in ("-q", "--quiet"):
            quiet = True
    if not operands:
        err(f"{prog}: ERROR: missing module file.\n")
        return 1
    from lkm.elf.core import CoreFile
    from lkm.kernel import open_kernel
    from lkm.kernel.verify import verify_module
    from lkm.link.layout import KernelConfig
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import SymbolTable

    try:
        kernel = open_kernel()
        config = _config(config_path, kernel.release)
        assert isinstance(config, KernelConfig)
        text = kernel.kallsyms()
        table = SymbolTable.from_files("/proc/kallsyms")
        core = CoreFile(kcore)
    except LkmError as exc:
        err(f"{prog}: ERROR: {exc}\n")
        return 1
    status = 0
    for path in operands:
        try:
            mod = ModuleFile.open(path)
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
    core.close()
    return status

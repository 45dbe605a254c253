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

import gzip
import os
import sys

from lkm.cli.jsonout import hexaddr
from lkm.cli.jsonout import line as json_line
from lkm.cli.tool import Opt, Tool
from lkm.elf.core import CoreFile
from lkm.errors import LkmError
from lkm.kernel import open_kernel
from lkm.kernel.snapshot import SnapshotMemory
from lkm.kernel.verify import Memory, VerifyReport, verify_module
from lkm.link.layout import KernelConfig
from lkm.module.file import ModuleFile
from lkm.safeio import read_bytes
from lkm.symbols.table import SymbolTable

__all__ = ["TOOL", "config_candidates", "run"]


TOOL = Tool(
    "verify",
    "check that loaded modules are byte for byte their files (/proc/kcore)",
    usage=["[options] MODULE..."],
    description="Each MODULE (a module file; its name is the loaded module's) is relinked at the addresses\n"
    "the kernel gave its sections and compared with the kernel's memory and /proc/kallsyms.\n"
    "Differences are printed one per line, then a summary line per module.  Exit 0 when no\n"
    "module differs, 1 otherwise.",
    options=[
        Opt(
            "",
            "config",
            "FILE",
            "the kernel's .config (default: /proc/config.gz, /boot/config-R,\n/lib/modules/R/build/.config)",
            complete="file",
        ),
        Opt("", "kcore", "FILE", "the kernel's memory (default /proc/kcore)", complete="file"),
        Opt("", "snapshot", "DIR", "check a captured machine instead of this one"),
        Opt("q", "quiet", None, "only the summary lines"),
        Opt("", "json", None, 'one "verify" document per module (JSON Lines, schema lkm/1)'),
    ],
)


def config_candidates(release: str) -> list[str]:
    """Where a running kernel's .config is found: /proc/config.gz (CONFIG_IKCONFIG_PROC), the
    distribution's /boot/config-R, the build tree's .config."""
    return ["/proc/config.gz", f"/boot/config-{release}", f"/lib/modules/{release}/build/.config"]


def _config(path: str | None, release: str, *, search: bool = True) -> object:
    """The KernelConfig from ``path``, else the first of :func:`config_candidates`; with none
    found, an error asking for --config (a default configuration would report thousands of
    false differences).  ``search=False``: the default configuration instead."""
    paths = [path] if path else (config_candidates(release) if search else [])
    for p in paths:
        if p != path and not os.path.exists(p):
            continue
        try:
            raw = read_bytes(p)
            text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            return KernelConfig.from_config_text(text.decode("utf-8", "replace"))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise LkmError(getattr(exc, "strerror", None) or str(exc) or "cannot read", path=p) from None
    if search:
        raise LkmError(
            f"the kernel's configuration was not found ({', '.join(config_candidates(release))}): "
            "give it with --config FILE"
        )
    return KernelConfig()


def _json(rep: object, path: str) -> str:
    """A module's report as a ``"verify"`` document (lkm/1)."""

    assert isinstance(rep, VerifyReport)
    diffs = [
        {"address": hexaddr(addr), "section": sec, "offset": off, "lkm": ours.hex(), "kernel": theirs.hex()}
        for addr, sec, off, ours, theirs in rep.bytes
    ]
    return json_line(
        "verify",
        module=rep.module,
        file=path,
        ok=not rep.differences,
        differences=rep.differences,
        compared=rep.compared,
        masked=dict(sorted(rep.masked.items())),
        layout=list(rep.layout),
        bytes=diffs,
        kallsyms=list(rep.kallsyms),
    )


def run(prog: str, args: list[str]) -> int:
    out, err = sys.stdout.write, sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    config_path = None
    kcore = "/proc/kcore"
    snapshot = None
    quiet = as_json = False
    for flag, val in opts:
        if flag == "--config":
            config_path = val
        elif flag == "--kcore":
            kcore = val
        elif flag == "--snapshot":
            snapshot = val
        elif flag in ("-q", "--quiet"):
            quiet = True
        elif flag == "--json":
            as_json = True
    if not operands:
        err(f"{prog}: ERROR: missing module file.\n")
        return 1

    try:
        if snapshot is not None:
            kernel = open_kernel("snapshot", path=snapshot)
            captured = os.path.join(snapshot, "config")
            config = _config(
                config_path or (captured if os.path.exists(captured) else None), kernel.release, search=False
            )
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
        if rep.differences:
            status = 1
        if as_json:
            out(_json(rep, path))
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

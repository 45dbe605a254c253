"""``lkm demo``: a guided run of the HOWTO's section 10 ("Technical Details") on the bundled
fixtures and a fresh model kernel in a temporary state directory.

The 2.4 design first (insmod links in user space against what query_module reports; the
kernel keeps the module table): load the exporter (fat24.o), load the importer that links
against it (msdos24.o, with its load map), read /proc/modules, lsmod, /proc/ksyms with the
ksymoops symbols, ask query_module, try to remove the module in use, save and restore
persistent data, look at the vmalloc area.  Then today's design on a 6.1 profile: the kernel
itself checks, lays out, resolves and relocates the raw .ko files (exporter.ko, importer.ko).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import struct
import sys
import tempfile
from pathlib import Path

from lkm.cli.tool import Tool

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"


def _color() -> bool:
    """Bold headings only on a terminal, and never with NO_COLOR set (no-color.org)."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _say(text: str) -> None:
    sys.stdout.write(f"\n\033[1m{text}\033[0m\n" if _color() else f"\n{text}\n")
    sys.stdout.flush()


def _run(argv: list[str], note: str = "", head: int | None = None) -> int:
    from lkm.cli import main

    shown = " ".join(shlex.quote(a.replace(str(FIXTURES), "tests/fixtures")) for a in argv)
    _say(f"$ lkm {shown}" + (f"   # {note}" if note else ""))
    if head is None:
        with contextlib.redirect_stderr(sys.stdout):
            return main(["lkm", *argv])
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main(["lkm", *argv])
    lines = buf.getvalue().splitlines(keepends=True)
    if head < 0:  # the last lines
        more = f"({len(lines) + head} lines before) ...\n" if len(lines) > -head else ""
        sys.stdout.write(more + "".join(lines[head:]))
    else:
        more = f"... ({len(lines) - head} more lines)\n" if len(lines) > head else ""
        sys.stdout.write("".join(lines[:head]) + more)
    return rc


def _query_module(state: str) -> None:
    from lkm.kernel.model import ModelKernel
    from lkm.kernel.model24 import NoSpace, iter_strings
    from lkm.kernel.struct24 import QM_DEPS, QM_INFO, QM_MODULES, QM_REFS, QM_SYMBOLS
    from lkm.modutils.insmod import _symbols

    k = ModelKernel(state)
    _say("query_module(2), as insmod and lsmod ask it (lkm.kernel.model.ModelKernel.query_module)")
    out = sys.stdout.write
    out(f"  probe (which=0):            ret={k.query_module(None, 0).ret}\n")
    q = k.query_module(None, QM_MODULES)
    out(f"  QM_MODULES:                 {list(iter_strings(q.data))} (ret={q.ret})\n")
    try:
        k.query_module(None, QM_MODULES, bufsize=4)
    except NoSpace as exc:
        out(f"  QM_MODULES, 4-byte buffer:  ENOSPC, needs {exc.ret} bytes\n")
    out(f"  QM_DEPS msdos24:            {list(iter_strings(k.query_module('msdos24', QM_DEPS).data))}\n")
    out(f"  QM_REFS fat24:              {list(iter_strings(k.query_module('fat24', QM_REFS).data))}\n")
    addr, size, flags, uc = k.layout24.info.unpack(k.query_module("fat24", QM_INFO).data)
    out(f"  QM_INFO fat24:              addr={addr:#x} size={size} flags={flags:#x} usecount={uc}\n")
    syms = _symbols(k.query_module("fat24", QM_SYMBOLS).data)
    out(f"  QM_SYMBOLS fat24:           {len(syms)} symbols, e.g. {[(n, hex(v)) for n, v in syms[:2]]}\n")
    ksyms = _symbols(k.query_module(None, QM_SYMBOLS).data)
    out(f"  QM_SYMBOLS kernel:          {len(ksyms)} symbols, e.g. {[(n, hex(v)) for n, v in ksyms[1:3]]}\n")
    table = k.get_kernel_syms()
    out(f"  get_kernel_syms:            {len(table)} entries, e.g. {[(hex(v), n) for v, n in table[:2]]}\n")
    k.close()


def _sticky(state: str) -> int:
    """hello24's persistent parameter, read from the model kernel's memory."""
    from lkm.kernel.model import ModelKernel

    k = ModelKernel(state)
    sym = next(s for s in k.module_symbols("export")[0][1] if "_S.bss_" in s.name)
    value = int(struct.unpack("<i", k.read_memory(sym.address or 0, 4))[0])
    k.close()
    return value


TOOL = Tool(
    "demo",
    "a guided run of the HOWTO's section 10 on a model kernel",
    usage=[""],
    description="Colours only on a terminal, and never with NO_COLOR set.",
    options=[],
)


def run(prog: str, args: list[str]) -> int:
    _opts, operands = TOOL.parse(prog, args)
    if operands:
        sys.stderr.write(f"Usage: {prog}\n")
        return 1
    f24, f6 = FIXTURES / "24", FIXTURES / "6x"
    with tempfile.TemporaryDirectory(prefix="lkm-demo-") as tmp:
        state = os.path.join(tmp, "kernel24.db")
        st = ["--state", state]
        _say("== The 2.4 design (HOWTO 10): insmod links, the kernel keeps the module table ==")
        _run(
            ["model", "boot", "linux-2.4-i386", *st], "a fresh model kernel: 2.4.20 i386, CONFIG_MODVERSIONS"
        )
        _run(["insmod", *st, str(f24 / "fat24.o")], "the exporter (fat.o's stand-in)")
        _run(["insmod", *st, "-m", str(f24 / "msdos24.o"), "codepage=850"],
             "the importer links against fat24's exports; -m prints the load map", head=24)  # fmt: skip
        _run(["proc", *st, "modules"], "/proc/modules: msdos24 uses fat24")
        _run(["lsmod", *st], "modutils' lsmod")
        _run(
            ["proc", *st, "ksyms"],
            "/proc/ksyms: module exports and ksymoops symbols, then the kernel's",
            head=16,
        )
        _query_module(state)
        _run(["rmmod", *st, "fat24"], "refused: msdos24 still uses it")
        _run(
            ["insmod", *st, "-e", "", str(f24 / "hello24.o"), "sticky=42"], "persistent parameter (type 'ip')"
        )
        _run(["rmmod", *st, "-v", "hello24"], "rmmod saves it before unloading")
        persist = Path(tmp) / "persist" / "hello24.o"
        _say(f"$ cat {persist.name}   # the persist file, modutils' format")
        sys.stdout.write(persist.read_text())
        _run(["insmod", *st, "-e", "", str(f24 / "hello24.o")], "insmod -e restores it")
        sys.stdout.write(f"sticky in kernel memory after the reload: {_sticky(state)}\n")
        _run(["rmmod", *st, "msdos24", "fat24"], "now both go")
        _run(["proc", *st, "vmallocinfo"], "HOWTO 10.7: module memory, page-granular with guard pages")
        _run(["model", "check", *st], "integrity of the state: refs, memory, symbols")

        state6 = os.path.join(tmp, "kernel61.db")
        st6 = ["--state", state6]
        _say("== Today's design: the kernel reads, checks, lays out and links the file itself ==")
        _run(["model", "boot", "linux-6.1-amd64", *st6], "Debian's 6.1 amd64 exports, addresses and CRCs")
        _run(
            ["insmod", *st6, str(f6 / "exporter.ko")],
            "finit_module: layout, resolution, relocation in the kernel",
        )
        _run(
            ["insmod", *st6, str(f6 / "importer.ko")],
            "binds the exporter's plain, GPL-only and namespaced symbols",
        )
        _run(["lsmod", *st6], "kmod's lsmod format")
        _run(["proc", *st6, "modules"], "6.1 /proc/modules")
        _run(["rmmod", *st6, "exporter"], "refused as kmod refuses it")
        _run(
            ["proc", *st6, "kallsyms"],
            "the modules' kallsyms, type letters as the kernel gives them",
            head=-8,
        )
        _run(["rmmod", *st6, "importer", "exporter"])
        _run(["proc", *st6, "vmallocinfo"])
    return 0

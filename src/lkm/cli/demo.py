"""``lkm demo``: a guided run of the HOWTO's section 10 ("Technical Details") on the bundled
fixtures and a fresh model kernel in a temporary state directory.

The 2.4 design first (insmod links in user space against what query_module reports; the
kernel keeps the module table): load the exporter (fat24.o), load the importer that links
against it (msdos24.o, with its load map), read /proc/modules, lsmod, /proc/ksyms with the
ksymoops symbols, ask query_module, try to remove the module in use, save and restore
persistent data, look at the vmalloc area.  Then today's design on a 6.1 profile: the kernel
itself checks, lays out, resolves and relocates the raw .ko files (exporter.ko, importer.ko).

``lkm demo --html OUT`` writes the same walk-through as one self-contained page (text and
pictures: memory maps, the module memory pools, a dependency graph, ``lkm why`` and a crash
graph), readable offline and with JavaScript off.  ``lkm demo --json`` writes each step as
one JSON line (schema lkm/1, kind ``demo-step``): its number, the part of the walk, the
command, its exit status and outcome, the output the walk shows for it (as the text walk
shows it) and the state it leaves: the modules loaded in the model kernel it ran on, as
``lsmod --json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from lkm.cli import main
from lkm.cli.jsonout import line as json_line
from lkm.cli.jsonout import loaded_module
from lkm.cli.ksymoops import crash_frames
from lkm.cli.tool import Opt, Tool
from lkm.draw import html
from lkm.draw.crash import CrashFrame, crash_svg
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.load24 import NoSpace, iter_strings
from lkm.kernel.model.procfs import proc_ksyms
from lkm.kernel.model.struct24 import QM_DEPS, QM_INFO, QM_MODULES, QM_REFS, QM_SYMBOLS
from lkm.link.output import write_atomic
from lkm.module.file import ModuleFile
from lkm.modutils.insmod import _symbols
from lkm.oops.inputs import Inputs, decode_text

__all__ = ["INTROS", "MODULES", "TOOL", "run"]


MODULES = Path(__file__).resolve().parent / "demo_modules"  # package data (fixtures/build.sh)


_REPO = str(MODULES)  # elided in the page ("…/exporter.ko"), as in the commands


class _Page:
    """The --html page being written: sections of commands, their output and pictures."""

    def __init__(self) -> None:
        self.sink = io.StringIO()  # what the steps print (stdout is redirected here)
        self.sections: list[tuple[str, str, list[str]]] = []

    def _flush(self) -> None:
        text = self.sink.getvalue().replace(_REPO, "\u2026")
        self.sink.seek(0)
        self.sink.truncate()
        if text.strip() and self.sections:
            self.sections[-1][2].append(html.pre(text.strip("\n")))

    def heading(self, title: str, intro: str) -> None:
        self._flush()
        self.sections.append((f"s{len(self.sections) + 1}", title, [html.para(intro)] if intro else []))

    def say(self, text: str) -> None:
        self._flush()
        if self.sections:
            shown = text.strip().replace(_REPO, "\u2026")
            self.sections[-1][2].append(html.pre(shown, "cmd" if text.startswith("$ ") else None))

    def picture(self, svg_text: str, caption: str) -> None:
        self._flush()
        if self.sections:  # paths shown relative to the checkout, as in the commands
            self.sections[-1][2].append(html.figure(svg_text.replace(_REPO, "\u2026"), caption))

    def render(self) -> str:
        self._flush()
        return html.page(
            "lkm demo: the Linux Loadable Kernel Module HOWTO, section 10",
            "How a module gets into the kernel, in two designs: Linux 2.4, where insmod links the module in "
            "user space against the symbols the kernel reports and the kernel keeps a table of modules; and "
            "today's kernels, which read, check, lay out and link the .ko file themselves. Every command "
            "below ran on a fresh model kernel (lkm's SQLite kernel) when this page was written; hover the "
            "pictures for details.",
            [(i, t, "".join(b)) for i, t, b in self.sections],
        )


class _Steps:
    """--json: the walk's steps, each written as one ``demo-step`` JSON line once the next
    one starts (stdout is redirected to ``sink`` meanwhile)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.sink = io.StringIO()
        self.part = ""
        self.count = 0
        self.step: dict[str, Any] | None = None

    def flush(self) -> None:
        text = self.sink.getvalue()
        self.sink.seek(0)
        self.sink.truncate()
        if self.step is None:
            return
        self.step["output"] += text
        self.out.write(json_line("demo-step", **self.step))
        self.out.flush()
        self.step = None

    def heading(self, title: str) -> None:
        self.flush()
        self.part = title

    def begin(self, command: str, note: str) -> None:
        self.flush()
        self.count += 1
        self.step = {"step": self.count, "part": self.part, "command": command, "note": note or None,
                     "status": 0, "outcome": "ok", "output": "", "modules": None}  # fmt: skip

    def ended(self, status: int, state: str | None) -> None:
        """The current step's command returned ``status``; ``state``: its model kernel."""
        if self.step is None:
            return
        self.step["status"] = status
        self.step["outcome"] = "ok" if status == 0 else "failed"
        if state is not None and os.path.exists(state):
            k = ModelKernel(state)
            try:
                self.step["modules"] = [loaded_module(m) for m in k.modules()]
            finally:
                k.close()


_PAGE: _Page | None = None
_STEPS: _Steps | None = None

INTROS = {
    "2.4": "insmod asks the kernel for its symbols (query_module), links the object at the address "
    "create_module returned, and hands the finished image to init_module. The kernel only keeps the table: "
    "who uses whom, the use counts, the exported symbols.",
    "6.1": "finit_module gives the kernel the file itself: it checks the ELF, lays the sections out in its "
    "regions (core and init in 6.1), resolves the imports against its own exports and those of loaded "
    "modules (GPL-only and namespaced ones included), relocates, and runs the init function.",
}


def _say(text: str, note: str = "") -> None:
    if _STEPS is not None:
        if text.startswith("== "):
            _STEPS.heading(text.strip("= "))
        else:
            _STEPS.begin(text[2:] if text.startswith("$ ") else text, note)
        return
    if _PAGE is not None:
        text = f"{text}   # {note}" if note else text
        if text.startswith("== "):
            title = text.strip("= ")
            _PAGE.heading(
                title,
                INTROS["2.4" if "2.4" in title else "6.1" if "Today" in title else ""]
                if ("2.4" in title or "Today" in title)
                else "",
            )
        else:
            _PAGE.say(text)
        return
    text = f"{text}   # {note}" if note else text
    # bold headings only on a terminal, and never with NO_COLOR set (no-color.org)
    color = not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    sys.stdout.write(f"\n\033[1m{text}\033[0m\n" if color else f"\n{text}\n")
    sys.stdout.flush()


def _picture(argv: list[str], caption: str) -> None:
    """--html only: run an lkm command that writes an SVG (its --svg argument last) and put it in."""
    if _PAGE is None:
        return

    with tempfile.TemporaryDirectory(prefix="lkm-pic-") as d:
        out = os.path.join(d, "picture.svg")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = main(["lkm", *argv, out])
        if rc == 0 and os.path.exists(out):
            with open(out, encoding="utf-8") as f:
                _PAGE.picture(f.read(), caption)
        else:
            _PAGE.say(f"(no picture: {buf.getvalue().strip()})")


def _run(argv: list[str], note: str = "", head: int | None = None) -> int:
    shown = " ".join(shlex.quote(a.replace(str(MODULES) + os.sep, "")) for a in argv)
    _say(f"$ lkm {shown}", note)
    rc = _command(argv, head)
    if _STEPS is not None:
        _STEPS.ended(rc, argv[argv.index("--state") + 1] if "--state" in argv else None)
    return rc


def _command(argv: list[str], head: int | None) -> int:
    if head is None:
        with contextlib.redirect_stderr(sys.stdout):
            return main(["lkm", *argv])
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
    k = ModelKernel(state)
    sym = next(s for s in k.module_symbols("export")[0][1] if "_S.bss_" in s.name)
    value = int(struct.unpack("<i", k.read_memory(sym.address or 0, 4))[0])
    k.close()
    return value


TOOL = Tool(
    "demo",
    "a guided run of the HOWTO's section 10 on a model kernel",
    usage=["[--html OUT.html | --json]"],
    description="Colours only on a terminal, and never with NO_COLOR set.",
    options=[
        Opt("", "html", "FILE", "also write the walk as a self-contained page", complete="file"),
        Opt(
            "",
            "json",
            None,
            "each step as one JSON line (schema lkm/1, kind demo-step):\n"
            "command, status, outcome, output, the modules loaded",
        ),
    ],
)


def run(prog: str, args: list[str]) -> int:
    global _PAGE, _STEPS
    if args[:1] in (["-h"], ["--help"], ["-V"], ["--version"]):
        TOOL.parse(prog, args[:1])  # prints the help or version, raises Exit
    if args and not (len(args) == 2 and args[0] == "--html") and args != ["--json"]:
        sys.stderr.write(f"Usage: {prog} [--html OUT.html | --json]\n")
        return 0 if args in (["-h"], ["--help"]) else 1
    if not args:
        return _walk()
    if args == ["--json"]:
        _STEPS = _Steps(sys.stdout)
        try:
            with contextlib.redirect_stdout(_STEPS.sink):
                rc = _walk()
            _STEPS.flush()
        finally:
            _STEPS = None
        return rc
    _PAGE = _Page()
    try:
        with contextlib.redirect_stdout(_PAGE.sink):
            rc = _walk()
        text = _PAGE.render()
    finally:
        _PAGE = None

    try:
        write_atomic(args[1], text.encode("utf-8"))
    except OSError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc.filename or args[1]}: {exc.strerror}\n")
        return 1
    return rc


def _walk() -> int:
    f24 = f6 = MODULES
    with tempfile.TemporaryDirectory(prefix="lkm-demo-") as tmp:
        state = os.path.join(tmp, "kernel24.db")
        st = ["--state", state]
        _say("== The 2.4 design (HOWTO 10): insmod links, the kernel keeps the module table ==")
        _run(
            ["model", "boot", "linux-2.4-i386", *st], "a fresh model kernel: 2.4.20 i386, CONFIG_MODVERSIONS"
        )
        _run(["insmod", *st, str(f24 / "fat24.o")], "the exporter (fat.o's stand-in)")
        ks = os.path.join(tmp, "ksyms24")
        if _PAGE is not None:  # /proc/ksyms as msdos24's insmod sees it, for its picture
            with open(ks, "w") as f:
                f.write(_ksyms_of(state))
        _run(["insmod", *st, "-m", str(f24 / "msdos24.o"), "codepage=850"],
             "the importer links against fat24's exports; -m prints the load map", head=24)  # fmt: skip
        _picture(
            ["proc", *st, "memory", "--svg"],
            "HOWTO 10.7: the vmalloc area with fat24 and msdos24, and each "
            "module's single image (sections from insmod's __insmod_* ksymoops symbols)",
        )
        _picture(
            ["link", str(f24 / "msdos24.o"), "--kernel", ks, "--svg"],
            "msdos24.o as insmod links it "
            "(lkm link --layout linux-2.4): one image, struct module (.this) first, the ksymoops symbols "
            "marked, "
            "relocations as a strip",
        )
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
            ["insmod", *st, "-e", "", str(MODULES / "hello24.o"), "sticky=42"],
            "persistent parameter (type 'ip')",
        )
        _run(["rmmod", *st, "-v", "hello24"], "rmmod saves it before unloading")
        persist = Path(tmp) / "persist" / "hello24.o"
        _say(f"$ cat {persist.name}", "the persist file, modutils' format")
        sys.stdout.write(persist.read_text())
        _run(["insmod", *st, "-e", "", str(MODULES / "hello24.o")], "insmod -e restores it")
        sys.stdout.write(f"sticky in kernel memory after the reload: {_sticky(state)}\n")
        _run(["rmmod", *st, "msdos24", "fat24"], "now both go")
        _picture(
            ["proc", *st, "memory", "--svg"],
            "after the unloads: holes where the modules were, first fit will reuse them",
        )
        _run(["proc", *st, "vmallocinfo"], "HOWTO 10.7: module memory, page-granular with guard pages")
        _run(["model", "check", *st], "integrity of the state: refs, memory, symbols")

        state6 = os.path.join(tmp, "kernel61.db")
        st6 = ["--state", state6]
        _say("== Today's design: the kernel reads, checks, lays out and links the file itself ==")
        _run(["model", "boot", "linux-6.1-amd64", *st6], "Debian's 6.1 amd64 exports, addresses and CRCs")
        _run(
            ["insmod", *st6, str(MODULES / "exporter.ko")],
            "finit_module: layout, resolution, relocation in the kernel",
        )
        _run(
            ["insmod", *st6, str(MODULES / "importer.ko")],
            "binds the exporter's plain, GPL-only and namespaced symbols",
        )
        _picture(
            ["proc", *st6, "memory", "--svg"],
            "6.1's core and init regions of each module, page-aligned "
            "text | rodata | data (STRICT_MODULE_RWX); init was freed after init ran in the real kernel",
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
        if _PAGE is not None:
            _extras(tmp, f6)
    return 0


def _ksyms_of(state: str) -> str:
    k = ModelKernel(state)
    try:
        return proc_ksyms(k)
    finally:
        k.close()


def _extras(tmp: str, f6: Path) -> None:
    """--html: the pictures beyond the terminal walk-through: a module tree's dependency
    graph and lkm why, the 6.12 regions, a crash graph."""
    assert _PAGE is not None
    _PAGE.heading(
        "Dependencies: modules.dep, modprobe and why",
        "depmod records which module needs which "
        "(modules.dep, from the symbols each imports); modprobe loads the dependencies first. A small "
        "tree with the exporter and the importer:",
    )
    rel = "6.1.0-56-amd64"  # the fixtures' vermagic
    d = os.path.join(tmp, "root", "lib", "modules", rel, "kernel")
    os.makedirs(d)
    for n in ("exporter.ko", "importer.ko", "chardev.ko", "params.ko"):
        shutil.copy(f6 / n, d)
    root = os.path.join(tmp, "root")
    for n in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        with open(os.path.join(d, "..", n), "w") as f:
            f.write(
                "".join(f"kernel/{m}\n" for m in ("exporter.ko", "importer.ko", "chardev.ko", "params.ko"))
                if n == "modules.order"
                else ""
            )
    conf = os.path.join(tmp, "modprobe.d")
    os.makedirs(conf)
    with open(os.path.join(conf, "demo.conf"), "w") as f:
        f.write("softdep importer post: chardev\noptions params intval=7\nblacklist params\n")
    _run(["depmod", "-b", root, rel], "modules.dep and the indexes")
    with open(os.path.join(root, "lib", "modules", rel, "modules.dep")) as f:
        _say("$ cat modules.dep")
        sys.stdout.write(f.read())
    mp = ["modprobe", "-d", root, "-S", rel, "-C", conf]
    _run([*mp, "--show-depends", "importer"], "what modprobe would do")
    _picture(
        [*mp, "-D", "importer", "--svg"],
        "importer's dependency graph: what it needs (modules.dep), its "
        "softdep, its aliases; Graphviz lays it out when dot is installed",
    )
    _run(["why", "-d", root, "-S", rel, "-C", conf, "exporter"], "why exporter would be loaded")
    _run(["why", "-d", root, "-S", rel, "-C", conf, "-b", "params"], "and why params would not (udev's -b)")
    _PAGE.heading(
        "Linux 6.12's regions",
        "6.12 allocates each kind of memory separately (mod_mem: text, data, "
        "rodata, ro_after_init and their init counterparts), each with its own permissions.",
    )
    ks = os.path.join(tmp, "kallsyms")

    names = sorted({n.name for n in ModuleFile.open(f6 / "chardev.ko").needed})
    with open(ks, "w") as f:
        f.write("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    _picture(
        [
            "link",
            str(f6 / "chardev.ko"),
            "--kernel",
            ks,
            "--layout",
            "linux-6.12",
            "--base",
            "0xffffffffc0000000",
            "--svg",
        ],
        "chardev.ko linked as 6.12 lays it out (lkm link --svg)",
    )
    _PAGE.heading(
        "When it crashes",
        "A module's NULL pointer dereference in a Debian 6.1 guest, its call chain: "
        "the module's frames on their own colour, frames the unwinder was unsure of (?) dashed.",
    )
    report = MODULES / "vm-6.1-null.txt"  # a real 6.1 guest's report (tests/data/oops)
    if report.is_file():
        doc, _notes = decode_text(
            report.read_text(), Inputs(None, None, None, None, None, None, None, None), "json"
        )
        for i, r in enumerate(json.loads(doc)["reports"][:1]):
            frames = [f for f in crash_frames(r) if isinstance(f, CrashFrame)]
            _PAGE.picture(
                crash_svg(frames, str(r.get("title")), i), "lkm ksymoops --html draws this for every report"
            )

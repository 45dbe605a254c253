"""``lkm proc FILE``: a model kernel's /proc files (modules, ksyms, kallsyms, vmallocinfo) in
the formats of the kernel it models; without a model kernel, the running system's file.

``lkm proc [--model|--state S] memory [--svg OUT] [--snapshot DIR | --sections FILE] [MODULE...]``
shows where the modules are in memory: each loaded module's sections (the model kernel's, or
/sys/module/*/sections of the running kernel, or a snapshot's sections.txt / a file of
``MODULE SECTION ADDRESS`` lines) and, for a model kernel, its module memory pools; --svg draws
them (lkm.draw.memmap).  Section sizes a kernel does not show are estimated (``~``) up to the
next section.
"""

from __future__ import annotations

import os
import re
import sys

from lkm.cli.backend import split_backend
from lkm.cli.getopt import UsageError, parse
from lkm.cli.jsonout import hexaddr, kallsyms_lines, kernel_symbol, line, loaded_module
from lkm.cli.ksyms import json_ksyms
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.draw.memmap import Marker, map_of_sections, memmap_svg, occupancy_svg, stack_svg
from lkm.errors import LkmError
from lkm.kernel import open_kernel
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.procfs import PROC_FILES
from lkm.link.output import write_atomic
from lkm.oops.modmap import parse_sections
from lkm.safeio import read_text
from lkm.symbols.sources import parse_ksyms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.draw.memmap import Marker, MemoryMap

__all__ = ["TOOL", "USAGE", "run"]


TOOL = Tool(
    "proc",
    "a model kernel's /proc files: modules, ksyms, kallsyms, vmallocinfo",
    usage=[
        "[--model | --state FILE] modules|ksyms|kallsyms|vmallocinfo",
        "[--model | --state FILE] memory [--svg OUT] [--snapshot DIR | --sections FILE] [MODULE...]",
    ],
    description="Without a model kernel, the running system's file.",
    options=[
        *BACKEND,
        Opt(
            "",
            "json",
            None,
            "JSON Lines (schema lkm/1): modules as lsmod --json, symbol,\nvmalloc-area and section documents",
        ),
        Opt("", "svg", "FILE", "memory: draw the module memory map (SVG)", complete="file"),
        Opt("", "snapshot", "DIR", "memory: a captured machine"),
        Opt(
            "",
            "sections",
            "FILE",
            "memory: module sections ('MODULE SECTION ADDRESS' lines)",
            complete="file",
        ),
    ],
)
USAGE = (
    "Usage: lkm proc [--model | --state PATH] modules|ksyms|kallsyms|vmallocinfo\n"
    "       lkm proc [--model | --state PATH] memory [--svg OUT] [--snapshot DIR | --sections FILE]"
    " [MODULE...]\n"
)


def run(prog: str, args: list[str]) -> int:
    model, state, args = split_backend(args)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if args[:1] in (["-h"], ["--help"], ["-V"], ["--version"]):
        TOOL.parse(prog, args[:1])  # prints the help or version, raises Exit
    if args[:1] == ["memory"]:
        return _memory(prog, model, state, args[1:] + (["--json"] if as_json else []))
    if len(args) != 1 or args[0] not in PROC_FILES:
        sys.stderr.write(USAGE)
        return 0 if args in (["-h"], ["--help"]) else 1
    try:
        if as_json:
            text = _json(args[0], model, state)
        elif model:
            text = PROC_FILES[args[0]](ModelKernel(state))
        else:
            with open(f"/proc/{args[0]}", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except (LkmError, OSError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    sys.stdout.write(text)
    return 0


def _memory(prog: str, model: bool, state: str | None, args: list[str]) -> int:
    try:
        opts, names = parse(args, "h", ["svg=", "snapshot=", "sections=", "help", "json"])
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{USAGE}")
        return 1
    o = dict(opts)
    if "-h" in o or "--help" in o:
        sys.stdout.write(__doc__ or "")
        return 0
    try:
        maps, pools = _collect(model, state, o.get("--snapshot"), o.get("--sections"), names)
        if "--svg" in o:
            docs = ([pools] if pools else []) + [memmap_svg(m) for m in maps]
            if not docs:
                raise LkmError("no module sections found (no modules loaded, or no /sys/module/*/sections)")
            write_atomic(o["--svg"], stack_svg(docs, "module memory").encode("utf-8"))
            return 0
    except (LkmError, OSError) as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    out: list[str] = []
    if "--json" in o:
        for m in maps:
            out.extend(
                line("section", module=m.module, name=s.name, address=hexaddr(s.address), size=s.size,
                     estimated=s.estimated, perm=s.perm)
                for s in m.sections
            )  # fmt: skip
        sys.stdout.write("".join(out))
        return 0
    for m in maps:
        for s in m.sections:
            size = f"{'~' if s.estimated else ''}{s.size:#x}"
            out.append(f"{m.module:<20} {s.name:<28} {s.address:#018x} {size:>9} {s.perm}\n")
    sys.stdout.write("".join(out))
    return 0


def _json(name: str, model: bool, state: str | None) -> str:
    """``lkm proc --json FILE``: the model kernel's (or this system's) file as JSON Lines."""
    if model:
        k = ModelKernel(state)
        if name == "modules":
            return "".join(line("lsmod", **loaded_module(m)) for m in k.modules())
        if name == "ksyms":
            return json_ksyms(k, all_symbols=True)
        if name == "kallsyms":
            return kallsyms_lines(k.kallsyms())
        out = []
        for a in k.areas():
            caller = "module_alloc" if a.pool == "vmalloc" else f"kmalloc-{a.span}"
            start, end = hexaddr(a.start), hexaddr(a.start + a.span)
            out.append(line("vmalloc-area", start=start, end=end, size=a.span, caller=caller, module=a.module,
                            region=a.region, pool=a.pool))  # fmt: skip
        return "".join(out)
    if name == "modules":
        return "".join(line("lsmod", **loaded_module(m)) for m in open_kernel().modules())

    text = read_text(f"/proc/{name}")
    if name == "kallsyms":
        return kallsyms_lines(text)
    if name == "ksyms":
        return "".join(line("symbol", **kernel_symbol(s)) for s in parse_ksyms(text, path="/proc/ksyms"))
    out = []
    for row in text.splitlines():  # /proc/vmallocinfo: "0xSTART-0xEND SIZE CALLER ..."
        f = row.split(None, 2)
        start, dash, end = f[0].partition("-") if f else ("", "", "")
        if len(f) < 2 or not dash or not f[1].isdigit():
            continue
        span = {"start": hexaddr(int(start, 16)), "end": hexaddr(int(end, 16)), "size": int(f[1])}
        caller = f[2] if len(f) > 2 else ""
        out.append(line("vmalloc-area", **span, caller=caller, module=None, region=None, pool=None))
    return "".join(out)


def _collect(
    model: bool, state: str | None, snapshot: str | None, sections_file: str | None, names: list[str]
) -> tuple[list[MemoryMap], str | None]:
    maps: list[MemoryMap] = []
    pools = None
    table: dict[str, dict[str, int]] = {}
    if model:
        k = ModelKernel(state)
        for lm in reversed(k.modules()):
            if names and lm.name not in names:
                continue
            info = k._info(lm.name)
            regions = {r: (int(b), int(a)) for r, (b, a) in dict(info.get("regions", {})).items()}  # type: ignore[call-overload]
            sizes = {str(n): int(v) for n, v in dict(info.get("sizes", {})).items()}  # type: ignore[call-overload]
            secs = k.sections(lm.name)
            marks: list[Marker] = []
            if not secs:  # 2.4 keeps no sections: insmod's ksymoops symbols name them
                secs, sizes, marks = _ksymoops_sections(k, lm.name)
                area = next((a for a in k.areas() if a.module == lm.name), None)
                if area is not None:
                    regions = {
                        "image": (area.start, area.span - (k.page_size if area.pool == "vmalloc" else 0))
                    }
            m = map_of_sections(lm.name, secs, sizes or None, k.page_size, regions or None)
            m.markers = marks
            maps.append(m)
        pools = occupancy_svg(k.arenas, k.areas(), {p: k.fragmentation(p) for p in k.arenas}, k.page_size)
        return maps, pools
    if snapshot is not None or sections_file is not None:
        path = os.path.join(snapshot, "sections.txt") if snapshot is not None else str(sections_file)
        try:
            table = parse_sections(read_text(path))
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=path) from None
    else:
        base = "/sys/module"
        for mod in sorted(os.listdir(base)):
            d = os.path.join(base, mod, "sections")
            if not os.path.isdir(d):
                continue
            secs = {}
            for s in os.listdir(d):
                try:
                    with open(os.path.join(d, s)) as f:
                        secs[s] = int(f.read().strip(), 16)
                except (OSError, ValueError):
                    continue
            table[mod] = secs
        if table and not any(a for secs in table.values() for a in secs.values()):
            raise LkmError("section addresses read as 0 (run as root, or kptr_restrict)", path=base)
    for mod, secs in sorted(table.items()):
        if not names or mod in names:
            maps.append(map_of_sections(mod, secs))
    return maps, pools


def _ksymoops_sections(k: object, name: str) -> tuple[dict[str, int], dict[str, int], list[Marker]]:
    """A 2.4 module's sections from insmod's ``__insmod_NAME_S<section>_L<length>`` symbols."""

    assert isinstance(k, ModelKernel)
    secs: dict[str, int] = {}
    sizes: dict[str, int] = {}
    marks: list[Marker] = []
    for mod, syms in k.module_symbols("export"):
        if mod != name:
            continue
        for s in syms:
            if not s.name.startswith("__insmod_"):
                continue
            marks.append(Marker(s.name, s.address or 0, "insmod"))
            m = re.match(rf"__insmod_{re.escape(name)}_S(.+)_L(\d+)$", s.name)
            if m and s.address:
                secs[m.group(1)] = s.address
                sizes[m.group(1)] = int(m.group(2))
    return secs, sizes, marks

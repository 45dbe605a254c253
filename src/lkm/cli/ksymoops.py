"""``lkm ksymoops [OPTIONS] [REPORT|-]``: decode kernel oops reports.

ksymoops' options where they still mean something: -k kallsyms (or a 2.4 /proc/ksyms),
-l /proc/modules, -m System.map, -o directory of module files, -v vmlinux (debug info);
-K -L -M -O -V turn a source off.  Added: -s sections snapshot (``MODULE SECTION ADDRESS``
lines; default: /sys/module/*/sections when -l is the live /proc/modules), --offset KASLR
offset (default: the report's "Kernel Offset" line), --debug-root DIR (separate debug files),
--format ksymoops|decode-stacktrace|json.  The work is :func:`lkm.oops.inputs.decode_text`.
"""

from __future__ import annotations

import sys

from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.oops.inputs import FORMATS, Inputs, decode_text, read_text

TOOL = Tool(
    "ksymoops",
    "decode kernel oops reports: symbols, source lines, disassembly",
    usage=["[options] [REPORT|-]"],
    usage_status=2,
    description="ksymoops' options where they still mean something; upper case turns a source off.",
    options=[
        Opt("k", "", "FILE", "/proc/kallsyms (or 2.4 /proc/ksyms) of the kernel", complete="file"),
        Opt("K", "", None, "no kallsyms"),
        Opt("l", "", "FILE", "/proc/modules of the kernel", complete="file"),
        Opt("L", "", None, "no /proc/modules"),
        Opt("s", "", "FILE", "module sections: 'MODULE SECTION ADDRESS' lines", complete="file"),
        Opt("m", "", "FILE", "System.map", complete="file"),
        Opt("M", "", None, "no System.map"),
        Opt("o", "", "DIR", "directory holding the module files (.ko, .ko.xz...)", complete="dir"),
        Opt("O", "", None, "no module files"),
        Opt("v", "", "FILE", "vmlinux with debug information", complete="file"),
        Opt("V", "", None, "no vmlinux"),
        Opt(
            "",
            "debug-root",
            "DIR",
            "separate debug files (build-id and -dbg layouts;\ndefault /usr/lib/debug)",
            own=True,
        ),
        Opt("", "offset", "HEX", "KASLR offset (default: from the report)", own=True),
        Opt(
            "",
            "format",
            "FORMAT",
            "ksymoops, decode-stacktrace (default) or json",
            own=True,
            complete="ksymoops decode-stacktrace json",
        ),
    ],
)


def run(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    src: dict[str, str | None] = {"k": None, "l": None, "m": None, "o": None, "v": None, "s": None, "d": None}
    fmt = "decode-stacktrace"
    offset: int | None = None
    for flag, val in opts:
        if flag == "--format":
            if val not in FORMATS:
                sys.stderr.write(f"{prog}: unknown format '{val}' (known: {', '.join(FORMATS)})\n")
                return 2
            fmt = val
        elif flag == "--offset":
            try:
                offset = int(val, 16)
            except ValueError:
                sys.stderr.write(f"{prog}: bad offset '{val}'\n")
                return 2
        elif flag == "--debug-root":
            src["d"] = val
        elif flag[1].islower():
            src[flag[1]] = val
        else:
            src[flag[1].lower()] = ""  # upper case: that source is off
    if len(operands) > 1:
        sys.stderr.write(f"{prog}: one report at a time\n{TOOL.help(prog)}")
        return 2
    try:
        text = read_text(operands[0] if operands else "-")
        inputs = Inputs(src["k"] or None, src["l"] or None, src["s"] or None, src["m"] or None,
                        src["o"] or None, src["v"] or None, src["d"] or None, offset)  # fmt: skip
        out, notes = decode_text(text, inputs, fmt)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    sys.stdout.write(out)
    for n in dict.fromkeys(notes):
        sys.stderr.write(f"{prog}: warning: {n}\n")
    return 1 if notes else 0

"""``lkm ksymoops [OPTIONS] [REPORT|-]``: decode kernel oops reports.

ksymoops' options where they still mean something: -k kallsyms (or a 2.4 /proc/ksyms),
-l /proc/modules, -m System.map, -o directory of module files, -v vmlinux (debug info);
-K -L -M -O -V turn a source off.  Added: -s sections snapshot (``MODULE SECTION ADDRESS``
lines; default: /sys/module/*/sections when -l is the live /proc/modules), --offset KASLR
offset (default: the report's "Kernel Offset" line), --debug-root DIR (separate debug files),
--format ksymoops|decode-stacktrace|json.  The work is :func:`lkm.oops.inputs.decode_text`.

Exit status: 0 when the input was decoded (what could not be improved is said on stderr as
warnings), 2 for a usage error or an unreadable input or symbol file, 3 when the input holds
no report at all (the output is then the input, unchanged).
"""

from __future__ import annotations

import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError
from lkm.oops.inputs import FORMATS, Inputs, decode_text, read_text

HELP = """Usage: lkm ksymoops [OPTIONS] [REPORT|-]
       lkm ksymoops [--format F] -r RELEASE | VMLINUX [BASE_PATH|auto [MODULES_PATH]]  < REPORT
         (decode_stacktrace.sh's form: the report on stdin)
  -k FILE  /proc/kallsyms (or 2.4 /proc/ksyms) of the kernel   (-K: none)
  -l FILE  /proc/modules of the kernel                         (-L: none)
  -s FILE  module sections: 'MODULE SECTION ADDRESS' lines
  -m FILE  System.map                                           (-M: none)
  -o DIR   directory holding the module files (.ko, .ko.xz...)  (-O: none)
  -v FILE  vmlinux with debug information                       (-V: none)
  --debug-root DIR  separate debug files (build-id and -dbg layouts; default /usr/lib/debug)
  --offset HEX   KASLR offset (default: from the report)
  --debuginfod URL  fetch module debug files by build id (default: $DEBUGINFOD_URLS)
  --format ksymoops|decode-stacktrace|json   (default decode-stacktrace)
Exit status: 0 decoded (warnings on stderr), 2 usage error or unreadable file, 3 no report found.
"""


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = parse(
            args, "hk:Kl:Lm:Mo:Ov:Vs:r:", ["help", "format=", "offset=", "debug-root=", "debuginfod="]
        )
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{HELP}")
        return 2
    src: dict[str, str | None] = dict.fromkeys(("k", "l", "m", "o", "v", "s", "d", "i"))
    fmt = "decode-stacktrace"
    offset: int | None = None
    release: str | None = None
    for flag, val in opts:
        if flag in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
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
        elif flag == "--debuginfod":
            src["i"] = val
        elif flag == "-r":
            release = val
        elif flag[1].islower():
            src[flag[1]] = val
        else:
            src[flag[1].lower()] = ""  # upper case: that source is off
    if release is not None or (operands and _is_elf(operands[0])):
        # decode_stacktrace.sh: vmlinux [base_path|auto [modules_path]] or -r release; report on stdin
        if release is not None:
            import os

            from lkm.oops.lines import find_debug_file

            vmlinux = find_debug_file(release=release) or f"/lib/modules/{release}/build/vmlinux"
            src["v"], src["o"] = vmlinux, f"/lib/modules/{release}"
            if not os.path.isfile(vmlinux):
                sys.stderr.write(f"{prog}: no vmlinux with debug information for {release}\n")
                return 2
        else:
            src["v"] = operands[0]
            rest = operands[1:]
            if len(rest) >= 2:
                src["o"] = rest[1]
            elif len(rest) == 1 and rest[0] != "auto":
                src["o"] = rest[0]  # as decode_stacktrace.sh: modules are searched below the base
        operands = ["-"]
    if len(operands) > 1:
        sys.stderr.write(f"{prog}: one report at a time\n{HELP}")
        return 2
    try:
        text = read_text(operands[0] if operands else "-")
        inputs = Inputs(src["k"] or None, src["l"] or None, src["s"] or None, src["m"] or None,
                        src["o"] or None, src["v"] or None, src["d"] or None, offset, src["i"])  # fmt: skip
        out, notes = decode_text(text, inputs, fmt)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    sys.stdout.write(out)
    for n in dict.fromkeys(notes):
        sys.stderr.write(f"{prog}: warning: {n}\n")
    from lkm.oops.report import parse as parse_log

    return 0 if parse_log(text).reports else 3

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

import json
import os
import sys

from lkm.cli.tool import Opt, Tool
from lkm.draw import html
from lkm.draw.crash import CrashFrame, crash_svg
from lkm.errors import LkmError
from lkm.link.output import write_atomic
from lkm.oops.inputs import FORMATS, Inputs, decode_text, read_text
from lkm.oops.lines import find_debug_file
from lkm.oops.report import parse as parse_log
from lkm.safeio import open_regular

__all__ = ["TOOL", "crash_frames", "crash_page", "run"]


TOOL = Tool(
    "ksymoops",
    "decode kernel oops reports: symbols, source lines, disassembly",
    usage=[
        "[options] [REPORT|-]",
        "[--format F] -r RELEASE | VMLINUX [BASE_PATH|auto [MODULES_PATH]]  < REPORT"
        "   (decode_stacktrace.sh's form)",
    ],
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
        Opt("r", "", "RELEASE", "decode_stacktrace.sh's -r: the release's vmlinux and modules", own=True),
        Opt(
            "",
            "debuginfod",
            "URL",
            "fetch module debug files by build id (default: $DEBUGINFOD_URLS)",
            own=True,
        ),
        Opt(
            "",
            "format",
            "FORMAT",
            "ksymoops, decode-stacktrace (default) or json",
            own=True,
            complete="ksymoops decode-stacktrace json",
        ),
        Opt("", "json", None, "same as --format json (schema lkm/1)", own=True),
        Opt(
            "",
            "html",
            "FILE",
            "also write a self-contained page: the decoded text and each report's call\n"
            "chain as a graph (module boundaries coloured, inlined frames nested, ? dashed)",
            own=True,
            complete="file",
        ),
    ],
)


def _is_elf(path: str) -> bool:
    try:
        fd, _st = open_regular(path)  # a FIFO or device is not an ELF file (and never blocks)
    except OSError:
        return False
    try:
        return os.pread(fd, 4, 0) == b"\x7fELF"
    except OSError:
        return False
    finally:
        os.close(fd)


def run(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    src: dict[str, str | None] = dict.fromkeys(("k", "l", "m", "o", "v", "s", "d", "i"))
    fmt = "decode-stacktrace"
    offset: int | None = None
    release: str | None = None
    html: str | None = None
    for flag, val in opts:
        if flag == "--json":
            fmt = "json"
        elif flag == "--format":
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
        elif flag == "--html":
            html = val
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
        sys.stderr.write(f"{prog}: one report at a time\n{TOOL.help(prog)}")
        return 2
    try:
        text = read_text(operands[0] if operands else "-")
        inputs = Inputs(src["k"] or None, src["l"] or None, src["s"] or None, src["m"] or None,
                        src["o"] or None, src["v"] or None, src["d"] or None, offset, src["i"])  # fmt: skip
        out, notes = decode_text(text, inputs, fmt)
        if html is not None:
            doc, _ = decode_text(text, inputs, "json")
            write_atomic(html, crash_page(operands[0] if operands else "stdin", out, doc).encode("utf-8"))
    except OSError as exc:
        sys.stderr.write(f"{prog}: {exc.filename}: {exc.strerror}\n")
        return 2
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    sys.stdout.write(out)
    for n in dict.fromkeys(notes):
        sys.stderr.write(f"{prog}: warning: {n}\n")

    return 0 if parse_log(text).reports else 3


def crash_frames(report: dict[str, object]) -> list[object]:
    """A decoded report's frames (``--format json``) as :class:`lkm.draw.crash.CrashFrame`s:
    each frame's inlined functions (its source lines but the last) before it."""

    def num(v: object) -> int | None:  # schema lkm/1 gives addresses and offsets as hex strings
        if isinstance(v, str):
            return int(v, 16)
        return v if isinstance(v, int) else None

    out: list[object] = []
    for f in report.get("frames", []):  # type: ignore[attr-defined]
        srcs = f.get("sources") or []
        loc = [f"{s['file'] or '??'}:{s['line']}" for s in srcs]
        for s, where in zip(srcs[:-1], loc[:-1], strict=False):
            out.append(
                CrashFrame(
                    s["function"] or "??",
                    module=f.get("module"),
                    inline=True,
                    location=where,
                    reliable=bool(f.get("reliable", True)),
                )
            )
        resolved = num(f.get("resolved_address"))
        name = f.get("symbol") or (f"{resolved:#x}" if resolved else "??")
        out.append(
            CrashFrame(
                name,
                num(f.get("offset")),
                f.get("module"),
                False,
                bool(f.get("reliable", True)),
                loc[-1] if loc else None,
                num(f.get("size")),
                resolved or num(f.get("address")),
                bool(f.get("pc")),
            )
        )
    return out


def crash_page(source: str, decoded_text: str, json_doc: str) -> str:
    """The --html page: per report, its call-chain graph; then the decoded text."""

    doc = json.loads(json_doc)
    sections = []
    for i, r in enumerate(doc.get("reports", [])):
        frames = [f for f in crash_frames(r) if isinstance(f, CrashFrame)]
        title = str(r.get("title") or r.get("kind") or f"report {i + 1}")
        body = html.figure(crash_svg(frames, title, i), "hover a frame for its address and source lines")
        sections.append((f"report-{i + 1}", f"{i + 1}. {title}", body))
    sections.append(("decoded", "Decoded text", html.pre(decoded_text)))

    intro = f"lkm ksymoops on {os.path.basename(source)}: {len(doc.get('reports', []))} report(s)"
    return html.page("Kernel crash report", intro, sections)

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

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError
from lkm.oops.inputs import FORMATS, Inputs, decode_text, read_text

HELP = """Usage: lkm ksymoops [OPTIONS] [REPORT|-]
  -k FILE  /proc/kallsyms (or 2.4 /proc/ksyms) of the kernel   (-K: none)
  -l FILE  /proc/modules of the kernel                         (-L: none)
  -s FILE  module sections: 'MODULE SECTION ADDRESS' lines
  -m FILE  System.map                                           (-M: none)
  -o DIR   directory holding the module files (.ko, .ko.xz...)  (-O: none)
  -v FILE  vmlinux with debug information                       (-V: none)
  --debug-root DIR  separate debug files (build-id and -dbg layouts; default /usr/lib/debug)
  --offset HEX   KASLR offset (default: from the report)
  --format ksymoops|decode-stacktrace|json   (default decode-stacktrace)
  --html FILE    also write a self-contained page: the decoded text and each report's call
                 chain as a graph (module boundaries coloured, inlined frames nested, ? dashed)
"""


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = parse(
            args, "hk:Kl:Lm:Mo:Ov:Vs:", ["help", "format=", "offset=", "debug-root=", "html="]
        )
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{HELP}")
        return 2
    src: dict[str, str | None] = {"k": None, "l": None, "m": None, "o": None, "v": None, "s": None, "d": None}
    fmt = "decode-stacktrace"
    offset: int | None = None
    html: str | None = None
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
        elif flag == "--html":
            html = val
        elif flag == "--debug-root":
            src["d"] = val
        elif flag[1].islower():
            src[flag[1]] = val
        else:
            src[flag[1].lower()] = ""  # upper case: that source is off
    if len(operands) > 1:
        sys.stderr.write(f"{prog}: one report at a time\n{HELP}")
        return 2
    try:
        text = read_text(operands[0] if operands else "-")
        inputs = Inputs(src["k"] or None, src["l"] or None, src["s"] or None, src["m"] or None,
                        src["o"] or None, src["v"] or None, src["d"] or None, offset)  # fmt: skip
        out, notes = decode_text(text, inputs, fmt)
        if html is not None:
            from lkm.link.output import write_atomic

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
    return 1 if notes else 0


def crash_frames(report: dict[str, object]) -> list[object]:
    """A decoded report's frames (``--format json``) as :class:`lkm.draw.crash.CrashFrame`s:
    each frame's inlined functions (its source lines but the last) before it."""
    from lkm.draw.crash import CrashFrame

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
        name = f.get("symbol") or (f"{f['resolved_address']:#x}" if f.get("resolved_address") else "??")
        out.append(
            CrashFrame(
                name,
                f.get("offset"),
                f.get("module"),
                False,
                bool(f.get("reliable", True)),
                loc[-1] if loc else None,
                f.get("size"),
                f.get("resolved_address") or f.get("address"),
                bool(f.get("pc")),
            )
        )
    return out


def crash_page(source: str, decoded_text: str, json_doc: str) -> str:
    """The --html page: per report, its call-chain graph; then the decoded text."""
    import json

    from lkm.draw import html
    from lkm.draw.crash import CrashFrame, crash_svg

    doc = json.loads(json_doc)
    sections = []
    for i, r in enumerate(doc.get("reports", [])):
        frames = [f for f in crash_frames(r) if isinstance(f, CrashFrame)]
        title = str(r.get("title") or r.get("kind") or f"report {i + 1}")
        body = html.figure(crash_svg(frames, title, i), "hover a frame for its address and source lines")
        sections.append((f"report-{i + 1}", f"{i + 1}. {title}", body))
    sections.append(("decoded", "Decoded text", html.pre(decoded_text)))
    import os

    intro = f"lkm ksymoops on {os.path.basename(source)}: {len(doc.get('reports', []))} report(s)"
    return html.page("Kernel crash report", intro, sections)

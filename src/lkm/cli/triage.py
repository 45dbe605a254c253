"""``lkm triage [OPTIONS] LOG|DIR|- ...``: unique crashes of many console logs.

Reads files, directories (recursively), ``-`` (stdin), compressed logs and journal exports;
finds every report, groups them by signature (:mod:`lkm.oops.triage`) and prints a table,
JSON or a single-file HTML page.  ``--symbols-dir DIR`` decodes each crash's representative
report with ``DIR/<release>/`` or ``DIR/<build-id>/`` (kallsyms or System.map, vmlinux,
modules/).  ``--engine dask[=ADDRESS]`` runs the analysis on Dask (a LocalCluster without an
address); the local engine reads many logs with a pool of ``--workers`` processes (default
2), each batch's reports folded as they come (memory: the unique crashes).  Exit status:
0 done, 1 some logs unreadable (said on stderr), 2 usage error.
"""

from __future__ import annotations

import json
import os
import sys

from lkm.cli.jsonout import line
from lkm.cli.tool import Opt, Tool
from lkm.compress import limit
from lkm.errors import LkmError
from lkm.oops import triage

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "triage",
    "unique crashes of many console logs: titles, counts, releases, reports",
    usage=["[options] LOG|DIR|- ..."],
    usage_status=2,
    description="Exit status: 0 done, 1 some logs could not be read, 2 usage error.",
    options=[
        Opt("", "format", "FORMAT", "table (default), json or html", complete="table json html"),
        Opt("", "json", None, "same as --format json (schema lkm/1)"),
        Opt("o", "output", "FILE", "write the output to FILE (written whole, or not at all)"),
        Opt("", "symbols-dir", "DIR", "decode representatives with DIR/<release>/ or DIR/<build-id>/"),
        Opt("", "engine", "ENGINE", "local (default) or dask[=ADDRESS]", complete="local dask"),
        Opt("", "workers", "N", "processes of the local pool or the Dask LocalCluster (default 2)"),
    ],
)


def _json(result: object) -> str:
    """lkm.oops.triage's JSON as a ``"triage"`` document (schema lkm/1)."""

    assert isinstance(result, triage.TriageResult)
    return line("triage", **json.loads(triage.to_json(result)))


def run(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    fmt, out_path, symbols, engine, address, workers = "table", None, None, "local", None, 2
    for flag, val in opts:
        if flag == "--json":
            fmt = "json"
        elif flag == "--format":
            if val not in ("table", "json", "html"):
                sys.stderr.write(f"{prog}: unknown format '{val}' (table, json, html)\n")
                return 2
            fmt = val
        elif flag in ("-o", "--output"):
            out_path = val
        elif flag == "--symbols-dir":
            symbols = val
        elif flag == "--engine":
            engine, _, addr = val.partition("=")
            address = addr or None
            if engine not in ("local", "dask"):
                sys.stderr.write(f"{prog}: unknown engine '{engine}' (local, dask[=ADDRESS])\n")
                return 2
        elif flag == "--workers":
            if not val.isdigit() or int(val) < 1:
                sys.stderr.write(f"{prog}: bad worker count '{val}'\n")
                return 2
            workers = int(val)
    if not operands:
        sys.stderr.write(f"{prog}: no log given\n")
        return 2
    try:
        # bounded: a pipe from /dev/zero is refused at the cap, not read until memory runs out
        stdin_text = sys.stdin.buffer.read(limit() + 1) if "-" in operands else None
        text = triage.decode_log_bytes(stdin_text) if stdin_text is not None else None
        result = triage.triage(operands, engine=engine, address=address, stdin_text=text, workers=workers)
        if symbols:
            for c in result.crashes:
                c.decoded, notes = triage.decode_representative(c, symbols)
                for n in dict.fromkeys(notes):
                    sys.stderr.write(f"{prog}: {c.signature}: {n}\n")
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    doc = {"table": triage.format_table, "json": _json, "html": triage.to_html}[fmt](result)
    if out_path:
        tmp = f"{out_path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(doc)
            os.replace(tmp, out_path)
        except OSError as exc:
            sys.stderr.write(f"{prog}: {out_path}: {exc.strerror}\n")
            return 2
    else:
        sys.stdout.write(doc)
    for e in result.errors:
        sys.stderr.write(f"{prog}: {e}\n")
    return 1 if result.errors else 0

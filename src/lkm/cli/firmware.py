"""``lkm firmware``: the firmware files modules (with their dependencies and soft dependencies)
ask for, found or missing as the kernel's firmware loader searches (:mod:`lkm.firmware`).

    lkm firmware [-b ROOT] [-S RELEASE] [--firmware-root DIR] [--fw-path DIR] [--no-xz] [--no-zstd]
                 [--missing] [--json] MODULE|ALIAS|FILE...
"""

from __future__ import annotations

import os
import sys

from lkm.cli.jsonout import line
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.firmware import firmware_report

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "firmware",
    "firmware files modules ask for, found or missing (initramfs builders' question)",
    usage=["[options] MODULE|ALIAS|FILE..."],
    options=[
        Opt("b", "basedir", "ROOT", "modules under ROOT/lib/modules/RELEASE (default /)", complete="dir"),
        Opt("S", "set-version", "RELEASE", "kernel release instead of `uname -r`"),
        Opt("", "firmware-root", "DIR", "root of the firmware search (default ROOT)", complete="dir"),
        Opt("", "fw-path", "DIR", "firmware_class.path: searched first", complete="dir"),
        Opt("", "no-xz", None, "the kernel was built without CONFIG_FW_LOADER_COMPRESS_XZ"),
        Opt("", "no-zstd", None, "the kernel was built without CONFIG_FW_LOADER_COMPRESS_ZSTD"),
        Opt("", "missing", None, "list only the files not found"),
        Opt("", "json", None, 'JSON Lines: one "firmware" document per file (schema lkm/1)'),
    ],
)


def run(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    o = dict(opts)
    if not operands:
        sys.stderr.write(f"{prog}: no module given\n")
        return 1
    root = o.get("-b", o.get("--basedir", "/"))
    release = o.get("-S", o.get("--set-version", os.uname().release))
    moddir = os.path.join(root, "lib", "modules", release)
    try:
        files, unknown = firmware_report(
            operands, moddir, release, root=o.get("--firmware-root", root), fw_path=o.get("--fw-path", ""),
            zstd="--no-zstd" not in o, xz="--no-xz" not in o,
        )  # fmt: skip
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1
    for u in unknown:
        sys.stderr.write(f"{prog}: WARNING: Module {u} not found in directory {moddir}\n")
    if "--missing" in o:
        files = [f for f in files if f.found is None]
    if "--json" in o:
        sys.stdout.write("".join(line("firmware", **f.as_dict()) for f in files))
    else:
        for f in files:
            where = f.found or ("refused (EINVAL)" if f.errno else "MISSING")
            sys.stdout.write(f"{f.name}\t{where}\t{','.join(f.modules)}\n")
    missing = any(f.found is None for f in files)
    return 2 if missing or unknown else 0

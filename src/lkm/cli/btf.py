"""``lkm btf``: would the kernel accept a module's BTF (kernel/bpf/btf.c btf_parse_module)?

    lkm btf [-B BASE] [--kernel-version 6.1|6.12] [--json] MODULE...

BASE is the running kernel's vmlinux BTF: /sys/kernel/btf/vmlinux (default), a vmlinux ELF, or
a kernel image (its ``.BTF`` is recovered).
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.jsonout import line
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.module.source import read_module
from lkm.safeio import read_bytes
from lkm.trust.btf import base_from_file, check_module_btf, module_btf

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "btf",
    "would the kernel accept a module's BTF (btf_parse_module's checks)",
    usage=["[options] MODULE..."],
    description="BASE is the running kernel's vmlinux BTF: /sys/kernel/btf/vmlinux (default), a vmlinux\n"
    "ELF, or a kernel image (its .BTF is recovered).",
    options=[
        Opt("B", "base-btf", "BASE", "the base BTF (default /sys/kernel/btf/vmlinux)", complete="file"),
        Opt("", "kernel-version", "VERSION", "whose checks: 6.1 (default) or 6.12", complete="6.1 6.12"),
        Opt("", "json", None, 'JSON Lines: one "btf" document per module (schema lkm/1)'),
    ],
)


def run(prog: str, args: list[str]) -> int:
    opts, modules = TOOL.parse(prog, args)
    o = dict(opts)
    if not modules:
        sys.stderr.write(f"{prog}: no module given\n")
        return 1
    base_path = o.get("-B", o.get("--base-btf", "/sys/kernel/btf/vmlinux"))
    kernel = o.get("--kernel-version", "6.1")
    try:
        base = base_from_file(read_bytes(base_path, limit=None))
    except OSError as exc:
        sys.stderr.write(f"{prog}: ERROR: {base_path}: {exc.strerror}\n")
        return 1
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {base_path}: {exc}\n")
        return 1
    rows = []
    status = 0
    for path in modules:
        try:
            raw = module_btf(bytes(read_module(path).data))
        except LkmError as exc:
            sys.stderr.write(f"{prog}: ERROR: {exc if exc.path else f'{path}: {exc}'}\n")
            status = 1
            continue
        name = os.path.basename(path).split(".ko")[0]
        if raw is None:
            rows.append(
                {"module": path, "btf": False, "accepted": True, "errno": 0, "message": "no .BTF section"}
            )
            continue
        v = check_module_btf(raw, base, kernel=kernel)
        if not v.ok:
            status = max(status, 2)
        log = "" if v.ok else f"BPF: {v.message}\nfailed to validate module [{name}] BTF: {-v.errno}"
        rows.append({"module": path, "btf": True, "accepted": v.ok, "types": v.types,
                     "errno": errno.errorcode.get(v.errno, str(v.errno)) if v.errno else 0,
                     "message": v.message, "kernel_log": log})  # fmt: skip
    if "--json" in o:
        sys.stdout.write("".join(line("btf", **r) for r in rows))
    else:
        for r in rows:
            verdict = "ok" if r["accepted"] else f"{r['errno']}: {r['message']}"
            extra = f" ({r['types']} types)" if r.get("types") else ""
            sys.stdout.write(f"{r['module']}: {verdict}{extra}\n")
    return status

"""One JSON for every tool (schema ``lkm/1``, published as ``lkm/data/lkm-1.schema.json``).

Every document is an object with ``"schema": "lkm/1"`` and ``"kind"`` naming what it holds
("lsmod", "modinfo", "model-info", ...).  Addresses are strings of lower-case hex with ``0x``
(JSON numbers above 2^53 are rounded by JavaScript and many JSON tools); sizes and counts are
numbers.  A tool whose output is a stream writes JSON Lines: one such object per line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SCHEMA = "lkm/1"


def hexaddr(value: int | None) -> str | None:
    """An address as JSON carries it: "0xffffffffc0000000" (None stays null)."""
    return None if value is None else f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def document(kind: str, **fields: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "kind": kind, **fields}


def line(kind: str, **fields: Any) -> str:
    """One document as one line of JSON Lines (names that are not UTF-8 stay surrogate escapes,
    written back as their bytes by the CLI's streams)."""
    return json.dumps(document(kind, **fields), ensure_ascii=False) + "\n"


def emit(kind: str, **fields: Any) -> None:
    """Write one document as one line (JSON Lines when called once per item)."""
    sys.stdout.write(line(kind, **fields))


def symbol(
    name: str,
    address: int | None,
    type: str | None = None,
    module: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields of a ``"symbol"`` document (kallsyms, ksyms, /proc lines)."""
    return {"name": name, "address": hexaddr(address), "type": type, "module": module, **extra}


def kernel_symbol(s: Any, module: str | None = None) -> dict[str, Any]:
    """A :class:`lkm.symbols.table.KernelSymbol` as a ``"symbol"`` document's fields."""
    owner = module if module is not None else s.module
    extra = {"exported": s.exported, "gpl_only": s.gpl_only, "crc": s.crc, "namespace": s.namespace}
    return symbol(s.name, s.address, s.type, owner, **extra)


def loaded_module(m: Any) -> dict[str, Any]:
    """A loaded module (:class:`lkm.kernel.interface.LoadedModule`) as an ``"lsmod"`` document's
    fields: /proc/modules' columns."""
    holders = list(m.holders) if m.holders is not None else None
    address = hexaddr(m.address) if m.address else None
    return {"name": m.name, "size": m.size, "refcount": m.refcount, "holders": holders, "state": m.state,
            "address": address}  # fmt: skip


def kallsyms_lines(text: str) -> str:
    """/proc/kallsyms text (``ADDRESS TYPE NAME\t[MODULE]`` lines) as ``"symbol"`` JSON Lines."""
    out = []
    for row in text.splitlines():
        head, _tab, mod = row.partition("\t")
        f = head.split(" ", 2)
        if len(f) != 3:
            continue
        module = mod.strip()[1:-1] if mod.strip().startswith("[") else None
        out.append(line("symbol", **symbol(f[2], int(f[0], 16), f[1], module)))
    return "".join(out)


__all__ = [
    "SCHEMA",
    "document",
    "emit",
    "hexaddr",
    "kallsyms_lines",
    "kernel_symbol",
    "line",
    "loaded_module",
    "symbol",
]

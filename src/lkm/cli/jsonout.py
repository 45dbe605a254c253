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


def emit(kind: str, **fields: Any) -> None:
    """Write one document as one line (JSON Lines when called once per item)."""
    sys.stdout.write(json.dumps(document(kind, **fields), ensure_ascii=False) + "\n")


__all__ = ["SCHEMA", "document", "emit", "hexaddr"]

"""A cache for derived data: what lkm computes from a big input and would otherwise compute on
every call (the symbols recovered from a kernel image: decompress it, find and decode its
kallsyms tables -- seconds, for a result that only depends on the image's bytes).

Entries live in ``$XDG_CACHE_HOME/lkm`` (``~/.cache/lkm`` when it is unset or not absolute, as
the XDG base directory specification says), one JSON file per entry under a directory per kind
of data, named by the SHA-256 of the input's content (and any parameter the result depends
on), so an entry never answers for another input: a changed file has another hash.  Each entry
carries :data:`VERSION` and its own key; an entry of another version, another key, or that
does not parse (a torn disk, an edit, a writer of an older lkm) is ignored and computed again.

Writers go through :mod:`lkm.safeio` (a unique ``O_EXCL|O_NOFOLLOW`` temporary beside the
entry, ``fsync``, ``rename``): concurrent writers of one entry each write their own temporary
and a reader sees a whole entry or none.  The cache is best effort: a directory that cannot be
made or written leaves the result uncached, never an error.  ``LKM_CACHE=off`` (or ``0``, ``no``)
turns it off, ``LKM_CACHE_DIR=/abs/dir`` puts it elsewhere (the tests use their own).  The
cache is only ever a copy of what would be computed: nothing else (such as a test corpus) is
looked into.
"""

from __future__ import annotations

import hashlib
import json
import os

from lkm.errors import LkmError
from lkm.safeio import read_bytes, write_file

VERSION = 1
ENTRY_LIMIT = 256 << 20

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cache_dir() -> str | None:
    """``$LKM_CACHE_DIR``, else ``$XDG_CACHE_HOME/lkm`` (default ``~/.cache/lkm``); None when
    the cache is turned off."""
    if os.environ.get("LKM_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    explicit = os.environ.get("LKM_CACHE_DIR", "")
    if os.path.isabs(explicit):
        return explicit
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "lkm")


def entry_path(kind: str, key: str) -> str | None:
    root = cache_dir()
    return None if root is None else os.path.join(root, kind, f"v{VERSION}-{key}.json")


def get(kind: str, key: str) -> Any:
    """The payload stored for (kind, key), or None (absent, turned off, unreadable, corrupt)."""
    path = entry_path(kind, key)
    if path is None:
        return None

    try:
        doc = json.loads(read_bytes(path, limit=ENTRY_LIMIT))
    except (OSError, LkmError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("key") != key:
        return None
    return doc.get("payload")


def put(kind: str, key: str, payload: Any) -> bool:
    """Store ``payload`` (JSON-able) for (kind, key); False when it could not be stored."""
    path = entry_path(kind, key)
    if path is None:
        return False

    data = json.dumps({"version": VERSION, "key": key, "payload": payload}, separators=(",", ":"))
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_file(path, data.encode("utf-8", "surrogateescape"), mode=0o600)
    except (OSError, LkmError):
        return False
    return True


def content_key(data: bytes | bytearray | memoryview, *params: str) -> str:
    """The SHA-256 of ``data`` (and of any parameter the derived result depends on)."""
    h = hashlib.sha256(data).hexdigest()
    return "-".join([h, *params])


__all__ = ["VERSION", "cache_dir", "content_key", "entry_path", "get", "put"]

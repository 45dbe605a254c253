"""Debug files by build id from debuginfod servers (the elfutils protocol:
``GET <url>/buildid/<hex>/debuginfo``), cached as the elfutils client caches them.

Servers: the ``--debuginfod URL`` given, else ``$DEBUGINFOD_URLS`` (blank-separated), else
none (nothing is fetched unless the user asked).  Cache: ``$DEBUGINFOD_CACHE_PATH``, else
``$XDG_CACHE_HOME/debuginfod_client`` (``~/.cache/debuginfod_client``), one
``<build-id>/debuginfo`` file each, written through a temporary file.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request

from lkm.errors import LkmError

__all__ = ["cache_dir", "fetch", "server_urls"]


def server_urls(explicit: str | None = None) -> list[str]:
    text = explicit if explicit is not None else os.environ.get("DEBUGINFOD_URLS", "")
    return [u.rstrip("/") for u in text.split() if u]


def cache_dir() -> str:
    got = os.environ.get("DEBUGINFOD_CACHE_PATH")
    if got:
        return got
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "debuginfod_client")


def fetch(build_id: str, urls: list[str], *, timeout: float = 30.0) -> str | None:
    """The path of the debug file of ``build_id`` (hex), from the cache or the first server
    that has it; None when no server has it.  LkmError when no server can be reached."""

    if not re.fullmatch(r"[0-9a-f]{8,}", build_id):
        raise LkmError(f"bad build id '{build_id}'")
    target = os.path.join(cache_dir(), build_id, "debuginfo")
    if os.path.isfile(target):
        return target
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=timeout) as resp:
                data = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            errors.append(f"{url}: HTTP {exc.code}")
            continue
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return target
    if errors and len(errors) == len(urls):
        raise LkmError("debuginfod: " + "; ".join(errors))
    return None

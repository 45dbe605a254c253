"""Headless Chromium for the picture tests (Debian's ``chromium``, started per call; nothing
is downloaded): the DOM after loading (``--dump-dom``), console errors from its log, and a
screenshot."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

from support import require

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--mute-audio",
]
# Log lines that mean the page itself had a problem (scripts, failed fetches, parse errors)
PAGE_ERRORS = (
    "CONSOLE",
    "Uncaught",
    "net::ERR",
    "Failed to load resource",
    "Refused to",
    "XML Parsing Error",
    "This page contains the following errors",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path, "Debian's chromium is not installed: apt-get install chromium")
    assert path is not None
    return path


def load(path: Path, *, dark: bool = False) -> tuple[str, list[str]]:
    """(the DOM as the browser serialises it, the log lines that report page errors)."""
    cmd = [
        chromium(),
        *FLAGS,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=2000",
        *(["--force-dark-mode"] if dark else []),
        "--dump-dom",
        path.resolve().as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if any(e in ln for e in PAGE_ERRORS)]
    return p.stdout, errors


def screenshot(path: Path, out: Path, width: int, height: int, *, dark: bool = False) -> bytes:
    cmd = [
        chromium(),
        *FLAGS,
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        *(["--force-dark-mode"] if dark else []),
        path.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def png_distinct_bytes(data: bytes) -> int:
    """How many different byte values the decompressed pixel rows hold (a blank image: ~2)."""
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return len(set(zlib.decompress(idat)))


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each element id'ed by a class."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _t, a in self.tags if cls in a.get("class", "").split()]


def self_contained(text: str) -> list[str]:
    """References that would need the network or a script: there must be none."""
    bad = []
    for tag, attrs in Elements(text).tags:
        if tag == "script":
            bad.append("<script>")
        for k, v in attrs.items():
            if k in ("src", "href", "xlink:href") and not v.startswith("#"):
                bad.append(f"{tag} {k}={v}")
            if k.startswith("on"):
                bad.append(f"{tag} {k}")
    if "@import" in text or "url(" in text:
        bad.append("CSS fetch")
    return bad

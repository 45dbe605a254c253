"""SVG primitives: escaped text and attributes, elements as strings, one style sheet.

Every picture lkm draws is a standalone SVG document (or an ``<svg>`` inlined in an HTML
page): no scripts, no external references, hover details in ``<title>`` children (browsers
show them as tooltips with JavaScript off), colours from CSS custom properties with a
``prefers-color-scheme: dark`` variant.  The numbers a picture shows are also in ``data-*``
attributes, so a test (or a user's script) reads them back without parsing the drawing.
"""

from __future__ import annotations

import re

__all__ = [
    "PALETTE",
    "attrs",
    "css",
    "document",
    "el",
    "esc",
    "group",
    "hue",
    "human",
    "line",
    "rect",
    "text",
    "text_width",
    "title",
]

# Characters XML 1.0 does not allow at all (C0 controls other than TAB, LF, CR; lone
# surrogates as Python keeps undecodable bytes; U+FFFE/U+FFFF).
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "\r": "&#13;"}
_SPECIAL = re.compile("[&<>\"'\r]")  # \r: a parser would turn a raw CR (LF) into LF
_ATTR_WS = {"\t": "&#9;", "\n": "&#10;"}  # attribute-value normalisation makes raw ones spaces
_WS = re.compile("[\t\n]")


def esc(text: object) -> str:
    """``text`` as XML character data or an attribute value: markup characters escaped,
    characters XML cannot hold (control bytes, undecodable bytes) shown as U+FFFD."""
    s = _BAD_XML.sub("\ufffd", str(text))
    return _SPECIAL.sub(lambda m: _ESC[m.group(0)], s)


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    r = round(v, 2)
    return str(int(r)) if r == int(r) else f"{r:g}"


def attrs(values: dict[str, object]) -> str:
    """` name="value"` pairs (None values left out; ``class_`` -> ``class``; ``_`` -> ``-``
    for other names, so ``data_addr`` is ``data-addr``)."""
    out = []
    for k, v in values.items():
        if v is None:
            continue
        name = "class" if k == "class_" else k.replace("_", "-")
        val = _num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
        quoted = _WS.sub(lambda m: _ATTR_WS[m.group(0)], esc(val))
        out.append(f' {name}="{quoted}"')
    return "".join(out)


def el(tag: str, body: str | None = None, /, **values: object) -> str:
    """One element; ``body`` is markup already escaped (use :func:`esc` for text)."""
    a = attrs(values)
    return f"<{tag}{a}/>" if body is None else f"<{tag}{a}>{body}</{tag}>"


def title(text: str) -> str:
    """The hover text of the enclosing element."""
    return f"<title>{esc(text)}</title>"


def text(x: float, y: float, content: str, **values: object) -> str:
    return el("text", esc(content), x=x, y=y, **values)


def rect(x: float, y: float, w: float, h: float, hover: str | None = None, **values: object) -> str:
    return el("rect", title(hover) if hover else None, x=x, y=y, width=max(w, 0), height=max(h, 0), **values)


def line(x1: float, y1: float, x2: float, y2: float, **values: object) -> str:
    return el("line", x1=x1, y1=y1, x2=x2, y2=y2, **values)


def group(body: str, hover: str | None = None, **values: object) -> str:
    return el("g", (title(hover) if hover else "") + body, **values)


# Permission / kind classes and their colours (light, dark).  Chosen to stay apart for the
# common colour-vision deficiencies: blue text, orange/yellow read-only, green writable.
PALETTE: dict[str, tuple[str, str]] = {
    "bg": ("#ffffff", "#16181d"),
    "fg": ("#1b1f24", "#e6e8eb"),
    "muted": ("#6a737d", "#9aa4af"),
    "line": ("#8c959f", "#6e7681"),
    "frame": ("#d0d7de", "#30363d"),
    "x": ("#6ea8fe", "#3a6fc4"),  # executable
    "r": ("#f6c26b", "#a8792a"),  # read-only data
    "ai": ("#e39bf2", "#8e4aa0"),  # ro_after_init
    "w": ("#7bd389", "#2f8a45"),  # writable
    "nb": ("#c8e6c9", "#27543a"),  # zero-filled (.bss)
    "meta": ("#d5d8dc", "#4a5058"),  # kallsyms tables, struct module, other bookkeeping
    "pad": ("#f3f4f6", "#22262c"),  # padding, holes
    "guard": ("#f08c8c", "#8a3a3a"),  # guard pages
    "mark": ("#d1242f", "#ff7b72"),  # markers: PLT/GOT, __insmod symbols
    "accent": ("#0969da", "#58a6ff"),
    "dep": ("#57606a", "#8b949e"),
    "soft": ("#bf8700", "#d29922"),
    "rule": ("#cf222e", "#f85149"),
    "alias": ("#8250df", "#a371f7"),
    "rev": ("#1a7f37", "#3fb950"),
}


def css() -> str:
    """The style sheet every picture shares (inlined, light and dark)."""
    light = ";".join(f"--{k}:{v[0]}" for k, v in PALETTE.items())
    dark = ";".join(f"--{k}:{v[1]}" for k, v in PALETTE.items())
    fills = "".join(f".k-{k}{{fill:var(--{k})}}" for k in ("x", "r", "ai", "w", "nb", "meta", "pad", "guard"))
    return (
        f"svg.lkm{{{light}}}"
        f"@media (prefers-color-scheme: dark){{svg.lkm{{{dark}}}}}"
        "svg{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}"
        ".bg{fill:var(--bg)}text{fill:var(--fg)}.muted{fill:var(--muted)}"
        ".h{font-weight:bold;font-size:13px}.small{font-size:10px}"
        ".frame{fill:none;stroke:var(--frame)}.lead{stroke:var(--line);stroke-width:.7;fill:none}"
        ".sec rect.box,.area rect.box{stroke:var(--bg);stroke-width:.5}"
        ".sec:hover rect.box,.area:hover rect.box,.node:hover .shape{stroke:var(--accent);stroke-width:2}"
        f"{fills}"
        ".mark{fill:var(--mark)}.markt{fill:var(--mark);font-size:10px}"
        ".page{stroke:var(--bg);stroke-width:1;stroke-dasharray:2 2}"
        ".reloc{fill:var(--accent)}"
        ".edge{fill:none;stroke-width:1.3}.arrow{stroke:none}"
        ".e-dep{stroke:var(--dep)}.e-dep.implied{stroke-dasharray:3 3;stroke-width:.8;opacity:.7}"
        ".a-dep{fill:var(--dep)}"
        ".e-softdep-pre,.e-softdep-post{stroke:var(--soft);stroke-dasharray:6 3}"
        ".a-softdep-pre,.a-softdep-post"
        "{fill:var(--soft)}"
        ".e-alias{stroke:var(--alias)}.a-alias{fill:var(--alias)}"
        ".e-rule{stroke:var(--rule);stroke-dasharray:2 2}.a-rule{fill:var(--rule)}"
        ".e-holder{stroke:var(--rev)}.a-holder{fill:var(--rev)}"
        ".node .shape{fill:var(--bg);stroke:var(--line);stroke-width:1.2}"
        ".n-focus .shape{stroke:var(--accent);stroke-width:2.5}"
        ".n-alias .shape{stroke:var(--alias)}.n-rule .shape{stroke:var(--rule)}"
        ".n-missing .shape{stroke-dasharray:4 3}.n-builtin .shape{fill:var(--pad)}"
        ".n-reverse .shape{stroke:var(--rev)}.n-more .shape{stroke-dasharray:1 3}"
        ".fr .shape{fill:var(--bg);stroke:var(--line);stroke-width:1}"
        ".fr.unreliable .shape{stroke-dasharray:5 3}"
        ".fr.inline .shape{fill:var(--pad)}.fr.fault .shape{stroke:var(--mark);stroke-width:2.5}"
    )


def document(width: float, height: float, body: str, label: str, cls: str = "lkm") -> str:
    """A standalone SVG document (also valid inlined in HTML), with the shared style sheet."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{esc(cls)}" width="{_num(width)}" '
        f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" role="img" '
        f'aria-label="{esc(label)}"><title>{esc(label)}</title><style>{css()}</style>'
        f'<rect class="bg" x="0" y="0" width="{_num(width)}" height="{_num(height)}"/>{body}</svg>\n'
    )


def text_width(s: str, size: float = 12) -> float:
    """An estimate of a monospace label's width in pixels."""
    return len(s) * size * 0.62


def human(n: int) -> str:
    """A size in bytes as people read it: 812 B, 12.0 KiB, 3.5 MiB."""
    if n < 1024:
        return f"{n} B"
    v = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        v /= 1024
        if v < 1024:
            return f"{v:.1f} {unit}"
    return f"{v / 1024:.1f} TiB"


def hue(name: str) -> int:
    """A stable hue for a name (module colours in crash graphs and occupancy maps)."""
    h = 0
    for ch in name.encode("utf-8", "surrogateescape"):
        h = (h * 131 + ch) % 360
    return h

"""Self-contained HTML pages: text and inline SVG pictures, one style sheet in the page, no
scripts, no external references (readable offline and with JavaScript off), light and dark
colours following the reader's ``prefers-color-scheme``."""

from __future__ import annotations

from lkm.draw import svg

__all__ = ["PAGE_CSS", "figure", "page", "para", "pre", "section"]

PAGE_CSS = (
    ":root{color-scheme:light dark;--bg:#ffffff;--fg:#1b1f24;--muted:#57606a;--code:#f6f8fa;--rule:#d0d7de;"
    "--accent:#0969da}"
    "@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--code:#161b22;"
    "--rule:#30363d;--accent:#58a6ff}}"
    "body{background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:0 auto;max-width:1100px;padding:1.5em}"
    "h1{font-size:1.6em;margin:.2em 0}"
    "h2{font-size:1.25em;border-bottom:1px solid var(--rule);padding-bottom:.2em;"
    "margin-top:1.8em}h3{font-size:1.05em}"
    "p.note,figcaption{color:var(--muted)}a{color:var(--accent)}"
    "pre{background:var(--code);padding:.7em 1em;overflow-x:auto;border-radius:6px;font-size:12.5px;"
    "line-height:1.35}"
    "pre.cmd{border-left:3px solid var(--accent)}"
    "figure{margin:1em 0;overflow-x:auto}figure svg{max-width:none;height:auto}"
    "nav ol{columns:2}"
)


def pre(text: str, cls: str | None = None) -> str:
    return svg.el("pre", svg.esc(text), class_=cls)


def para(text: str, cls: str | None = None) -> str:
    return svg.el("p", svg.esc(text), class_=cls)


def figure(picture: str, caption: str, id: str | None = None) -> str:
    """An inline SVG document (its XML prolog-free text) with a caption."""
    return svg.el("figure", picture.strip() + svg.el("figcaption", svg.esc(caption)), id=id, class_="picture")


def section(title: str, body: str, id: str) -> str:
    return svg.el("section", svg.el("h2", svg.esc(title)) + body, id=id)


def page(title: str, intro: str, sections: list[tuple[str, str, str]]) -> str:
    """A whole page: ``sections`` are (id, title, body markup)."""
    toc = "".join(svg.el("li", svg.el("a", svg.esc(t), href=f"#{i}")) for i, t, _b in sections)
    body = svg.el("h1", svg.esc(title)) + para(intro) + svg.el("nav", svg.el("ol", toc))
    body += "".join(section(t, b, i) for i, t, b in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{svg.esc(title)}</title><style>{PAGE_CSS}</style></head><body>{body}</body></html>\n"
    )

"""Crash graphs: a report's call chain as a vertical graph (oops.md: call traces, ``?``
frames, inlined frames from DWARF).

The faulting function is on top, each caller below it with an arrow up to what it called;
consecutive frames of one module sit on a band of that module's colour (the core kernel's
is grey); frames the unwinder was not sure of (printed with ``?``) are dashed and muted;
functions inlined into a frame are boxes nested inside it, innermost deepest; hovering a
frame shows its address, symbol and source lines.

:func:`crash_svg` takes a plain list of :class:`CrashFrame` (function, offset, module, inline
flag, reliable flag, file:line), so any decoder can feed it: an inline frame comes before the
frame it was inlined into (``addr2line -i`` order, innermost first).
"""

from __future__ import annotations

from dataclasses import dataclass

from lkm.draw import svg

__all__ = ["BOX_H", "GAP", "LEFT", "NEST", "WIDTH", "CrashFrame", "crash_svg", "group_frames"]


@dataclass(slots=True, unsafe_hash=True)
class CrashFrame:
    """One line of a call chain.  ``inline``: inlined into the next non-inline frame;
    ``reliable``: False for ``?`` frames; ``location``: file:line; ``pc``: the faulting
    instruction (not a return address)."""

    function: str
    offset: int | None = None
    module: str | None = None
    inline: bool = False
    reliable: bool = True
    location: str | None = None
    size: int | None = None
    address: int | None = None
    pc: bool = False

    def label(self) -> str:
        if self.inline:
            return f"{self.function} (inlined)"
        off = ""
        if self.offset is not None:
            off = f"+{self.offset:#x}" + (f"/{self.size:#x}" if self.size is not None else "")
        return ("? " if not self.reliable else "") + self.function + off


def group_frames(frames: list[CrashFrame]) -> list[list[CrashFrame]]:
    """Physical frames with their inlined functions: each group is [inlined..., frame]."""
    groups: list[list[CrashFrame]] = []
    cur: list[CrashFrame] = []
    for f in frames:
        cur.append(f)
        if not f.inline:
            groups.append(cur)
            cur = []
    if cur:  # inline frames with nothing after them: show them as they are
        groups.append(cur)
    return groups


BOX_H = 24
NEST = 16
GAP = 22
LEFT = 130
WIDTH = 620


def _group_height(g: list[CrashFrame]) -> float:
    """Nested boxes: each one's header row, and 3 px of the parent around it on each side."""
    return len(g) * BOX_H + (len(g) - 1) * 6


def crash_svg(frames: list[CrashFrame], title: str = "call chain", index: int = 0) -> str:
    """The call chain as a standalone SVG document (``index`` numbers elements uniquely when
    several graphs share a page)."""
    groups = group_frames(frames)
    parts: list[str] = []
    y = 46.0
    boxes: list[tuple[float, float]] = []  # (top, bottom) of each group's outer box
    spans: list[tuple[str, float, float]] = []  # module bands
    for gi, g in enumerate(groups):
        outer = g[-1]
        h = _group_height(g)
        mod = outer.module or "kernel"
        if spans and spans[-1][0] == mod:
            spans[-1] = (mod, spans[-1][1], y + h)
        else:
            spans.append((mod, y, y + h))
        boxes.append((y, y + h))
        # outer (physical) frame, then inlined ones nested inside, outermost first
        chain = list(reversed(g))
        for depth, f in enumerate(chain):
            x = LEFT + depth * NEST
            top = y + depth * (BOX_H + 3)
            bh = h - depth * (BOX_H + 6)
            cls = "fr" + (" inline" if f.inline else "") + ("" if f.reliable else " unreliable")
            cls += " fault" if f.pc and not f.inline else ""
            hover = [f.label() + (f" [{f.module}]" if f.module else "")]
            if f.address is not None:
                hover.append(f"address {f.address:#x}")
            if f.location:
                hover.append(f.location)
            if not f.reliable:
                hover.append(
                    "? : the unwinder found this address on the stack but is not sure it is a return address"
                )
            if f.inline:
                hover.append(f"inlined into {outer.function}")
            if f.pc:
                hover.append("the faulting instruction")
            w = WIDTH - LEFT - depth * 2 * NEST
            body = svg.el("rect", x=x, y=top, width=w, height=bh, rx=4, class_="shape")
            body += svg.text(x + 8, top + 16, f.label(), class_=None if f.reliable else "muted")
            if f.location:
                loc = f.location if len(f.location) < 48 else "\u2026" + f.location[-47:]
                body += svg.text(x + w - 8, top + 16, loc, class_="small muted", text_anchor="end")
            parts.append(
                svg.group(
                    body,
                    "\n".join(hover),
                    class_=cls,
                    id=f"fr-{index}-{gi}-{depth}",
                    data_function=f.function,
                    data_module=f.module or "",
                    data_inline="1" if f.inline else "0",
                    data_reliable="1" if f.reliable else "0",
                    data_location=f.location,
                    data_offset=hex(f.offset) if f.offset is not None else None,
                )
            )
        y += h + GAP
    # module bands behind (drawn first), arrows between frames: caller (below) -> callee (above)
    bands = []
    for mod, top, bottom in spans:
        hue = svg.hue(mod)
        colour = "hsl(0,0%,55%)" if mod == "kernel" else f"hsl({hue},65%,50%)"
        bands.append(
            svg.group(
                svg.rect(8, top - 6, WIDTH - 8 + 6, bottom - top + 12, fill=colour, fill_opacity=0.14, rx=6)
                + svg.rect(8, top - 6, 5, bottom - top + 12, fill=colour)
                + svg.text(20, top + 16, mod, class_="h"),
                f"module {mod}",
                class_="modband",
                data_module=mod,
            )
        )
    arrows = []
    for (t1, _b1), (_t2, b2) in zip(boxes[1:], boxes[:-1], strict=False):
        x = LEFT + 24
        arrows.append(svg.el("path", d=f"M{x},{t1:.1f} L{x},{b2 + 7:.1f}", class_="edge e-dep"))
        arrows.append(svg.el("path", d=f"M{x},{b2:.1f} l-4,8 l8,0 z", class_="arrow a-dep"))
    n_inl = sum(1 for f in frames if f.inline)
    n_q = sum(1 for f in frames if not f.reliable)
    sub = (
        f"{len(groups)} frames, {n_inl} inlined, {n_q} unreliable (?); the faulting function on top, "
        "each caller below it"
    )
    head = svg.text(8, 18, title, class_="h") + svg.text(8, 34, sub, class_="muted")
    body = head + "".join(bands) + "".join(arrows) + "".join(parts)
    return svg.document(WIDTH + 14, y + 4, svg.group(body, class_="crash", data_frames=len(frames)), title)

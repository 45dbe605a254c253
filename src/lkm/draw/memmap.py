"""Module memory maps (HOWTO 10.7, kernel-loader.md §2): where a module's sections end up.

A :class:`MemoryMap` is built from a link (:func:`map_of_linked` for 6.1/6.12's regions,
:func:`map_of_insmod24` for 2.4's single image) or from a kernel's section addresses
(:func:`map_of_sections`: /sys/module/NAME/sections, a snapshot, the model kernel), and drawn
by :func:`memmap_svg`: each region a bar to scale (addresses grow downwards), every section a
box coloured by its permissions with its name, address, size and permissions beside it,
page boundaries dotted, PLT/GOT sections and 2.4's ksymoops ``__insmod_*`` symbols marked,
and a strip left of the bar whose darkness is the number of relocations applied there.

:func:`occupancy_svg` draws the model kernel's module memory pools (vmalloc: page areas and
their guard pages, first fit; kmalloc: size classes) with their holes and fragmentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lkm.draw import svg
from lkm.elf.constants import SHF_EXECINSTR, SHF_RO_AFTER_INIT, SHF_WRITE, SHT_NOBITS, SHT_REL, SHT_RELA

if TYPE_CHECKING:
    from collections.abc import Callable

    from lkm.kernel.model import Area
    from lkm.kernel.model.vmalloc import Arena, Fragmentation
    from lkm.link.image import LinkedImage
    from lkm.link.insmod24 import LinkedImage24
    from lkm.module.file import ModuleFile

__all__ = [
    "KIND_NAMES",
    "LABEL_X",
    "LEGEND_W",
    "MARKED_SECTIONS",
    "ROW",
    "MapRegion",
    "MapSection",
    "Marker",
    "MemoryMap",
    "el_path",
    "el_tri",
    "map_of_insmod24",
    "map_of_linked",
    "map_of_sections",
    "memmap_svg",
    "occupancy_svg",
    "perm_kind",
    "stack_svg",
]

MARKED_SECTIONS = {
    ".plt": "PLT",
    ".init.plt": "PLT",
    ".text.ftrace_trampoline": "PLT",
    ".got": "GOT",
    ".got.plt": "GOT",
}
KIND_NAMES = {
    "x": "text (r-x)",
    "r": "read-only (r--)",
    "ai": "ro_after_init",
    "w": "data (rw-)",
    "nb": "zero-filled (rw-)",
    "meta": "symbols / bookkeeping",
}


@dataclass(slots=True, unsafe_hash=True)
class MapSection:
    """One section in memory: ``kind`` is x, r, ai, w, nb (zero-filled) or meta; ``estimated``
    when the size was inferred from the next section's address."""

    name: str
    region: str
    address: int
    size: int
    perm: str
    kind: str
    align: int = 0
    estimated: bool = False


@dataclass(slots=True, unsafe_hash=True)
class MapRegion:
    """A separately allocated region: its base, the bytes laid out and the bytes allocated."""

    name: str
    base: int
    size: int
    alloc: int


@dataclass(slots=True, unsafe_hash=True)
class Marker:
    """A symbol worth pointing at: 2.4's ``__insmod_*`` ksymoops symbols."""

    name: str
    address: int
    kind: str


@dataclass(slots=True, unsafe_hash=True)
class MemoryMap:
    """A module's memory: regions, sections, markers and the addresses relocations patched."""

    module: str
    rules: str
    regions: list[MapRegion]
    sections: list[MapSection]
    markers: list[Marker]
    relocs: list[int]
    page_size: int = 4096
    extra: list[MapSection] = field(default_factory=list)  # areas that are not sections (the kallsyms tables)


def perm_kind(flags: int, nobits: bool = False) -> tuple[str, str]:
    """(permissions once the module is live, colour class) of a section's flags."""
    if flags & SHF_EXECINSTR:
        return "r-x", "x"
    if flags & SHF_RO_AFTER_INIT:
        return "r-- after init", "ai"
    if flags & SHF_WRITE:
        return "rw-", "nb" if nobits else "w"
    return "r--", "r"


def _relocs(mod: ModuleFile, addresses: dict[int, int]) -> list[int]:
    elf = mod.elf
    out: list[int] = []
    for rs in elf.sections:
        if rs.type in (SHT_REL, SHT_RELA) and rs.info in addresses:
            base = addresses[rs.info]
            out.extend(base + r.offset for r in elf.relocations(rs))
    return out


def map_of_linked(mod: ModuleFile, image: LinkedImage) -> MemoryMap:
    """The map of a 6.1/6.12 link (:func:`lkm.link.image.link_module`): every placed section
    at its address (the numbers ``lkm link`` prints), the kallsyms tables layout_symtab added."""
    lay = image.layout
    elf = mod.elf
    sections = []
    for n, p in lay.placements.items():
        sec = elf.sections[n]
        perm, kind = perm_kind(p.flags, sec.type == SHT_NOBITS or n in lay.nobits)
        if sec.name in (".symtab", ".strtab"):
            kind = "meta"
        sections.append(
            MapSection(p.name, p.region, image.section_addresses[n], p.size, perm, kind, sec.addralign)
        )
    sections.sort(key=lambda s: (s.address, s.size))
    regions = [
        MapRegion(r, image.bases[r], size, lay.alloc_size(r))
        for r, size in lay.sizes.items()
        if r in image.bases and size
    ]
    regions.sort(key=lambda r: r.base)
    extra = []
    ks = lay.kallsyms
    if ks is not None and ks.region in image.bases:
        at = image.bases[ks.region] + ks.symoffs
        end = image.bases[ks.region] + ks.core_typeoffs + len(ks.kept)
        extra.append(
            MapSection("[kallsyms: kept symbols, names, types]", ks.region, at, end - at, "r--", "meta")
        )
    if ks is not None and ks.init_region in image.bases:
        at = image.bases[ks.init_region] + ks.init_off
        n_syms = len(elf.symbols())
        extra.append(
            MapSection(
                "[mod_kallsyms, all types]",
                ks.init_region,
                at,
                ks.init_typeoffs - ks.init_off + n_syms,
                "rw-",
                "meta",
            )
        )
    return MemoryMap(
        mod.name,
        lay.rules,
        regions,
        sections,
        [],
        _relocs(mod, image.section_addresses),
        lay.page_size,
        extra,
    )


def map_of_insmod24(mod: ModuleFile, img: LinkedImage24) -> MemoryMap:
    """The map of 2.4's single image (modutils' insmod, ``lkm link --layout linux-2.4``): the
    sections of ``insmod -m`` in load order (insmod's own .this, .kstrtab, .kmodtab, ... too)
    and the ksymoops ``__insmod_*`` symbols."""
    flags = {s.name: (s.flags, s.type == SHT_NOBITS) for s in mod.elf.sections}
    sections = []
    for name, addr, size, align in img.sections:
        if name == ".this":
            perm, kind = "rw-", "meta"
        elif name in flags:
            perm, kind = perm_kind(*flags[name])
        else:  # sections insmod creates: symbol tables, module references, the GOT
            perm, kind = ("rw-", "w") if name == ".got" else ("r--", "meta")
        sections.append(MapSection(name, "image", addr, size, perm, kind, align))
    markers = [Marker(s.name, s.value, "insmod") for s in img.map_symbols if s.name.startswith("__insmod_")]
    page = 4096
    region = MapRegion("image", img.base, img.size, (img.size + page - 1) // page * page)
    return MemoryMap(
        img.name, "linux-2.4", [region], sections, markers, _relocs(mod, img.section_addresses), page
    )


def _name_kind(name: str) -> tuple[str, str]:
    """Permissions guessed from a section's name (no module file at hand)."""
    if name.startswith((".text", ".init.text", ".exit.text", ".noinstr", ".sched.text", ".plt", ".init.plt")):
        return "r-x", "x"
    if name in (".data..ro_after_init", "__jump_table"):
        return "r-- after init", "ai"
    if name.startswith((".bss",)):
        return "rw-", "nb"
    if name.startswith((".data", ".init.data", "__param", ".got", ".gnu.linkonce.this_module")) or name in (
        "__bug_table",
        ".static_call_sites",
        "__dyndbg",
        ".ref.data",
    ):
        return "rw-", "w"
    if name in (".symtab", ".strtab"):
        return "r--", "meta"
    return "r--", "r"


def map_of_sections(
    module: str,
    addresses: dict[str, int],
    sizes: dict[str, int] | None = None,
    page_size: int = 4096,
    regions: dict[str, tuple[int, int]] | None = None,
) -> MemoryMap:
    """The map a kernel shows (/sys/module/NAME/sections: names and addresses only).  With
    ``regions`` (name -> (base, allocated size), as the model kernel records them) each section
    goes to the region holding it; otherwise sections are grouped where they are contiguous
    (within a page of each other).  Sizes come from ``sizes`` (a module file's headers) or,
    marked estimated, reach up to the next section (or the region's end)."""
    items = sorted(((a, n) for n, a in addresses.items() if a), key=lambda t: (t[0], t[1]))
    groups: list[tuple[str, int, int | None, list[tuple[int, str]]]] = []
    if regions:
        for rname, (base, alloc) in sorted(regions.items(), key=lambda kv: kv[1][0]):
            groups.append(
                (rname, base, alloc, [(a, n) for a, n in items if base <= a < base + max(alloc, 1)])
            )
    else:
        clusters: list[list[tuple[int, str]]] = []
        for a, n in items:
            if clusters and a - clusters[-1][-1][0] <= page_size:
                clusters[-1].append((a, n))
            else:
                clusters.append([(a, n)])
        for i, cl in enumerate(clusters):
            rname = "init" if all(n.startswith((".init", ".exit")) for _a, n in cl) else f"region {i + 1}"
            groups.append((rname, cl[0][0] // page_size * page_size, None, cl))
    out_regions, sections = [], []
    for rname, base, given, cl in groups:
        end = base
        limit = base + given if given else None
        for j, (a, n) in enumerate(cl):
            known = sizes.get(n) if sizes else None
            if known is not None:
                size, est = known, False
            else:
                nxt = cl[j + 1][0] if j + 1 < len(cl) else (limit or (a // page_size + 1) * page_size)
                size, est = max(nxt - a, 0), True
            perm, kind = _name_kind(n)
            sections.append(MapSection(n, rname, a, size, perm, kind, 0, est))
            end = max(end, a + size)
        alloc = (
            given
            if given is not None
            else max((end - base + page_size - 1) // page_size * page_size, page_size)
        )
        out_regions.append(MapRegion(rname, base, end - base, alloc))
    return MemoryMap(module, "kernel", out_regions, sections, [], [], page_size)


# -- drawing ----------------------------------------------------------------------------------

ROW = 15  # label row height
BAR_X, BAR_W = 44, 130
STRIP_X, STRIP_W = 26, 12
LABEL_X = BAR_X + BAR_W + 34


def _spread(wanted: list[float], top: float, bottom: float, gap: float) -> list[float]:
    """Label positions near ``wanted`` (sorted), at least ``gap`` apart, inside [top, bottom]."""
    out: list[float] = []
    for w in wanted:
        out.append(max(w, top if not out else out[-1] + gap))
    over = (out[-1] - bottom) if out else 0
    if over > 0:  # push back up from the bottom
        out[-1] = bottom
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    return out


def _reloc_strip(m: MemoryMap, r: MapRegion, top: float, height: float, extent: int) -> list[str]:
    """The relocation density strip beside the bar: the addresses relocations patched in the
    region, counted in 3-pixel buckets."""
    out: list[str] = []
    relocs = [a for a in m.relocs if r.base <= a < r.base + max(r.alloc, 1)]
    if relocs:
        buckets = max(int(height // 3), 1)
        per = max(extent / buckets, 1)
        counts: dict[int, int] = {}
        for a in relocs:
            b = min(int((a - r.base) / per), buckets - 1)
            counts[b] = counts.get(b, 0) + 1
        peak = max(counts.values())
        strip = []
        for b, c in sorted(counts.items()):
            lo = r.base + int(b * per)
            strip.append(
                svg.rect(
                    STRIP_X,
                    top + b * height / buckets,
                    STRIP_W,
                    height / buckets,
                    f"{c} relocation{'s' if c != 1 else ''} in {lo:#x}..{lo + int(per):#x}",
                    class_="reloc",
                    fill_opacity=round(0.15 + 0.85 * c / peak, 2),
                )
            )
        out.append(svg.group("".join(strip), class_="relocs", data_count=len(relocs)))
        out.append(svg.rect(STRIP_X, top, STRIP_W, height, class_="frame"))
    return out


def _labels(
    secs: list[MapSection],
    marks: list[Marker],
    y: Callable[[int], float],
    scale: float,
    top: float,
    height: float,
    addr_w: int,
) -> list[str]:
    """Labels of sections and markers, in address order, spread to be readable, each with its
    leader line to the bar."""
    out: list[str] = []
    items: list[tuple[float, str, str, str]] = []
    for s in secs:
        badge = MARKED_SECTIONS.get(s.name)
        size = f"{'~' if s.estimated else ''}{s.size:#x}"
        label = f"{s.name:<24} {s.address:#0{addr_w}x} {size:>8} {s.perm}"
        items.append((y(s.address) + max(s.size * scale, 0.8) / 2, label, badge or "", "sec"))
    for k in marks:
        items.append((y(k.address), f"\u25c0 {k.name}", "", "mark"))
    items.sort(key=lambda t: t[0])
    ys = _spread([t[0] for t in items], top + 5, top + height - 3, ROW)
    for (want, label, badge, kind), ly in zip(items, ys, strict=True):
        bx = BAR_X + BAR_W
        out.append(el_path(bx, want, LABEL_X - 4, ly))
        cls = "markt" if kind == "mark" else None
        out.append(svg.text(LABEL_X, ly + 4, label, class_=cls))
        if badge:
            bw = svg.text_width(label) + 8
            out.append(svg.text(LABEL_X + bw, ly + 4, badge, class_="markt h"))
        if kind == "mark":
            out.append(el_tri(bx, want))
    return out


def _region_svg(m: MemoryMap, r: MapRegion, y0: float, addr_w: int) -> tuple[str, float]:
    secs = [s for s in m.sections if s.region == r.name]
    extra = [s for s in m.extra if s.region == r.name]
    marks = [k for k in m.markers if r.base <= k.address < r.base + max(r.alloc, 1)]
    rows = len(secs) + len(marks)
    top = y0 + 26
    # The bar shows the allocation to scale; when most of it is unused page tail (a small
    # module), the bar covers the laid-out bytes and the rest is a short band after it.
    extent = r.alloc if not r.size or r.size * 5 >= r.alloc * 3 else r.size
    extent_pages = -(-extent // m.page_size)
    height = max(rows * ROW + 8, 90, min(extent_pages, 12) * 72)
    scale = height / max(extent, 1)

    def y(a: int) -> float:
        return top + (a - r.base) * scale

    out = []
    pages = r.alloc // m.page_size
    head = (
        f"{r.name}  {r.base:#0{addr_w}x}  {r.size:#x} bytes laid out ({svg.human(r.size)}), "
        f"{pages} page{'s' if pages != 1 else ''} allocated"
    )
    out.append(svg.text(8, y0 + 14, head, class_="h"))
    out.append(svg.rect(BAR_X, top, BAR_W, height, f"{r.name}: unused or padding", class_="k-pad"))
    for s in extra:
        out.append(
            svg.group(
                svg.rect(BAR_X, y(s.address), BAR_W, max(s.size * scale, 0.8), class_="box k-meta"),
                f"{s.name}\n{s.address:#x} .. {s.address + s.size:#x} ({s.size:#x} bytes)",
                class_="meta-area",
                data_name=s.name,
                data_addr=hex(s.address),
                data_size=hex(s.size),
            )
        )
    for i, s in enumerate(secs):
        h = max(s.size * scale, 0.8)
        badge = MARKED_SECTIONS.get(s.name)
        hover = (
            f"{s.name}  [{KIND_NAMES.get(s.kind, s.kind)}]\naddress {s.address:#x}  size {s.size:#x} "
            f"({s.size} bytes){' (estimated)' if s.estimated else ''}\noffset {s.address - r.base:#x} in "
            f"{r.name}\npermissions {s.perm}"
            + (f"\nalignment {s.align}" if s.align else "")
            + (f"\n{badge}: branch/address slots the loader fills" if badge else "")
        )
        out.append(
            svg.group(
                svg.rect(BAR_X, y(s.address), BAR_W, h, class_=f"box k-{s.kind}"),
                hover,
                class_="sec",
                id=f"sec-{r.name}-{i}",
                data_name=s.name,
                data_region=r.name,
                data_addr=hex(s.address),
                data_size=hex(s.size),
                data_perm=s.perm,
                data_kind=s.kind,
                data_estimated="1" if s.estimated else None,
                data_mark=badge,
            )
        )
    # page boundaries
    for p in range(1, pages):
        if p * m.page_size < extent:
            yy = y(r.base + p * m.page_size)
            out.append(svg.line(BAR_X, yy, BAR_X + BAR_W, yy, class_="page"))
    out.append(svg.rect(BAR_X, top, BAR_W, height, class_="frame"))
    tail = 0.0
    if extent < r.alloc:
        tail = 18.0
        rest = r.alloc - extent
        out.append(
            svg.rect(
                BAR_X,
                top + height,
                BAR_W,
                tail,
                f"{rest} bytes unused up to the end of the allocation ({r.base + r.alloc:#x}); not to scale",
                class_="k-pad frame",
                stroke_dasharray="3 3",
            )
        )
        out.append(svg.text(BAR_X + 4, top + height + 13, f"+{rest:#x} unused", class_="small muted"))
    out += _reloc_strip(m, r, top, height, extent)
    out += _labels(secs, marks, y, scale, top, height, addr_w)
    g = svg.group(
        "".join(out),
        class_="region",
        data_region=r.name,
        data_base=hex(r.base),
        data_size=hex(r.size),
        data_alloc=hex(r.alloc),
    )
    return g, top + height + tail + 18


def el_path(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return svg.el(
        "path",
        d=f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}",
        class_="lead",
    )


def el_tri(x: float, y: float) -> str:
    return svg.el("path", d=f"M{x:.1f},{y:.1f} l8,-4 l0,8 z", class_="mark")


LEGEND_W = (
    8
    + sum(26 + svg.text_width(n, 10) for n in KIND_NAMES.values())
    + 16
    + svg.text_width("relocations (strip)", 10)
)


def _legend(y: float) -> tuple[str, float]:
    out, x = [], 8.0
    for k, name in KIND_NAMES.items():
        out.append(svg.rect(x, y, 12, 12, class_=f"k-{k}"))
        out.append(svg.text(x + 16, y + 10, name, class_="small"))
        x += 26 + svg.text_width(name, 10)
    out.append(svg.rect(x, y, 12, 12, class_="reloc", fill_opacity=0.7))
    out.append(svg.text(x + 16, y + 10, "relocations (strip)", class_="small"))
    return "".join(out), y + 22


def memmap_svg(m: MemoryMap) -> str:
    """The memory map as a standalone SVG document."""
    addr_w = 18 if any(r.base > 0xFFFFFFFF for r in m.regions) else 10
    head = f"{m.module}: memory map ({m.rules})"
    total = sum(r.alloc for r in m.regions)
    sub = (
        f"{len(m.sections)} sections in {len(m.regions)} region{'s' if len(m.regions) != 1 else ''}, "
        f"{svg.human(total)} allocated, {len(m.relocs)} relocations applied"
    )
    parts = [svg.text(8, 18, head, class_="h"), svg.text(8, 34, sub, class_="muted")]
    legend, y = _legend(44)
    parts.append(legend)
    width = 0.0
    for r in m.regions:
        g, y = _region_svg(m, r, y, addr_w)
        parts.append(g)
    for s in m.sections:
        width = max(
            width, LABEL_X + svg.text_width(f"{s.name:<24} {'0' * addr_w} 0x000000 r-- after init") + 40
        )
    for k in m.markers:
        width = max(width, LABEL_X + svg.text_width(k.name) + 30)
    width = max(width, LEGEND_W + 10, svg.text_width(sub) + 20)
    body = svg.group("".join(parts), class_="memmap", data_module=m.module, data_rules=m.rules)
    return svg.document(width, y + 4, body, head)


# -- module memory pools (the model kernel) ------------------------------------------------------


def occupancy_svg(
    arenas: dict[str, Arena], areas: list[Area], frags: dict[str, Fragmentation], page_size: int = 4096
) -> str:
    """The model kernel's module memory: for each pool the used part of its range to scale,
    every area (module, region) with its guard page, the holes between, and the statistics."""
    width = 920
    parts = [svg.text(8, 18, "module memory: areas, guard pages and holes", class_="h")]
    y = 30.0
    bar_x, bar_w = 8, width - 16
    for pool, arena in arenas.items():
        mine = sorted((a for a in areas if a.pool == pool), key=lambda a: a.start)
        f = frags[pool]
        end_used = max((a.start + a.span for a in mine), default=arena.start)
        window_end = min(arena.end, max(end_used + 4 * page_size, arena.start + 16 * page_size))
        span = window_end - arena.start
        scale = bar_w / span
        head = f"{pool} {arena.start:#x}-{arena.end:#x} ({svg.human(arena.end - arena.start)})"
        stats = (
            f"{f.areas} areas, {svg.human(f.used)} used, {svg.human(f.free)} free in {f.holes} holes, "
            f"largest hole {svg.human(f.largest)}, fragmentation {f.ratio:.3f}"
        )
        parts.append(svg.text(8, y + 12, head, class_="h"))
        parts.append(
            svg.text(
                8,
                y + 27,
                stats,
                class_="muted",
                data_pool=pool,
                data_areas=f.areas,
                data_used=f.used,
                data_free=f.free,
                data_holes=f.holes,
            )
        )
        top = y + 35
        hb = 34
        parts.append(svg.rect(bar_x, top, bar_w, hb, f"{pool}: free", class_="k-pad"))
        at = arena.start
        rows = []
        for i, a in enumerate(mine):
            if a.start > at:
                parts.append(
                    svg.rect(
                        bar_x + (at - arena.start) * scale,
                        top,
                        (a.start - at) * scale,
                        hb,
                        f"hole {at:#x}..{a.start:#x}: {a.start - at} bytes",
                        class_="k-pad hole",
                        data_start=hex(at),
                        data_size=hex(a.start - at),
                    )
                )
            at = max(at, a.start + a.span)
            x = bar_x + (a.start - arena.start) * scale
            guard = arena.guard if pool == "vmalloc" else 0
            body_w = (a.span - guard) * scale
            col = f"hsl({svg.hue(a.module)},55%,62%)"
            inner = svg.rect(x, top, body_w, hb, class_="box", fill=col)
            used_w = a.size * scale
            inner += svg.rect(x, top + hb - 6, used_w, 6, class_="k-meta")
            if guard:
                inner += svg.rect(
                    x + body_w, top, guard * scale, hb, "guard page (unmapped)", class_="k-guard"
                )
            hover = (
                f"{a.module} [{a.region}]\n{a.start:#x}..{a.start + a.span:#x}  span {a.span} bytes"
                f"{' (guard page included)' if guard else ''}\nrequested {a.size} bytes"
            )
            parts.append(
                svg.group(
                    inner,
                    hover,
                    class_="area",
                    id=f"area-{pool}-{i}",
                    data_pool=pool,
                    data_module=a.module,
                    data_region=a.region,
                    data_start=hex(a.start),
                    data_span=hex(a.span),
                    data_size=hex(a.size),
                )
            )
            rows.append(
                (x + body_w / 2, f"{a.module} [{a.region}] {a.start:#x} span {a.span:#x}, {a.size} bytes")
            )
            tag = f"{a.module} {a.region}"
            if svg.text_width(tag, 10) + 6 < body_w:
                parts.append(svg.text(x + 3, top + 16, tag, class_="small"))
        parts.append(svg.rect(bar_x, top, bar_w, hb, class_="frame"))
        if window_end < arena.end:
            parts.append(
                svg.text(
                    bar_x + bar_w - 4,
                    top + hb + 12,
                    f"\u2026 {svg.human(arena.end - window_end)} never used, up to {arena.end:#x}",
                    class_="small muted",
                    text_anchor="end",
                )
            )
        ly = top + hb + 26
        ys = [ly + i * ROW for i in range(len(rows))]
        for (_cx, label), yy in zip(rows, ys, strict=True):
            parts.append(svg.text(12, yy, label, class_="small"))
        y = (ys[-1] if ys else ly) + 24
        if not mine:
            parts.append(svg.text(8, ly, "no module memory in use", class_="muted"))
    body = svg.group("".join(parts), class_="occupancy")
    return svg.document(width, y, body, "module memory pools")


def stack_svg(documents: list[str], label: str) -> str:
    """Several standalone SVG pictures one above the other in one document."""
    parts, y, width = [], 0.0, 0.0
    for doc in documents:
        m = re.match(r'<svg [^>]*width="([\d.]+)" height="([\d.]+)"', doc)
        assert m is not None
        w, h = float(m.group(1)), float(m.group(2))
        parts.append(doc.replace("<svg ", f'<svg x="0" y="{y:g}" ', 1).strip())
        y += h + 12
        width = max(width, w)
    return svg.document(max(width, 200), max(y, 40), "".join(parts), label)

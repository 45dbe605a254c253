"""Outputs of a 2.4 link (:class:`~lkm.link.insmod24.LinkedImage24`): the ``insmod -m`` load
map in modutils' exact format, the module's lines in ``/proc/ksyms``, and a
:class:`~lkm.link.image.LinkedImage` view so the ELF writer (:func:`lkm.link.output.linked_elf`)
and the GNU ld oracle work on 2.4 images too.  The blob itself is ``LinkedImage24.image``."""

from __future__ import annotations

from lkm.link.image import LinkedImage
from lkm.link.insmod24 import LinkedImage24
from lkm.link.layout import Layout, Placement
from lkm.module.file import ModuleFile

__all__ = ["ADDR_WIDTH", "as_linked_image", "format_ksyms", "format_load_map"]

ADDR_WIDTH = 8  # 2 * sizeof(void *) on i386


def format_load_map(img: LinkedImage24) -> str:
    """print_load_map: the sections in load order, then every symbol by final value."""
    lines = [f"Sections:       Size      {'Address':<{ADDR_WIDTH}}  Align"]
    for name, addr, size, align in img.sections:
        power = align.bit_length() - 1 if align else 0
        lines.append(f"{name:<15} {size:08x}  {addr:0{ADDR_WIDTH}x}  2**{power}")
    lines.append("")
    lines.append("Symbols:")
    lines.extend(f"{s.value:0{ADDR_WIDTH}x} {s.type} {s.name}" for s in img.map_symbols)
    return "\n".join(lines) + "\n"


def format_ksyms(img: LinkedImage24) -> str:
    """The module's lines of 2.4 ``/proc/ksyms`` (``"%0*lx %s\\t[%s]\\n"``), its exports in
    __ksymtab order."""
    return "".join(f"{value:0{ADDR_WIDTH}x} {name}\t[{img.name}]\n" for name, value in img.exports)


def as_linked_image(mod: ModuleFile, img: LinkedImage24) -> LinkedImage:
    """The object's own sections placed where insmod put them, in one "image" region holding
    the whole blob (insmod's own sections, .this, .kstrtab, ..., are in the bytes but get no
    section header)."""
    placements = {}
    for n, addr in img.section_addresses.items():
        s = mod.elf.sections[n]
        placements[n] = Placement(n, s.name, "image", addr - img.base, s.size, s.flags)
    layout = Layout("linux-2.4", placements, {"image": img.size}, {}, None, 4096)
    return LinkedImage(
        img.name, layout, {"image": img.base}, {"image": bytearray(img.image)}, dict(img.section_addresses),
        list(img.symbol_values), img.relocations, dict(img.resolved),
    )  # fmt: skip

"""Source lines for addresses: file:line with inlined frames, from DWARF (pyelftools).

What ``addr2line -i -f`` (binutils) prints, as :class:`SourceFrame` records, innermost first:
the function holding the address (the inlined subroutine, if any) with the line-table row of
the address, then each caller it was inlined into with the call site (DW_AT_call_file /
DW_AT_call_line).  A line-table row with a discriminator prints "(discriminator N)" as
addr2line does.

Debug files: a vmlinux, a module (``.ko``, compressed or not) or a separate debug file
(:func:`find_debug_file`: ``/usr/lib/debug/.build-id/xx/rest.debug``, Debian's
``/usr/lib/debug/lib/modules/<release>/...`` and ``/usr/lib/debug/boot/vmlinux-<release>``).
A module is a relocatable object whose sections all start at 0: :class:`DebugInfo` places
them at the addresses given (the module's load addresses, from its map) by rewriting the
symbol values of a private copy before pyelftools applies the DWARF relocations, so lookups
take the kernel addresses of the report directly.  Only the compilation unit holding an
address is decoded (found through .debug_aranges), so one lookup in a large module is cheap.
"""

from __future__ import annotations

import io
import os
import struct
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise

from lkm.compress import decompress, detect
from lkm.elf import ElfFile
from lkm.elf.constants import SHF_ALLOC, SHT_REL, SHT_RELA, SHT_SYMTAB
from lkm.errors import LkmError
from lkm.record import Fields
from lkm.safeio import read_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEBUG_ROOT", "DebugInfo", "SourceFrame", "find_debug_file"]


@dataclass(frozen=True, slots=True)
class SourceFrame(Fields):
    """One line of ``addr2line -i -f`` output: function, file, line, discriminator."""

    function: str | None
    file: str | None
    line: int
    discriminator: int = 0

    def location(self) -> str:
        """``file:line`` as addr2line prints it (``??:0`` when unknown, ``file:?`` when only the
        symbol table names the file)."""
        if self.line < 0:
            return f"{self.file or '??'}:?"
        text = f"{self.file or '??'}:{self.line if self.file else 0}"
        return f"{text} (discriminator {self.discriminator})" if self.discriminator else text


def _load_bytes(path: str) -> bytes:
    try:
        data = read_bytes(path, limit=1 << 30)  # a vmlinux with its DWARF fits
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None
    comp = detect(data[:8])
    return decompress(data, comp) if comp is not None else data


def _distinct_bases(data: bytes) -> dict[str, int]:
    """Section name -> a made-up load address, 4 GiB apart, for each allocated section."""

    elf = ElfFile(data)
    return {s.name: (i + 1) << 32 for i, s in enumerate(elf.sections) if s.flags & SHF_ALLOC and s.name}


def _place_sections(data: bytes, bases: Mapping[str, int]) -> bytes:
    """A copy of the relocatable ELF64 ``data`` whose defined symbols carry ``bases[section]``
    added, so that DWARF relocated against them holds load addresses."""

    elf = ElfFile(data)
    if elf.elfclass != 64:
        raise LkmError("placing sections: only ELF64 modules")
    fmt = "<Q" if elf.little_endian else ">Q"
    add = {s.number: bases[s.name] for s in elf.sections if s.name in bases}
    out = bytearray(data)
    for symtab in elf.sections_of_type(SHT_SYMTAB):
        for i, sym in enumerate(elf.symbols(symtab)):
            delta = add.get(sym.shndx)
            if delta:
                at = symtab.offset + i * 24 + 8
                out[at : at + 8] = struct.pack(fmt, (sym.value + delta) & ((1 << 64) - 1))
    return bytes(out)


# Relocation types found in the .debug_* sections of modules: machine -> type -> (width, PC-relative)
_DEBUG_RELOCS: dict[int, dict[int, tuple[int, bool]]] = {
    62: {1: (8, False), 10: (4, False), 11: (4, False), 2: (4, True), 24: (8, True)},  # x86_64
    183: {257: (8, False), 258: (4, False), 260: (8, True), 261: (4, True)},  # aarch64
    3: {1: (4, False), 2: (4, True)},  # i386 (REL: the addend is in place)
}


def _relocate_debug(data: bytes) -> bytes:
    """``data`` with the relocations of its .debug_* sections applied (what pyelftools would do,
    much faster); the caller then reads DWARF without relocating again."""

    elf = ElfFile(data)
    kinds = _DEBUG_RELOCS.get(elf.e_machine)
    if kinds is None:
        return data
    out = bytearray(data)
    order = "<" if elf.little_endian else ">"
    syms = elf.symbols()
    values = [sym.value for sym in syms]
    for rel in elf.sections:
        if rel.type not in (SHT_REL, SHT_RELA) or rel.info >= len(elf.sections):
            continue
        target = elf.sections[rel.info]
        if not target.name.startswith(".debug"):
            continue
        base_off = target.offset
        for r in elf.relocations(rel):
            kind = kinds.get(r.type)
            if kind is None or r.sym >= len(values) or r.offset + kind[0] > target.size:
                continue
            width, pcrel = kind
            fmt = order + ("Q" if width == 8 else "I")
            at = base_off + r.offset
            addend = r.addend if r.addend is not None else struct.unpack_from(fmt, out, at)[0]
            value = values[r.sym] + addend - (r.offset if pcrel else 0)
            struct.pack_into(fmt, out, at, value & ((1 << (8 * width)) - 1))
    return bytes(out)


class _Unit:
    """One compilation unit's line rows and function ranges."""

    __slots__ = ("files", "funcs", "row_addrs", "rows", "walked")

    def __init__(self) -> None:
        self.files: list[str | None] = []
        self.walked = False
        self.row_addrs: list[int] = []
        self.rows: list[tuple[str | None, int, int, bool]] = []  # file, line, discriminator, end
        # (low, high, depth, name, call_file, call_line) of subprograms and inlined subroutines
        self.funcs: list[tuple[int, int, int, object, str | None, int]] = []


class DebugInfo:
    """DWARF of one file; ``bases``: section name -> load address (relocatable modules)."""

    def __init__(
        self, path: str, bases: Mapping[str, int] | None = None, *, data: bytes | None = None
    ) -> None:
        try:
            from elftools.elf.elffile import ELFFile
        except ImportError:
            raise LkmError("source lines need pyelftools: install lkm[debug]", path=path) from None

        raw = data if data is not None else _load_bytes(path)
        self.path = path
        relocatable = raw[16:18] == b"\x01\x00"  # ET_REL, little-endian
        try:
            if relocatable:
                if not bases:  # apart from each other, so that their DWARF does not overlap
                    bases = _distinct_bases(raw)
                raw = _place_sections(raw, bases)
                raw = _relocate_debug(raw)
            self._elf = ELFFile(io.BytesIO(raw))
            if not self._elf.has_dwarf_info():
                raise LkmError("no DWARF debug information", path=path)
            self._dwarf = self._elf.get_dwarf_info(relocate_dwarf_sections=not relocatable)
        except LkmError:
            raise
        except Exception as exc:  # pyelftools raises many types on damaged files
            raise LkmError(f"unreadable DWARF: {exc}", path=path) from None
        self._aranges: list[tuple[int, int, int]] | None = None
        self._units: dict[int, _Unit] = {}
        self._raw = raw
        self._bases = dict(bases or {})
        self._sec_bounds: dict[int, tuple[int, int]] = {}
        self._symtab: tuple[list[int], list[tuple[int, int, str, str | None, int]]] | None = None

    def _symbols(self) -> tuple[list[int], list[tuple[int, int, str, str | None, int]]]:
        """Function symbols (value, size, name, file of the preceding STT_FILE, section), by value:
        addr2line's fallback (bfd's elf_find_function) where DWARF names no function."""
        got = self._symtab
        if got is None:
            elf = ElfFile(self._raw)
            self._sec_bounds = {
                sec.number: (self._bases.get(sec.name, sec.addr), sec.size) for sec in elf.sections
            }
            rows = []
            for symtab in elf.sections_of_type(SHT_SYMTAB):
                # bfd's elf_find_function: a function's file is the STT_FILE before it, but for
                # a global one only while no STT_FILE has come after some other symbol (else
                # the file is unknown, "??")
                file = None
                seen_symbol = file_after_symbol = False
                for sym in elf.symbols(symtab, start=1):
                    if sym.type == 4:  # STT_FILE
                        file = sym.name
                        file_after_symbol = file_after_symbol or seen_symbol
                        continue
                    seen_symbol = True
                    if sym.type == 2 and sym.name and 0 < sym.shndx < len(elf.sections):  # STT_FUNC
                        known = sym.bind == 0 or not file_after_symbol  # STB_LOCAL
                        rows.append((sym.value, sym.size, sym.name, file if known else None, sym.shndx))
            rows.sort(key=lambda r: r[0])
            got = self._symtab = ([r[0] for r in rows], rows)
        return got

    def symbol_address(self, name: str, size: int | None = None) -> int | None:
        """Where function ``name`` is in this file's address space (as placed): the first
        function symbol of that name, or the one whose st_size is ``size`` if several."""
        _values, rows = self._symbols()
        found = [r for r in rows if r[2] == name]
        if not found:
            return None
        if size is not None and len(found) > 1:
            found = [r for r in found if r[1] == size] or found
        return found[0][0]

    def _symbol_frame(self, addr: int, row: tuple[str | None, int, int] | None) -> SourceFrame | None:
        values, rows = self._symbols()
        i = bisect_right(values, addr)
        if not i:
            return None
        # the containing symbol if one is, else the nearest below; the first of aliases
        best = rows[i - 1]
        for r in reversed(rows[:i]):
            if r[0] <= addr < r[0] + r[1]:
                best = r
                break
            if r[0] < best[0]:
                break
        j = bisect_right(values, best[0] - 1)
        while rows[j][0] == best[0] and rows[j][1] != best[1]:
            j += 1
        best = rows[j]
        start, size = self._sec_bounds.get(best[4], (0, 0))
        if not start <= addr < start + size:
            return None
        if row is not None:
            return SourceFrame(best[2], row[0], row[1], row[2])
        return SourceFrame(best[2], best[3], -1)  # addr2line: "file:?", or "??:?" with no file

    # -- finding the unit -------------------------------------------------------------------

    def _arange_table(self) -> list[tuple[int, int, int]]:
        got = self._aranges
        if got is None:
            got = []
            ar = self._dwarf.get_aranges()
            if ar is not None:
                for e in ar.entries:
                    if e.length:
                        got.append((e.begin_addr, e.begin_addr + e.length, e.info_offset))
            else:  # no .debug_aranges: each unit's line-table sequences (its DIEs stay unread)
                for cu in self._dwarf.iter_CUs():
                    unit = self._unit(cu, lines_only=True)
                    lo = None
                    for a, row in zip(unit.row_addrs, unit.rows, strict=True):
                        if lo is None:
                            lo = a
                        if row[3]:  # end_sequence
                            got.append((lo, a, cu.cu_offset))
                            lo = None
            got.sort()
            self._aranges = got
        return got

    def _cu_offsets(self, addr: int) -> list[int]:
        return sorted({off for lo, hi, off in self._arange_table() if lo <= addr < hi})

    def _unit(self, cu: object, *, lines_only: bool = False) -> _Unit:
        """The unit's line rows, and (unless ``lines_only``) its function ranges, decoded once."""
        off = cu.cu_offset  # type: ignore[attr-defined]
        got = self._units.get(off)
        if got is None:
            got = self._units[off] = _decode_lines(self._dwarf, cu)
        if not lines_only and not got.walked:
            got.walked = True
            _walk(self._dwarf, cu, cu.get_top_DIE(), 0, got.files, got)  # type: ignore[attr-defined]
        return got

    # -- lookup -----------------------------------------------------------------------------

    def frames(self, addr: int) -> list[SourceFrame]:
        """``addr2line -i -f``'s frames for ``addr``, innermost first ([] if unknown)."""
        for off in self._cu_offsets(addr):
            cu = self._dwarf.get_CU_at(off)
            unit = self._unit(cu)
            row = _row_at(unit, addr)
            chain = sorted((f for f in unit.funcs if f[0] <= addr < f[1]), key=lambda f: f[2], reverse=True)
            if row is None and not chain:
                continue
            file, line, disc = row if row is not None else (None, 0, 0)
            if not chain:
                fb = self._symbol_frame(addr, row)
                return [fb if fb is not None else SourceFrame(None, file, line, disc)]
            out = [SourceFrame(_die_name(chain[0][3]), file, line, disc)]
            for inner, outer in pairwise(chain):
                # addr2line prints the innermost row's discriminator on every inlined-by line
                # too (bfd_find_inliner_info leaves it as it was)
                out.append(SourceFrame(_die_name(outer[3]), inner[4], inner[5], disc))
            return out
        # bfd looks in a unit's line rows only where the unit's ranges cover the address; a unit
        # that names no ranges at all (in .debug_aranges) is searched by its line rows alone
        ranged = {off for _lo, _hi, off in self._arange_table()}
        row = None
        for cu in self._dwarf.iter_CUs():
            if cu.cu_offset in ranged:
                continue
            row = _row_at(self._unit(cu, lines_only=True), addr)
            if row is not None:
                break
        fb = self._symbol_frame(addr, row)
        return [fb] if fb is not None else []


def _row_at(unit: _Unit, addr: int) -> tuple[str | None, int, int] | None:
    i = bisect_right(unit.row_addrs, addr)
    if not i:
        return None
    file, line, disc, end = unit.rows[i - 1]
    if end:
        return None
    return file, line, disc


def _decode_lines(dwarf: object, cu: object) -> _Unit:
    unit = _Unit()
    lp = dwarf.line_program_for_CU(cu)  # type: ignore[attr-defined]
    top = cu.get_top_DIE()  # type: ignore[attr-defined]
    comp_dir = _attr_str(top, "DW_AT_comp_dir")
    files: list[str | None] = []
    if lp is not None:
        files = _file_names(lp, comp_dir)
        rows: list[tuple[int, tuple[str | None, int, int, bool]]] = []
        for entry in lp.get_entries():
            st = entry.state
            if st is None:
                continue
            fi = st.file
            name = files[fi] if 0 <= fi < len(files) else None
            rows.append((st.address, (name, st.line, st.discriminator, bool(st.end_sequence))))
        # stable by address; of several rows at one address the last wins (as addr2line), but
        # an end_sequence row never hides a row that starts the next sequence there.
        rows.sort(key=lambda r: r[0])
        addrs: list[int] = []
        vals: list[tuple[str | None, int, int, bool]] = []
        for a, v in rows:
            if addrs and addrs[-1] == a:
                if not v[3] or vals[-1][3]:
                    vals[-1] = v
                continue
            addrs.append(a)
            vals.append(v)
        unit.row_addrs, unit.rows = addrs, vals
    unit.files = files
    return unit


def _file_names(lp: object, comp_dir: str | None) -> list[str | None]:
    header = lp.header  # type: ignore[attr-defined]
    version = header["version"]
    dirs = [d.decode("utf-8", "surrogateescape") if isinstance(d, bytes) else str(d)
            for d in header["include_directory"]]  # fmt: skip
    names: list[str | None] = []
    if version < 5:
        names.append(None)  # DWARF 2-4 file numbers start at 1
        dirs.insert(0, comp_dir or "")
    for fe in header["file_entry"]:
        n = fe.name.decode("utf-8", "surrogateescape") if isinstance(fe.name, bytes) else str(fe.name)
        d = dirs[fe.dir_index] if 0 <= fe.dir_index < len(dirs) else ""
        path = n if n.startswith("/") else os.path.join(d, n) if d else n
        if not path.startswith("/") and comp_dir:
            path = os.path.join(comp_dir, path)
        names.append(path)
    return names


def _attr_str(die: object, name: str) -> str | None:
    at = die.attributes.get(name)  # type: ignore[attr-defined]
    if at is None:
        return None
    v = at.value
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def _die_name(die: object) -> str | None:
    seen = 0
    while die is not None and seen < 8:
        n = _attr_str(die, "DW_AT_name")
        if n is not None:
            return n
        nxt = None
        for ref in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if ref in die.attributes:  # type: ignore[attr-defined]
                nxt = die.get_DIE_from_attribute(ref)  # type: ignore[attr-defined]
                break
        die = nxt
        seen += 1
    return None


def _ranges(dwarf: object, cu: object, die: object) -> list[tuple[int, int]]:
    attrs = die.attributes  # type: ignore[attr-defined]
    lo = attrs.get("DW_AT_low_pc")
    hi = attrs.get("DW_AT_high_pc")
    if lo is not None and hi is not None:
        high = hi.value if hi.form == "DW_FORM_addr" else lo.value + hi.value
        return [(lo.value, high)]
    rng = attrs.get("DW_AT_ranges")
    if rng is None:
        return []
    out = []
    try:
        rl = dwarf.range_lists()  # type: ignore[attr-defined]
        entries = rl.get_range_list_at_offset(rng.value, cu=cu) if rl is not None else []
    except Exception:  # a damaged range list: no ranges rather than no lookups at all
        return []
    # offset pairs count from the compilation unit's base address (its DW_AT_low_pc; DWARF 5
    # 2.17.3), not from the DIE's own: an inlined call's ranges in an executable are offsets
    # from its CU's low_pc (modules' CUs have low_pc 0, which hid this)
    try:
        top = cu.get_top_DIE()  # type: ignore[attr-defined]
        cu_lo = top.attributes.get("DW_AT_low_pc") if top is not die else lo
    except Exception:
        cu_lo = lo
    base = cu_lo.value if cu_lo is not None else 0
    for e in entries:
        name = type(e).__name__
        if name == "BaseAddressEntry":
            base = e.base_address
        elif hasattr(e, "begin_offset"):
            if getattr(e, "is_absolute", False):
                out.append((e.begin_offset, e.end_offset))
            else:
                out.append((base + e.begin_offset, base + e.end_offset))
    return out


def _walk(dwarf: object, cu: object, die: object, depth: int, files: list[str | None], unit: _Unit) -> None:
    for child in die.iter_children():  # type: ignore[attr-defined]
        tag = child.tag
        if tag in ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine"):
            ranges = _ranges(dwarf, cu, child)
            if not ranges:  # a declaration or an abstract instance: no code, nothing inside
                continue
            cf = child.attributes.get("DW_AT_call_file")
            cl = child.attributes.get("DW_AT_call_line")
            call_file = files[cf.value] if cf is not None and 0 <= cf.value < len(files) else None
            for lo, hi in ranges:  # the name is looked up when the function is asked for
                unit.funcs.append((lo, hi, depth, child, call_file, cl.value if cl is not None else 0))
            _walk(dwarf, cu, child, depth + 1, files, unit)
        elif tag in ("DW_TAG_lexical_block", "DW_TAG_namespace", "DW_TAG_module", "DW_TAG_class_type"):
            _walk(dwarf, cu, child, depth + 1, files, unit)


# -- finding debug files ----------------------------------------------------------------------

DEBUG_ROOT = "/usr/lib/debug"


def find_debug_file(
    *, build_id: str | None = None, module_path: str | None = None, release: str | None = None,
    root: str = DEBUG_ROOT,
) -> str | None:  # fmt: skip
    """A separate debug file: by build id (``.build-id/xx/rest.debug``), Debian's -dbg layout
    for a module (``lib/modules/<release>/...``, compressed names too) or the kernel
    (``boot/vmlinux-<release>``)."""
    cands = []
    if build_id and len(build_id) > 2:
        cands.append(os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug"))
    if module_path:
        rel = module_path.lstrip("/")
        for suffix in (".xz", ".zst", ".gz"):
            if rel.endswith(suffix):
                rel = rel[: -len(suffix)]
        cands.append(os.path.join(root, rel))
    if release and not module_path:
        cands.append(os.path.join(root, "boot", f"vmlinux-{release}"))
        cands.append(os.path.join(root, "lib", "modules", release, "vmlinux"))
    return next((c for c in cands if os.path.isfile(c)), None)

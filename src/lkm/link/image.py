"""Linking a laid-out module: copy sections into their regions, give every symbol its final
value (the kernel's simplify_symbols), apply every relocation (apply_relocations), and return
the memory image as a :class:`LinkedImage`."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import NoReturn

from lkm.elf import Section
from lkm.elf.constants import (
    EM_386,
    EM_486,
    EM_AARCH64,
    EM_X86_64,
    SHN_ABS,
    SHN_COMMON,
    SHN_LIVEPATCH,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    STB_WEAK,
)
from lkm.errors import InvalidModule
from lkm.link.layout import Layout, Placement
from lkm.link.relocate import ARCHES, RelocArch
from lkm.module.file import ModuleFile
from lkm.record import Record

MACHINE_ARCH = {EM_X86_64: "x86_64", EM_386: "i386", EM_486: "i386", EM_AARCH64: "arm64"}


class LinkError(InvalidModule):
    """A module that cannot be linked; the reason names module, section, offset and symbol."""


class LinkedImage(Record):
    """The linked module: each region's bytes, each placed section's address and every
    symbol's final value (index-aligned with the module's symbol table)."""

    __slots__ = (
        "name", "layout", "bases", "regions", "section_addresses", "symbol_values", "relocations", "resolved",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        layout: Layout,
        bases: dict[str, int],
        regions: dict[str, bytearray],
        section_addresses: dict[int, int],
        symbol_values: list[int],
        relocations: int,
        resolved: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.layout = layout
        self.bases = bases
        self.regions = regions
        self.section_addresses = section_addresses
        self.symbol_values = symbol_values
        self.relocations = relocations
        self.resolved = resolved or {}  # undefined symbol -> the address it was resolved to

    def section_bytes(self, number: int) -> bytes:
        p = self.layout.placements[number]
        return bytes(self.regions[p.region][p.offset : p.offset + p.size])


def link_module(
    mod: ModuleFile,
    layout: Layout,
    bases: dict[str, int],
    resolve: Callable[[str], int | None],
    *,
    percpu_base: int = 0,
) -> LinkedImage:
    """Link ``mod`` laid out as ``layout`` at region ``bases``; ``resolve`` gives the address of
    an undefined symbol (None: not found).  Raises :class:`LinkError` as the kernel refuses."""
    elf = mod.elf
    name = mod.name
    arch_name = MACHINE_ARCH.get(elf.e_machine)
    if arch_name is None:
        raise LinkError(f"{name}: no relocation rules for machine {elf.e_machine}", path=mod.path)
    missing = [r for r in {p.region for p in layout.placements.values()} if r not in bases]
    if missing:
        raise ValueError(f"no base address for region(s) {', '.join(sorted(missing))}")
    top = 1 << (64 if elf.elfclass == 64 else 32)
    for r, size in layout.sizes.items():
        if r in bases and not 0 <= bases[r] <= top - size:
            raise LinkError(
                f"{name}: region {r} at {bases[r]:#x} (+{size:#x}) does not fit the address space",
                errno.EINVAL,
                path=mod.path,
            )
    regions = {r: bytearray(size) for r, size in layout.sizes.items()}
    addresses: dict[int, int] = {}
    for n, p in layout.placements.items():
        addresses[n] = bases[p.region] + p.offset
        sec = elf.sections[n]
        if sec.type != SHT_NOBITS and n not in layout.nobits and sec.size:
            regions[p.region][p.offset : p.offset + sec.size] = elf.section_bytes(sec)
    resolved: dict[str, int] = {}

    def record(sym: str) -> int | None:
        v = resolve(sym)
        if v is not None:
            resolved[sym] = v
        return v

    values = _simplify_symbols(mod, addresses, record, percpu_base)
    plts: dict[int, int] = {}  # arm64: PLT section -> entries emitted
    count = 0
    for rs in elf.sections:
        if rs.type not in (SHT_REL, SHT_RELA) or rs.info >= elf.e_shnum or rs.info not in layout.placements:
            continue
        if arch_name == "arm64":
            count += _apply_arm64(mod, rs.number, layout, regions, addresses, values, plts)
        else:
            count += _apply(mod, ARCHES[arch_name], rs.number, layout, regions, addresses, values)
    return LinkedImage(name, layout, bases, regions, addresses, values, count, resolved)


def _simplify_symbols(
    mod: ModuleFile, addresses: dict[int, int], resolve: Callable[[str], int | None], percpu_base: int
) -> list[int]:
    elf = mod.elf
    percpu = elf.section(".data..percpu")
    pcpu = percpu.number if percpu is not None else -1
    values = [0]
    errors: list[str] = []
    for s in elf.symbols()[1:]:
        v = s.value
        if s.shndx == SHN_COMMON:
            if not s.name.startswith("__gnu_lto"):
                errors.append("please compile with -fno-common")
        elif s.shndx in (SHN_ABS, SHN_LIVEPATCH):
            pass
        elif s.shndx == SHN_UNDEF:
            found = resolve(s.name) if s.name else None
            if found is not None:
                v = found
            elif not (s.bind == STB_WEAK or s.name == "_GLOBAL_OFFSET_TABLE_"):
                errors.append(f"Unknown symbol {s.name} (err {-errno.ENOENT})")
        elif s.shndx == pcpu:
            v += percpu_base
        elif s.shndx in addresses:
            v += addresses[s.shndx]
        values.append(v)
    if errors:
        # The kernel reports each one and fails the load with the last error.
        code = errno.ENOEXEC if "fno-common" in errors[-1] else errno.ENOENT
        raise LinkError(f"{mod.name}: " + "; ".join(errors), code, path=mod.path)
    return values


_KINDS: dict[tuple[str, bool], dict[int, tuple[int, bool, str, Callable[..., None], int, bytes]]] = {}


def _kinds(
    arch: RelocArch, little: bool
) -> dict[int, tuple[int, bool, str, Callable[..., None], int, bytes]]:
    """type -> (width, pc-relative, check, pack_into, value mask, zero bytes), made once."""
    got = _KINDS.get((arch.name, little))
    if got is None:
        e = "<" if little else ">"
        got = _KINDS[(arch.name, little)] = {
            k: (t.width, t.pcrel, t.check, struct.Struct(e + ("Q" if t.width == 8 else "I")).pack_into,
                (1 << (8 * t.width)) - 1, bytes(t.width))
            for k, t in arch.types.items()
        }  # fmt: skip
    return got


def _apply(
    mod: ModuleFile,
    arch: RelocArch,
    relsec: int,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    values: list[int],
) -> int:
    """x86_64/i386 apply_relocate(_add) over one section: a tight loop over the raw entries;
    anything the kernel refuses is re-examined by :func:`_refuse` for its one-line reason."""
    elf = mod.elf
    rs = elf.sections[relsec]
    target = elf.sections[rs.info]
    place = layout.placements[rs.info]
    buf = regions[place.region]
    lay = elf.layout
    data = elf.section_data(rs)
    rela = rs.type == SHT_RELA
    st = lay.rela if rela else lay.rel
    rows = list(st.iter_unpack(data[: len(data) // st.size * st.size]))
    shift, mask = lay.r_sym_shift, lay.r_type_mask
    kinds = _kinds(arch, elf.little_endian)
    s32 = struct.Struct(("<" if elf.little_endian else ">") + "i").unpack_from
    nvals, size, base_off, base_addr = len(values), target.size, place.offset, addresses[rs.info]
    check_zero = arch.zero_target
    for row in rows:
        off, info = row[0], row[1]
        sym, rtype = info >> shift, info & mask
        kind = kinds.get(rtype)
        if kind is None or sym >= nvals:
            _refuse(mod, target, off, sym, rtype, "kind")
        width, pcrel, check, pack_into, wmask, zero = kind
        if not width:
            continue
        if off + width > size:
            _refuse(mod, target, off, sym, rtype, "end")
        loc = base_off + off
        val = values[sym] + (row[2] if rela else s32(buf, loc)[0])
        if pcrel:
            val -= base_addr + off
        val &= 0xFFFFFFFFFFFFFFFF
        if check and (val > 0xFFFFFFFF if check == "u32" else 0x7FFFFFFF < val < 0xFFFFFFFF80000000):
            _refuse(mod, target, off, sym, rtype, f"overflow in relocation type {rtype} val {val:x}")
        if check_zero and buf[loc : loc + width] != zero:
            _refuse(mod, target, off, sym, rtype, NONZERO_TARGET)
        pack_into(buf, loc, val & wmask)
    return len(rows)


NONZERO_TARGET = "Invalid relocation target, existing value is nonzero"


def _refuse(mod: ModuleFile, target: Section, off: int, sym: int, rtype: int, why: str) -> NoReturn:
    """Raise the LinkError for a relocation the kernel would refuse, naming module, section,
    offset and symbol."""
    where = f"{mod.name}: {target.name}+{off:#x}"
    if why == "kind":
        if sym >= len(mod.elf.symbols()):
            why = f"relocation symbol index {sym} out of range"
            raise LinkError(f"{where}: {why}", path=mod.path)
        why = f"Unknown relocation type {rtype}"
    elif why == "end":
        raise LinkError(f"{where}: relocation past the end of the section", path=mod.path)
    s = mod.elf.symbol(sym)
    name = s.name if s is not None and s.name else str(sym)
    raise LinkError(f"{where} ({name}): {why}", path=mod.path)


def _apply_arm64(
    mod: ModuleFile,
    relsec: int,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    values: list[int],
    plts: dict[int, int],
) -> int:
    """arm64 apply_relocate_add over the section's entries in the kernel's order."""
    from lkm.link import arm64

    elf = mod.elf
    rs = elf.sections[relsec]
    target = elf.sections[rs.info]
    place = layout.placements[rs.info]
    buf = regions[place.region]
    plan = layout.arch_plan
    order = plan.orders.get(relsec) if isinstance(plan, arm64.PltPlan) else None
    erratum = isinstance(plan, arm64.PltPlan) and plan.erratum
    relas = order if order is not None else [(r.offset, r.sym, r.type, r.addend) for r in elf.relocations(rs)]
    for offset, symi, rtype, addend in relas:
        where = f"{mod.name}: {target.name}+{offset:#x}"
        if symi >= len(values):
            raise LinkError(f"{where}: relocation symbol index {symi} out of range", path=mod.path)
        t = arm64.TYPES.get(rtype)
        if t is None:
            raise LinkError(f"{where}: unsupported RELA relocation: {rtype}", path=mod.path)
        width = 8 if t.kind == "data" and t.length == 64 else 2 if t.kind == "data" and t.length == 16 else 4
        if t.kind != "none" and offset + width > target.size:
            raise LinkError(f"{where}: relocation past the end of the section", path=mod.path)
        loc = place.offset + offset
        p = addresses[rs.info] + offset
        val = (values[symi] + (addend or 0)) & arm64.U64
        overflow = False
        if t.kind == "none":
            continue
        if t.kind == "data":
            sval = arm64.do_reloc(t.op, p, val)
            buf[loc : loc + width] = (sval & ((1 << t.length) - 1)).to_bytes(width, "little")
            lim = 1 << t.length
            overflow = (sval < 0 or sval >= lim) if t.op == "abs" else not (-(lim >> 1) <= sval < (lim >> 1))
        else:
            insn = int.from_bytes(buf[loc : loc + 4], "little")
            if t.kind == "movw":
                insn, overflow = arm64.reloc_insn_movw(t.op, insn, p, val, t.lsb, t.form)
            elif t.kind == "adrp" and erratum and arm64.forbidden_adrp_place(p):

                def veneer(ins: int, page: int, pc: int = p, at: str = where) -> int:
                    return _emit_veneer(mod, layout, regions, addresses, plts, pc, ins, page, at)

                insn = arm64.adrp_843419(insn, p, val, veneer)
            else:  # "imm", and "adrp" where the erratum 843419 workaround does not apply
                insn, overflow = arm64.reloc_insn_imm(t.op, insn, p, val, t.lsb, t.length, t.form)
                if overflow and rtype in arm64.BRANCHES:
                    val = _emit_plt(mod, layout, regions, addresses, plts, p, val, where)
                    insn, overflow = arm64.reloc_insn_imm(t.op, insn, p, val, t.lsb, t.length, t.form)
            buf[loc : loc + 4] = insn.to_bytes(4, "little")
        if overflow and t.checked:
            raise LinkError(f"{where}: overflow in relocation type {rtype} val {val:#x}", path=mod.path)
    return len(relas)


def _plt_for(
    mod: ModuleFile, layout: Layout, addresses: dict[int, int], pc: int, where: str
) -> tuple[int, int, Placement]:
    """The PLT of the region holding ``pc`` (core or init): its section, capacity, placement."""
    from lkm.link import arm64

    plan = layout.arch_plan
    assert isinstance(plan, arm64.PltPlan)
    in_init = any(
        p.region.startswith("init") and addresses[n] <= pc < addresses[n] + max(p.size, 1)
        for n, p in layout.placements.items()
    )
    shndx = plan.init_shndx if in_init else plan.core_shndx
    limit = plan.init_plts if in_init else plan.core_plts
    if shndx is None or shndx not in layout.placements:
        raise LinkError(f"{where}: branch out of range and the module has no PLT section", path=mod.path)
    return shndx, limit, layout.placements[shndx]


def _emit_plt(
    mod: ModuleFile,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    plts: dict[int, int],
    pc: int,
    dst: int,
    where: str,
) -> int:
    """module_emit_plt_entry: a new entry in the core or init PLT (the one of the branch's
    region), shared with the previous entry when identical (the relocations are sorted); with
    the erratum 843419 workaround a slot whose ADRP would sit at a page's end is skipped."""
    from lkm.link import arm64

    shndx, limit, p = _plt_for(mod, layout, addresses, pc, where)
    buf = regions[p.region]
    i = plts.get(shndx, 0)
    j = i - 1
    base = addresses[shndx]
    plan = layout.arch_plan
    if isinstance(plan, arm64.PltPlan) and plan.erratum and arm64.forbidden_adrp_place(base + i * 12):
        i += 1
    if i > limit or (i + 1) * arm64.PLT_ENTRY_SIZE > p.size:
        raise LinkError(f"{where}: PLT section full ({limit} entries)", path=mod.path)
    # The kernel writes plt[i] before its duplicate check, so a duplicate's entry stays in the
    # slot past the count until the next new entry overwrites it (the section has a spare slot).
    buf[p.offset + i * 12 : p.offset + (i + 1) * 12] = arm64.plt_entry(dst, base + i * arm64.PLT_ENTRY_SIZE)
    if j >= 0:
        prev = bytes(buf[p.offset + j * 12 : p.offset + (j + 1) * 12])
        # plt_entries_equal: same target (the adrp page is pc-relative, so compare by target)
        if prev == arm64.plt_entry(dst, base + j * arm64.PLT_ENTRY_SIZE):
            return base + j * arm64.PLT_ENTRY_SIZE
    if i >= limit:
        raise LinkError(f"{where}: PLT section full ({limit} entries)", path=mod.path)
    plts[shndx] = i + 1
    return base + i * arm64.PLT_ENTRY_SIZE


def _emit_veneer(
    mod: ModuleFile,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    plts: dict[int, int],
    pc: int,
    insn: int,
    page: int,
    where: str,
) -> int:
    """module_emit_veneer_for_adrp: adrp+add into the ADRP's own register, then a branch back
    to the instruction after it; a slot at a page's end is skipped."""
    from lkm.link import arm64

    shndx, limit, p = _plt_for(mod, layout, addresses, pc, where)
    base = addresses[shndx]
    i = n = plts.get(shndx, 0)
    n += 1
    if n > limit:
        raise LinkError(f"{where}: PLT section full ({limit} entries) for an ADRP veneer", path=mod.path)
    if arm64.forbidden_adrp_place(base + i * 12):
        i, n = n, n + 1
    if (i + 1) * arm64.PLT_ENTRY_SIZE > p.size:
        raise LinkError(f"{where}: PLT section too small for an ADRP veneer", path=mod.path)
    plts[shndx] = n
    at = base + i * arm64.PLT_ENTRY_SIZE
    entry = arm64.adrp_add_pair(page, at, insn & 0x1F) + struct.pack("<I", arm64.branch_imm(at + 8, pc + 4))
    regions[p.region][p.offset + i * 12 : p.offset + (i + 1) * 12] = entry
    return at

"""arm64 modules: the kernel's module_frob_arch_sections (PLT and ftrace-trampoline sections
sized before layout) and apply_relocate_add (arch/arm64/kernel/module.c, module-plts.c).

Relocation types are a table: (operation, instruction or data form, lsb, length, checked).
Instructions are rewritten even when the value overflows; the error counts only when checked.
Branches out of range go through a PLT entry (adrp x16; add x16, x16, :lo12:; br x16).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cmp_to_key

from lkm.elf import ElfFile, Section
from lkm.elf.constants import SHF_ALLOC, SHF_EXECINSTR, SHT_NOBITS, SHT_RELA
from lkm.errors import LinkError
from lkm.kernels import KernelConfig, is_init_section

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.link.layout import Layout, Placement
    from lkm.module.file import ModuleFile

__all__ = [
    "ADRPS",
    "BRANCHES",
    "BREAK_FAULT",
    "IMM_FIELDS",
    "L1_CACHE_BYTES",
    "NR_FTRACE_PLTS",
    "PLT_ENTRY_SIZE",
    "TYPES",
    "U64",
    "Arm64Reloc",
    "PltPlan",
    "R",
    "RelocOverflow",
    "adrp_843419",
    "adrp_add_pair",
    "apply_relocate_add",
    "branch_imm",
    "branch_needs_plt",
    "count_plts",
    "do_reloc",
    "encode_imm",
    "erratum_min_align",
    "forbidden_adrp_place",
    "frob_arch_sections",
    "kernel_rela_order",
    "plt_entry",
    "reloc_insn_imm",
    "reloc_insn_movw",
]

R = {
    "NONE": 0, "ABS64": 257, "ABS32": 258, "ABS16": 259, "PREL64": 260, "PREL32": 261, "PREL16": 262,
    "MOVW_UABS_G0": 263, "MOVW_UABS_G0_NC": 264, "MOVW_UABS_G1": 265, "MOVW_UABS_G1_NC": 266,
    "MOVW_UABS_G2": 267, "MOVW_UABS_G2_NC": 268, "MOVW_UABS_G3": 269, "MOVW_SABS_G0": 270,
    "MOVW_SABS_G1": 271, "MOVW_SABS_G2": 272, "LD_PREL_LO19": 273, "ADR_PREL_LO21": 274,
    "ADR_PREL_PG_HI21": 275, "ADR_PREL_PG_HI21_NC": 276, "ADD_ABS_LO12_NC": 277, "LDST8_ABS_LO12_NC": 278,
    "TSTBR14": 279, "CONDBR19": 280, "JUMP26": 282, "CALL26": 283, "LDST16_ABS_LO12_NC": 284,
    "LDST32_ABS_LO12_NC": 285, "LDST64_ABS_LO12_NC": 286, "MOVW_PREL_G0": 287, "MOVW_PREL_G0_NC": 288,
    "MOVW_PREL_G1": 289, "MOVW_PREL_G1_NC": 290, "MOVW_PREL_G2": 291, "MOVW_PREL_G2_NC": 292,
    "MOVW_PREL_G3": 293, "LDST128_ABS_LO12_NC": 299,
}  # fmt: skip

PLT_ENTRY_SIZE = 12  # struct plt_entry { adrp; add; br; }
L1_CACHE_BYTES = 64
NR_FTRACE_PLTS = 1  # 6.1: FTRACE_PLT_IDX only
U64 = (1 << 64) - 1

# immediate field (mask, shift) by instruction form; "adr" is split immlo/immhi
IMM_FIELDS = {"imm26": ((1 << 26) - 1, 0), "imm19": ((1 << 19) - 1, 5), "imm16": ((1 << 16) - 1, 5),
              "imm14": ((1 << 14) - 1, 5), "imm12": ((1 << 12) - 1, 10)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Arm64Reloc:
    """``kind``: "data" (len bits), "movw" (lsb; ``imm`` "movkz"/"movnz"), "imm" (lsb, len, form),
    "adrp" (page-relative ADRP, erratum-843419 aware), "none".  ``op``: abs, prel or page."""

    name: str
    kind: str
    op: str
    lsb: int
    length: int
    form: str
    checked: bool


def _t(
    name: str, kind: str, op: str = "abs", lsb: int = 0, length: int = 0, form: str = "", checked: bool = True
) -> tuple[int, Arm64Reloc]:
    return R[name], Arm64Reloc(f"R_AARCH64_{name}", kind, op, lsb, length, form, checked)


TYPES: dict[int, Arm64Reloc] = dict(
    [
        _t("NONE", "none", checked=False),
        _t("ABS64", "data", "abs", length=64, checked=False),
        _t("ABS32", "data", "abs", length=32),
        _t("ABS16", "data", "abs", length=16),
        _t("PREL64", "data", "prel", length=64, checked=False),
        _t("PREL32", "data", "prel", length=32),
        _t("PREL16", "data", "prel", length=16),
        _t("MOVW_UABS_G0_NC", "movw", "abs", 0, form="movkz", checked=False),
        _t("MOVW_UABS_G0", "movw", "abs", 0, form="movkz"),
        _t("MOVW_UABS_G1_NC", "movw", "abs", 16, form="movkz", checked=False),
        _t("MOVW_UABS_G1", "movw", "abs", 16, form="movkz"),
        _t("MOVW_UABS_G2_NC", "movw", "abs", 32, form="movkz", checked=False),
        _t("MOVW_UABS_G2", "movw", "abs", 32, form="movkz"),
        _t("MOVW_UABS_G3", "movw", "abs", 48, form="movkz", checked=False),
        _t("MOVW_SABS_G0", "movw", "abs", 0, form="movnz"),
        _t("MOVW_SABS_G1", "movw", "abs", 16, form="movnz"),
        _t("MOVW_SABS_G2", "movw", "abs", 32, form="movnz"),
        _t("MOVW_PREL_G0_NC", "movw", "prel", 0, form="movkz", checked=False),
        _t("MOVW_PREL_G0", "movw", "prel", 0, form="movnz"),
        _t("MOVW_PREL_G1_NC", "movw", "prel", 16, form="movkz", checked=False),
        _t("MOVW_PREL_G1", "movw", "prel", 16, form="movnz"),
        _t("MOVW_PREL_G2_NC", "movw", "prel", 32, form="movkz", checked=False),
        _t("MOVW_PREL_G2", "movw", "prel", 32, form="movnz"),
        _t("MOVW_PREL_G3", "movw", "prel", 48, form="movnz", checked=False),
        _t("LD_PREL_LO19", "imm", "prel", 2, 19, "imm19"),
        _t("ADR_PREL_LO21", "imm", "prel", 0, 21, "adr"),
        _t("ADR_PREL_PG_HI21_NC", "adrp", "page", 12, 21, "adr", checked=False),
        _t("ADR_PREL_PG_HI21", "adrp", "page", 12, 21, "adr"),
        _t("ADD_ABS_LO12_NC", "imm", "abs", 0, 12, "imm12", checked=False),
        _t("LDST8_ABS_LO12_NC", "imm", "abs", 0, 12, "imm12", checked=False),
        _t("LDST16_ABS_LO12_NC", "imm", "abs", 1, 11, "imm12", checked=False),
        _t("LDST32_ABS_LO12_NC", "imm", "abs", 2, 10, "imm12", checked=False),
        _t("LDST64_ABS_LO12_NC", "imm", "abs", 3, 9, "imm12", checked=False),
        _t("LDST128_ABS_LO12_NC", "imm", "abs", 4, 8, "imm12", checked=False),
        _t("TSTBR14", "imm", "prel", 2, 14, "imm14"),
        _t("CONDBR19", "imm", "prel", 2, 19, "imm19"),
        _t("JUMP26", "imm", "prel", 2, 26, "imm26"),
        _t("CALL26", "imm", "prel", 2, 26, "imm26"),
    ]
)
BRANCHES = (R["JUMP26"], R["CALL26"])
ADRPS = (R["ADR_PREL_PG_HI21"], R["ADR_PREL_PG_HI21_NC"])


def _s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def do_reloc(op: str, place: int, val: int) -> int:
    """The value a relocation operation computes, as a signed 64-bit number."""
    if op == "abs":
        return _s64(val)
    if op == "prel":
        return _s64(val - place)
    return _s64((val & ~0xFFF) - (place & ~0xFFF))  # page


def encode_imm(form: str, insn: int, imm: int) -> int:
    """aarch64_insn_encode_immediate."""
    if form == "adr":
        imm &= U64
        immlo = (imm & 3) << 29
        immhi = ((imm >> 2) & ((1 << 19) - 1)) << 5
        mask = (3 << 29) | (((1 << 19) - 1) << 5)
        return (insn & ~mask & 0xFFFFFFFF) | immlo | immhi
    mask, shift = IMM_FIELDS[form]
    return (insn & ~(mask << shift) & 0xFFFFFFFF) | ((imm & mask) << shift)


class RelocOverflow(Exception):
    pass


def reloc_insn_imm(
    op: str, insn: int, place: int, val: int, lsb: int, length: int, form: str
) -> tuple[int, bool]:
    """(new instruction, overflowed)."""
    sval = do_reloc(op, place, val) >> lsb
    imm_mask = ((1 << (lsb + length)) - 1) >> lsb
    new = encode_imm(form, insn, sval & imm_mask)
    upper = (sval & ~(imm_mask >> 1)) >> (length - 1)
    return new, ((upper + 1) & U64) >= 2


def reloc_insn_movw(op: str, insn: int, place: int, val: int, lsb: int, form: str) -> tuple[int, bool]:
    sval = do_reloc(op, place, val)
    imm = (sval >> lsb) & U64
    if form == "movnz":
        insn &= ~(3 << 29) & 0xFFFFFFFF
        if sval >= 0:
            insn |= 2 << 29  # MOVZ
        else:
            imm = ~imm & U64  # MOVN
    return encode_imm("imm16", insn, imm), imm > 0xFFFF


def plt_entry(dst: int, pc: int) -> bytes:
    """get_plt_entry: adrp x16, dst; add x16, x16, #:lo12:dst; br x16."""
    return adrp_add_pair(dst, pc, 16) + struct.pack("<I", 0xD61F0200)


def adrp_add_pair(dst: int, pc: int, reg: int) -> bytes:
    """__get_adrp_add_pair: adrp xREG, dst; add xREG, xREG, #(dst % 4096)."""
    page = ((dst >> 12) - (pc >> 12)) & ((1 << 21) - 1)
    adrp = encode_imm("adr", 0x90000000 | reg, page)
    add = 0x91000000 | reg << 5 | reg | (dst % 4096) << 10
    return struct.pack("<II", adrp, add)


BREAK_FAULT = 0xD4202000  # AARCH64_BREAK_FAULT: what gen_branch_imm returns when out of range


def branch_imm(pc: int, addr: int) -> int:
    """aarch64_insn_gen_branch_imm(pc, addr, NOLINK): b addr."""
    offset = _s64(addr - pc)
    if offset & 3 or not -(1 << 27) <= offset < (1 << 27):
        return BREAK_FAULT
    return 0x14000000 | ((offset >> 2) & ((1 << 26) - 1))


def forbidden_adrp_place(place: int) -> bool:
    """is_forbidden_offset_for_adrp (with the erratum workaround on): the last 8 bytes of a page."""
    return place & 0xFFF >= 0xFF8


def adrp_843419(insn: int, place: int, val: int, emit_veneer: Callable[[int, int], int]) -> int:
    """reloc_insn_adrp for an ADRP at a forbidden place (erratum 843419 workaround on): an ADR
    to the page if in range (bit 31 cleared), else a branch to a veneer in the PLT that does
    the ADRP+ADD and branches back.  ``emit_veneer(insn, page)`` returns the veneer's address."""
    page = val & ~0xFFF
    insn, overflow = reloc_insn_imm("prel", insn, place, page, 0, 21, "adr")
    if not overflow:
        return insn & ~(1 << 31)
    return branch_imm(place, emit_veneer(insn, page))


def erratum_min_align(offset: int) -> int:
    """count_plts: 2 << ffz(r_offset | 7), the section alignment that keeps this ADRP off the
    last 8 bytes of any page."""
    x = offset | 7
    return 2 << ((~x & (x + 1)).bit_length() - 1)


def branch_needs_plt(syms_shndx: list[int], rtype: int, sym: int, dstidx: int) -> bool:
    return rtype in BRANCHES and syms_shndx[sym] != dstidx


def _cmp_rela(a: tuple[int, int, int, int | None], b: tuple[int, int, int, int | None]) -> int:
    """cmp_rela: by type, then symbol index, then addend (offsets ignored)."""
    for x, y in ((a[2], b[2]), (a[1], b[1]), (a[3] or 0, b[3] or 0)):
        if x != y:
            return -1 if x < y else 1
    return 0


def kernel_rela_order(
    relas: list[tuple[int, int, int, int | None]], syms_shndx: list[int], dstidx: int
) -> tuple[list[tuple[int, int, int, int | None]], int]:
    """The order apply_relocate_add sees a section's RELA entries (offset, sym, type, addend) in
    after module_frob_arch_sections partitioned the PLT-needing branches to the front and sorted
    them; and how many those are (the kernel's own partition loop, quirks included)."""
    rels = list(relas)
    i, j = 0, len(rels) - 1
    while i < j:
        if branch_needs_plt(syms_shndx, rels[i][2], rels[i][1], dstidx):
            i += 1
        elif branch_needs_plt(syms_shndx, rels[j][2], rels[j][1], dstidx):
            rels[i], rels[j] = rels[j], rels[i]
        else:
            j -= 1
    n = i
    if n:
        rels[:n] = sorted(rels[:n], key=cmp_to_key(_cmp_rela))
    return rels, n


def count_plts(
    rels: list[tuple[int, int, int, int | None]], syms_shndx: list[int], dstidx: int, erratum: bool = False
) -> tuple[int, int]:
    """count_plts (CONFIG_RANDOMIZE_BASE): branches to other sections, duplicates (same type,
    symbol, addend; adjacent after sorting) counted once.  With the erratum 843419 workaround:
    each ADRP either raises the section's alignment (returned) or, when no alignment up to 4K
    keeps it safe, gets a veneer slot; plus one slack slot per 4K of PLT."""
    count, align = 0, 0
    for k, r in enumerate(rels):
        if erratum and r[2] in ADRPS:
            need = erratum_min_align(r[0])
            if need > 4096:
                count += 1
            else:
                align = max(align, need)
            continue
        if r[2] not in BRANCHES or syms_shndx[r[1]] == dstidx:
            continue
        if (r[3] or 0) != 0 or not (k > 0 and _cmp_rela(r, rels[k - 1]) == 0):
            count += 1
    if erratum:
        count += -(-count // (4096 // PLT_ENTRY_SIZE))
    return count, align


@dataclass(frozen=True, slots=True)
class PltPlan:
    """The PLT sections' new headers and the kernel's order of each RELA section."""

    overrides: dict[int, Section]
    orders: dict[int, list[tuple[int, int, int, int | None]]]
    core_plts: int
    init_plts: int
    core_shndx: int | None
    init_shndx: int | None
    erratum: bool = False


def frob_arch_sections(elf: ElfFile, init_section: object = None) -> PltPlan:
    """module_frob_arch_sections: size .plt/.init.plt for the branches that may need them and
    turn them (and .text.ftrace_trampoline) into NOBITS ALLOC|EXEC sections."""
    cfg = init_section if isinstance(init_section, KernelConfig) else KernelConfig()
    syms = elf.symbols()
    shndx = [s.shndx for s in syms]
    core = init = 0
    orders: dict[int, list[tuple[int, int, int, int | None]]] = {}
    erratum = cfg.arm64_erratum_843419
    aligns: dict[int, int] = {}
    for rs in elf.sections:
        if rs.type != SHT_RELA or rs.info >= elf.e_shnum:
            continue
        dst = elf.sections[rs.info]
        if not dst.flags & SHF_EXECINSTR:
            continue
        relas = [(r.offset, r.sym, r.type, r.addend) for r in elf.relocations(rs)]
        if any(r[1] >= len(shndx) for r in relas):
            continue  # reported by the linker
        ordered, _n = kernel_rela_order(relas, shndx, rs.info)
        orders[rs.number] = ordered
        n, align = count_plts(ordered, shndx, rs.info, erratum)
        if align > aligns.get(dst.number, dst.addralign):
            aligns[dst.number] = align  # dstsec->sh_addralign raised in place
        if is_init_section(dst.name, cfg):
            init += n
        else:
            core += n
    overrides: dict[int, Section] = {n: _realigned(elf.sections[n], a) for n, a in aligns.items()}
    core_shndx = init_shndx = None
    for s in elf.sections:
        if s.name == ".plt":
            core_shndx = s.number
            overrides[s.number] = _nobits(s, L1_CACHE_BYTES, (core + 1) * PLT_ENTRY_SIZE)
        elif s.name == ".init.plt":
            init_shndx = s.number
            overrides[s.number] = _nobits(s, L1_CACHE_BYTES, (init + 1) * PLT_ENTRY_SIZE)
        elif s.name == ".text.ftrace_trampoline":
            overrides[s.number] = _nobits(s, 4, NR_FTRACE_PLTS * PLT_ENTRY_SIZE)
    return PltPlan(overrides, orders, core, init, core_shndx, init_shndx, erratum)


def _realigned(s: Section, align: int) -> Section:
    return Section(s.number, s.name, s.type, s.flags, s.addr, s.offset, s.size, s.link, s.info, align,
                   s.entsize, s.name_offset)  # fmt: skip


def _nobits(s: Section, align: int, size: int) -> Section:
    return Section(s.number, s.name, SHT_NOBITS, SHF_EXECINSTR | SHF_ALLOC, s.addr, s.offset, size, s.link,
                   s.info, align, s.entsize, s.name_offset)  # fmt: skip


# -- apply_relocate_add ------------------------------------------------------------------------


def apply_relocate_add(
    mod: ModuleFile,
    relsec: int,
    layout: Layout,
    regions: dict[str, bytearray],
    addresses: dict[int, int],
    values: list[int],
    plts: dict[int, int],
) -> int:
    """arm64 apply_relocate_add over the section's entries in the kernel's order."""
    elf = mod.elf
    rs = elf.sections[relsec]
    target = elf.sections[rs.info]
    place = layout.placements[rs.info]
    buf = regions[place.region]
    plan = layout.arch_plan
    order = plan.orders.get(relsec) if isinstance(plan, PltPlan) else None
    erratum = isinstance(plan, PltPlan) and plan.erratum
    relas = order if order is not None else [(r.offset, r.sym, r.type, r.addend) for r in elf.relocations(rs)]
    for offset, symi, rtype, addend in relas:
        where = f"{mod.name}: {target.name}+{offset:#x}"
        if symi >= len(values):
            raise LinkError(f"{where}: relocation symbol index {symi} out of range", path=mod.path)
        t = TYPES.get(rtype)
        if t is None:
            raise LinkError(f"{where}: unsupported RELA relocation: {rtype}", path=mod.path)
        width = 8 if t.kind == "data" and t.length == 64 else 2 if t.kind == "data" and t.length == 16 else 4
        if t.kind != "none" and offset + width > target.size:
            raise LinkError(f"{where}: relocation past the end of the section", path=mod.path)
        loc = place.offset + offset
        p = addresses[rs.info] + offset
        val = (values[symi] + (addend or 0)) & U64
        overflow = False
        if t.kind == "none":
            continue
        if t.kind == "data":
            sval = do_reloc(t.op, p, val)
            buf[loc : loc + width] = (sval & ((1 << t.length) - 1)).to_bytes(width, "little")
            lim = 1 << t.length
            overflow = (sval < 0 or sval >= lim) if t.op == "abs" else not (-(lim >> 1) <= sval < (lim >> 1))
        else:
            insn = int.from_bytes(buf[loc : loc + 4], "little")
            if t.kind == "movw":
                insn, overflow = reloc_insn_movw(t.op, insn, p, val, t.lsb, t.form)
            elif t.kind == "adrp" and erratum and forbidden_adrp_place(p):

                def veneer(ins: int, page: int, pc: int = p, at: str = where) -> int:
                    return _emit_veneer(mod, layout, regions, addresses, plts, pc, ins, page, at)

                insn = adrp_843419(insn, p, val, veneer)
            else:  # "imm", and "adrp" where the erratum 843419 workaround does not apply
                insn, overflow = reloc_insn_imm(t.op, insn, p, val, t.lsb, t.length, t.form)
                if overflow and rtype in BRANCHES:
                    val = _emit_plt(mod, layout, regions, addresses, plts, p, val, where)
                    insn, overflow = reloc_insn_imm(t.op, insn, p, val, t.lsb, t.length, t.form)
            buf[loc : loc + 4] = insn.to_bytes(4, "little")
        if overflow and t.checked:
            raise LinkError(f"{where}: overflow in relocation type {rtype} val {val:#x}", path=mod.path)
    return len(relas)


def _plt_for(
    mod: ModuleFile, layout: Layout, addresses: dict[int, int], pc: int, where: str
) -> tuple[int, int, Placement]:
    """The PLT of the region holding ``pc`` (core or init): its section, capacity, placement."""
    plan = layout.arch_plan
    assert isinstance(plan, PltPlan)
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
    shndx, limit, p = _plt_for(mod, layout, addresses, pc, where)
    buf = regions[p.region]
    i = plts.get(shndx, 0)
    j = i - 1
    base = addresses[shndx]
    plan = layout.arch_plan
    if isinstance(plan, PltPlan) and plan.erratum and forbidden_adrp_place(base + i * 12):
        i += 1
    if i > limit or (i + 1) * PLT_ENTRY_SIZE > p.size:
        raise LinkError(f"{where}: PLT section full ({limit} entries)", path=mod.path)
    # The kernel writes plt[i] before its duplicate check, so a duplicate's entry stays in the
    # slot past the count until the next new entry overwrites it (the section has a spare slot).
    buf[p.offset + i * 12 : p.offset + (i + 1) * 12] = plt_entry(dst, base + i * PLT_ENTRY_SIZE)
    if j >= 0:
        prev = bytes(buf[p.offset + j * 12 : p.offset + (j + 1) * 12])
        # plt_entries_equal: same target (the adrp page is pc-relative, so compare by target)
        if prev == plt_entry(dst, base + j * PLT_ENTRY_SIZE):
            return base + j * PLT_ENTRY_SIZE
    if i >= limit:
        raise LinkError(f"{where}: PLT section full ({limit} entries)", path=mod.path)
    plts[shndx] = i + 1
    return base + i * PLT_ENTRY_SIZE


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
    shndx, limit, p = _plt_for(mod, layout, addresses, pc, where)
    base = addresses[shndx]
    i = n = plts.get(shndx, 0)
    n += 1
    if n > limit:
        raise LinkError(f"{where}: PLT section full ({limit} entries) for an ADRP veneer", path=mod.path)
    if forbidden_adrp_place(base + i * 12):
        i, n = n, n + 1
    if (i + 1) * PLT_ENTRY_SIZE > p.size:
        raise LinkError(f"{where}: PLT section too small for an ADRP veneer", path=mod.path)
    plts[shndx] = n
    at = base + i * PLT_ENTRY_SIZE
    entry = adrp_add_pair(page, at, insn & 0x1F) + struct.pack("<I", branch_imm(at + 8, pc + 4))
    regions[p.region][p.offset + i * 12 : p.offset + (i + 1) * 12] = entry
    return at

"""Is a loaded module exactly its file?  Relink the file where the kernel put it and compare.

The kernel tells where each section went (/sys/module/NAME/sections) and what every symbol
resolves to (/proc/kallsyms); its memory is readable through /proc/kcore.  lkm's linker lays
the file out and relocates it at exactly those addresses; then

(a) every section whose address lkm's layout would not have chosen (offset in its region),
(b) every byte that differs, outside the sites the kernel patches after relocation (loader
    spec §5: alternatives, paravirt, retpoline/return/call-thunk sites, ENDBR seals, SMP
    locks, ftrace call sites, jump labels, static calls, ORC and exception tables sorted in
    place, the module struct, writable data) and outside init memory (freed),
(c) every /proc/kallsyms line of the module that differs,

are reported.  Each masked byte is counted under its reason, so "0 differences" says how much
was actually compared.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lkm.arch import for_machine
from lkm.elf.constants import SHF_WRITE, SHT_NOBITS, SHT_REL, SHT_RELA
from lkm.kernel.interface import Kernel
from lkm.link import link
from lkm.link.image import LinkedImage
from lkm.link.kallsyms import format_module_kallsyms, module_kallsyms
from lkm.link.layout import KernelConfig, Layout, layout_module
from lkm.link.resolve import kernel_resolver
from lkm.module.file import ModuleFile
from lkm.symbols.table import SymbolTable

__all__ = ["FILLED", "REWRITTEN", "SITE_TABLES", "Memory", "SiteTable", "VerifyReport", "verify_module"]


class Memory(Protocol):
    """Kernel virtual memory: /proc/kcore (:class:`lkm.elf.core.CoreFile`) or a snapshot's."""

    def read(self, address: int, size: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SiteTable:
    """A table of patch sites: entries of ``size`` bytes (per layout rules), the site's address
    a 32-bit self-relative offset (``rel32``) or an absolute pointer at ``at``, its length fixed
    or given by the byte at ``len_at``."""

    reason: str
    size: dict[str, int]
    at: int
    rel32: bool
    length: int = 0
    len_at: int | None = None


_BOTH = ("linux-6.1", "linux-6.12")


def _all(n: int) -> dict[str, int]:
    return dict.fromkeys(_BOTH, n)


def _x86(word: int) -> dict[str, SiteTable]:
    """x86 (arch/x86/kernel/module.c module_finalize, kernel/module/main.c post_relocation)."""
    return {
        # struct alt_instr: s32 instr, s32 repl, cpuid (6.1: u16; 6.12: u32 ft_flags), u8 instrlen, u8 replen
        ".altinstructions": SiteTable(
            "alternatives", {"linux-6.1": 12, "linux-6.12": 14}, 0, True, len_at=-2
        ),
        # struct paravirt_patch_site: u8 *instr; u8 type; u8 len
        ".parainstructions": SiteTable("paravirt", _all(2 * word), 0, False, len_at=word + 1),
        ".retpoline_sites": SiteTable("retpolines", _all(4), 0, True, 6),
        ".return_sites": SiteTable("return thunks", _all(4), 0, True, 5),
        ".call_sites": SiteTable("call thunks", _all(4), 0, True, 5),
        ".cfi_sites": SiteTable("cfi", _all(4), 0, True, 16),
        ".ibt_endbr_seal": SiteTable("endbr seal", _all(4), 0, True, 4),
        ".smp_locks": SiteTable("smp locks", _all(4), 0, True, 1),
        "__mcount_loc": SiteTable("ftrace", _all(word), 0, False, 5),
        # struct jump_entry: s32 code, s32 target, long key; a 2- or 5-byte jmp/nop
        "__jump_table": SiteTable("jump labels", _all(8 + word), 0, True, 5),
        # struct static_call_site: s32 addr, s32 key
        ".static_call_sites": SiteTable("static calls", _all(8), 0, True, 5),
    }


# Per architecture (lkm.arch names).
SITE_TABLES: dict[str, dict[str, SiteTable]] = {
    "x86_64": _x86(8),
    "i386": _x86(4),
    "arm64": {
        # struct alt_instr: s32 orig, s32 alt, u16 cpufeature, u8 orig_len, u8 alt_len
        ".altinstructions": SiteTable("alternatives", _all(12), 0, True, len_at=-2),
        # the two NOPs of -fpatchable-function-entry=2, one pointer per function
        "__patchable_function_entries": SiteTable("ftrace", _all(8), 0, False, 8),
        "__jump_table": SiteTable("jump labels", _all(16), 0, True, 4),
    },
}

# Sections the kernel rewrites as a whole: sorted in place, flags or-ed in, or filled in.
REWRITTEN: dict[str, str] = {
    ".gnu.linkonce.this_module": "module struct",
    "__mcount_loc": "ftrace (sorted)",
    "__patchable_function_entries": "ftrace (sorted)",
    ".text.ftrace_trampoline": "ftrace trampoline",
    "__jump_table": "jump labels (sorted)",
    ".static_call_sites": "static calls (sorted, flagged)",
    ".orc_unwind_ip": "ORC (sorted)",
    ".orc_unwind": "ORC (sorted)",
    "__ex_table": "exception table (sorted)",
}


# NOBITS sections the loader itself fills while relocating (arm64 module_emit_plt_entry): lkm's
# linker fills them the same way, so they are compared like text.
FILLED = frozenset({".plt"})


@dataclass(slots=True, unsafe_hash=True)
class VerifyReport:
    """What ``verify`` found for one module."""

    module: str
    layout: list[str] = field(default_factory=list, init=False)  # sections lkm would have placed elsewhere
    bytes: list[tuple[int, str, int, bytes, bytes]] = field(
        default_factory=list, init=False
    )  # (address, section, offset, lkm, kernel)
    kallsyms: list[str] = field(
        default_factory=list, init=False
    )  # "-line" (lkm only) / "+line" (kernel only)
    compared: int = field(default=0, init=False)
    masked: dict[str, int] = field(default_factory=dict, init=False)

    @property
    def differences(self) -> int:
        return len(self.layout) + len(self.bytes) + len(self.kallsyms)


def _region_bases(layout: Layout, addrs: dict[str, int], report: VerifyReport) -> dict[str, int]:
    """Each region's base from the first of its sections the kernel lists; a section the
    kernel placed elsewhere relative to it is a layout difference."""
    by_name: dict[str, int] = {}
    for n, p in sorted(layout.placements.items()):
        by_name.setdefault(p.name, n)
    bases: dict[str, int] = {}
    for name, n in by_name.items():
        p = layout.placements[n]
        if name not in addrs or not p.size:
            continue
        base = bases.setdefault(p.region, addrs[name] - p.offset)
        if addrs[name] != base + p.offset:
            report.layout.append(
                f"{name}: kernel {addrs[name]:#x}, lkm {base + p.offset:#x} ({p.region}+{p.offset:#x})"
            )
    return bases


def _percpu_base(mod: ModuleFile, layout: Layout, addrs: dict[str, int], core: Memory) -> int:
    """The module's per-CPU area: recovered from the first absolute relocation against a
    per-CPU symbol (the kernel does not list the section's address)."""
    elf = mod.elf
    sec = elf.section(".data..percpu")
    arch = for_machine(elf.e_machine)
    if arch is None or sec is None or not sec.size or not (arch.abs_relocs or arch.adrp_relocs):
        return 0
    syms = elf.symbols()
    if arch.adrp_relocs is not None:
        return _percpu_base_adrp(mod, layout, addrs, core, sec.number, arch.adrp_relocs)
    types = arch.abs_relocs
    for rs in elf.sections:
        target = layout.placements.get(rs.info) if rs.type in (SHT_REL, SHT_RELA) else None
        if target is None or target.name not in addrs or target.region.startswith("init"):
            continue
        for r in elf.relocations(rs):
            if r.sym >= len(syms):  # no such symbol (the link reports it): not a per-CPU reference
                continue
            s = syms[r.sym]
            size = types.get(r.type)
            if s.shndx != sec.number or size is None:
                continue
            raw = core.read(addrs[target.name] + r.offset, size)
            addend = r.addend
            if addend is None:  # REL: the addend is in place, in the file
                data = elf.section_bytes(elf.sections[rs.info])
                addend = int.from_bytes(data[r.offset : r.offset + size], "little", signed=True)
            value = int.from_bytes(raw, "little", signed=size < elf.elfclass // 8)
            return (value - addend - s.value) & ((1 << elf.elfclass) - 1)
    return 0


def _percpu_base_adrp(
    mod: ModuleFile,
    layout: Layout,
    addrs: dict[str, int],
    core: Memory,
    shndx: int,
    relocs: tuple[tuple[int, ...], int],
) -> int:
    """arm64 reaches per-CPU data with ADRP + ADD: the page from the first, the low 12 bits
    from the second (same symbol and addend), read back from the kernel's memory."""
    elf = mod.elf
    syms = elf.symbols()
    adrp, add_lo12 = relocs
    pages: dict[tuple[int, int], int] = {}
    lows: dict[tuple[int, int], int] = {}
    for rs in elf.sections_of_type(SHT_RELA):
        target = layout.placements.get(rs.info)
        if target is None or target.name not in addrs or target.region.startswith("init"):
            continue
        for r in elf.relocations(rs):
            if r.sym >= len(syms) or syms[r.sym].shndx != shndx or r.type not in (*adrp, add_lo12):
                continue
            place = addrs[target.name] + r.offset
            insn = int.from_bytes(core.read(place, 4), "little")
            key = (r.sym, r.addend or 0)
            if r.type == add_lo12:
                lows.setdefault(key, (insn >> 10) & 0xFFF)
            else:
                imm = ((insn >> 5) & 0x7FFFF) << 2 | (insn >> 29) & 3
                imm -= (imm & 1 << 20) << 1  # sign-extend 21 bits
                pages.setdefault(key, (place & ~0xFFF) + (imm << 12))
            both = [k for k in pages if k in lows]
            if both:
                sym, addend = both[0]
                value = (pages[both[0]] | lows[both[0]]) - addend
                return (value - syms[sym].value) & ((1 << 64) - 1)
    return 0


def _masks(mod: ModuleFile, image: LinkedImage, rules: str) -> list[tuple[int, int, str]]:
    """(start, end, reason) of every patched site, by address."""
    out = []
    word = mod.elf.elfclass // 8
    pointer = "<Q" if word == 8 else "<I"
    mask = (1 << (8 * word)) - 1
    arch = for_machine(mod.elf.e_machine)
    for name, t in SITE_TABLES.get(arch.name if arch is not None else "", {}).items():
        sec = mod.elf.section(name)
        if sec is None or sec.number not in image.layout.placements or not sec.size:
            continue
        data = image.section_bytes(sec.number)
        base = image.section_addresses[sec.number]
        size = t.size.get(rules, t.size["linux-6.12"])
        for off in range(0, len(data) - size + 1, size):
            if t.rel32:
                site = (base + off + t.at + struct.unpack_from("<i", data, off + t.at)[0]) & mask
            else:
                site = struct.unpack_from(pointer, data, off + t.at)[0]
            length = data[off + (t.len_at % size)] if t.len_at is not None else t.length
            out.append((site, site + length, t.reason))
    return out


def verify_module(
    mod: ModuleFile,
    kernel: Kernel,
    core: Memory,
    table: SymbolTable,
    *,
    rules: str | None = None,
    config: KernelConfig | None = None,
    kallsyms_text: str | None = None,
) -> VerifyReport:
    """Compare the loaded module named ``mod.name`` with *mod* relinked at its addresses;
    *rules* default to those of the module's vermagic.  The module's exports are added to
    *table*: verify modules in load order (dependencies first)."""
    rules = rules or mod.version.name
    report = VerifyReport(mod.name)
    addrs = kernel.sections(mod.name)
    layout = layout_module(mod.elf, rules, config or KernelConfig())
    bases = _region_bases(layout, addrs, report)
    for region in {p.region for p in layout.placements.values()} - set(bases):
        bases[region] = 0  # nothing the kernel lists lies there (nothing to compare either)
    percpu = _percpu_base(mod, layout, addrs, core)
    resolve = _resolver(mod, table)
    image = link(mod, resolve, bases=bases, layout=layout, percpu_base=percpu)
    # Its exports, at the addresses just confirmed, for the modules verified after it (a kernel
    # without CONFIG_KALLSYMS_ALL lists no module data symbols).
    values = {s.name: image.symbol_values[s.number] for s in mod.elf.symbols() if s.name and s.shndx}
    table.add_module_exports(mod.name, mod.exports, values)
    masks = sorted(_masks(mod, image, rules))
    _compare_bytes(mod, image, core, masks, report)
    text = kallsyms_text if kallsyms_text is not None else kernel.kallsyms()
    _compare_kallsyms(mod, image, text, report)
    return report


def _resolver(mod: ModuleFile, table: SymbolTable) -> Callable[[str], int | None]:
    """The kernel's binding, then the symbols of the modules *mod* depends on: /proc/kallsyms
    does not say which module symbols are exported (GPL exports print lower-case)."""
    by_kernel = kernel_resolver(mod, table, force_modversion=True)
    deps = mod.depends

    def resolve(name: str) -> int | None:
        v = by_kernel(name)
        if v is not None:
            return v
        for d in deps:
            s = table.lookup(name, module=d)
            if s is not None:
                return s.address
        return None

    return resolve


def _masked_at(masks: list[tuple[int, int, str]]) -> Callable[[int], str | None]:
    starts = [m[0] for m in masks]

    def at(addr: int) -> str | None:
        i = bisect.bisect_right(starts, addr)
        for j in range(max(0, i - 8), i):  # sites are short; a few back covers overlaps
            if masks[j][0] <= addr < masks[j][1]:
                return masks[j][2]
        return None

    return at


def _compare_bytes(
    mod: ModuleFile, image: LinkedImage, core: Memory, masks: list[tuple[int, int, str]], report: VerifyReport
) -> None:
    masked_at = _masked_at(masks)
    for n, p in sorted(image.layout.placements.items(), key=lambda kv: image.section_addresses[kv[0]]):
        sec = mod.elf.sections[n]
        if p.region.startswith("init") or not p.size:
            continue  # init memory is freed once the module is live
        whole = REWRITTEN.get(p.name) or ("writable data" if sec.flags & SHF_WRITE else None)
        if whole is None and (sec.type == SHT_NOBITS or n in image.layout.nobits) and p.name not in FILLED:
            whole = "writable data"  # bss-like: zero-filled, then the module's to write
        if whole is not None:
            report.masked[whole] = report.masked.get(whole, 0) + p.size
            continue
        addr = image.section_addresses[n]
        ours = image.section_bytes(n)
        theirs = core.read(addr, p.size)
        report.compared += p.size
        if ours == theirs:
            continue
        run: list[int] = []
        for i in range(p.size):
            if ours[i] == theirs[i]:
                continue
            why = masked_at(addr + i)
            if why is not None:
                report.masked[why] = report.masked.get(why, 0) + 1
                report.compared -= 1
                continue
            if run and i != run[-1] + 1:
                _flush(report, addr, p.name, run, ours, theirs)
                run = []
            run.append(i)
        if run:
            _flush(report, addr, p.name, run, ours, theirs)


def _flush(report: VerifyReport, addr: int, name: str, run: list[int], ours: bytes, theirs: bytes) -> None:
    a, b = run[0], run[-1] + 1
    report.bytes.append((addr + a, name, a, ours[a:b], theirs[a:b]))


def _compare_kallsyms(mod: ModuleFile, image: LinkedImage, text: str, report: VerifyReport) -> None:
    ours = format_module_kallsyms(mod.name, module_kallsyms(mod, image), mod.elf.elfclass).splitlines()
    tag = f"\t[{mod.name}]"
    theirs = [line for line in text.splitlines() if line.endswith(tag)]
    if ours == theirs:
        return
    mine, kernel = set(ours), set(theirs)
    report.kallsyms.extend(f"-{line}" for line in ours if line not in kernel)
    report.kallsyms.extend(f"+{line}" for line in theirs if line not in mine)
    if not report.kallsyms:
        report.kallsyms.append("order differs")

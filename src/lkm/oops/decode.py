"""Decoding parsed reports: each frame's address, its symbol as the kernel prints it, source
lines, and the Code: disassembly; written as ksymoops did, as decode_stacktrace.sh does (the
report rewritten in place) or as JSON.

Nothing here fails on a report: a frame that cannot be improved keeps its line, and each
missing input (no symbols, no debug file for a module, no disassembler) is noted once in
:attr:`Decoded.notes`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lkm.arch import by_name as arch_by_name
from lkm.errors import LkmError
from lkm.oops.code import code_bytes, disassemble
from lkm.oops.report import Frame, Log, Report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from lkm.oops.lines import DebugInfo, SourceFrame
    from lkm.oops.symbolize import Symbolizer

__all__ = [
    "TRACE_IS_BACKTRACE",
    "Decoded",
    "DecodedFrame",
    "Decoder",
    "format_decode_stacktrace",
    "format_decodecode",
    "format_ksymoops",
    "ksymoops_symbol",
    "to_json",
]

#: How call-trace frames are printed: x86 "%pB" (return address, looked up at addr - 1),
#: arm64 and 2.4 "%pS"-like (the address as is).
TRACE_IS_BACKTRACE = {"x86_64": True, "i386": True, "arm64": False, None: True}


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A frame (or the faulting ip) with its address, its symbol as the kernel prints it (%pS
    for the pc, %pB for return addresses) and its source lines (innermost first)."""

    frame: Frame
    address: int | None
    symbol: str | None
    sources: list[SourceFrame]


@dataclass(slots=True, unsafe_hash=True)
class Decoded:
    """The parsed log, each report with its decoded frames, the registers of each report that
    hold kernel addresses (report index -> (name, value, %pS)), the %pS of each address of the
    Code: bytes, and the notes."""

    log: Log
    reports: list[tuple[Report, list[DecodedFrame]]]
    notes: list[str]
    registers: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)
    symbols: dict[int, str] = field(default_factory=dict)


class Decoder:
    """``symbolizer``: the kernel's symbols and module maps (None: frames keep their text).
    ``debug_for``: module name (None for the core kernel) -> DebugInfo placed at its load
    addresses, or None.  ``offset``: KASLR offset of the core kernel for the debug file."""

    def __init__(
        self,
        symbolizer: Symbolizer | None = None,
        debug_for: Callable[[str | None], DebugInfo | None] | None = None,
        *,
        offset: int = 0,
    ) -> None:
        self.symbolizer = symbolizer
        self.debug_for = debug_for
        self.offset = offset
        self.notes: list[str] = []

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def frame(self, f: Frame, arch: str | None) -> DecodedFrame:
        sym = self.symbolizer
        # 2.4's bare "[<addr>]" trace entries were symbolised at the address itself by ksymoops
        backtrace = not f.pc and f.symbol is not None and TRACE_IS_BACKTRACE.get(arch, True)
        addr = f.address
        if addr is None and f.symbol is not None and f.offset is not None:
            if sym is None:
                self._note("no kernel symbols: frames keep their text")
            else:
                addr = sym.resolve(f.symbol, f.offset, f.size, f.module)
                if addr is None:
                    self._note(f"symbol {f.symbol} [{f.module or 'kernel'}] not in the symbol sources")
        text = None
        module = f.module
        if addr is not None and sym is not None:
            text = sym.format_backtrace(addr) if backtrace else sym.format_symbol(addr)
            hit = sym.lookup(addr - 1 if backtrace else addr)
            module = hit.module if hit is not None else None
        sources: list[SourceFrame] = []
        if self.debug_for is not None and (addr is not None or f.symbol is not None):
            di = self.debug_for(module if addr is not None else f.module)
            if di is None:
                self._note(f"no debug information for {module or 'the kernel'}")
            else:
                try:
                    sources = self._sources(di, f, addr, module, backtrace)
                except (LkmError, Exception) as exc:  # damaged DWARF: keep the frame
                    self._note(f"{di.path}: {exc}")
        return DecodedFrame(f, addr, text, sources)

    def _sources(
        self, di: DebugInfo, f: Frame, addr: int | None, module: str | None, backtrace: bool
    ) -> list[SourceFrame]:
        """A printed ``sym+off`` is looked up in the debug file itself (decode_stacktrace.sh's
        way: no kernel addresses needed); a bare address at its load address."""
        if f.symbol is not None and f.offset is not None:
            base = di.symbol_address(f.symbol)
            if base is not None:
                return di.frames(base + f.offset - (1 if backtrace else 0))
        if addr is None:
            return []
        return di.frames((addr - 1 if backtrace else addr) - (0 if module else self.offset))

    def decode(self, log: Log) -> Decoded:
        out = []
        registers: dict[int, list[tuple[str, int, str]]] = {}
        symbols: dict[int, str] = {}
        sym = self.symbolizer
        for n, r in enumerate(log.reports):
            frames = []
            ip = r.facts.get("ip")
            if isinstance(ip, dict):
                frames.append(self.frame(Frame(**ip), r.arch))
            frames.extend(self.frame(f, r.arch) for f in r.frames)
            out.append((r, frames))
            regs = r.facts.get("registers")
            if sym is not None and isinstance(regs, dict):
                for name, value in regs.items():
                    hit = sym.lookup(int(value)) if isinstance(value, int) and value else None
                    if hit is not None:
                        registers.setdefault(n, []).append((name, int(value), hit.format()))
                pc = next((df.address for df in frames if df.frame.pc and df.address is not None), None)
                if pc is not None:  # the Code: bytes cover at most 64 bytes around the pc
                    for a in range(pc - 64, pc + 64):
                        hit = sym.lookup(a)
                        if hit is not None:
                            symbols[a] = hit.format()
        return Decoded(log, out, list(self.notes), registers, symbols)


# -- output -----------------------------------------------------------------------------------


def _sources_text(sources: list[SourceFrame]) -> str:
    if not sources:
        return ""
    first = sources[0].location()
    rest = "".join(f" {s.function} {s.location()}" for s in sources[1:])
    return f" {first}" + (f" (inlined by{rest})" if rest else "")


def _stacktrace_line(text: str, df: DecodedFrame) -> str:
    """One frame line as decode_stacktrace.sh rewrites it: words re-joined by single blanks,
    ``[<addr>]`` words dropped, the dmesg time as "[%13s", and ``name+off/size [mod]`` replaced
    by ``name (file:line file:line ...) mod`` (addr2line -i's lines, innermost first)."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("[<") and w.endswith(">]"):
            i += 1
            continue
        if w == "[" and i + 1 < len(words) and words[i + 1].endswith("]"):
            out.append(f"[{words[i + 1]:>13}")
            i += 2
            continue
        out.append(w)
        i += 1
    module = ""
    if len(out) >= 2 and out[-1].endswith("]") and not out[-1].startswith("[") and out[-2].startswith("["):
        out[-2:] = [out[-2] + " " + out[-1]]  # "[mod buildid]"
    if out and out[-1].startswith("[") and out[-1].endswith("]") and len(out) >= 2:
        module = out.pop()[1:-1].split(" ")[0]
    symbol = out.pop() if out else ""
    seg, colon, rest = symbol.rpartition(":")
    name = rest.split("+", 1)[0]
    code = " ".join(s.location() for s in df.sources)
    symbol = f"{seg}{colon}{name} ({code})"
    return " ".join([*out, f"{symbol} {module}"])


def format_decode_stacktrace(d: Decoded) -> str:
    """The report rewritten as decode_stacktrace.sh rewrites it: frame lines with source
    locations (see :func:`_stacktrace_line`), each Code: line followed by its disassembly as
    scripts/decodecode prints it; every line that cannot be improved stays as it was."""
    by_line: dict[int, DecodedFrame] = {}
    code_at: dict[int, int] = {}
    for n, (r, frames) in enumerate(d.reports):
        for df in frames:
            by_line.setdefault(df.frame.line, df)
        code = r.facts.get("code")
        if isinstance(code, dict) and code.get("units") and isinstance(code.get("line"), int):
            code_at[int(code["line"])] = n
    out = []
    for i, ln in enumerate(d.log.lines):
        got = by_line.get(i)
        if got is not None and got.sources:
            out.append(ln.prefix + _stacktrace_line(ln.text, got) + (ln.eol or "\n"))
        else:
            out.append(ln.prefix + ln.text + ln.eol)
        at = code_at.get(i)
        if at is not None:
            out.append(format_decodecode(*d.reports[at]))
    return "".join(out)


def format_decodecode(r: Report, frames: list[DecodedFrame]) -> str:
    """scripts/decodecode's listing of a Code: line: "All code" with the trapping instruction
    starred and marked, then "Code starting with the faulting instruction"."""
    code = r.facts.get("code")
    if not isinstance(code, dict) or not r.arch:
        return ""
    marker = code.get("marker")
    units = [int(u) for u in code.get("units") or []]
    mark_at = marker if isinstance(marker, int) else None
    data, mark = code_bytes(units, int(code["unit_bytes"]), mark_at)
    try:
        every = disassemble(r.arch, data, mark, syntax="att")
        tail = disassemble(r.arch, data[mark:], 0, syntax="att")
    except LkmError as exc:
        return f"(Code: not disassembled: {exc.reason})\n"
    out = ["All code\n========\n"]
    for ins in every:
        star = "*" if ins.trapping else ""
        mark_text = "\t\t<-- trapping instruction" if ins.trapping else ""
        out.append(f"{ins.address:4x}:{star}\t{ins.bytes.hex(' '):<21}\t{ins.text}{mark_text}\n")
    out.append("\nCode starting with the faulting instruction\n===========================================\n")
    for ins in tail:
        out.append(f"{ins.address:4x}:\t{ins.bytes.hex(' '):<21}\t{ins.text}\n")
    return "".join(out)


_KERNEL_SYMBOL = re.compile(r"(\S+)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \[(\S+?)(?: \S+)?\])?")


def ksymoops_symbol(kernel_text: str | None) -> str:
    """A symbol as ksymoops printed it: ``<[module]name+off/size>`` (hex without 0x); "" for
    an address no symbol holds."""
    m = _KERNEL_SYMBOL.fullmatch(kernel_text or "")
    if m is None:
        return ""
    name, off, size, mod = m.groups()
    return f" <{f'[{mod}]' if mod else ''}{name}+{off}/{size}>"


def format_ksymoops(d: Decoded, *, bits: int = 64) -> str:
    """ksymoops' lines: ``>>EIP;`` (``>>RIP;``, ``>>pc;``) for the faulting address,
    ``>>reg;`` for each register holding a kernel address, ``Trace;`` per frame (source lines
    appended where known), ``Code;`` per instruction of the Code: bytes, the trapping one
    marked ``<=====``."""
    width = bits // 4
    out: list[str] = []
    for n, (r, frames) in enumerate(d.reports):
        flag = f" [corrupted: {r.corrupted}]" if r.corrupted else ""
        out.append(f"Crash: {r.title}{flag}\n{r.heading}\n")
        for df in frames:
            addr = f"{df.address:0{width}x}" if df.address is not None else "?" * width
            sym = ksymoops_symbol(df.symbol)
            src = _sources_text(df.sources)
            if df.frame.pc:
                spec = arch_by_name(r.arch or "")
                reg = spec.pc_name if spec is not None else "pc"
                out.append(f">>{reg}; {addr}{sym}{src}   <=====\n")
                for name, value, text in d.registers.get(n, []):
                    out.append(f">>{name}; {value:0{width}x}{ksymoops_symbol(text)}\n")
                out.append("\n")
            else:
                out.append(f"Trace; {addr}{sym}{src}\n")
        code = r.facts.get("code")
        if isinstance(code, dict) and code.get("units") and r.arch:
            units = [int(u) for u in code["units"]]
            marker = code.get("marker")
            data, mark = code_bytes(
                units, int(code["unit_bytes"]), marker if isinstance(marker, int) else None
            )
            pc_frame = next((df for df in frames if df.frame.pc), None)
            pc = pc_frame.address if pc_frame is not None else None
            out.append("\n")
            try:
                insns = disassemble(r.arch, data, mark, pc)
            except LkmError as exc:
                insns = []
                out.append(f"Code;  (not disassembled: {exc.reason})\n")
            for ins in insns:
                where = ksymoops_symbol(d.symbols.get(ins.address)) if pc is not None else ""
                tail = "   <=====" if ins.trapping else ""
                out.append(f"Code;  {ins.address:0{width}x}{where}{tail}\n")
                out.append(
                    f"   {ins.address - (pc or 0) + mark:x}:   {ins.bytes.hex(' '):<23} {ins.text}{tail}\n"
                )
        out.append("\n")
    return "".join(out)


def to_json(d: Decoded) -> str:
    reports = []
    for r, frames in d.reports:
        reports.append(
            {
                **r.asdict(),
                "frames": [
                    {
                        **df.frame.asdict(),
                        "resolved_address": df.address,
                        "kernel_symbol": df.symbol,
                        "sources": [s.asdict() for s in df.sources],
                    }
                    for df in frames
                ],
            }
        )
    doc = {
        "schema": "lkm/1",
        "kind": "ksymoops",
        "lines": [ln.asdict() for ln in d.log.lines],
        "reports": _hex_addresses(reports),
        "notes": d.notes,
    }
    return json.dumps(doc, indent=1) + "\n"


# keys whose integer values are addresses: JSON carries them as hex strings (schema lkm/1)
_ADDRESS_KEYS = ("pc", "ip", "sp", "lr", "address", "addr", "base", "offset")


def _hex_addresses(value: object, key: str = "") -> object:
    if isinstance(value, dict):
        return {k: _hex_addresses(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_addresses(v, key) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and any(a in key for a in _ADDRESS_KEYS):
        return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"
    return value

"""Addresses to ``symbol+0xoff/0xsize [module]`` exactly as the kernel prints them, and back.

The kernel's rules (kernel/kallsyms.c, kernel/module/kallsyms.c, lib/vsprintf.c):

* ``%pS`` is ``sprint_symbol``: ``kallsyms_lookup`` of the address; unknown addresses print
  as ``0x%lx``.  ``%pB`` (x86 call traces) is ``sprint_backtrace``: the lookup is done at
  address - 1 (a return address may be the first byte after its function) and the offset
  printed + 1.  The faulting ip is printed with ``%pS``.
* Core kernel (``is_ksym_addr``: ``_stext <= addr < _end`` with CONFIG_KALLSYMS_ALL, else
  text and init text): the greatest symbol at or below, the *first* of several at that
  address in kallsyms order; its size reaches the next greater address (or ``_einittext`` /
  ``_end`` / ``_etext`` past the last symbol).
* Modules (``__module_address`` then ``find_kallsyms_symbol``): the module whose areas hold
  the address; among its kallsyms symbols (symtab order; no empty names, no mapping symbols
  ``$x``/``.L``/``L0``) the first with the greatest value at or below; the size reaches the
  next greater symbol value below the area's *nextval* (see :mod:`lkm.oops.modmap`), so on
  6.1 a data address gets a wrapped (huge) size, exactly as the kernel prints it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from lkm.oops.modmap import ModuleMap, from_kernel
from lkm.symbols.sources import parse_kallsyms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from lkm.kernel.interface import Kernel
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import KernelSymbol

__all__ = [
    "END_OF_CODE_SLACK",
    "MASK64",
    "X86_CODE_PROLOGUE",
    "Hit",
    "Symbolizer",
    "infer_offset",
    "is_mapping_symbol",
    "symbolizer_from_kallsyms",
    "symbolizer_from_kernel",
]

MASK64 = (1 << 64) - 1
END_OF_CODE_SLACK = 32 * 1024  # ksymoops: addresses further past the last symbol are not its


@dataclass(slots=True, unsafe_hash=True)
class Hit:
    """A symbolised address: symbol name, its start, offset and size, and the module."""

    name: str
    start: int
    offset: int
    size: int
    module: str | None

    def format(self) -> str:
        """``name+0xoff/0xsize [module]`` (lib/vsprintf.c: "+%#lx/%#lx", " [%s]")."""
        text = f"{self.name}+{self.offset:#x}/{self.size:#x}"
        return f"{text} [{self.module}]" if self.module else text


def is_mapping_symbol(name: str) -> bool:
    """include/linux/module_symbol.h: ``$x``, ``$d``..., ``.L*`` and ``L0*``."""
    return name.startswith(("$", ".L", "L0"))


class _ModuleSymbols:
    """One module's kallsyms symbols, sorted by value with symtab order kept among equals."""

    __slots__ = ("map", "names", "values")

    def __init__(self, mod: ModuleMap, symbols: Iterable[tuple[int, str]]) -> None:
        # 2.4's __insmod_* helper symbols place modules; kallsyms and ksymoops skip them
        kept = [
            (v, n)
            for v, n in symbols
            if n and not is_mapping_symbol(n) and v and not n.startswith("__insmod_")
        ]
        kept.sort(key=lambda vn: vn[0])  # stable: symtab order among equal values
        self.map = mod
        self.values = [v for v, _ in kept]
        self.names = [n for _, n in kept]

    def lookup(self, addr: int) -> Hit | None:
        area = self.map.area_of(addr)
        if area is None:
            return None
        values = self.values
        i = bisect_right(values, addr)
        if not i or values[i - 1] < area.floor or not values[i - 1]:
            return None
        best = values[i - 1]
        first = bisect_left(values, best)
        nextval = area.nextval
        if i < len(values) and values[i] < nextval:
            nextval = values[i]
        return Hit(self.names[first], best, addr - best, (nextval - best) & MASK64, self.map.name)


class Symbolizer:
    """The kernel's view of symbols: core kallsyms, module maps and each module's symbols.

    ``core``: core-kernel symbols with addresses in kallsyms order (/proc/kallsyms core lines,
    or System.map, shifted by ``offset`` for a KASLR boot).  ``modules``: module maps by name;
    ``module_symbols``: name -> (value, name) pairs in the module's symtab order (/proc/kallsyms
    module lines, or a module file's symbols at their load addresses)."""

    def __init__(
        self,
        core: Iterable[KernelSymbol],
        modules: Mapping[str, ModuleMap] | None = None,
        module_symbols: Mapping[str, Iterable[tuple[int, str]]] | None = None,
        *,
        offset: int = 0,
        kallsyms_all: bool = True,
    ) -> None:
        pairs = [(s.address + offset, s.name) for s in core if s.address is not None]
        pairs.sort(key=lambda an: an[0])
        self.addrs = [a for a, _ in pairs]
        self.names = [n for _, n in pairs]
        self.offset = offset
        by_name: dict[str, int] = {}
        for a, n in pairs:
            by_name.setdefault(n, a)
        self._marks = by_name
        lo = self.addrs[0] if self.addrs else 0
        hi = self.addrs[-1] + 1 if self.addrs else 0
        self.stext = by_name.get("_stext", by_name.get("_text", lo))
        self.etext = by_name.get("_etext", hi)
        self.sinittext = by_name.get("_sinittext", 0)
        self.einittext = by_name.get("_einittext", 0)
        self.kallsyms_all = kallsyms_all
        self.modules = dict(modules or {})
        # without _end (2.4 /proc/ksyms holds exports only): as ksymoops, no further than 32 KiB
        # past the last symbol (its "END_OF_CODE") nor into the first module area above
        above = [a.start for m in self.modules.values() for a in m.areas if a.start > lo]
        self.end = by_name.get("_end", min([*above, hi + END_OF_CODE_SLACK]))
        if "_etext" not in by_name:
            self.etext = self.end
        self._mods = {
            name: _ModuleSymbols(m, (module_symbols or {}).get(name, ())) for name, m in self.modules.items()
        }
        self._names: dict[tuple[str | None, str], list[int]] | None = None

    # -- address -> symbol ------------------------------------------------------------------

    def _is_ksym_addr(self, addr: int) -> bool:
        if self.kallsyms_all:
            return self.stext <= addr < self.end
        return self.stext <= addr < self.etext or self.sinittext <= addr < self.einittext

    def lookup(self, addr: int) -> Hit | None:
        """kallsyms_lookup: the symbol holding ``addr`` (None: the kernel prints 0x...)."""
        addr &= MASK64
        if self._is_ksym_addr(addr):
            addrs = self.addrs
            i = bisect_right(addrs, addr)
            if i:
                start = addrs[i - 1]
                first = bisect_left(addrs, start)
                if i < len(addrs):
                    end = addrs[i]
                elif self.sinittext <= addr < self.einittext:
                    end = self.einittext
                else:
                    end = self.end if self.kallsyms_all else self.etext
                return Hit(self.names[first], start, addr - start, end - start, None)
        for ms in self._mods.values():
            if ms.map.area_of(addr) is not None:
                return ms.lookup(addr)
        return None

    def format_symbol(self, addr: int) -> str:
        """``%pS``."""
        hit = self.lookup(addr)
        return hit.format() if hit is not None else f"0x{addr & MASK64:x}"

    def format_backtrace(self, addr: int) -> str:
        """``%pB``: looked up at addr - 1, offset printed + 1."""
        hit = self.lookup(addr - 1)
        if hit is None:
            return f"0x{addr & MASK64:x}"
        hit.offset += 1
        return hit.format()

    # -- symbol -> address ------------------------------------------------------------------

    def _by_name(self) -> dict[tuple[str | None, str], list[int]]:
        got = self._names
        if got is None:
            got = {}
            for a, n in zip(self.addrs, self.names, strict=True):
                got.setdefault((None, n), []).append(a)
            for mod, ms in self._mods.items():
                for v, n in zip(ms.values, ms.names, strict=True):
                    got.setdefault((mod, n), []).append(v)
            self._names = got
        return got

    def resolve(
        self, name: str, offset: int, size: int | None = None, module: str | None = None
    ) -> int | None:
        """The address ``name+offset`` stands for; of several symbols of that name the one whose
        size (as the kernel computes it) is ``size`` (faddr2line's rule), else the first."""
        starts = self._by_name().get((module, name))
        if not starts:
            return None
        if size is not None and len(starts) > 1:
            for s in starts:
                hit = self.lookup(s)
                if hit is not None and hit.size == size and hit.name == name:
                    return s + offset
        return starts[0] + offset


def symbolizer_from_kallsyms(
    text: str,
    modules: Mapping[str, ModuleMap] | None = None,
    *,
    kallsyms_all: bool = True,
) -> Symbolizer:
    """A Symbolizer from /proc/kallsyms text (core and module lines) and module maps."""
    syms = parse_kallsyms(text)
    core = [s for s in syms if s.module is None]
    per_mod: dict[str, list[tuple[int, str]]] = {}
    for s in syms:
        if s.module is not None and s.address is not None:
            per_mod.setdefault(s.module, []).append((s.address, s.name))
    return Symbolizer(core, modules, per_mod, kallsyms_all=kallsyms_all)


#: x86 show_opcodes: "Code: Unable to access opcode bytes at %px" names ip - PROLOGUE_SIZE.
X86_CODE_PROLOGUE = 42


def infer_offset(pairs: Iterable[tuple[int, str, int, int | None]], unrelocated: Symbolizer) -> int | None:
    """The KASLR offset of the core kernel from frames printed with both an address and a
    symbol, ``(address, name, offset, size)``, against symbols without the shift (a System.map):
    the difference most of them agree on (None if there is none)."""
    votes: dict[int, int] = {}
    for addr, name, off, size in pairs:
        at = unrelocated.resolve(name, off, size)
        if at is not None:
            d = (addr - at) & MASK64
            votes[d] = votes.get(d, 0) + 1
    if not votes:
        return None
    best = max(votes.items(), key=lambda kv: kv[1])
    return best[0] if best[1] * 2 > sum(votes.values()) or len(votes) == 1 else None


def symbolizer_from_kernel(kernel: Kernel, *, files: Mapping[str, ModuleFile] | None = None) -> Symbolizer:
    """A Symbolizer for a kernel behind the :class:`lkm.kernel.interface.Kernel` interface (the
    running kernel, the model kernel): its kallsyms, modules and their sections."""
    return symbolizer_from_kallsyms(kernel.kallsyms(), from_kernel(kernel, files=files))

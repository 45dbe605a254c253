"""SymbolTable: one view of a kernel's symbols, merged from System.map, /proc/kallsyms, 2.4
/proc/ksyms, Module.symvers and a vmlinux's export tables, plus the exports of modules already
linked into the same address space.

The table holds *owners*: the core kernel, then modules in load order (oldest first).  Each
owner keeps every entry it was given (local symbols of the same name stay separate entries,
as in System.map) and one *canonical* entry per name, which :meth:`SymbolTable.lookup` returns
and into which later sources merge.

Merge rule (per owner, by name; sources are merged in the order they are added):

* A source's first entry of a name becomes the canonical one, unless a later entry of the same
  name in that source is global (nm type letter upper case, ``u``, or no letter at all) while
  the first is local: then the first global one is canonical (exports are global symbols).
* A later source completes the canonical entry of each name the table already has; it adds
  entries only for names the table lacks (its further entries of a known name are dropped).
* Completing means: ``address`` and ``type`` are taken from the first source that knows them;
  ``exported`` and ``gpl_only`` from the first source that says the symbol is exported;
  ``crc`` and ``namespace`` from the first source that has them.  So list the most
  authoritative source first (e.g. a running kernel's /proc/kallsyms before System.map, whose
  addresses lack the KASLR offset).
* A batch whose addresses are all zero (/proc/kallsyms read without privilege) brings no
  addresses: they become None and :attr:`SymbolTable.addresses_hidden` is set.

Lookups follow the kernel (``find_symbol``, kernel/module/main.c): :meth:`find_export` searches
the kernel's __ksymtab, then __ksymtab_gpl (only if ``gpl_ok``), then every module on the
kernel's module list, whose order is *most recently loaded first* (``list_add_rcu`` at the
head), each module's syms then its gpl_syms.  The kernel refuses a module that exports a name
some other owner already exports (``verify_exported_symbols``), so the order matters only for
tables built without that check (see ``reject_duplicates``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import compress, repeat
from operator import attrgetter, is_, ne

from lkm.errors import LkmError
from lkm.symbols import sources
from lkm.symbols.symbol import KernelSymbol, paused_gc

__all__ = ["KernelSymbol", "SymbolTable", "paused_gc"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator, Mapping

    from lkm.module.symbols import Export


def _unaddressed(batch: list[KernelSymbol]) -> list[KernelSymbol]:
    return [
        KernelSymbol(s.name, None, s.type, s.module, s.exported, s.gpl_only, s.crc, s.namespace)
        for s in batch
    ]


def _is_global(sym: KernelSymbol) -> bool:
    t = sym.type
    return t is None or t.isupper() or t == "u"


def _merge(old: KernelSymbol, new: KernelSymbol) -> KernelSymbol:
    """``old`` completed from ``new`` (the merge rule of the module docstring)."""
    address = old.address if old.address is not None else new.address
    type_ = old.type if old.type is not None else new.type
    if old.exported:
        exported, gpl = True, old.gpl_only
    else:
        exported, gpl = new.exported, new.gpl_only
    crc = old.crc if old.crc is not None else new.crc
    ns = old.namespace if old.namespace is not None else new.namespace
    if (address, type_, exported, gpl, crc, ns) == (
        old.address, old.type, old.exported, old.gpl_only, old.crc, old.namespace,
    ):  # fmt: skip
        return old
    return KernelSymbol(old.name, address, type_, old.module, exported, gpl, crc, ns)


class _Owner:
    """The core kernel (name None) or one module: its entries and its canonical index."""

    __slots__ = ("_exports", "index", "name", "symbols")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.symbols: list[KernelSymbol] = []
        self.index: dict[str, int] = {}
        self._exports: tuple[dict[str, KernelSymbol], dict[str, KernelSymbol]] | None = None

    def add(self, batch: list[KernelSymbol]) -> None:
        self._exports = None
        if not self.symbols:
            self._add_first(batch)
            return
        syms, index = self.symbols, self.index
        start = len(syms)
        for s in batch:
            i = index.get(s.name)
            if i is None:
                index[s.name] = len(syms)
                syms.append(s)
            elif i >= start:  # a duplicate inside this batch: its own entry
                if not _is_global(syms[i]) and _is_global(s):
                    index[s.name] = len(syms)
                syms.append(s)
            else:
                syms[i] = _merge(syms[i], s)

    def _add_first(self, batch: list[KernelSymbol]) -> None:
        """The whole batch, indexed in C: first occurrence of each name, then the few
        duplicated names whose first occurrence is local re-pointed at their first global."""
        n = len(batch)
        self.symbols = list(batch)
        names = list(map(attrgetter("name"), batch))
        first = dict(zip(reversed(names), range(n - 1, -1, -1), strict=True))
        self.index = first
        if len(first) == n:
            return
        # Names whose entry is not their first occurrence (one pass, in C).
        dups = set(compress(names, map(ne, map(first.__getitem__, names), range(n))))
        local_first = {k for k in dups if not _is_global(batch[first[k]])}
        if not local_first:
            return
        for i in compress(range(n), map(local_first.__contains__, names)):  # in C: only those names
            nm = names[i]
            if nm in local_first and _is_global(batch[i]):
                first[nm] = i
                local_first.discard(nm)
                if not local_first:
                    break

    def exports(self) -> tuple[dict[str, KernelSymbol], dict[str, KernelSymbol]]:
        """(syms, gpl_syms): name -> canonical entry of the exported names."""
        got = self._exports
        if got is None:
            syms: dict[str, KernelSymbol] = {}
            gpl: dict[str, KernelSymbol] = {}
            all_syms = self.symbols
            for i in self.index.values():
                s = all_syms[i]
                if s.exported:
                    (gpl if s.gpl_only else syms)[s.name] = s
            got = self._exports = (syms, gpl)
        return got


class SymbolTable:
    """Kernel symbols from one or more sources (see the module docstring for the merge rule)."""

    def __init__(self, *sources: Iterable[KernelSymbol]) -> None:
        self._core = _Owner(None)
        self._modules: dict[str, _Owner] = {}  # load order, oldest first
        self._sorted: tuple[list[int], list[KernelSymbol]] | None = None
        #: True once a source with all-zero addresses (unprivileged /proc/kallsyms) was added.
        self.addresses_hidden = False
        for src in sources:
            self.add(src)

    @classmethod
    def from_files(cls, *paths: str | os.PathLike[str], symvers_modules: bool = False) -> SymbolTable:
        """A table from files, each format sniffed (:func:`lkm.symbols.sources.detect_format`).

        /proc/kallsyms and /proc/ksyms list modules newest first; they are added in load
        order.  Module.symvers rows of modules describe modules that were built, not loaded,
        so they are left out unless ``symvers_modules``."""
        table = cls()
        for p in paths:
            fmt, syms = sources.read(p)
            if fmt == "module.symvers" and not symvers_modules:
                syms = [s for s in syms if s.module is None]
            table.add(syms, newest_first=fmt in ("kallsyms", "ksyms"))
        return table

    # -- building ---------------------------------------------------------------------------

    def add(self, symbols: Iterable[KernelSymbol], *, newest_first: bool = False) -> None:
        """Merge one source.  Module entries are grouped by module; modules new to the table
        are appended in the order they first appear (reversed if ``newest_first``, as the
        /proc files list them), i.e. as the most recently loaded."""
        batch = symbols if isinstance(symbols, list) else list(symbols)
        if not batch:
            return
        self._sorted = None
        addrs = [a for a in map(attrgetter("address"), batch) if a is not None]
        if len(addrs) > 1 and not any(addrs):
            self.addresses_hidden = True
            batch = paused_gc(_unaddressed, batch)
        mods = list(map(attrgetter("module"), batch))
        if not any(mods):
            self._core.add(batch)
            return
        core = list(compress(batch, map(is_, mods, repeat(None))))
        if core:
            self._core.add(core)
        groups: dict[str, list[KernelSymbol]] = {}
        named: list[str] = list(filter(None, mods))
        for s, m in zip(compress(batch, mods), named, strict=True):
            g = groups.get(m)
            if g is None:
                g = groups[m] = []
            g.append(s)
        items = list(groups.items())
        if newest_first:
            items.reverse()
        for m, syms in items:
            self._owner(m).add(syms)

    def _owner(self, module: str) -> _Owner:
        own = self._modules.get(module)
        if own is None:
            own = self._modules[module] = _Owner(module)
        return own

    def add_module_exports(
        self,
        module: str,
        exports: Iterable[Export | KernelSymbol],
        addresses: Mapping[str, int] | None = None,
        *,
        reject_duplicates: bool = False,
    ) -> None:
        """Register the exports of a module linked into this address space (as the most
        recently loaded module, or completing one already in the table).

        ``exports``: :class:`lkm.module.symbols.Export` (as ``ModuleFile.exports`` gives them)
        or KernelSymbol.  ``addresses`` maps symbol names to their final addresses: an export's
        address is that of the symbol its entry points at (``Export.symbol``), else of its name.
        ``reject_duplicates``: raise LkmError, as the kernel refuses the module
        ("exports duplicate symbol %s (owned by %s)"), if another owner exports a name.
        """
        batch: list[KernelSymbol] = []
        for e in exports:
            if isinstance(e, KernelSymbol):
                addr = e.address
                if addr is None and addresses is not None:
                    addr = addresses.get(e.name)
                batch.append(KernelSymbol(e.name, addr, e.type, module, True, e.gpl_only, e.crc, e.namespace))
                continue
            addr = None
            if addresses is not None:
                addr = addresses.get(e.symbol or e.name)
                if addr is None:
                    addr = addresses.get(e.name)
            batch.append(KernelSymbol(e.name, addr, None, module, True, e.gpl, e.crc, e.namespace))
        if reject_duplicates:
            for s in batch:
                owner = self._export_owner(s.name, skip=module)
                if owner is not False:
                    raise LkmError(
                        f"{module}: exports duplicate symbol {s.name} (owned by {owner or 'kernel'})"
                    )
        self._sorted = None
        self._owner(module).add(batch)

    def _export_owner(self, name: str, *, skip: str) -> str | bool | None:
        """The owner exporting ``name`` (None: the kernel), False if none; ``skip`` ignored."""
        syms, gpl = self._core.exports()
        if name in syms or name in gpl:
            return None
        for own in self._modules.values():
            if own.name == skip:
                continue
            syms, gpl = own.exports()
            if name in syms or name in gpl:
                return own.name
        return False

    def remove_module(self, module: str) -> bool:
        """Forget a module (unloaded); False if the table does not have it."""
        if self._modules.pop(module, None) is None:
            return False
        self._sorted = None
        return True

    # -- lookups ----------------------------------------------------------------------------

    def modules(self) -> list[str]:
        """Module names in load order (oldest first)."""
        return list(self._modules)

    def lookup(self, name: str, *, module: str | None = None) -> KernelSymbol | None:
        """The canonical entry called ``name`` of the core kernel (or of ``module``)."""
        own = self._core if module is None else self._modules.get(module)
        if own is None:
            return None
        i = own.index.get(name)
        return None if i is None else own.symbols[i]

    def find_export(self, name: str, *, gpl_ok: bool) -> KernelSymbol | None:
        """The export a module would bind ``name`` to (the kernel's ``find_symbol``): kernel
        __ksymtab, kernel __ksymtab_gpl if ``gpl_ok``, then modules most recently loaded first,
        each syms then gpl_syms (the latter only if ``gpl_ok``)."""
        for own in self._search_order():
            syms, gpl = own.exports()
            s = syms.get(name)
            if s is not None:
                return s
            if gpl_ok:
                s = gpl.get(name)
                if s is not None:
                    return s
        return None

    def _search_order(self) -> Iterator[_Owner]:
        yield self._core
        yield from reversed(self._modules.values())

    def exports(self) -> list[KernelSymbol]:
        """Every export, in :meth:`find_export`'s search order (names sorted within a table,
        as the kernel's tables are)."""
        out: list[KernelSymbol] = []
        for own in self._search_order():
            syms, gpl = own.exports()
            out.extend(syms[k] for k in sorted(syms))
            out.extend(gpl[k] for k in sorted(gpl))
        return out

    def by_address(self, address: int) -> KernelSymbol | None:
        """The symbol at the greatest address <= ``address`` (None if there is none); of several
        at that address, the first in table order (the core kernel's, in source order), as
        kallsyms_lookup picks the first of aliased symbols."""
        keys, syms = self._by_address()
        i = bisect_right(keys, address)
        if not i:
            return None
        return syms[bisect_left(keys, keys[i - 1])]

    def _by_address(self) -> tuple[list[int], list[KernelSymbol]]:
        got = self._sorted
        if got is None:
            every = [s for s in self if s.address is not None]
            addrs: list[int] = list(map(attrgetter("address"), every))
            order = sorted(range(len(every)), key=addrs.__getitem__)  # stable: table order kept
            got = self._sorted = (list(map(addrs.__getitem__, order)), list(map(every.__getitem__, order)))
        return got

    # -- container --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._core.symbols) + sum(len(m.symbols) for m in self._modules.values())

    def __iter__(self) -> Iterator[KernelSymbol]:
        """Every entry: the core kernel's in source order, then each module's, oldest first."""
        yield from self._core.symbols
        for own in self._modules.values():
            yield from own.symbols

    def __repr__(self) -> str:
        return f"<SymbolTable {len(self._core.symbols)} core symbols, {len(self._modules)} modules>"

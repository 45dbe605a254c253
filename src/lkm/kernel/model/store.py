"""Every statement on the model kernel's tables, with typed rows.

:class:`Store` is one system call's view of the state (:mod:`lkm.kernel.model.state`, inside
:meth:`~lkm.kernel.model.state.State.transaction`): the statements the loaders
(:mod:`~lkm.kernel.model.load`, :mod:`~lkm.kernel.model.load24`), the facade, /proc and the
integrity check run.  :class:`DbSymbols` is find_symbol over the same tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lkm.kernel.model.state import KMSG_TABLE, Cache, addr, decode_blob, decode_json, encode_blob
from lkm.kernel.model.vmalloc import AreaList
from lkm.symbols.table import KernelSymbol

__all__ = ["DbSymbols", "Module24", "ModuleRow", "Row24", "Store"]


class DbSymbols:
    """find_symbol over the state: kernel exports, then modules newest first.  Records which
    module supplied each name (``owners``) so the loader can take references.  ``kernel``: the
    kernel's exports by name (:meth:`Store.kernel_export_map`), else they are looked up in SQL."""

    def __init__(self, db: sqlite3.Connection, kernel: dict[str, KernelSymbol] | None = None) -> None:
        self.db = db
        self.kernel = kernel
        self.owners: dict[str, tuple[int, str]] = {}

    def find_export(self, name: str, *, gpl_ok: bool) -> KernelSymbol | None:
        if self.kernel is not None:
            found = self.kernel.get(name)
            if found is not None:
                return None if found.gpl_only and not gpl_ok else found
        else:
            row = self.db.execute(
                "SELECT address, type, crc, gpl, ns FROM ksyms WHERE name=?", (name,)
            ).fetchone()
            if row is not None:
                if row[3] and not gpl_ok:
                    return None
                return KernelSymbol(name, row[0], row[1], None, True, bool(row[3]), row[2], row[4])
        for seq, mname, value, crc, gpl, ns in self.db.execute(
            "SELECT m.seq, m.name, s.address, s.crc, s.gpl, s.ns FROM msyms s JOIN modules m USING (seq) "
            "WHERE s.name=? AND s.kind='export' AND m.state != 'Unformed' ORDER BY m.seq DESC",
            (name,),
        ):
            if gpl and not gpl_ok:
                continue
            self.owners[name] = (seq, mname)
            return KernelSymbol(name, value, None, mname, True, bool(gpl), crc, ns)
        return None

    def lookup(self, name: str, *, module: str | None = None) -> KernelSymbol | None:
        return None  # every kernel symbol the model knows is an export


@dataclass(slots=True)
class ModuleRow:
    """A module's row as the loaders look it up: load order, design ("6" or "2.4"), 2.4's
    flags and use count, today's state word, and its base address."""

    seq: int
    design: str
    flags: int
    usecount: int
    state: str
    base: int


@dataclass(slots=True)
class Module24:
    """A 2.4 module as find_module gives it."""

    seq: int
    base: int
    size: int
    flags: int
    usecount: int


@dataclass(slots=True)
class Row24:
    """A 2.4 module's row by seq."""

    name: str
    base: int
    size: int
    flags: int
    usecount: int
    cleanup: int


class Store:
    """The statements of one system call, over its transaction's connection ``db``; with the
    state's ``cache`` (:meth:`lkm.kernel.model.state.State.write_cache`: inside a write
    transaction only) it reads from the cache what the cache holds and updates it as it writes."""

    def __init__(self, db: sqlite3.Connection, path: str | None = None, cache: Cache | None = None) -> None:
        self.db = db
        self.path = path
        self.cache = cache

    def kernel_export_map(self) -> dict[str, KernelSymbol] | None:
        """The base kernel's exports by name (from the cache, read once per process), or None
        without a cache."""
        if self.cache is None:
            return None
        if self.cache.kernel is None:
            rows = self.db.execute("SELECT name, address, type, crc, gpl, ns FROM ksyms").fetchall()
            self.cache.kernel = {
                n: KernelSymbol(n, a, t, None, True, bool(g), c, ns) for n, a, t, c, g, ns in rows
            }
        return self.cache.kernel

    # -- meta: sysctls, taint -------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def tainted(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='tainted'").fetchone()
        return int(row[0]) if row else 0

    def add_taint(self, bits: int) -> bool:
        """Set global taint bits; True if any of them was not set before (test_taint)."""
        value = self.tainted()
        self.set_meta("tainted", str(value | bits))
        return bool(bits & ~value)

    # -- the kernel log -------------------------------------------------------------------

    def printk(self, lines: Iterable[str]) -> None:
        """Append lines to the kernel log (``lkm model dmesg``)."""
        rows = [(line,) for line in lines]
        if rows:
            self.db.execute(KMSG_TABLE)
            self.db.executemany("INSERT INTO kmsg (text) VALUES (?)", rows)

    def kernel_log(self) -> list[str]:
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name='kmsg'").fetchone() is None:
            return []  # booted before the log existed, nothing printed since
        return [t for (t,) in self.db.execute("SELECT text FROM kmsg ORDER BY seq")]

    # -- modules --------------------------------------------------------------------------

    def find(self, name: str) -> ModuleRow | None:
        """Module ``name``, whatever its state."""
        row = self.db.execute(
            "SELECT seq, design, flags, usecount, state, base FROM modules WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else ModuleRow(*row)

    def new_module(self, name: str, design: str, size: int = 0, path: str | None = None) -> int:
        """A new module row (state Unformed for today's design, '' for 2.4): its seq."""
        state = "Unformed" if design == "6" else ""
        cur = self.db.execute(
            "INSERT INTO modules (name, design, base, size, state, path) VALUES (?, ?, 0, ?, ?, ?)",
            (name, design, size, state, path),
        )
        return int(cur.lastrowid or 0)

    def module_info(self, seq: int, name: str) -> dict[str, object]:
        row = self.db.execute("SELECT info FROM modules WHERE seq=?", (seq,)).fetchone()
        return decode_json(row[0], f"info of {name}", self.path)

    def holders(self, seq: int) -> list[str]:
        """The modules using module ``seq``."""
        return [
            u
            for (u,) in self.db.execute(
                "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.user WHERE r.used=?", (seq,)
            )
        ]

    def form_module(
        self, seq: int, base: int, size: int, taints: str, init: int, exit_: int, info: dict[str, object]
    ) -> None:
        """complete_formation: the module's place and facts; state Loading."""
        self.db.execute(
            "UPDATE modules SET base=?, size=?, state='Loading', taints=?, init=?, cleanup=?, info=? "
            "WHERE seq=?",
            (addr(base), size, taints, addr(init), addr(exit_), json.dumps(info), seq),
        )

    def set_live(self, seq: int) -> None:
        self.db.execute("UPDATE modules SET state='Live' WHERE seq=?", (seq,))

    def free(self, seq: int) -> None:
        """Forget module ``seq``: its memory, symbols, references and row."""
        self._uncache_areas("SELECT pool, start FROM areas WHERE seq=?", (seq,))
        for table in ("areas", "memory", "msyms", "kallsyms"):
            self.db.execute(f"DELETE FROM {table} WHERE seq=?", (seq,))
        self.db.execute("DELETE FROM refs WHERE user=? OR used=?", (seq, seq))
        self.db.execute("DELETE FROM modules WHERE seq=?", (seq,))

    # -- memory ---------------------------------------------------------------------------

    def areas_in(self, pool: str) -> list[tuple[int, int]]:
        """(start, span) of the areas handed out from ``pool``."""
        return [(s, n) for s, n in self.db.execute("SELECT start, span FROM areas WHERE pool=?", (pool,))]

    def area_list(self, pool: str) -> AreaList:
        """``pool``'s areas for an allocation (kept in the cache between calls)."""
        if self.cache is None:
            return AreaList(self.areas_in(pool))
        found = self.cache.areas.get(pool)
        if found is None:
            found = self.cache.areas[pool] = AreaList(self.areas_in(pool))
        return found

    def add_area(self, pool: str, start: int, span: int, size: int, seq: int, region: str) -> None:
        self.db.execute(
            "INSERT INTO areas VALUES (?, ?, ?, ?, ?, ?)", (pool, addr(start), span, size, seq, region)
        )
        if self.cache is not None and pool in self.cache.areas:
            self.cache.areas[pool].add(start, span)

    def free_area(self, seq: int, region: str) -> None:
        self._uncache_areas("SELECT pool, start FROM areas WHERE seq=? AND region=?", (seq, region))
        self.db.execute("DELETE FROM areas WHERE seq=? AND region=?", (seq, region))

    def _uncache_areas(self, sql: str, args: tuple[object, ...]) -> None:
        """Drop from the cache the areas ``sql`` selects (pool, start), before they are deleted."""
        if self.cache is None or not self.cache.areas:
            return
        for pool, start in self.db.execute(sql, args).fetchall():
            if pool in self.cache.areas:
                self.cache.areas[pool].remove(start)

    def store_memory(self, seq: int, regions: dict[int, bytes]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO memory VALUES (?, ?, ?, ?)",
            ((seq, f"{base:x}", addr(base), encode_blob(bytes(data))) for base, data in regions.items()),
        )

    def memory_of(self, seq: int) -> dict[int, bytes]:
        return {
            b: decode_blob(d, f"memory of module {seq}", self.path)
            for b, d in self.db.execute("SELECT base, data FROM memory WHERE seq=?", (seq,))
        }

    # -- symbols and references -----------------------------------------------------------

    def export_owner(self, name: str) -> str | None:
        """Who already exports ``name``: "kernel", a module's name, or None."""
        kernel = self.kernel_export_map()
        if kernel is not None:
            if name in kernel:
                return "kernel"
            row = self.db.execute(
                "SELECT m.name FROM msyms s JOIN modules m USING (seq) WHERE s.name=? AND s.kind='export'",
                (name,),
            ).fetchone()
            return None if row is None else str(row[0])
        row = self.db.execute(
            "SELECT 'kernel' FROM ksyms WHERE name=? UNION ALL SELECT m.name FROM msyms s JOIN modules m "
            "USING (seq) WHERE s.name=? AND s.kind='export'",
            (name, name),
        ).fetchone()
        return None if row is None else str(row[0])

    def add_exports(
        self, seq: int, rows: Iterable[tuple[str, int, int, int | None, str | None]], *, replace: bool = False
    ) -> None:
        """A module's exports in order: (name, address, gpl, crc, namespace)."""
        if replace:
            self.db.execute("DELETE FROM msyms WHERE seq=?", (seq,))
        self.db.executemany(
            "INSERT INTO msyms VALUES (?, ?, ?, 'export', NULL, ?, ?, ?, ?)",
            ((seq, n, addr(a), g, c, ns, i) for i, (n, a, g, c, ns) in enumerate(rows)),
        )

    def add_kallsyms(self, seq: int, lines: str) -> None:
        self.db.execute(
            "INSERT INTO kallsyms VALUES (?, ?)",
            (seq, encode_blob(lines.encode("utf-8", "surrogateescape"))),
        )

    def add_refs(self, user: int, used: list[int]) -> None:
        """``user`` takes references on ``used`` (in that order, after every earlier one)."""
        cache = self.cache
        if cache is not None and cache.max_ord is not None:
            n = cache.max_ord  # at least MAX(ord): the same order
        else:
            n = self.db.execute("SELECT COALESCE(MAX(ord), 0) FROM refs").fetchone()[0]
        self.db.executemany(
            "INSERT OR IGNORE INTO refs VALUES (?, ?, ?)", ((user, u, n + 1 + i) for i, u in enumerate(used))
        )
        if cache is not None:
            cache.max_ord = n + len(used)

    # -- 2.4's module list (lkm.kernel.model.load24) --------------------------------------

    def find24(self, name: str, deleted: int) -> Module24 | None:
        """find_module: module ``name`` unless its flags have ``deleted``."""
        row = self.db.execute(
            "SELECT seq, base, size, flags, usecount FROM modules WHERE name=? AND flags & ? = 0",
            (name, deleted),
        ).fetchone()
        return None if row is None else Module24(*row)

    def row24(self, seq: int) -> Row24:
        row = self.db.execute(
            "SELECT name, base, size, flags, usecount, cleanup FROM modules WHERE seq=?", (seq,)
        ).fetchone()
        return Row24(*row)

    def modules24(self) -> list[tuple[int, str, int, int]]:
        """(seq, name, base, flags) of the 2.4 modules, newest first."""
        return [
            (q, n, b, f)
            for q, n, b, f in self.db.execute(
                "SELECT seq, name, base, flags FROM modules WHERE design='2.4' ORDER BY seq DESC"
            )
        ]

    def all_flags(self) -> list[tuple[int, int]]:
        """(seq, flags) of every module, newest first."""
        return [(q, f) for q, f in self.db.execute("SELECT seq, flags FROM modules ORDER BY seq DESC")]

    def module_at24(self, base: int, other_than: int) -> int | None:
        """The 2.4 module whose struct module is at ``base``."""
        row = self.db.execute(
            "SELECT seq FROM modules WHERE base=? AND design='2.4' AND seq != ?", (addr(base), other_than)
        ).fetchone()
        return None if row is None else int(row[0])

    def set_base(self, seq: int, base: int) -> None:
        self.db.execute("UPDATE modules SET base=? WHERE seq=?", (addr(base), seq))

    def set_flags(self, seq: int, flags: int, usecount: int | None = None) -> None:
        if usecount is None:
            self.db.execute("UPDATE modules SET flags=? WHERE seq=?", (flags, seq))
        else:
            self.db.execute("UPDATE modules SET usecount=?, flags=? WHERE seq=?", (usecount, flags, seq))

    def or_flags(self, seq: int, bits: int) -> None:
        self.db.execute("UPDATE modules SET flags = flags | ? WHERE seq=?", (bits, seq))

    def clear_flags_everywhere(self, bits: int) -> None:
        self.db.execute("UPDATE modules SET flags = flags & ?", (~bits,))

    def init24(self, seq: int, size: int, flags: int, init: int, cleanup: int) -> None:
        """sys_init_module's copy of the struct module: size, flags, routines; use count 1."""
        self.db.execute(
            "UPDATE modules SET size=?, flags=?, usecount=1, init=?, cleanup=?, state='' WHERE seq=?",
            (size, flags, addr(init), addr(cleanup), seq),
        )

    def is_used(self, seq: int) -> bool:
        """Some module holds a reference to module ``seq``."""
        return self.db.execute("SELECT 1 FROM refs WHERE used=?", (seq,)).fetchone() is not None

    def drop_refs(self, user: int) -> list[int]:
        """Drop the references module ``user`` holds: the modules they were on."""
        deps = [d for (d,) in self.db.execute("SELECT used FROM refs WHERE user=?", (user,))]
        self.db.execute("DELETE FROM refs WHERE user=?", (user,))
        return deps

    def live_names24(self, deleted: int) -> list[str]:
        """QM_MODULES: the 2.4 modules not being deleted, newest first."""
        return [
            n
            for (n,) in self.db.execute(
                "SELECT name FROM modules WHERE design='2.4' AND flags & ? = 0 ORDER BY seq DESC", (deleted,)
            )
        ]

    def deps_names(self, seq: int) -> list[str]:
        """QM_DEPS: the modules ``seq`` uses, in reference order."""
        return [
            n
            for (n,) in self.db.execute(
                "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.used WHERE r.user=? ORDER BY r.ord",
                (seq,),
            )
        ]

    def refs_names(self, seq: int) -> list[str]:
        """QM_REFS (and /proc/modules' [refs]): the modules using ``seq``, newest reference first."""
        return [
            n
            for (n,) in self.db.execute(
                "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.user WHERE r.used=? "
                "ORDER BY r.ord DESC",
                (seq,),
            )
        ]

    def kernel_exports(self) -> list[tuple[str, int, int | None]]:
        """The base kernel's exports in profile order: (name, address, crc)."""
        return [
            (n, a, c) for n, a, c in self.db.execute("SELECT name, address, crc FROM ksyms ORDER BY rowid")
        ]

    def module_exports(self, seq: int) -> list[tuple[str, int]]:
        """Module ``seq``'s exports in order: (name, address)."""
        return [
            (n, a)
            for n, a in self.db.execute(
                "SELECT name, address FROM msyms WHERE seq=? AND kind='export' ORDER BY ord", (seq,)
            )
        ]

    def permanent_modules(self) -> set[str]:
        """Today's modules with an init and no exit routine (they cannot be unloaded)."""
        sql = "SELECT name FROM modules WHERE info ->> '$.init' != 0 AND info ->> '$.exit' = 0"
        return {n for (n,) in self.db.execute(sql)}

    # -- boot and views (the facade's reads) ----------------------------------------------

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.db.execute("SELECT key, value FROM meta").fetchall()}

    def boot(self, fields: dict[str, str], symbols: Iterable[KernelSymbol]) -> None:
        """A new kernel's facts and its exports (profile order)."""
        self.db.executemany("INSERT INTO meta VALUES (?, ?)", fields.items())
        self.db.executemany(
            "INSERT INTO ksyms VALUES (?, ?, ?, ?, ?, ?)",
            ((s.name, addr(s.address or 0), s.type, s.crc, int(s.gpl_only), s.namespace) for s in symbols),
        )

    def initstate_row(self, name: str) -> tuple[str, int, str] | None:
        """(state, flags, design) of module ``name``."""
        row = self.db.execute("SELECT state, flags, design FROM modules WHERE name=?", (name,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def memory_of_name(self, name: str) -> dict[int, bytes]:
        rows = self.db.execute(
            "SELECT memory.base, memory.data FROM memory JOIN modules USING (seq) WHERE modules.name=?",
            (name,),
        ).fetchall()
        return {base: decode_blob(data, f"memory of {name}", self.path) for base, data in rows}

    def memory_below(self, address: int) -> Iterator[tuple[int, bytes]]:
        """(base, bytes) of the memory regions starting at or below ``address``."""
        for base, data in self.db.execute("SELECT base, data FROM memory WHERE base <= ?", (addr(address),)):
            yield base, decode_blob(data, f"memory at {base:#x}", self.path)

    def module_list(self) -> list[tuple[int, str, int, int, str, int, str]]:
        """(seq, name, size, usecount, state, base, taints), newest first."""
        return [
            tuple(r)
            for r in self.db.execute(
                "SELECT seq, name, size, usecount, state, base, taints FROM modules ORDER BY seq DESC"
            )
        ]

    def module_row(self, name: str) -> tuple[int, str, int, int, str, int, str] | None:
        """:meth:`module_list`'s row of module ``name``."""
        row = self.db.execute(
            "SELECT seq, name, size, usecount, state, base, taints FROM modules WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else tuple(row)

    def all_holders(self) -> dict[int, list[str]]:
        """Module seq -> the modules using it, newest reference first."""
        users: dict[int, list[str]] = {}
        for used, uname in self.db.execute(
            "SELECT r.used, m.name FROM refs r JOIN modules m ON m.seq = r.user ORDER BY r.ord DESC"
        ):
            users.setdefault(used, []).append(uname)
        return users

    def info_of_name(self, name: str) -> dict[str, object] | None:
        row = self.db.execute("SELECT info FROM modules WHERE name=?", (name,)).fetchone()
        return None if row is None else decode_json(row[0], f"info of {name}", self.path)

    def kernel_symbols(self) -> list[KernelSymbol]:
        """The base kernel's exports, profile order."""
        rows = self.db.execute(
            "SELECT name, address, type, crc, gpl, ns FROM ksyms ORDER BY rowid"
        ).fetchall()
        return [KernelSymbol(n, a, t, None, True, bool(g), c, ns) for n, a, t, c, g, ns in rows]

    def module_kallsyms(self) -> str:
        """The formed modules' /proc/kallsyms lines, newest module first."""
        rows = self.db.execute(
            "SELECT k.lines FROM kallsyms k JOIN modules m USING (seq) "
            "WHERE m.state != 'Unformed' ORDER BY m.seq DESC"
        ).fetchall()
        return "".join(
            decode_blob(r[0], "kallsyms", self.path).decode("utf-8", "surrogateescape") for r in rows
        )

    def module_symbols(self, kind: str) -> list[tuple[str, list[KernelSymbol]]]:
        """Per formed module, newest first: its symbols of ``kind``, in order."""
        mods = self.db.execute("SELECT seq, name FROM modules WHERE state != 'Unformed' ORDER BY seq DESC")
        out = []
        for seq, name in mods.fetchall():
            rows = self.db.execute(
                "SELECT name, address, type, gpl, crc, ns FROM msyms WHERE seq=? AND kind=? ORDER BY ord",
                (seq, kind),
            ).fetchall()
            syms = [
                KernelSymbol(n, a, t, name, kind == "export", bool(g), c, ns) for n, a, t, g, c, ns in rows
            ]
            out.append((name, syms))
        return out

    def areas(self) -> list[tuple[str, int, int, int, str, str]]:
        """(pool, start, span, size, module, region), by pool then address."""
        return [
            tuple(r)
            for r in self.db.execute(
                "SELECT a.pool, a.start, a.span, a.size, m.name, a.region FROM areas a "
                "JOIN modules m USING (seq) ORDER BY a.pool DESC, a.start"
            )
        ]

    # -- the whole tables, for lkm.kernel.model.integrity ---------------------------------

    def all_modules(self) -> dict[int, tuple[str, str, int, int, str]]:
        """seq -> (name, design, base, size, state)."""
        rows = self.db.execute("SELECT seq, name, design, base, size, state FROM modules")
        return {seq: (name, design, base, size, state) for seq, name, design, base, size, state in rows}

    def all_refs(self) -> list[tuple[int, int]]:
        return [(u, d) for u, d in self.db.execute("SELECT user, used FROM refs")]

    def seqs_in(self, table: str) -> list[int]:
        """The module seqs ``table`` (areas, memory, msyms or kallsyms) has rows for."""
        if table not in ("areas", "memory", "msyms", "kallsyms"):
            raise ValueError(table)
        return [seq for (seq,) in self.db.execute(f"SELECT DISTINCT seq FROM {table}")]

    def pool_areas(self, pool: str) -> list[tuple[int, int, int, int]]:
        """(start, span, size, seq) of ``pool``'s areas by address."""
        return [
            tuple(r)
            for r in self.db.execute(
                "SELECT start, span, size, seq FROM areas WHERE pool=? ORDER BY start", (pool,)
            )
        ]

    def all_exports(self) -> list[tuple[int, str, int]]:
        """(seq, name, address) of every module export."""
        return [tuple(r) for r in self.db.execute("SELECT seq, name, address FROM msyms WHERE kind='export'")]

    def memory_blob(self, seq: int) -> bytes | None:
        """The first stored region of module ``seq`` as stored (compressed)."""
        row = self.db.execute("SELECT data FROM memory WHERE seq=?", (seq,)).fetchone()
        return None if row is None else bytes(row[0])

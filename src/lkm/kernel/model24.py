"""The 2.4 module system calls of the model kernel (kernel/module.c of 2.4.20).

``create_module`` reserves memory and links an uninitialised module in; ``init_module_24``
takes insmod's finished image (struct module at its head), checks every pointer against the
module's bounds, links its dependencies, and runs init (INITIALIZING, then RUNNING);
``query_module`` answers insmod's and lsmod's questions with 2.4's buffer/ENOSPC protocol;
``delete_module_24`` unloads (EBUSY while referenced or in use) or, given no name, reaps
autoclean modules with the VISITED second chance; ``get_kernel_syms`` is the old table.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from lkm.kernel.executor import Executor, LoadedImage
from lkm.kernel.interface import KernelError
from lkm.kernel.state import addr
from lkm.kernel.struct24 import (
    EXCEPTION_ENTRY_SIZE,
    KERNEL_SYM_NAME,
    LAYOUTS,
    MOD_AUTOCLEAN,
    MOD_DELETED,
    MOD_INITIALIZING,
    MOD_JUST_FREED,
    MOD_RUNNING,
    MOD_USED_ONCE,
    MOD_VISITED,
    QM_DEPS,
    QM_INFO,
    QM_MODULES,
    QM_REFS,
    QM_SYMBOLS,
    Layout24,
    cstring,
    versioned_name,
)
from lkm.record import Record

if TYPE_CHECKING:
    from lkm.kernel.vmalloc import Arena

KERNEL_MODULE_ADDRESS = 0xC0300F00  # &kernel_module in the model's kernel data


class NoSpace(KernelError):
    """query_module's ENOSPC: ``ret`` is the buffer size needed."""

    def __init__(self, call: str, ret: int) -> None:
        super().__init__(call, errno.ENOSPC, f"buffer too small: {ret} bytes needed")
        self.ret = ret


class Query(Record):
    """A query_module answer: the bytes written to the buffer and the value put in ``*ret``."""

    __slots__ = ("data", "ret")

    def __init__(self, data: bytes, ret: int) -> None:
        self.data = data
        self.ret = ret


def can_query(flags: int) -> bool:
    """MOD_CAN_QUERY."""
    return bool(flags & (MOD_RUNNING | MOD_INITIALIZING)) and not flags & MOD_DELETED


class Calls24:
    """The 2.4 calls; mixed into :class:`lkm.kernel.model.ModelKernel`."""

    bits: int
    page_size: int
    executor: Executor
    meta: dict[str, str]
    arenas: dict[str, Arena]

    def _tx(self, call: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _alloc(self, db: sqlite3.Connection, seq: int, name: str, region: str, size: int) -> int:
        raise NotImplementedError

    def _free(self, db: sqlite3.Connection, seq: int) -> None:
        raise NotImplementedError

    def _store_memory(self, db: sqlite3.Connection, seq: int, regions: dict[int, bytes]) -> None:
        raise NotImplementedError

    def _memory_of(self, db: sqlite3.Connection, seq: int) -> dict[int, bytes]:
        raise NotImplementedError

    @property
    def layout24(self) -> Layout24:
        return LAYOUTS[self.bits // 8]

    def _require_24(self, call: str) -> None:
        if self.meta["layout"] != "linux-2.4":
            raise KernelError(
                call, errno.ENOSYS, f"{call} is a 2.4 system call; this kernel is {self.meta['release']}"
            )

    @staticmethod
    def _name_ok(call: str, name: str) -> None:
        if not name:
            raise KernelError(call, errno.EINVAL, "empty module name")
        if len(name.encode("utf-8", "surrogateescape")) + 1 > 4096:
            raise KernelError(call, errno.ENAMETOOLONG, "module name too long")

    # -- create_module ---------------------------------------------------------------------

    def create_module(self, name: str, size: int) -> int:
        """Reserve ``size`` bytes for module ``name``; returns its kernel address."""
        self._require_24("create_module")
        self._name_ok("create_module", name)
        lay = self.layout24
        if size < lay.sizeof_module + len(name.encode("utf-8", "surrogateescape")) + 1:
            raise KernelError("create_module", errno.EINVAL, f"size {size} too small for the module header")
        with self._tx("create_module") as db:
            if _find24(db, name) is not None:
                raise KernelError("create_module", errno.EEXIST, f"a module named {name} exists")
            cur = db.execute(
                "INSERT INTO modules (name, design, base, size, state) VALUES (?, '2.4', 0, ?, '')",
                (name, size),
            )
            seq = int(cur.lastrowid or 0)
            base = self._alloc(db, seq, name, "image", size)
            head = lay.pack_module(
                {"size_of_struct": lay.sizeof_module, "name": base + lay.sizeof_module, "size": size}
            )
            image = head + name.encode("utf-8", "surrogateescape") + b"\0"
            db.execute("UPDATE modules SET base=? WHERE seq=?", (addr(base), seq))
            self._store_memory(db, seq, {base: image.ljust(size, b"\0")})
        return base

    # -- init_module -----------------------------------------------------------------------

    def init_module_24(self, name: str, image: bytes) -> None:
        """sys_init_module(name, image): ``image`` is the module as insmod built it, struct
        module at offset 0, for the address create_module returned."""
        self._require_24("init_module")
        self._name_ok("init_module", name)
        failure: KernelError | None = None
        with self._tx("init_module") as db:
            failure = self._init_24(db, name, image)
        if failure is not None:
            raise failure

    def _init_24(self, db: sqlite3.Connection, name: str, image: bytes) -> KernelError | None:
        lay = self.layout24
        w = lay.word
        found = _find24(db, name)
        if found is None:
            raise KernelError("init_module", errno.ENOENT, f"no module {name} created")
        seq, base, created_size, _flags, _uc = found
        if len(image) < w:
            raise KernelError("init_module", errno.EFAULT, "image shorter than size_of_struct")
        sos = int.from_bytes(image[:w], "little")
        if sos < lay.offsets["persist_start"] or sos > lay.sizeof_module + 16 * w:
            raise KernelError(
                "init_module",
                errno.EINVAL,
                "Invalid module header size. A new version of the modutils is likely needed.",
            )
        if len(image) < sos:
            raise KernelError("init_module", errno.EFAULT, "image shorter than size_of_struct")
        m = lay.unpack_module(image, sos)

        def bad(why: str) -> KernelError:
            return KernelError("init_module", errno.EINVAL, f"init_module: {why}")

        if m["size"] > created_size:
            raise bad("Size of initialized module exceeds size of created module.")

        def bound(p: int, n: int) -> bool:  # mod_bound
            return base + sos <= p and p + n <= base + m["size"]

        namelen = len(name.encode("utf-8", "surrogateescape"))
        if not bound(m["name"], namelen):
            raise bad("mod->name out of bounds.")
        if m["nsyms"] and not bound(m["syms"], m["nsyms"] * lay.symbol.size):
            raise bad("mod->syms out of bounds.")
        if m["ndeps"] and not bound(m["deps"], m["ndeps"] * lay.ref.size):
            raise bad("mod->deps out of bounds.")
        for fn in ("init", "cleanup"):
            if m[fn] and not bound(m[fn], 0):
                raise bad(f"mod->{fn} out of bounds.")
        ex0, ex1 = m["ex_table_start"], m["ex_table_end"]
        if (
            ex0 > ex1
            or (ex0 and not (ex0 >= base + sos and ex1 < base + m["size"]))
            or (ex1 - ex0) % EXCEPTION_ENTRY_SIZE
        ):
            raise bad("mod->ex_table_* invalid.")
        if m["flags"] & ~MOD_AUTOCLEAN:
            raise bad("mod->flags invalid.")
        if m["can_unload"] and not bound(m["can_unload"], 0):
            raise bad("mod->can_unload out of bounds.")
        for a, b in (("kallsyms_start", "kallsyms_end"), ("archdata_start", "archdata_end")):
            if lay.member_present(b, sos):
                what = a.split("_")[0]
                if m[b] and (not bound(m[a], 0) or not bound(m[b], 0)):
                    raise bad(f"mod->{what} out of bounds.")
                if m[a] > m[b]:
                    raise bad(f"mod->{what} invalid.")
        if lay.member_present("kernel_data", sos) and m["kernel_data"]:
            raise bad("mod->kernel_data must be zero.")
        if len(image) < m["size"]:
            raise KernelError(
                "init_module", errno.EFAULT, f"image has {len(image)} bytes, mod->size is {m['size']}"
            )
        mem = bytes(image[: m["size"]])
        got = cstring(mem, m["name"] - base)
        if got != name:
            raise bad(f"changed module name to `{got}' from `{name}'")
        deps: list[int] = []
        for i in range(m["ndeps"]):
            dep = lay.ref.unpack_from(mem, m["deps"] - base + i * lay.ref.size)[0]
            if dep == base:
                raise bad("self-referential dependency in mod->deps.")
            row = db.execute(
                "SELECT seq FROM modules WHERE base=? AND design='2.4' AND seq != ?", (addr(dep), seq)
            ).fetchone()
            if row is None:
                raise bad("found dependency that is (no longer?) a module.")
            deps.append(row[0])
        # From here on the module is committed to, as in 2.4: the refs are linked before init.
        nref = db.execute("SELECT COALESCE(MAX(ord), 0) FROM refs").fetchone()[0]
        for i, d in enumerate(deps):
            db.execute("INSERT OR IGNORE INTO refs VALUES (?, ?, ?)", (seq, d, nref + 1 + i))
            db.execute("UPDATE modules SET flags = flags | ? WHERE seq=?", (MOD_USED_ONCE, d))
        syms = []
        for i in range(m["nsyms"]):
            value, nameptr = lay.symbol.unpack_from(mem, m["syms"] - base + i * lay.symbol.size)
            sname = cstring(mem, nameptr - base) if base <= nameptr < base + m["size"] else ""
            syms.append(
                (seq, sname, addr(value), "export", None, int(sname.startswith("GPLONLY_")), None, None, i)
            )
        db.execute("DELETE FROM msyms WHERE seq=?", (seq,))
        db.executemany("INSERT INTO msyms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", syms)
        self._store_memory(db, seq, {base: mem.ljust(created_size, b"\0")})
        flags = m["flags"] | MOD_INITIALIZING
        db.execute(
            "UPDATE modules SET size=?, flags=?, usecount=1, init=?, cleanup=?, state='' WHERE seq=?",
            (m["size"], flags, addr(m["init"]), addr(m["cleanup"]), seq),
        )
        if m["init"]:
            ret = self.executor.call(LoadedImage(name, {base: mem}, {}), m["init"], ())
            if ret != 0:
                db.execute(
                    "UPDATE modules SET usecount=0, flags=? WHERE seq=?", (flags & ~MOD_INITIALIZING, seq)
                )
                code = errno.EBUSY if ret > 0 else -ret
                return KernelError("init_module", code, f"{name}: init_module returned {ret}")
        db.execute(
            "UPDATE modules SET usecount=0, flags=? WHERE seq=?",
            ((flags | MOD_RUNNING) & ~MOD_INITIALIZING, seq),
        )
        return None

    # -- delete_module ---------------------------------------------------------------------

    def delete_module_24(self, name: str | None) -> None:
        """sys_delete_module(name); None reaps unused autoclean modules."""
        self._require_24("delete_module")
        with self._tx("delete_module") as db:
            if name is not None:
                self._name_ok("delete_module", name)
                found = _find24(db, name)
                if found is None:
                    raise KernelError("delete_module", errno.ENOENT, f"Module {name} is not currently loaded")
                seq = found[0]
                if db.execute("SELECT 1 FROM refs WHERE used=?", (seq,)).fetchone():
                    raise KernelError(
                        "delete_module", errno.EBUSY, f"Module {name} is in use by other modules"
                    )
                if self._in_use(db, seq):
                    raise KernelError("delete_module", errno.EBUSY, f"Module {name} is in use")
                self._free_module(db, seq, tag_freed=False)
                return
            while True:
                changed = False
                for seq, flags in db.execute("SELECT seq, flags FROM modules ORDER BY seq DESC").fetchall():
                    if (
                        db.execute("SELECT 1 FROM refs WHERE used=?", (seq,)).fetchone() is None
                        and flags & MOD_AUTOCLEAN
                        and flags & MOD_RUNNING
                        and not flags & MOD_DELETED
                        and flags & MOD_USED_ONCE
                        and not self._in_use(db, seq)
                    ):
                        if flags & MOD_VISITED and not flags & MOD_JUST_FREED:
                            db.execute("UPDATE modules SET flags=? WHERE seq=?", (flags & ~MOD_VISITED, seq))
                        else:
                            self._free_module(db, seq, tag_freed=True)
                            changed = True
                if not changed:
                    break
            db.execute("UPDATE modules SET flags = flags & ?", (~MOD_JUST_FREED,))

    def _in_use(self, db: sqlite3.Connection, seq: int) -> bool:
        """__MOD_IN_USE: can_unload() if the module has one, else its usecount."""
        name, usecount = db.execute("SELECT name, usecount FROM modules WHERE seq=?", (seq,)).fetchone()
        cu = self._struct_field(db, seq, "can_unload")
        if cu:
            return self.executor.call(LoadedImage(name, self._memory_of(db, seq), {}), cu, ()) != 0
        return bool(usecount)

    def _struct_field(self, db: sqlite3.Connection, seq: int, field: str) -> int:
        mem = self._memory_of(db, seq)
        if not mem:
            return 0
        data = next(iter(mem.values()))
        lay = self.layout24
        sos = int.from_bytes(data[: lay.word], "little")
        return lay.unpack_module(data, sos)[field] if lay.member_present(field, sos) else 0

    def _free_module(self, db: sqlite3.Connection, seq: int, *, tag_freed: bool) -> None:
        name, flags, cleanup = db.execute(
            "SELECT name, flags, cleanup FROM modules WHERE seq=?", (seq,)
        ).fetchone()
        if flags & MOD_RUNNING and cleanup:
            self.executor.call(LoadedImage(name, self._memory_of(db, seq), {}), cleanup, ())
        deps = [d for (d,) in db.execute("SELECT used FROM refs WHERE user=?", (seq,))]
        db.execute("DELETE FROM refs WHERE user=?", (seq,))
        if tag_freed:
            for d in deps:
                if db.execute("SELECT 1 FROM refs WHERE used=?", (d,)).fetchone() is None:
                    db.execute("UPDATE modules SET flags = flags | ? WHERE seq=?", (MOD_JUST_FREED, d))
        self._free(db, seq)

    # -- query_module ----------------------------------------------------------------------

    def query_module(self, name: str | None, which: int, bufsize: int = 1 << 20) -> Query:
        """sys_query_module: the buffer contents and ``*ret``; :class:`NoSpace` (ENOSPC, with the
        size needed) when ``bufsize`` is too small."""
        self._require_24("query_module")
        with self._tx("query_module") as db:
            return self._query(db, name, which, bufsize)

    def _query(self, db: sqlite3.Connection, name: str | None, which: int, bufsize: int) -> Query:
        call = "query_module"
        seq: int | None = None
        flags = MOD_RUNNING
        if name is not None:
            self._name_ok(call, name)
            found = _find24(db, name)
            if found is None:
                raise KernelError(call, errno.ENOENT, f"no module {name}")
            seq, _base, _size, flags, _uc = found
        if which == 0:
            return Query(b"", 0)
        if which == QM_MODULES:
            names = [
                n
                for (n,) in db.execute(
                    "SELECT name FROM modules WHERE design='2.4' AND flags & ? = 0 ORDER BY seq DESC",
                    (MOD_DELETED,),
                )
            ]
            return _strings(call, names, bufsize, len(names))
        if which in (QM_DEPS, QM_REFS):
            if seq is None:
                raise KernelError(call, errno.EINVAL, "the kernel has no dependencies")
            if not can_query(flags):
                return Query(b"", 0)
            if which == QM_DEPS:
                sql = (
                    "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.used WHERE r.user=? ORDER BY r.ord"
                )
            else:
                sql = (
                    "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.user WHERE r.used=? "
                    "ORDER BY r.ord DESC"
                )
            names = [n for (n,) in db.execute(sql, (seq,))]
            return _strings(call, names, bufsize, len(names))
        if which == QM_SYMBOLS:
            if not can_query(flags):
                return Query(b"", 0)
            return self._qm_symbols(self._symbols_of(db, seq), bufsize)
        if which == QM_INFO:
            if seq is None:
                raise KernelError(call, errno.EINVAL, "no info for the kernel")
            lay = self.layout24
            if bufsize < lay.info.size:
                raise NoSpace(call, lay.info.size)
            base, size, flags, usecount = db.execute(
                "SELECT base, size, flags, usecount FROM modules WHERE seq=?", (seq,)
            ).fetchone()
            uc = -1 if self._struct_field(db, seq, "can_unload") else usecount
            return Query(lay.info.pack(base, size, flags, uc), lay.info.size)
        raise KernelError(call, errno.EINVAL, f"unknown query {which}")

    def _symbols_of(self, db: sqlite3.Connection, seq: int | None) -> list[tuple[int, str]]:
        """(value, name) of a module's syms, or the kernel's (versioned names) for None."""
        if seq is None:
            smp = self.meta.get("smp") == "1"
            versions = self.meta.get("using_versions") == "1"
            return [
                (a, versioned_name(n, c if versions else None, smp))
                for n, a, c in db.execute("SELECT name, address, crc FROM ksyms ORDER BY rowid")
            ]
        return [
            (a, n)
            for n, a in db.execute(
                "SELECT name, address FROM msyms WHERE seq=? AND kind='export' ORDER BY ord", (seq,)
            )
        ]

    def _qm_symbols(self, syms: list[tuple[int, str]], bufsize: int) -> Query:
        lay = self.layout24
        head = len(syms) * lay.symbol.size
        space = head + sum(len(n.encode("utf-8", "surrogateescape")) + 1 for _v, n in syms)
        if space > bufsize:
            raise NoSpace("query_module", space)
        table, strings = bytearray(), bytearray()
        for value, n in syms:
            table += lay.symbol.pack(value, head + len(strings))
            strings += n.encode("utf-8", "surrogateescape") + b"\0"
        return Query(bytes(table + strings), len(syms))

    # -- get_kernel_syms -------------------------------------------------------------------

    def get_kernel_syms(self) -> list[tuple[int, str]]:
        """sys_get_kernel_syms: per module (newest first, the kernel last) a ``#name`` entry at
        the struct module's address, then its symbols; names cut to 59 characters."""
        self._require_24("get_kernel_syms")
        out: list[tuple[int, str]] = []
        with self._tx("get_kernel_syms") as db:
            mods = db.execute(
                "SELECT seq, name, base, flags FROM modules WHERE design='2.4' ORDER BY seq DESC"
            ).fetchall()
            for seq, name, base, flags in [*mods, (None, "", KERNEL_MODULE_ADDRESS, MOD_RUNNING)]:
                if not can_query(flags):
                    continue
                out.append((base, ("#" + name)[: KERNEL_SYM_NAME - 1]))
                out.extend((v, n[: KERNEL_SYM_NAME - 1]) for v, n in self._symbols_of(db, seq))
        return out


def _find24(db: sqlite3.Connection, name: str) -> tuple[int, int, int, int, int] | None:
    """find_module: (seq, base, size, flags, usecount), modules being deleted skipped."""
    row = db.execute(
        "SELECT seq, base, size, flags, usecount FROM modules WHERE name=? AND flags & ? = 0",
        (name, MOD_DELETED),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3], row[4])


def _strings(call: str, names: list[str], bufsize: int, count: int) -> Query:
    """NUL-separated names; ENOSPC with the total size when they do not fit."""
    data = b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names)
    if len(data) > bufsize:
        raise NoSpace(call, len(data))
    return Query(data, count)


def iter_strings(data: bytes) -> Iterator[str]:
    """The names of a QM_MODULES/QM_DEPS/QM_REFS answer."""
    for part in data.split(b"\0")[:-1]:
        yield part.decode("latin-1")

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
from dataclasses import dataclass

from lkm.kernel.executor import Executor, LoadedImage
from lkm.kernel.interface import KernelError
from lkm.kernel.model.state import State
from lkm.kernel.model.store import Store
from lkm.kernel.model.struct24 import (
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
from lkm.kernel.model.vmalloc import ModuleMemory

__all__ = ["KERNEL_MODULE_ADDRESS", "Calls24", "NoSpace", "Query", "can_query", "iter_strings"]


KERNEL_MODULE_ADDRESS = 0xC0300F00  # &kernel_module in the model's kernel data


class NoSpace(KernelError):
    """query_module's ENOSPC: ``ret`` is the buffer size needed."""

    def __init__(self, call: str, ret: int) -> None:
        super().__init__(call, errno.ENOSPC, f"buffer too small: {ret} bytes needed")
        self.ret = ret


@dataclass(frozen=True, slots=True)
class Query:
    """A query_module answer: the bytes written to the buffer and the value put in ``*ret``."""

    data: bytes
    ret: int


def can_query(flags: int) -> bool:
    """MOD_CAN_QUERY."""
    return bool(flags & (MOD_RUNNING | MOD_INITIALIZING)) and not flags & MOD_DELETED


class Calls24:
    """The 2.4 system calls of a model kernel whose design is 2.4 (the facade,
    :class:`lkm.kernel.model.ModelKernel`, holds one and passes these calls on)."""

    def __init__(
        self, state: State, meta: dict[str, str], bits: int, executor: Executor, memory: ModuleMemory
    ) -> None:
        self.state = state
        self.meta = meta
        self.bits = bits
        self.executor = executor
        self.memory = memory
        self.layout24: Layout24 = LAYOUTS[bits // 8]

    def _tx(self, call: str) -> AbstractContextManager[sqlite3.Connection]:
        """A system call's transaction; database failures become StateError."""
        return self.state.transaction()

    def _store(self, db: sqlite3.Connection) -> Store:
        return Store(db, self.state.path, self.state.write_cache())

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
            st = self._store(db)
            if st.find24(name, MOD_DELETED) is not None:
                raise KernelError("create_module", errno.EEXIST, f"a module named {name} exists")
            seq = st.new_module(name, "2.4", size)
            base = self.memory.alloc(st, seq, name, "image", size)
            head = lay.pack_module(
                {"size_of_struct": lay.sizeof_module, "name": base + lay.sizeof_module, "size": size}
            )
            image = head + name.encode("utf-8", "surrogateescape") + b"\0"
            st.set_base(seq, base)
            st.store_memory(seq, {base: image.ljust(size, b"\0")})
        return base

    # -- init_module -----------------------------------------------------------------------

    def init_module_24(self, name: str, image: bytes) -> None:
        """sys_init_module(name, image): ``image`` is the module as insmod built it, struct
        module at offset 0, for the address create_module returned."""
        self._require_24("init_module")
        self._name_ok("init_module", name)
        failure: KernelError | None = None
        with self._tx("init_module") as db:
            failure = self._init_24(self._store(db), name, image)
        if failure is not None:
            raise failure

    def _init_24(self, st: Store, name: str, image: bytes) -> KernelError | None:
        lay = self.layout24
        w = lay.word
        found = st.find24(name, MOD_DELETED)
        if found is None:
            raise KernelError("init_module", errno.ENOENT, f"no module {name} created")
        seq, base, created_size = found.seq, found.base, found.size
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
            dep_seq = st.module_at24(dep, seq)
            if dep_seq is None:
                raise bad("found dependency that is (no longer?) a module.")
            deps.append(dep_seq)
        # From here on the module is committed to, as in 2.4: the refs are linked before init.
        st.add_refs(seq, deps)
        for d in deps:
            st.or_flags(d, MOD_USED_ONCE)
        syms: list[tuple[str, int, int, int | None, str | None]] = []
        for i in range(m["nsyms"]):
            value, nameptr = lay.symbol.unpack_from(mem, m["syms"] - base + i * lay.symbol.size)
            sname = cstring(mem, nameptr - base) if base <= nameptr < base + m["size"] else ""
            syms.append((sname, value, int(sname.startswith("GPLONLY_")), None, None))
        st.add_exports(seq, syms, replace=True)
        st.store_memory(seq, {base: mem.ljust(created_size, b"\0")})
        flags = m["flags"] | MOD_INITIALIZING
        st.init24(seq, m["size"], flags, m["init"], m["cleanup"])
        if m["init"]:
            ret = self.executor.call(LoadedImage(name, {base: mem}, {}), m["init"], ())
            if ret != 0:
                st.set_flags(seq, flags & ~MOD_INITIALIZING, usecount=0)
                code = errno.EBUSY if ret > 0 else -ret
                return KernelError("init_module", code, f"{name}: init_module returned {ret}")
        st.set_flags(seq, (flags | MOD_RUNNING) & ~MOD_INITIALIZING, usecount=0)
        return None

    # -- delete_module ---------------------------------------------------------------------

    def delete_module_24(self, name: str | None) -> None:
        """sys_delete_module(name); None reaps unused autoclean modules."""
        self._require_24("delete_module")
        with self._tx("delete_module") as db:
            st = self._store(db)
            if name is not None:
                self._name_ok("delete_module", name)
                found = st.find24(name, MOD_DELETED)
                if found is None:
                    raise KernelError("delete_module", errno.ENOENT, f"Module {name} is not currently loaded")
                seq = found.seq
                if st.is_used(seq):
                    raise KernelError(
                        "delete_module", errno.EBUSY, f"Module {name} is in use by other modules"
                    )
                if self._in_use(st, seq):
                    raise KernelError("delete_module", errno.EBUSY, f"Module {name} is in use")
                self._free_module(st, seq, tag_freed=False)
                return
            while True:
                changed = False
                for seq, flags in st.all_flags():
                    if (
                        not st.is_used(seq)
                        and flags & MOD_AUTOCLEAN
                        and flags & MOD_RUNNING
                        and not flags & MOD_DELETED
                        and flags & MOD_USED_ONCE
                        and not self._in_use(st, seq)
                    ):
                        if flags & MOD_VISITED and not flags & MOD_JUST_FREED:
                            st.set_flags(seq, flags & ~MOD_VISITED)
                        else:
                            self._free_module(st, seq, tag_freed=True)
                            changed = True
                if not changed:
                    break
            st.clear_flags_everywhere(MOD_JUST_FREED)

    def _in_use(self, st: Store, seq: int) -> bool:
        """__MOD_IN_USE: can_unload() if the module has one, else its usecount."""
        row = st.row24(seq)
        cu = self.struct_field(st, seq, "can_unload")
        if cu:
            return self.executor.call(LoadedImage(row.name, st.memory_of(seq), {}), cu, ()) != 0
        return bool(row.usecount)

    def struct_field(self, st: Store, seq: int, field: str) -> int:
        """A member of module ``seq``'s struct module in memory (0 if its struct lacks it)."""
        mem = st.memory_of(seq)
        if not mem:
            return 0
        data = next(iter(mem.values()))
        lay = self.layout24
        sos = int.from_bytes(data[: lay.word], "little")
        return lay.unpack_module(data, sos)[field] if lay.member_present(field, sos) else 0

    def _free_module(self, st: Store, seq: int, *, tag_freed: bool) -> None:
        row = st.row24(seq)
        if row.flags & MOD_RUNNING and row.cleanup:
            self.executor.call(LoadedImage(row.name, st.memory_of(seq), {}), row.cleanup, ())
        deps = st.drop_refs(seq)
        if tag_freed:
            for d in deps:
                if not st.is_used(d):
                    st.or_flags(d, MOD_JUST_FREED)
        st.free(seq)

    # -- query_module ----------------------------------------------------------------------

    def query_module(self, name: str | None, which: int, bufsize: int = 1 << 20) -> Query:
        """sys_query_module: the buffer contents and ``*ret``; :class:`NoSpace` (ENOSPC, with the
        size needed) when ``bufsize`` is too small."""
        self._require_24("query_module")
        with self._tx("query_module") as db:
            return self._query(self._store(db), name, which, bufsize)

    def _query(self, st: Store, name: str | None, which: int, bufsize: int) -> Query:
        call = "query_module"
        seq: int | None = None
        flags = MOD_RUNNING
        if name is not None:
            self._name_ok(call, name)
            found = st.find24(name, MOD_DELETED)
            if found is None:
                raise KernelError(call, errno.ENOENT, f"no module {name}")
            seq, flags = found.seq, found.flags
        if which == 0:
            return Query(b"", 0)
        if which == QM_MODULES:
            names = st.live_names24(MOD_DELETED)
            return _strings(call, names, bufsize, len(names))
        if which in (QM_DEPS, QM_REFS):
            if seq is None:
                raise KernelError(call, errno.EINVAL, "the kernel has no dependencies")
            if not can_query(flags):
                return Query(b"", 0)
            names = st.deps_names(seq) if which == QM_DEPS else st.refs_names(seq)
            return _strings(call, names, bufsize, len(names))
        if which == QM_SYMBOLS:
            if not can_query(flags):
                return Query(b"", 0)
            return self._qm_symbols(self._symbols_of(st, seq), bufsize)
        if which == QM_INFO:
            if seq is None:
                raise KernelError(call, errno.EINVAL, "no info for the kernel")
            lay = self.layout24
            if bufsize < lay.info.size:
                raise NoSpace(call, lay.info.size)
            row = st.row24(seq)
            uc = -1 if self.struct_field(st, seq, "can_unload") else row.usecount
            return Query(lay.info.pack(row.base, row.size, row.flags, uc), lay.info.size)
        raise KernelError(call, errno.EINVAL, f"unknown query {which}")

    def _symbols_of(self, st: Store, seq: int | None) -> list[tuple[int, str]]:
        """(value, name) of a module's syms, or the kernel's (versioned names) for None."""
        if seq is None:
            smp = self.meta.get("smp") == "1"
            versions = self.meta.get("using_versions") == "1"
            return [(a, versioned_name(n, c if versions else None, smp)) for n, a, c in st.kernel_exports()]
        return [(a, n) for n, a in st.module_exports(seq)]

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
            st = self._store(db)
            mods: list[tuple[int | None, str, int, int]] = [*st.modules24()]
            for seq, name, base, flags in [*mods, (None, "", KERNEL_MODULE_ADDRESS, MOD_RUNNING)]:
                if not can_query(flags):
                    continue
                out.append((base, ("#" + name)[: KERNEL_SYM_NAME - 1]))
                out.extend((v, n[: KERNEL_SYM_NAME - 1]) for v, n in self._symbols_of(st, seq))
        return out


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

"""The model kernel: a persistent kernel whose module table lives in SQLite (:mod:`lkm.kernel.state`).

It is booted from a profile (:mod:`lkm.kernel.profile`) and implements the :class:`Kernel`
interface the module tools use (``finit_module``/``init_module`` taking the file: the kernel
checks it, lays it out, resolves and relocates it through :mod:`lkm.link`), plus the 2.4 system
calls (:class:`lkm.kernel.model24.Calls24`: ``create_module``, ``init_module`` with insmod's
image, ``query_module``, ``delete_module``, ``get_kernel_syms``).  Every call is one transaction.

Module memory comes from the vmalloc area (or, with the ``kmalloc-first`` policy, the kmalloc
pool for small modules); init routines run through an :class:`~lkm.kernel.executor.Executor`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import zlib
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, cast

from lkm.errors import LkmError
from lkm.kernel import kmod, model_load
from lkm.kernel.executor import Executor, LoadedImage, RecordingExecutor
from lkm.kernel.interface import (
    MODULE_INIT_COMPRESSED_FILE,
    MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
    O_NONBLOCK,
    O_TRUNC,
    KernelError,
    LoadedModule,
)
from lkm.kernel.model24 import Calls24
from lkm.kernel.profile import ARCH_RANGES, Profile, load_profile
from lkm.kernel.state import (
    State,
    StateError,
    addr,
    decode_blob,
    decode_json,
    default_state_path,
    new_state_file,
    replace_state,
)
from lkm.kernel.vmalloc import Arena, Fragmentation, first_fit, fragmentation
from lkm.kernels import KernelVersion, by_name
from lkm.record import Record
from lkm.safeio import discard
from lkm.symbols.table import KernelSymbol, SymbolTable

POLICIES = ("vmalloc", "kmalloc-first")
ALL_FLAGS = MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC | MODULE_INIT_COMPRESSED_FILE


class Area(Record):
    """One allocation: pool, start, span (with guard), requested size, owner, region."""

    __slots__ = ("pool", "start", "span", "size", "module", "region")

    def __init__(self, pool: str, start: int, span: int, size: int, module: str, region: str) -> None:
        self.pool = pool
        self.start = start
        self.span = span
        self.size = size
        self.module = module
        self.region = region


class ModelKernel(Calls24):
    """A model kernel over a state file.  Open an existing one, or :meth:`boot` a new one."""

    def __init__(
        self,
        state: str | os.PathLike[str] | None = None,
        *,
        executor: Executor | None = None,
        readonly: bool = False,
    ) -> None:
        self.state = State(state or default_state_path(), readonly=readonly)
        self.executor: Executor = executor or RecordingExecutor()
        with self.state.reading() as db:
            self.meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta").fetchall()}
        try:
            self.release = self.meta["release"]
            self.machine = {"x86_64": "x86_64", "i386": "i686"}.get(self.meta["arch"], self.meta["arch"])
            self.bits = int(self.meta["bits"])
            self.page_size = int(self.meta.get("page_size", "4096"))
            ranges = ARCH_RANGES[self.meta["range"]]
            lo, hi = ranges["modules"]
            klo, khi = ranges["kmalloc"]
            self.policy = self.meta.get("policy", "vmalloc")
            self.kmalloc_max = int(self.meta.get("kmalloc_max", str(self.page_size)))
            if self.bits not in (32, 64) or self.page_size <= 0 or self.page_size & (self.page_size - 1):
                raise ValueError("bits or page_size")
            if self.policy not in POLICIES or self.meta.get("layout") not in (
                "linux-2.4",
                "linux-6.1",
                "linux-6.12",
            ):
                raise ValueError("policy or layout")
        except (KeyError, ValueError) as exc:
            self.state.close()
            raise StateError(f"damaged state: meta {exc} (lkm model check)", path=self.state.path) from None
        self.arenas = {
            "vmalloc": Arena("vmalloc", lo, hi, self.page_size, self.page_size),
            "kmalloc": Arena("kmalloc", klo, khi, 1, 0),
        }
        self.kmod_concurrent_max = kmod.MAX_KMOD_CONCURRENT  # the kernel's constant (tests lower it)
        self.kmod_running = 0  # requests in progress (nested: each one's caller is the one before)
        self.requests: list[kmod.ModuleRequest] = []  # module_request events of this process
        self.kmsg: list[str] = []  # what the model kernel itself printed in this process
        self.commands: list[
            tuple[str, str, str]
        ] = []  # install/remove commands not run (kind, module, command)
        bind = getattr(self.executor, "bind_kernel", None)
        if bind is not None:  # an executor that runs module code lets it call request_module
            bind(self)

    @classmethod
    def boot(
        cls,
        profile: str | Profile,
        state: str | os.PathLike[str] | None = None,
        *,
        policy: str = "vmalloc",
        kmalloc_max: int | None = None,
        executor: Executor | None = None,
        modules_root: str | None = None,
        force: bool = False,
    ) -> ModelKernel:
        """Boot a fresh kernel from ``profile`` into a new state file ``state``.  An existing
        lkm state is replaced (atomically: the new state is built beside it and renamed over
        it) only with ``force``; any other existing file is refused.  ``modules_root``: the
        directory whose lib/modules/RELEASE and modprobe.d request_module's modprobe uses
        (default: the profile's own, none -- never the host's /etc)."""
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        if policy not in POLICIES:
            raise LkmError(f"unknown memory policy {policy!r} (known: {', '.join(POLICIES)})")
        target = state or default_state_path()
        tmp = new_state_file(target, force=force)
        try:
            st = State(tmp, create=True)
        except BaseException:
            os.unlink(tmp)
            raise
        fields = dict(prof.fields, profile=prof.name, policy=policy)
        if kmalloc_max is not None:
            fields["kmalloc_max"] = str(kmalloc_max)
        if modules_root is not None:
            fields["modules_root"] = _modules_root(modules_root)
        try:
            with st.transaction() as db:
                st.create_schema(db)
                db.executemany("INSERT INTO meta VALUES (?, ?)", fields.items())
                db.executemany(
                    "INSERT INTO ksyms VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (s.name, addr(s.address or 0), s.type, s.crc, int(s.gpl_only), s.namespace)
                        for s in prof.symbols
                    ),
                )
            st.db.execute("PRAGMA journal_mode=DELETE")  # one file, complete, before the rename
        except BaseException:
            st.close()
            discard(tmp)
            raise
        st.close()
        replace_state(tmp, target)
        return cls(target, executor=executor)

    def close(self) -> None:
        self.state.close()

    def tainted(self) -> int:
        """/proc/sys/kernel/tainted."""
        with self.state.reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key='tainted'").fetchone()
        return int(row[0]) if row else 0

    def add_taint(self, bits: int) -> None:
        """Set taint bits (2.4's insmod writes them to /proc/sys/kernel/tainted)."""
        with self._tx("sysctl") as db:
            row = db.execute("SELECT value FROM meta WHERE key='tainted'").fetchone()
            value = (int(row[0]) if row else 0) | bits
            db.execute("INSERT OR REPLACE INTO meta VALUES ('tainted', ?)", (str(value),))

    # -- request_module (lkm.kernel.kmod) -------------------------------------------------

    @property
    def modprobe_path(self) -> str:
        """/proc/sys/kernel/modprobe (empty: the kernel asks for no modules)."""
        return self.meta.get("modprobe", kmod.DEFAULT_MODPROBE)

    @property
    def modules_root(self) -> str:
        """The root whose lib/modules/RELEASE and modprobe.d request_module's modprobe reads
        ("" is the host's /)."""
        return self.meta.get("modules_root", "")

    def set_modprobe_path(self, path: str) -> None:
        """Write /proc/sys/kernel/modprobe (KMOD_PATH_LEN 256 with its NUL; the newline of
        ``echo`` is dropped, as proc_dostring does)."""
        path = path.split("\n", 1)[0]
        if len(path.encode("utf-8", "surrogateescape")) > 255:
            raise KernelError("write", errno.EINVAL, "modprobe path longer than KMOD_PATH_LEN - 1")
        self._set_meta("modprobe", path)

    @property
    def exec_host(self) -> bool:
        """Whether modprobe's install/remove commands run on the host (``lkm model set
        exec=host``); off by default: the model is a sandbox."""
        return self.meta.get("exec", "none") == "host"

    def set_exec(self, value: str) -> None:
        """``host``: install/remove commands run on the host; ``none`` (default): recorded only."""
        if value not in ("host", "none"):
            raise LkmError(f"exec must be host or none, not {value!r}")
        self._set_meta("exec", value)

    def user_command(self, kind: str, module: str, command: str) -> int | None:
        """modprobe wants to run an install/remove command for this kernel: None to let it run
        on the host (exec=host), else its recorded status (0) without running anything."""
        if self.exec_host:
            return None
        self.commands.append((kind, module, command))
        self.kmsg.append(
            f"lkm: {kind} command for {module} not run (lkm model set exec=host runs it): {command}"
        )
        return 0

    def set_modules_root(self, root: str) -> None:
        """Point request_module's modprobe at ``root``/lib/modules/RELEASE."""
        self._set_meta("modules_root", _modules_root(root))

    # -- module signature policy (lkm.trust.sig) ------------------------------------------

    def set_sig_enforce(self, value: str) -> None:
        """Write /sys/module/module/parameters/sig_enforce (module.sig_enforce on the command
        line): a bool_enable_only parameter, so a set value cannot be cleared (EROFS)."""
        on = _parse_bool(value)
        if on is None:
            raise KernelError("write", errno.EINVAL, f"sig_enforce: invalid value {value!r}")
        if not on and self.meta.get("sig_enforce", "0") == "1":
            raise KernelError("write", errno.EROFS, "sig_enforce cannot be cleared once set")
        self._set_meta("sig_enforce", "1" if on else "0")

    def set_lockdown(self, level: str) -> None:
        """Write /sys/kernel/security/lockdown: none, integrity or confidentiality; the level only
        rises (EPERM)."""
        levels = ("none", "integrity", "confidentiality")
        if level not in levels:
            raise KernelError("write", errno.EINVAL, f"lockdown: unknown level {level!r}")
        if levels.index(level) < levels.index(self.meta.get("lockdown", "none")):
            raise KernelError("write", errno.EPERM, "lockdown level cannot be lowered")
        self._set_meta("lockdown", level)

    def set_trusted_keys(self, certificate_list: bytes) -> None:
        """The builtin trusted keys (``system_certificate_list``: DER certificates back to back),
        as :func:`lkm.trust.keys.builtin_trusted_keys` recovers them from an image; the boot-time
        choice of the kernel the model stands for."""
        self._set_meta("trusted_keys", certificate_list.hex())

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx("sysctl") as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.meta[key] = value

    def request_module(self, name: str, wait: bool = True) -> int:
        """The kernel's request_module(name) / request_module_nowait: runs lkm's modprobe
        against this kernel (:mod:`lkm.kernel.kmod`).  0 on success, the modprobe wait status
        (256: exit 1) or -errno; each request is appended to :attr:`requests`."""
        return kmod.request_module(self, name, wait)

    def initstate(self, name: str) -> str | None:
        with self.state.reading() as db:
            row = db.execute("SELECT state, flags, design FROM modules WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        state, flags, design = row
        if design == "2.4":
            return "live" if flags & 1 else "coming"
        return {"Live": "live", "Loading": "coming"}.get(state, "going")

    def module(self, name: str) -> LoadedModule | None:
        return next((m for m in self.modules() if m.name == name), None)

    # -- plumbing ------------------------------------------------------------------------

    @property
    def version(self) -> KernelVersion:
        """The kernel design this model runs (:mod:`lkm.kernels`), from its profile's layout."""
        return by_name(self.meta["layout"])

    @property
    def is_24(self) -> bool:
        """The 2.4 design: :attr:`version` links in user space (kept for callers of the old name)."""
        return self.version.user_space_link

    def _tx(self, call: str) -> AbstractContextManager[sqlite3.Connection]:
        """A system call's transaction; database failures become :class:`StateError`."""
        return self.state.transaction()

    def _alloc(self, db: sqlite3.Connection, seq: int, name: str, region: str, size: int) -> int:
        """module_alloc / module_map: kmalloc first for small modules (policy), else vmalloc."""
        pools = ["vmalloc"]
        if self.policy == "kmalloc-first" and size <= self.kmalloc_max:
            pools.insert(0, "kmalloc")
        for pool in pools:
            arena = self.arenas[pool]
            if not arena.fits(size):
                continue
            used = db.execute("SELECT start, span FROM areas WHERE pool=?", (pool,)).fetchall()
            at = first_fit(arena, used, size)
            if at is not None:
                db.execute(
                    "INSERT INTO areas VALUES (?, ?, ?, ?, ?, ?)",
                    (pool, addr(at), arena.span(size), size, seq, region),
                )
                return at
        raise KernelError(
            "module_alloc",
            errno.ENOMEM,
            f"can't allocate kernel memory for module {name}; needed {size} bytes",
        )

    def _free(self, db: sqlite3.Connection, seq: int) -> None:
        for table in ("areas", "memory", "msyms", "kallsyms"):
            db.execute(f"DELETE FROM {table} WHERE seq=?", (seq,))
        db.execute("DELETE FROM refs WHERE user=? OR used=?", (seq, seq))
        db.execute("DELETE FROM modules WHERE seq=?", (seq,))

    def _find(self, db: sqlite3.Connection, name: str) -> tuple[int, str, int, int, str, int] | None:
        """(seq, design, flags, usecount, state, base) of module ``name``."""
        row = db.execute(
            "SELECT seq, design, flags, usecount, state, base FROM modules WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])

    def _store_memory(self, db: sqlite3.Connection, seq: int, regions: dict[int, bytes]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO memory VALUES (?, ?, ?, ?)",
            ((seq, f"{base:x}", addr(base), zlib.compress(bytes(data), 1)) for base, data in regions.items()),
        )

    def memory(self, name: str) -> dict[int, bytes]:
        """The loaded module's memory: base address -> bytes (what /dev/kmem would show)."""
        with self.state.reading() as db:
            rows = db.execute(
                "SELECT memory.base, memory.data FROM memory JOIN modules USING (seq) WHERE modules.name=?",
                (name,),
            ).fetchall()
        return {base: decode_blob(data, f"memory of {name}", self.state.path) for base, data in rows}

    def read_memory(self, address: int, length: int) -> bytes:
        """Bytes at a kernel address inside a loaded module (EFAULT if unmapped)."""
        with self.state.reading() as db:
            for base, data in db.execute("SELECT base, data FROM memory WHERE base <= ?", (addr(address),)):
                raw = decode_blob(data, f"memory at {base:#x}", self.state.path)
                if address + length <= base + len(raw):
                    return raw[address - base : address - base + length]
        raise KernelError("read", errno.EFAULT, f"address {address:#x} is not in a loaded module")

    # -- today's calls (the Kernel interface) ----------------------------------------------

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        from lkm.compress import limit
        from lkm.safeio import read_bytes

        try:
            data = read_bytes(path, limit=limit())
        except OSError as exc:  # the kernel: EBADF for a bad fd, EINVAL for a non-regular file
            code = (
                errno.EINVAL
                if exc.errno == errno.EINVAL
                else errno.EFBIG
                if exc.errno == errno.EFBIG
                else errno.EBADF
            )
            raise KernelError("finit_module", code, exc.strerror, path=path) from None
        if not data:
            raise KernelError("finit_module", errno.EINVAL, "empty file", path=path)
        self._load_file("finit_module", data, params, flags, path)

    def init_module(self, image: bytes, params: str = "") -> None:
        """Today's init_module(image, len, params) (the 2.4 call is :meth:`init_module_24`)."""
        self._load_file("init_module", image, params, 0, None)

    def _load_file(self, call: str, data: bytes, params: str, flags: int, path: str | None) -> None:
        if self.version.user_space_link:
            raise KernelError(call, errno.ENOSYS, "a 2.4 kernel loads modules with create_module/init_module")
        if flags & ~ALL_FLAGS:
            raise KernelError(call, errno.EINVAL, f"unknown flags {flags:#x}")
        if flags & MODULE_INIT_COMPRESSED_FILE and self.meta.get("compression", "-") == "-":
            raise KernelError(call, errno.EOPNOTSUPP, "kernel has no in-kernel module decompression")
        failed: KernelError | None = None
        try:
            with self._tx(call) as db:
                try:
                    model_load.load_module(self, db, call, data, params, flags, path)
                except model_load.InitFailed as exc:
                    failed = exc.error
        except kmod.KmodDeadlock as exc:
            if self.kmod_running:
                raise  # up to the outermost load, which the hang is really in
            raise KernelError(call, errno.EDEADLK, exc.reason, path=path) from None
        if failed is not None:
            raise failed

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        if self.version.user_space_link:
            self.delete_module_24(name)
            return
        with self._tx("delete_module") as db:
            found = self._find(db, name)
            if found is None:
                raise KernelError("delete_module", errno.ENOENT, f"Module {name} is not currently loaded")
            seq, _design, _flags, usecount, state, _base = found
            info = decode_json(
                db.execute("SELECT info FROM modules WHERE seq=?", (seq,)).fetchone()[0],
                f"info of {name}",
                self.state.path,
            )
            users = [
                u
                for (u,) in db.execute(
                    "SELECT m.name FROM refs r JOIN modules m ON m.seq = r.user WHERE r.used=?", (seq,)
                )
            ]
            if users:
                raise KernelError(
                    "delete_module", errno.EWOULDBLOCK, f"Module {name} is in use by: {' '.join(users)}"
                )
            if state != "Live":
                raise KernelError("delete_module", errno.EBUSY, f"Module {name} is not live ({state})")
            forced = bool(flags & O_TRUNC)
            if info.get("init") and not info.get("exit") and not forced:
                raise KernelError(
                    "delete_module", errno.EBUSY, f"Module {name} has an init but no exit routine"
                )
            if usecount and not forced:
                raise KernelError("delete_module", errno.EWOULDBLOCK, f"Module {name} is in use")
            if info.get("exit"):
                image = LoadedImage(name, self._memory_of(db, seq), {})
                exit_fn = info["exit"]
                if not isinstance(exit_fn, int):
                    raise StateError(
                        f"damaged state: info of {name}: exit is not an address", path=self.state.path
                    )
                self.executor.call(image, exit_fn, ())
            self._free(db, seq)

    def _memory_of(self, db: sqlite3.Connection, seq: int) -> dict[int, bytes]:
        return {
            b: decode_blob(d, f"memory of module {seq}", self.state.path)
            for b, d in db.execute("SELECT base, data FROM memory WHERE seq=?", (seq,))
        }

    def modules(self) -> list[LoadedModule]:
        with self.state.reading() as db:
            rows = db.execute(
                "SELECT seq, name, size, usecount, state, base, taints, flags, design "
                "FROM modules ORDER BY seq DESC"
            ).fetchall()
            users: dict[int, list[str]] = {}
            for used, uname in db.execute(
                "SELECT r.used, m.name FROM refs r JOIN modules m ON m.seq = r.user ORDER BY r.ord DESC"
            ):
                users.setdefault(used, []).append(uname)
        out = []
        for seq, name, size, usecount, state, base, taints, _flags, _design in rows:
            holders = tuple(users.get(seq, []))
            out.append(
                LoadedModule(
                    name, size, usecount + len(holders), holders, state, base, f"({taints})" if taints else ""
                )
            )
        return out

    def module_compression(self) -> str | None:
        c = self.meta.get("compression", "-")
        return None if c == "-" else c

    def sections(self, name: str) -> dict[str, int]:
        return cast(dict[str, int], self._info(name).get("sections", {}))

    def parameters(self, name: str) -> dict[str, str]:
        return cast(dict[str, str], self._info(name).get("params", {}))

    def _info(self, name: str) -> dict[str, object]:
        with self.state.reading() as db:
            row = db.execute("SELECT info FROM modules WHERE name=?", (name,)).fetchone()
        if row is None:
            raise KernelError("open", errno.ENOENT, f"Module {name} is not currently loaded")
        return decode_json(row[0], f"info of {name}", self.state.path)

    def is_builtin(self, name: str) -> bool:
        return False

    def kallsyms(self) -> str:
        from lkm.kernel import procfs

        return procfs.proc_kallsyms(self)

    # -- views -----------------------------------------------------------------------------

    def kernel_symbols(self) -> list[KernelSymbol]:
        """The base kernel's exports (profile order: by name)."""
        with self.state.reading() as db:
            rows = db.execute("SELECT name, address, type, crc, gpl, ns FROM ksyms ORDER BY rowid").fetchall()
        return [KernelSymbol(n, a, t, None, True, bool(g), c, ns) for n, a, t, c, g, ns in rows]

    def module_kallsyms(self) -> str:
        """The modules' /proc/kallsyms lines, newest module first."""
        with self.state.reading() as db:
            rows = db.execute("SELECT k.lines FROM kallsyms k JOIN modules m USING (seq) "
                              "WHERE m.state != 'Unformed' ORDER BY m.seq DESC").fetchall()  # fmt: skip
        return "".join(
            decode_blob(r[0], "kallsyms", self.state.path).decode("utf-8", "surrogateescape") for r in rows
        )

    def module_symbols(self, kind: str = "export") -> list[tuple[str, list[KernelSymbol]]]:
        """Per module, newest first: its exported symbols (/proc/ksyms), in __ksymtab order."""
        with self.state.reading() as db:
            mods = db.execute(
                "SELECT seq, name FROM modules WHERE state != 'Unformed' ORDER BY seq DESC"
            ).fetchall()
            out = []
            for seq, name in mods:
                rows = db.execute(
                    "SELECT name, address, type, gpl, crc, ns FROM msyms WHERE seq=? AND kind=? ORDER BY ord",
                    (seq, kind),
                ).fetchall()
                out.append(
                    (
                        name,
                        [
                            KernelSymbol(n, a, t, name, kind == "export", bool(g), c, ns)
                            for n, a, t, g, c, ns in rows
                        ],
                    )
                )
        return out

    def symbol_table(self) -> SymbolTable:
        """The kernel's exports and every loaded module's, as a :class:`SymbolTable`."""
        table = SymbolTable(self.kernel_symbols())
        for name, syms in reversed(self.module_symbols()):
            table.add_module_exports(name, syms)
        return table

    def areas(self) -> list[Area]:
        with self.state.reading() as db:
            rows = db.execute(
                "SELECT a.pool, a.start, a.span, a.size, m.name, a.region FROM areas a "
                "JOIN modules m USING (seq) ORDER BY a.pool DESC, a.start"
            ).fetchall()
        return [Area(*r) for r in rows]

    def fragmentation(self, pool: str = "vmalloc") -> Fragmentation:
        return fragmentation(self.arenas[pool], [(a.start, a.span) for a in self.areas() if a.pool == pool])

    def check_integrity(self) -> list[str]:
        """Problems in the state (empty when consistent): dangling references, areas without
        modules or overlapping, modules without memory, exports outside their module's memory or
        duplicated, 2.4 symbol tables differing from the struct module in memory."""
        from lkm.kernel import integrity

        with self.state.reading() as db:
            return integrity.check(self, db)


if TYPE_CHECKING:
    from lkm.kernel.interface import Kernel

    _is_a_kernel: type[Kernel] = ModelKernel  # the model implements the tools' Kernel interface


def _modules_root(root: str) -> str:
    """A modules root as recorded: absolute, without a trailing slash ("" for /)."""
    return os.path.abspath(root).rstrip("/") if root else ""


def _parse_bool(value: str) -> bool | None:
    """kernel/params.c param_set_bool (strtobool): y/Y/1/on true, n/N/0/off false."""
    v = value.strip()
    if v[:1] in ("y", "Y", "1") or v.lower() == "on":
        return True
    if v[:1] in ("n", "N", "0") or v.lower() == "off":
        return False
    return None

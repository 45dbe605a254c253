"""The model kernel's facade: a persistent kernel whose module table lives in SQLite
(:mod:`lkm.kernel.model.store`).

It is booted from a profile (:mod:`lkm.kernel.model.profile`) and implements the :class:`Kernel`
interface the module tools use.  Its design is picked once, when it is opened, from the
profile's kernel version (:mod:`lkm.kernels`): today's (``finit_module``/``init_module`` taking
the file: :func:`lkm.kernel.model.load.load_module` checks it, lays it out, resolves and
relocates it through :mod:`lkm.link`), or 2.4's system calls (:class:`lkm.kernel.model.load24.Calls24`:
``create_module``, ``init_module`` with insmod's image, ``query_module``, ``delete_module``,
``get_kernel_syms``).  Every call is one transaction.

Module memory comes from the vmalloc area (or, with the ``kmalloc-first`` policy, the kmalloc
pool for small modules); init routines run through an :class:`~lkm.kernel.executor.Executor`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from lkm.compress import limit
from lkm.errors import LkmError
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
from lkm.kernel.model import integrity, kmod, procfs
from lkm.kernel.model.load import InitFailed, LoadInfo, load_module
from lkm.kernel.model.load24 import Calls24, Query
from lkm.kernel.model.profile import ARCH_RANGES, Profile, load_profile
from lkm.kernel.model.state import State, StateError, default_state_path, new_state_file, replace_state
from lkm.kernel.model.store import Store
from lkm.kernel.model.struct24 import LAYOUTS, Layout24
from lkm.kernel.model.vmalloc import Arena, Fragmentation, ModuleMemory, fragmentation
from lkm.kernels import KernelVersion, by_name
from lkm.safeio import discard, read_bytes
from lkm.symbols.table import KernelSymbol, SymbolTable

__all__ = ["ALL_FLAGS", "POLICIES", "Area", "ModelKernel"]


POLICIES = ("vmalloc", "kmalloc-first")
ALL_FLAGS = MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC | MODULE_INIT_COMPRESSED_FILE


@dataclass(frozen=True, slots=True)
class Area:
    """One allocation: pool, start, span (with guard), requested size, owner, region."""

    pool: str
    start: int
    span: int
    size: int
    module: str
    region: str


class ModelKernel:
    """A model kernel over a state file.  Open an existing one, or :meth:`boot` a new one."""

    def __init__(
        self,
        state: str | os.PathLike[str] | None = None,
        *,
        executor: Executor | None = None,
        readonly: bool = False,
        modprobe: kmod.ModprobeFactory | None = None,
    ) -> None:
        self.state = State(state or default_state_path(), readonly=readonly)
        self.executor: Executor = executor or RecordingExecutor()
        self._modprobe = modprobe
        with self.state.reading() as db:
            self.meta = Store(db).meta()
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
        self.allocator = ModuleMemory(self.arenas, self.policy, self.kmalloc_max)
        # The design, picked once: 2.4's system calls, or today's loader (load_module).
        self.version: KernelVersion = by_name(self.meta["layout"])
        self.calls24: Calls24 | None = (
            Calls24(self.state, self.meta, self.bits, self.executor, self.allocator)
            if self.version.user_space_link
            else None
        )
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
                Store(db).boot(fields, prof.symbols)
            st.seal()
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
            return self._store(db).tainted()

    def add_taint(self, bits: int) -> None:
        """Set taint bits (2.4's insmod writes them to /proc/sys/kernel/tainted)."""
        with self._tx("sysctl") as db:
            self._store(db).add_taint(bits)

    # -- request_module (lkm.kernel.model.kmod) -------------------------------------------------

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
            self._store(db).set_meta(key, value)
        self.meta[key] = value

    @property
    def modprobe_factory(self) -> kmod.ModprobeFactory:
        """The modprobe request_module runs (given when opened; lkm's by default)."""
        if self._modprobe is None:
            self._modprobe = kmod.default_modprobe_factory()
        return self._modprobe

    def request_module(self, name: str, wait: bool = True) -> int:
        """The kernel's request_module(name) / request_module_nowait: runs lkm's modprobe
        against this kernel (:mod:`lkm.kernel.model.kmod`).  0 on success, the modprobe wait status
        (256: exit 1) or -errno; each request is appended to :attr:`requests`."""
        return kmod.request_module(self, name, wait)

    def initstate(self, name: str) -> str | None:
        with self.state.reading() as db:
            row = self._store(db).initstate_row(name)
        if row is None:
            return None
        state, flags, _design = row
        if self.version.user_space_link:
            return "live" if flags & 1 else "coming"
        return {"Live": "live", "Loading": "coming"}.get(state, "going")

    def module(self, name: str) -> LoadedModule | None:
        """Module ``name`` as :meth:`modules` lists it (one row read, not the whole list)."""
        with self.state.reading() as db:
            store = self._store(db)
            row = store.module_row(name)
            holders = () if row is None else tuple(store.refs_names(row[0]))
        if row is None:
            return None
        _seq, name, size, usecount, state, base, taints = row
        return LoadedModule(
            name, size, usecount + len(holders), holders, state, base, f"({taints})" if taints else ""
        )

    # -- plumbing ------------------------------------------------------------------------

    # -- 2.4's system calls (lkm.kernel.model.load24), on a 2.4 design only -----------------

    @property
    def layout24(self) -> Layout24:
        """2.4's structures at this model's word size."""
        return LAYOUTS[self.bits // 8]

    def _24(self, call: str) -> Calls24:
        if self.calls24 is None:
            raise KernelError(
                call, errno.ENOSYS, f"{call} is a 2.4 system call; this kernel is {self.release}"
            )
        return self.calls24

    def create_module(self, name: str, size: int) -> int:
        """sys_create_module: reserve ``size`` bytes for module ``name``; its kernel address."""
        return self._24("create_module").create_module(name, size)

    def init_module_24(self, name: str, image: bytes) -> None:
        """sys_init_module(name, image) of 2.4 (insmod's finished image)."""
        self._24("init_module").init_module_24(name, image)

    def query_module(self, name: str | None, which: int, bufsize: int = 1 << 20) -> Query:
        """sys_query_module (:class:`~lkm.kernel.model.load24.NoSpace` when ``bufsize`` is short)."""
        return self._24("query_module").query_module(name, which, bufsize)

    def delete_module_24(self, name: str | None) -> None:
        """sys_delete_module of 2.4; None reaps unused autoclean modules."""
        self._24("delete_module").delete_module_24(name)

    def get_kernel_syms(self) -> list[tuple[int, str]]:
        """sys_get_kernel_syms."""
        return self._24("get_kernel_syms").get_kernel_syms()

    def _tx(self, call: str) -> AbstractContextManager[sqlite3.Connection]:
        """A system call's transaction; database failures become :class:`StateError`."""
        return self.state.transaction()

    def _store(self, db: sqlite3.Connection) -> Store:
        return Store(db, self.state.path, self.state.write_cache())

    def memory(self, name: str) -> dict[int, bytes]:
        """The loaded module's memory: base address -> bytes (what /dev/kmem would show)."""
        with self.state.reading() as db:
            return self._store(db).memory_of_name(name)

    def read_memory(self, address: int, length: int) -> bytes:
        """Bytes at a kernel address inside a loaded module (EFAULT if unmapped)."""
        with self.state.reading() as db:
            for base, raw in self._store(db).memory_below(address):
                if address + length <= base + len(raw):
                    return raw[address - base : address - base + length]
        raise KernelError("read", errno.EFAULT, f"address {address:#x} is not in a loaded module")

    # -- today's calls (the Kernel interface) ----------------------------------------------

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
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
        printk: list[str] = []
        info: LoadInfo | None = None
        try:
            with self._tx(call) as db:
                info = LoadInfo(
                    call, data, params, flags, path, self._store(db), self.meta, self.page_size,
                    self.allocator, self.executor, printk,
                )  # fmt: skip
                try:
                    load_module(info)
                except InitFailed as exc:
                    failed = exc.error
        except kmod.KmodDeadlock as exc:
            if self.kmod_running:
                raise  # up to the outermost load, which the hang is really in
            raise KernelError(call, errno.EDEADLK, exc.reason, path=path) from None
        except KernelError:
            with contextlib.suppress(StateError):  # what the kernel printed before it refused
                self._printk(printk)
                if info is not None and info.taint_bits:  # add_taint is never undone
                    self.add_taint(info.taint_bits)
            raise
        self._printk(printk)
        if failed is not None:
            raise failed

    def _printk(self, lines: list[str]) -> None:
        if lines:
            with self._tx("printk") as db:
                self._store(db).printk(lines)

    def dmesg(self) -> list[str]:
        """The kernel log: what the model printed (``lkm model dmesg``), oldest first."""
        with self.state.reading() as db:
            return self._store(db).kernel_log()

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        if self.version.user_space_link:
            self.delete_module_24(name)
            return
        with self._tx("delete_module") as db:
            store = self._store(db)
            found = store.find(name)
            if found is None:
                raise KernelError("delete_module", errno.ENOENT, f"Module {name} is not currently loaded")
            seq, usecount, state = found.seq, found.usecount, found.state
            info = store.module_info(seq, name)
            users = store.holders(seq)
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
                needs = getattr(self.executor, "needs_memory", True)  # a recorder does not
                image = LoadedImage(name, store.memory_of(seq) if needs else {}, {})
                exit_fn = info["exit"]
                if not isinstance(exit_fn, int):
                    raise StateError(
                        f"damaged state: info of {name}: exit is not an address", path=self.state.path
                    )
                self.executor.call(image, exit_fn, ())
            store.free(seq)

    def modules(self) -> list[LoadedModule]:
        with self.state.reading() as db:
            store = self._store(db)
            rows = store.module_list()
            users = store.all_holders()
        out = []
        for seq, name, size, usecount, state, base, taints in rows:
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

    def regions(self, name: str) -> dict[str, int]:
        """Where the module's memory regions were put when it loaded (init regions included,
        though freed once init ran): region -> base address."""
        regions = self._info(name).get("regions", {})
        return {r: int(v[0]) for r, v in cast(dict[str, list[int]], regions).items()}

    def _info(self, name: str) -> dict[str, object]:
        with self.state.reading() as db:
            info = self._store(db).info_of_name(name)
        if info is None:
            raise KernelError("open", errno.ENOENT, f"Module {name} is not currently loaded")
        return info

    def is_builtin(self, name: str) -> bool:
        return False

    def kallsyms(self) -> str:
        return procfs.proc_kallsyms(self)

    # -- views -----------------------------------------------------------------------------

    def kernel_symbols(self) -> list[KernelSymbol]:
        """The base kernel's exports (profile order: by name)."""
        with self.state.reading() as db:
            return self._store(db).kernel_symbols()

    def module_kallsyms(self) -> str:
        """The modules' /proc/kallsyms lines, newest module first."""
        with self.state.reading() as db:
            return self._store(db).module_kallsyms()

    def module_symbols(self, kind: str = "export") -> list[tuple[str, list[KernelSymbol]]]:
        """Per module, newest first: its exported symbols (/proc/ksyms), in __ksymtab order."""
        with self.state.reading() as db:
            return self._store(db).module_symbols(kind)

    def symbol_table(self) -> SymbolTable:
        """The kernel's exports and every loaded module's, as a :class:`SymbolTable`."""
        table = SymbolTable(self.kernel_symbols())
        for name, syms in reversed(self.module_symbols()):
            table.add_module_exports(name, syms)
        return table

    def areas(self) -> list[Area]:
        with self.state.reading() as db:
            rows = self._store(db).areas()
        return [Area(*r) for r in rows]

    def fragmentation(self, pool: str = "vmalloc") -> Fragmentation:
        return fragmentation(self.arenas[pool], [(a.start, a.span) for a in self.areas() if a.pool == pool])

    def check_integrity(self) -> list[str]:
        """Problems in the state (empty when consistent): dangling references, areas without
        modules or overlapping, modules without memory, exports outside their module's memory or
        duplicated, 2.4 symbol tables differing from the struct module in memory."""
        with self.state.reading() as db:
            return integrity.check(self, self._store(db))


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

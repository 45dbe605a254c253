"""A session with one emulated kernel: insmod/rmmod, device operations, /proc views.

Commands are also a small script language (``Session.execute``), one per line::

    insmod PATH [NAME=VALUE ...]      rmmod NAME
    dev open|release NAME             dev read NAME [COUNT]
    dev write NAME TEXT               dev ioctl NAME CMD [ARG]
    cat /proc/devices|/proc/filesystems|/proc/misc|/proc/modules
    irq N                             advance MS      (interrupt line N fires; the clock moves on)

Emulation is deterministic, so a session's state is its command history: ``lkm dev`` keeps
that history in a state file and replays it before each new command (see lkm.cli.dev).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import os
import shlex
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from lkm import cache as store
from lkm.emulate.arch import ARCHES
from lkm.emulate.base.bus import attach
from lkm.emulate.base.irq import advance, raise_irq
from lkm.emulate.devfile import OpenFile, dev_ioctl, dev_open, dev_read, dev_release, dev_write
from lkm.emulate.hw import Access, hw_of
from lkm.emulate.kernel import BaseKernel, SymbolSpace, TraceEntry
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import InitResult, arch_for, load, run_exit, run_init
from lkm.emulate.params import ParamError, apply_params
from lkm.emulate.state import KernelState
from lkm.errors import LkmError
from lkm.link.output import write_atomic
from lkm.module.file import ModuleFile
from lkm.record import cached
from lkm.safeio import read_bytes, read_text
from lkm.symbols.table import SymbolTable

__all__ = [
    "DEFAULT",
    "SESSION_SYMBOLS",
    "SESSION_SYMBOLS_REVISION",
    "STATE_VERSION",
    "CommandError",
    "CompactSymbolSpace",
    "Outcome",
    "Session",
    "default_symbols",
    "kernel_symbols",
    "load_state",
    "save_state",
]


class CommandError(LkmError):
    """A script line that cannot be carried out (bad syntax, unknown module or device)."""


@dataclass(slots=True, unsafe_hash=True)
class Outcome:
    """One command's result: the value returned (init's, read's...), text output, new console
    lines and kernel calls made, and the fault if the call did not return."""

    command: str
    value: int
    output: str
    log: list[str]
    trace: list[TraceEntry]
    fault: EmulationFault | None
    accesses: list[Access] = field(default_factory=list)  # device accesses (lkm.emulate.hw)


def default_symbols(arch: str = "x86_64") -> SymbolSpace | None:
    """The kernel symbols a session binds imports against when none are given: the
    /proc/kallsyms-format file (or any file lkm.symbols reads) named by $LKM_EMULATE_KALLSYMS,
    for x86_64; None (synthetic symbols) when it is unset or empty.  Nothing else is read
    implicitly: no cache, no corpus."""
    env = os.environ.get("LKM_EMULATE_KALLSYMS")
    spec = ARCHES.get(arch)
    if not env or spec is None or not spec.amd64_tables:
        return None
    return SymbolSpace(SymbolTable.from_files(env), arch)


DEFAULT = "default"  # Session(symbols=DEFAULT): default_symbols() of the first module's architecture


class Session:
    def __init__(
        self,
        symbols: SymbolSpace | str | None = None,
        *,
        strict: bool = False,
        insn_budget: int | None = None,
        time_budget: float | None = None,
        booted: bool = True,
        memory_budget: int | None = None,
        devices: list[str] | None = None,
    ) -> None:
        self.devices = list(devices or [])  # --device specs (lkm.emulate.hw), attached at boot
        self.symbols = symbols
        self.strict = strict
        self.budgets = (insn_budget, time_budget)
        self.memory_budget = memory_budget
        self.booted = booted
        self.kernel: BaseKernel | None = None
        self.files: dict[str, OpenFile] = {}
        self.base_dir = "."  # relative module paths in scripts
        self.history: list[str] = []  # commands carried out, for a state file
        self.kernel_files: list[str] = []  # the files self.symbols were read from (absolute)

    def kernel_for(self, arch: str) -> BaseKernel:
        if self.kernel is None:
            if self.symbols == DEFAULT:
                self.symbols = default_symbols(arch.split("-")[0])
                env = os.environ.get("LKM_EMULATE_KALLSYMS")
                if self.symbols is not None and env:
                    self.kernel_files = [os.path.abspath(env)]
            s = self.symbols
            syms = s if isinstance(s, SymbolSpace) and s.arch in (None, arch.split("-")[0]) else None
            state = KernelState.booted() if self.booted and ARCHES[arch].amd64_tables else KernelState()
            ib, tb = self.budgets
            mb = self.memory_budget
            self.kernel = BaseKernel(
                arch, syms, state, strict=self.strict, insn_budget=ib, time_budget=tb, memory_budget=mb
            )

            attach(self.kernel, self.devices)
        elif self.kernel.arch.name != arch.split("-")[0]:
            raise CommandError(f"this session's kernel is {self.kernel.arch.name}, not {arch}")
        return self.kernel

    @property
    def k(self) -> BaseKernel:
        if self.kernel is None:
            raise CommandError("no module loaded yet")
        return self.kernel

    # -- module commands -----------------------------------------------------------------
    def insmod(self, path: str, args: str = "") -> tuple[InitResult, Outcome]:
        mod = ModuleFile.open(os.path.join(self.base_dir, path))
        k = self.kernel_for(arch_for(mod))
        mark = self._mark()
        if not mod.version.user_space_link:
            _load_taints(k.state, mod)
        em = load(k, mod)
        try:
            apply_params(k, em, args)
        except ParamError as exc:
            em.unmap()
            k.modules.pop(em.name, None)
            res = InitResult(em.name, -exc.errno, None, "Gone")
            return res, self._outcome(f"insmod {path}", res.value, "", mark, None)
        except EmulationFault as exc:
            res = InitResult(em.name, 0, exc, "Loading")
            return res, self._outcome(f"insmod {path}", 0, "", mark, exc)
        res = run_init(k, em)
        return res, self._outcome(f"insmod {path}", res.value, "", mark, res.fault)

    def rmmod(self, name: str) -> Outcome:
        k = self.k
        em = k.modules.get(name)
        if em is None:
            raise CommandError(f"rmmod: module {name} is not loaded")
        mark = self._mark()
        fault = run_exit(k, em)
        for a in hw_of(k).trace[mark[2] :]:  # the module is gone: its symbols name the sites
            s = em.symbol_at(a.pc)
            if s is not None and not a.site:
                a.site = f"{s[0]}+{s[1]:#x}/{s[2]:#x} [{em.name}]"
        return self._outcome(f"rmmod {name}", 0, "", mark, fault)

    # -- devices ---------------------------------------------------------------------------
    def dev(self, op: str, name: str, *rest: str) -> Outcome:
        k = self.k
        mark = self._mark()
        cmd = " ".join(("dev", op, name, *rest))
        try:
            if op == "open":
                if name in self.files:
                    raise CommandError(f"/dev/{name} is already open in this session")
                f, value = dev_open(k, name)
                if value == 0:
                    self.files[name] = f
                return self._outcome(cmd, value, "", mark, None)
            if name not in self.files:
                raise CommandError(f"/dev/{name} is not open (dev open {name} first)")
            f = self.files[name]
            if op == "read":
                value, data = dev_read(k, f, int(rest[0], 0) if rest else 4096)
                return self._outcome(cmd, value, data.decode("utf-8", "replace"), mark, None)
            if op == "write":
                data = (
                    " ".join(rest)
                    .encode("utf-8", "surrogateescape")
                    .decode("unicode_escape")
                    .encode("latin-1")
                )
                return self._outcome(cmd, dev_write(k, f, data), "", mark, None)
            if op == "ioctl":
                cmdno = int(rest[0], 0) if rest else 0
                arg = int(rest[1], 0) if len(rest) > 1 else 0
                return self._outcome(cmd, dev_ioctl(k, f, cmdno, arg), "", mark, None)
            if op == "release":
                value = dev_release(k, f)
                del self.files[name]
                return self._outcome(cmd, value, "", mark, None)
        except EmulationFault as exc:
            for line in exc.report.splitlines():
                k.state.printk(1, False, line + "\n", None)
            return self._outcome(cmd, 0, "", mark, exc)
        raise CommandError(f"dev: unknown operation {op!r} (open, read, write, ioctl, release)")

    def hardware(self, verb: str, n: int) -> Outcome:
        """``irq N``: interrupt line N fires (value: handlers that handled it); ``advance MS``:
        the virtual clock moves MS milliseconds on (value: timer callbacks run)."""
        k = self.k
        mark = self._mark()
        try:
            value = raise_irq(k, n) if verb == "irq" else advance(k, n)
        except EmulationFault as exc:
            for line in exc.report.splitlines():
                k.state.printk(1, False, line + "\n", None)
            return self._outcome(f"{verb} {n}", 0, "", mark, exc)
        return self._outcome(f"{verb} {n}", value, "", mark, None)

    def proc(self, path: str) -> str:
        st = self.kernel.state if self.kernel is not None else KernelState.booted()
        views = {
            "/proc/devices": st.proc_devices,
            "/proc/filesystems": st.proc_filesystems,
            "/proc/misc": st.proc_misc,
            "/proc/modules": self._proc_modules,
        }
        if path not in views:
            raise CommandError(
                f"cat: {path}: not emulated (/proc/devices, /proc/filesystems, /proc/misc, /proc/modules)"
            )
        return views[path]()

    def _proc_modules(self) -> str:
        if self.kernel is None:
            return ""
        lines = []
        for em in reversed(list(self.kernel.modules.values())):
            size = sum(em.image.layout.alloc_size(r) for r in em.image.bases if not r.startswith("init"))
            refs = self.kernel.state.module_refs.get(em.name, 0)
            lines.append(f"{em.name} {size} {refs} - {em.state} 0x{em.image.bases[min(em.image.bases)]:016x}")
        return "".join(line + "\n" for line in lines)

    # -- the script language -----------------------------------------------------------------
    def execute(self, line: str) -> Outcome | None:
        words = shlex.split(line, comments=True)
        if not words:
            return None
        verb, rest = words[0], words[1:]
        if verb == "insmod" and rest:
            out = self.insmod(rest[0], " ".join(_kernel_quote(a) for a in rest[1:]))[1]
        elif verb == "rmmod" and len(rest) == 1:
            out = self.rmmod(rest[0])
        elif verb == "dev" and len(rest) >= 2:
            out = self.dev(rest[0], rest[1], *rest[2:])
        elif verb in ("irq", "advance") and len(rest) == 1:
            out = self.hardware(verb, int(rest[0], 0))
        else:
            out = None
        if out is not None:
            self.history.append(line)
            return out
        if verb == "cat" and len(rest) == 1:
            return Outcome(line, 0, self.proc(rest[0]), [], [], None)
        raise CommandError(f"cannot run {line.strip()!r}: insmod, rmmod, dev, irq, advance or cat expected")

    def _mark(self) -> tuple[int, int, int]:
        k = self.kernel
        if k is None:
            return (0, 0, 0)
        return len(k.state.log), len(k.trace), len(hw_of(k).trace)

    def _outcome(
        self, cmd: str, value: int, output: str, mark: tuple[int, int, int], fault: EmulationFault | None
    ) -> Outcome:
        k = self.k
        log = [r.text for r in k.state.log[mark[0] :]]
        accesses = hw_of(k).trace[mark[2] :]
        for a in accesses:
            if not a.site:
                a.site = k.symbolize(a.pc)
        return Outcome(cmd, value, output, log, k.trace[mark[1] :], fault, accesses)


def _kernel_quote(arg: str) -> str:
    """One NAME=VALUE for the kernel's next_arg: a value with spaces in double quotes."""
    name, eq, val = arg.partition("=")
    return f'{name}="{val}"' if eq and any(c.isspace() for c in val) else arg


def _load_taints(st: KernelState, mod: ModuleFile) -> None:
    """load_module's taint messages (kernel/module/main.c, 6.1): an out-of-tree module taints
    with O (said while O is not yet set), an unsigned or unverifiable one with E (said once)."""
    if mod.get("intree") is None and "O" not in st.taints:
        st.printk(4, False, f"{mod.name}: loading out-of-tree module taints kernel.\n", None)
    if mod.get("intree") is None:
        st.taints.add("O")
    sig = mod.signature
    if sig is not None and sig.key_id and sig.key_id.hex() in st.trusted_keys:
        return  # verified: signed with the kernel's own key
    if "E" not in st.taints:
        why = "module verification failed: signature and/or required key missing - tainting kernel"
        st.printk(5, False, f"{mod.name}: {why}\n", None)
        st.taints.add("E")


STATE_VERSION = 1


def _symbols_kind(session: Session) -> str:
    if session.symbols is None:
        return "synthetic"
    return "kernel" if session.kernel_files else "default"


def save_state(path: str, session: Session) -> None:
    """The session as its command history (JSON), written atomically."""
    data = {
        "version": STATE_VERSION,
        "symbols": _symbols_kind(session),
        "kernel": session.kernel_files,
        "strict": session.strict,
        "base_dir": os.path.abspath(session.base_dir),
        "history": session.history,
        "devices": session.devices,
    }
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8", "surrogateescape"))


def load_state(path: str) -> Session:
    """Replay a state file's history into a fresh session (the outcomes are discarded)."""
    text = read_text(path, limit=64 << 20)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LkmError(f"cannot read the session state: {str(exc).splitlines()[0]}", path=path) from None
    if (
        not isinstance(data, dict)
        or data.get("version") != STATE_VERSION
        or not isinstance(data.get("history", []), list)
    ):
        raise LkmError("not an lkm emulation state file", path=path)
    kernel = data.get("kernel") or []
    if data.get("symbols") == "kernel" and (
        not isinstance(kernel, list) or not kernel or not all(isinstance(k, str) for k in kernel)
    ):
        raise LkmError("not an lkm emulation state file (bad kernel symbol files)", path=path)
    symbols: SymbolSpace | str | None = None if data.get("symbols") == "synthetic" else DEFAULT
    if data.get("symbols") == "kernel":  # the very files the session was made with
        symbols = kernel_symbols(kernel)
    devices = [str(d) for d in data.get("devices", []) if isinstance(d, str)]
    session = Session(symbols, strict=bool(data.get("strict")), devices=devices)
    if data.get("symbols") == "kernel":
        session.kernel_files = list(kernel)
    session.base_dir = str(data.get("base_dir", "."))
    for line in data.get("history", []):
        session.execute(str(line))
    return session


# -- the kernel symbols of a replayed session, cached ------------------------------------------
#
# A session made with ``-k FILE`` binds its modules against those files on every replay.  Reading
# them is the dearest part of a call (a kernel image's 50 000 symbols become a SymbolTable of
# KernelSymbol records, 0.3 s): what the emulator asks of them is only two things, the
# canonical symbol of a name (SymbolTable.lookup: address and type) and every symbol sorted by
# address (SymbolSpace.entries).  Both are derived once per content of the files and kept in
# lkm.cache as columns that load in C; a replay builds a CompactSymbolSpace from them.

SESSION_SYMBOLS = "session-symbols"  # lkm.cache kind
SESSION_SYMBOLS_REVISION = "1"


class _Found:
    """What SymbolTable.lookup answers that the emulator reads: address and type letter."""

    __slots__ = ("name", "address", "type")

    def __init__(self, name: str, address: int | None, type: str | None) -> None:
        self.name = name
        self.address = address
        self.type = type


class _Lookup:
    """SymbolTable.lookup over columns: a record is made only for the names asked for."""

    __slots__ = ("names", "addresses", "known", "types")

    def __init__(self, names: list[str], addresses: Sequence[int], known: str, types: str) -> None:
        self.names = names  # sorted: looked up by bisection, no dict to build
        self.addresses = addresses
        self.known = known
        self.types = types

    def lookup(self, name: str) -> _Found | None:
        i = bisect.bisect_left(self.names, name)
        if i == len(self.names) or self.names[i] != name:
            return None
        t = self.types[i]
        return _Found(name, self.addresses[i] if self.known[i] == "1" else None, None if t == "?" else t)


class CompactSymbolSpace(SymbolSpace):
    """A SymbolSpace answering as the one built from the SymbolTable of the same files, from
    columns (see :func:`kernel_symbols`)."""

    def __init__(self, table: _Lookup, entry_columns: tuple[Sequence[int], str, str]) -> None:
        self.table = table  # type: ignore[assignment]
        self.arch = None
        self.entry_columns = entry_columns  # addresses, names joined by newlines, type letters

    @cached
    def entries(self) -> list[tuple[int, str, str]]:
        """Made on first use (symbolising an address): a replay that only binds names never does."""
        addrs, names, types = self.entry_columns
        split = names.split("\n") if names else []
        if not len(addrs) == len(split) == len(types):
            raise LkmError("damaged session-symbols cache entry")
        return list(zip(addrs, split, types, strict=True))


def _columns(space: SymbolSpace) -> dict[str, object]:

    table = space.table
    names = sorted({s.name for s in table if s.module is None})
    found = [table.lookup(n) for n in names]
    entries = space.entries

    def packed(values: list[int]) -> str:
        a = array("Q", values)
        if sys.byteorder != "little":  # pragma: no cover
            a.byteswap()
        return base64.b64encode(a.tobytes()).decode("ascii")

    cols = {
        "names": "\n".join(names),
        "addresses": packed([(f.address or 0) if f is not None else 0 for f in found]),
        "known": "".join("1" if f is not None and f.address is not None else "0" for f in found),
        "types": "".join((f.type or "?") if f is not None else "?" for f in found),
        "entry_names": "\n".join(e[1] for e in entries),
        "entry_addresses": packed([e[0] for e in entries]),
        "entry_types": "".join(e[2] for e in entries),
    }
    keys = ("names", "addresses", "known", "types", "entry_names", "entry_addresses", "entry_types")
    return {**cols, "digest": _digest([cols[k] for k in keys])}


def _digest(columns: list[object]) -> str:
    h = hashlib.sha256()
    for c in columns:
        h.update(str(c).encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _from_columns(p: object) -> CompactSymbolSpace | None:

    if not isinstance(p, dict):
        return None
    keys = ("names", "addresses", "known", "types", "entry_names", "entry_addresses", "entry_types")
    cols = [p.get(k) for k in keys]
    if not all(isinstance(c, str) for c in cols):
        return None
    names_s, addrs_s, known, types, enames_s, eaddrs_s, etypes = (str(c) for c in cols)

    def unpacked(text: str) -> array[int] | None:
        a = array("Q")
        try:
            a.frombytes(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            return None
        if sys.byteorder != "little":  # pragma: no cover
            a.byteswap()
        return a

    names = names_s.split("\n") if names_s else []
    addrs, eaddrs = unpacked(addrs_s), unpacked(eaddrs_s)
    if addrs is None or eaddrs is None:
        return None
    if not (len(names) == len(addrs) == len(known) == len(types)) or len(eaddrs) != len(etypes):
        return None
    if p.get("digest") != _digest(cols):
        return None  # torn or edited: the lookups bisect, the names must be as written
    return CompactSymbolSpace(_Lookup(names, addrs, known, types), (eaddrs, enames_s, etypes))


def kernel_symbols(files: list[str]) -> SymbolSpace:
    """The SymbolSpace of a session's kernel files: from lkm.cache when these files' contents
    were read before (keyed by their SHA-256), else read (SymbolTable.from_files) and cached."""

    digest = hashlib.sha256()
    try:
        for f in files:
            digest.update(hashlib.sha256(read_bytes(f, limit=1 << 30)).digest())
    except OSError as exc:
        raise LkmError(
            exc.strerror or "cannot read", path=exc.filename or (files[0] if files else None)
        ) from None
    key = store.content_key(digest.digest(), SESSION_SYMBOLS_REVISION)
    hit = _from_columns(store.get(SESSION_SYMBOLS, key))
    if hit is not None:
        return hit
    space = SymbolSpace(SymbolTable.from_files(*files))
    store.put(SESSION_SYMBOLS, key, _columns(space))
    return space

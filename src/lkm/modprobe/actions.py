"""Loading and removing with modprobe's rules, over any :class:`~lkm.kernel.interface.Kernel`.

``probe`` is libkmod's kmod_module_probe_insert_module: skip what is already in the kernel
(unless told to ignore that), refuse blacklisted alias matches, then walk the probe list
running install commands or inserting files; errors from soft dependencies are ignored.
``remove`` is modprobe's rmmod_do_module: post-softdeps, holders (--remove-holders), the
module (its remove command or delete_module), dependencies left unused, pre-softdeps.
Every line modprobe would print goes through the ``emit(kind, text)`` callback, kind one of
"show" (stdout), "FATAL"/"ERROR" (modprobe's log) or "RAW" (libkmod's own log line).
"""

from __future__ import annotations

import errno
import os

from lkm.errors import LkmError, ModprobeError
from lkm.kernel.interface import O_NONBLOCK, O_TRUNC, Kernel, KernelError, LoadedModule
from lkm.moddir import ModulesDir
from lkm.modprobe.config import DEFAULT_CONFIG_PATHS, load_config
from lkm.modprobe.resolve import Mod, Resolver, Step
from lkm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
__all__ = [
    "LIBKMOD_COMMAND_DO",
    "Flags",
    "LoadedView",
    "Modprobe",
    "insert",
    "insert_error",
    "load_alias",
    "probe",
    "remove",
    "run_command",
]


if TYPE_CHECKING:
    from collections.abc import Callable

    Emit = Callable[[str, str], None]

# Where libkmod's command_do logs from in Debian's kmod 30 build; modprobe shows it verbatim.
LIBKMOD_COMMAND_DO = "../libkmod/libkmod-module.c:1047 command_do()"


class Flags(Record):
    __slots__ = (
        "dry_run",
        "show",
        "ignore_loaded",
        "first_time",
        "blacklist",
        "ignore_commands",
        "remove_holders",
        "force",
    )

    def __init__(
        self,
        dry_run: bool = False,
        show: bool = False,
        ignore_loaded: bool = False,
        first_time: bool = False,
        blacklist: bool = False,
        ignore_commands: bool = False,
        remove_holders: bool = False,
        force: bool = False,
    ) -> None:
        self.dry_run = dry_run
        self.show = show  # --show-depends or -v: print each action
        self.ignore_loaded = ignore_loaded
        self.first_time = first_time
        self.blacklist = blacklist
        self.ignore_commands = ignore_commands
        self.remove_holders = remove_holders
        self.force = force


class LoadedView:
    """What modprobe asks the kernel: loaded or built in, reference counts, holders."""

    def __init__(self, kernel: Kernel | None, res: Resolver) -> None:
        self.kernel = kernel
        self.res = res
        self._seen: dict[str, LoadedModule | None] = {}

    def changed(self) -> None:
        """Forget what was read: a module went in or out."""
        self._seen.clear()

    def _loaded(self, name: str) -> LoadedModule | None:
        # kmod 30 asks /sys/module/NAME (refcnt, holders), never /proc/modules
        if self.kernel is None:
            return None
        if name not in self._seen:
            try:
                self._seen[name] = self.kernel.module(name)
            except LkmError:
                self._seen[name] = None
        return self._seen[name]

    def initstate(self, m: Mod) -> str | None:
        """ "live", "coming", "going", "builtin" or None (not in the kernel), as kmod 30's
        kmod_module_get_initstate: modules.builtin of the modules directory, then
        /sys/module/NAME/initstate (a directory without one: "coming")."""
        if self.res.is_builtin(m):
            return "builtin"
        if self.kernel is None:
            return None
        try:
            return self.kernel.initstate(m.name)
        except LkmError:
            return None

    def in_kernel(self, m: Mod) -> bool:
        """libkmod's module_is_inkernel: live or built in.  A module still coming (its init
        running) is not: modprobe inserts it again, and the kernel waits for the first load."""
        return self.initstate(m) in ("live", "builtin")

    def refcount(self, m: Mod) -> int | None:
        """/sys/module/NAME/refcnt (None or negative when it cannot be read)."""
        got = self._loaded(m.name)
        return got.refcount if got is not None else None

    def holders(self, m: Mod) -> list[str]:
        """/sys/module/NAME/holders, in directory order."""
        got = self._loaded(m.name)
        return list(got.holders or ()) if got is not None else []


def run_command(m: Mod, kind: str, command: str, options: str, emit: Emit, kernel: object = None) -> int:
    """libkmod's command_do after $CMDLINE_OPTS substitution: /bin/sh -c, MODPROBE_MODULE set.
    A kernel that keeps user space to itself (the model kernel: ``user_command``) decides
    instead: it records the command and returns a status without running anything on the host,
    unless its user allowed that."""
    cmd = command.replace("$CMDLINE_OPTS", options)
    sandbox = getattr(kernel, "user_command", None)
    if sandbox is not None:
        status = sandbox(kind, m.name, cmd)
        if status is not None:
            return int(status)
    env = dict(os.environ, MODPROBE_MODULE=m.name)
    import subprocess

    try:
        rc = subprocess.run(["/bin/sh", "-c", cmd], env=env, check=False).returncode
    except OSError as exc:
        emit(
            "RAW",
            f"modprobe: ERROR: {LIBKMOD_COMMAND_DO} Could not run {kind} command '{cmd}' for "
            f"module {m.name}: {os.strerror(exc.errno or 0)}",
        )
        return -errno.EINVAL
    if rc:
        emit(
            "RAW",
            f"modprobe: ERROR: {LIBKMOD_COMMAND_DO} Error running {kind} command '{cmd}' for "
            f"module {m.name}: retcode {rc & 0xFF}",
        )
        return -errno.EINVAL
    return 0


def insert(kernel: Kernel, path: str, options: str, force: bool) -> None:
    """Insert one module file (kmod_module_insert_module), through the live backend's
    libkmod-exact loader when it is there."""
    try:
        from lkm.kernel.load import insert_module  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        kernel.finit_module(path, options, 3 if force else 0)
        return
    insert_module(kernel, path, options, force=force)


def probe(res: Resolver, state: LoadedView, mod: Mod, extra: str, flags: Flags, emit: Emit) -> int:
    """Load ``mod`` with everything it needs; 0, a positive "skipped" code, or -errno."""
    if not flags.ignore_loaded and state.in_kernel(mod):
        return -errno.EEXIST if flags.first_time else 0
    if (mod.alias is not None or flags.blacklist) and res.blacklisted(mod):
        return 1
    if flags.dry_run and flags.ignore_loaded:  # --show-depends: every step shown, none can fail
        if flags.show:
            emit("show", res.show_text(mod, extra, flags.ignore_commands))
        else:
            res.plan_rows(mod, extra, flags.ignore_commands)  # the lookups, for their messages
        return 0
    err = 0
    for step in res.plan(mod, extra, ignore_command=flags.ignore_commands, check_blacklist=False):
        m = step.mod
        if not flags.ignore_loaded and state.in_kernel(m):
            err = -errno.EEXIST
        else:
            if flags.show:
                emit("show", step.show())
            err = 0 if flags.dry_run else _do(step, state, flags, emit)
        if err == -errno.EEXIST and m is mod and flags.first_time:
            break
        if err == -errno.EEXIST or m.required != res.generation:
            err = 0
        elif err < 0:
            break
    return err


def _do(step: Step, state: LoadedView, flags: Flags, emit: Emit) -> int:
    m = step.mod
    if step.kind == "install":
        return run_command(m, "install", step.command or "", step.options, emit, state.kernel)
    if m.path is None:
        return -errno.ENOENT
    if state.kernel is None:
        emit("FATAL", f"no kernel to load {m.path} into")
        return -errno.ENOSYS
    try:
        insert(state.kernel, m.path, step.options, flags.force)
    except KernelError as exc:
        return -exc.errno
    finally:
        state.changed()
    return 0


def _remove_module(state: LoadedView, m: Mod, flags: Flags, emit: Emit) -> int:
    if flags.show:
        emit("show", f"rmmod {m.name}\n")
    if flags.dry_run:
        return 0
    if state.kernel is None:
        emit("FATAL", f"no kernel to remove {m.name} from")
        return -errno.ENOSYS
    try:
        state.kernel.delete_module(m.name, O_NONBLOCK | (O_TRUNC if flags.force else 0))
        state.changed()
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            if flags.first_time:
                emit("FATAL", f"Module {m.name} is not in kernel.")
                return -errno.ENOENT
            return 0
        emit("FATAL", f"could not remove '{m.name}': {exc.strerror}")
        return -exc.errno
    return 0


def _remove_list(state: LoadedView, mods: list[Mod], stop: bool, flags: Flags, emit: Emit) -> int:
    for m in reversed(mods):
        err = _remove_module(state, m, flags, emit)
        if err < 0 and stop:
            return err
    return 0


def remove(res: Resolver, state: LoadedView, mod: Mod, flags: Flags, emit: Emit) -> int:
    pre: list[Mod] = []
    post: list[Mod] = []
    cmd = None
    if not flags.ignore_commands:
        pre, post = res.softdeps(mod)
        cmd = res.remove_command(mod)
    if cmd is None and not flags.ignore_loaded:
        st = state.initstate(mod)
        if st is None:
            if flags.first_time:
                emit("FATAL", f"Module {mod.name} is not in kernel.")
                return -errno.ENOENT
            return 0
        if st == "builtin":
            emit("FATAL", f"Module {mod.name} is builtin.")
            return -errno.ENOENT
    _remove_list(state, post, False, flags, emit)
    if flags.remove_holders:
        err = _remove_list(state, [res.module(h) for h in state.holders(mod)], True, flags, emit)
        if err < 0:
            return err
    if cmd is None and not flags.ignore_loaded:
        usage = state.refcount(mod)
        if usage is not None and usage > 0:
            emit("FATAL", f"Module {mod.name} is in use.")
            return -errno.EBUSY
    if cmd is None:
        err = _remove_module(state, mod, flags, emit)
    else:
        if flags.show:
            emit("show", f"remove {cmd.replace('$CMDLINE_OPTS', '')}\n")
        err = 0 if flags.dry_run else run_command(mod, "remove", cmd, "", emit, state.kernel)
    if err < 0:
        return err
    if cmd is None:
        for d in res.dependencies(mod):
            if state.refcount(d) == 0:
                _remove_module(state, d, flags, emit)
    _remove_list(state, pre, False, flags, emit)
    return 0


def insert_error(errno_: int) -> str:
    """How modprobe words a failed insert ("could not insert 'X': ...")."""
    if errno_ == errno.EEXIST:
        return "Module already in kernel"
    if errno_ == errno.ENOENT:
        return "Unknown symbol in module, or unknown parameter (see dmesg)"
    return os.strerror(errno_)


def load_alias(
    res: Resolver, state: LoadedView, alias: str, extra: str, flags: Flags, emit: Emit, dirname: str
) -> int:
    """``modprobe ALIAS [options]``: load every module the name resolves to; modprobe's exit
    status (1 when nothing matched or an insert failed, with modprobe's FATAL/ERROR lines)."""
    mods = res.lookup(alias)
    if not mods:
        emit("FATAL", f"Module {alias} not found in directory {dirname}")
        return 1
    rc = 0
    for m in mods:
        err = probe(res, state, m, extra, flags, emit)
        if err < 0:
            rc = 1
            emit("ERROR", f"could not insert '{m.name}': {insert_error(-err)}")
    return rc


class Modprobe:
    """modprobe over one modules directory, ``ROOT/lib/modules/RELEASE``, with the
    configuration files ``configs`` (None: modprobe's default search paths; [] none at all),
    acting on ``kernel`` (None: nothing loaded, nothing to load into; see :meth:`use_kernel`).
    The one way the CLI and the model kernel's request_module run modprobe."""

    def __init__(
        self,
        root: str,
        release: str,
        kernel: Kernel | None = None,
        configs: list[str] | None = None,
        *,
        cmdline: str | None = "/proc/cmdline",
    ) -> None:
        self.dirname = f"{root}/lib/modules/{release}"
        self.config = load_config(self.dirname, configs, cmdline=cmdline)
        self.resolver = Resolver(ModulesDir(self.dirname), self.config)
        self.view = LoadedView(kernel, self.resolver)

    @classmethod
    def for_model(cls, root: str, release: str, kernel: Kernel) -> Modprobe:
        """The modprobe a model kernel's request_module runs: its modules root's directory and
        configuration files under that root only -- never the host's /etc (a model with no
        modules root reads no modprobe.d at all), nor a kernel command line."""
        configs = [os.path.join(root, p.lstrip("/")) for p in DEFAULT_CONFIG_PATHS] if root else []
        return cls(root, release, kernel, configs, cmdline=None)

    @property
    def messages(self) -> list[tuple[str, str]]:
        """What reading the configuration had to say: (priority, text)."""
        return list(self.config.messages)

    def use_kernel(self, kernel: Kernel | None) -> None:
        self.view = LoadedView(kernel, self.resolver)

    def lookup(self, alias: str) -> list[Mod]:
        """The modules a name or alias means."""
        return self.resolver.lookup(alias)

    def load(self, alias: str, extra: str, flags: Flags | None, emit: Emit, missing: str = "FATAL") -> None:
        """``modprobe ALIAS [options]``: every module the name resolves to, with what it needs.
        Raises :class:`~lkm.errors.ModprobeError` when nothing matches (ENOENT) or an insert
        failed (the first failure's errno, once every match was tried); modprobe's FATAL/ERROR
        lines are emitted as it goes."""
        mods = self.resolver.lookup(alias)
        if not mods:
            emit(missing, f"Module {alias} not found in directory {self.dirname}")
            raise ModprobeError(f"Module {alias} not found in directory {self.dirname}", errno.ENOENT)
        failed: ModprobeError | None = None
        for m in mods:
            err = probe(self.resolver, self.view, m, extra, flags or Flags(), emit)
            if err < 0:
                emit("ERROR", f"could not insert '{m.name}': {insert_error(-err)}")
                failed = failed or ModprobeError(f"could not insert '{m.name}': {insert_error(-err)}", -err)
        if failed is not None:
            raise failed

    def remove(self, mod: Mod, flags: Flags, emit: Emit) -> None:
        """``modprobe -r``'s removal of one module (:func:`remove`); raises
        :class:`~lkm.errors.ModprobeError` with libkmod's errno when it fails."""
        err = remove(self.resolver, self.view, mod, flags, emit)
        if err < 0:
            raise ModprobeError(f"could not remove '{mod.name}': {os.strerror(-err)}", -err)

"""request_module for the model kernel: the kernel asking user space for a module.

Linux 6.1 (kernel/module/kmod.c ``__request_module``, kernel/umh.c): an empty modprobe_path
gives -ENOENT; a name of MODULE_NAME_LEN bytes or more (64 - sizeof(long), the vsnprintf
into ``char module_name[MODULE_NAME_LEN]``) gives -ENAMETOOLONG; at most
MAX_KMOD_CONCURRENT (50) requests run at once, a further one waits up to
MAX_KMOD_ALL_BUSY_TIMEOUT seconds for a slot and then gives -ETIME; otherwise modprobe runs
as ``modprobe_path -q -- NAME`` with HOME=/, TERM=linux, PATH=/sbin:/usr/sbin:/bin:/usr/bin.
Waiting (UMH_WAIT_PROC) the result is the wait status (exit code << 8: 256 for modprobe's
exit 1); not waiting (UMH_WAIT_EXEC) it is 0 once modprobe started.

Linux 2.4 (kernel/kmod.c ``request_module``): ``modprobe_path -s -k -- NAME``, no length
check, a runaway limit of MAX_KMOD_CONCURRENT (``kmod: runaway modprobe loop assumed and
stopped``, -ENOMEM, printed at most 5 times); modprobe's status is not looked at: 0.

The model runs lkm's modprobe in-process (:class:`lkm.modprobe.Modprobe`, injected: see
:data:`DEFAULT_MODPROBE_FACTORY`) with that argv's meaning (quiet, the name as an operand),
over the model kernel itself and the modules
directory ``ROOT/lib/modules/RELEASE`` of the model's configured modules root, with the
configuration files under that root only -- never the host's /etc (the kernel's own command
line is not read).  The model is a sandbox: modprobe's install/remove commands are recorded
(:attr:`ModelKernel.commands`, the request's output) and not run, unless the user allowed it
(``lkm model set exec=host``).  A request
made from a module's init nests inside the loading call (its savepoint), as the real kernel
blocks the outer insmod until modprobe returns; requests never leave the process, so every
one, waiting or not, has finished when it returns.  A module asking for itself (or a loop of
requests back to a module still coming) never ends in 6.1: modprobe inserts it again (a
coming module is not "in the kernel" to libkmod) and add_unformed_module waits for the first
load, which waits for modprobe.  The model cannot wait forever: it raises
:class:`KmodDeadlock`, and the outermost load fails with EDEADLK, keeping nothing.  The
concurrency limit only ends chains of distinct requests (install commands, or more than 50
different modules each asking for the next).  lkm has no modutils modprobe: a 2.4 model
runs the same kmod-style resolver, whose inserts a 2.4 kernel refuses (its modprobe would use
create_module/init_module), so a 2.4 request loads nothing and, as 2.4 does, returns 0.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from lkm.errors import LkmError, ModprobeError
from lkm.kernel.model.state import StateError
from lkm.kernels import KmodRules

if TYPE_CHECKING:
    from lkm.kernel.model import ModelKernel

__all__ = [
    "DEFAULT_MODPROBE",
    "DEFAULT_MODPROBE_FACTORY",
    "MAX_KMOD_ALL_BUSY_TIMEOUT",
    "MAX_KMOD_CONCURRENT",
    "UMH_ENV",
    "KmodDeadlock",
    "ModprobeFactory",
    "ModprobeLike",
    "ModuleRequest",
    "default_modprobe_factory",
    "name_limit",
    "request_module",
]


MAX_KMOD_CONCURRENT = 50
MAX_KMOD_ALL_BUSY_TIMEOUT = 5  # seconds
DEFAULT_MODPROBE = "/sbin/modprobe"  # CONFIG_MODPROBE_PATH
UMH_ENV = ("HOME=/", "TERM=linux", "PATH=/sbin:/usr/sbin:/bin:/usr/bin")


class KmodDeadlock(LkmError):
    """A request that the real kernel never answers: modprobe's insert of a module that is
    still coming waits for it, and it waits for modprobe (a module requesting itself, or a
    loop of requests).  The whole outer call fails with EDEADLK; nothing of it is kept."""


@dataclass(slots=True, unsafe_hash=True)
class ModuleRequest:
    """One request (the module:module_request trace event, with its outcome): the name, wait,
    modprobe's argv, the result returned to the caller, how deep it nested, what modprobe said."""

    name: str
    wait: bool
    argv: list[str]
    result: int
    depth: int
    output: list[str] = field(default_factory=list, init=False)


def name_limit(rules: KmodRules, bits: int) -> int | None:
    """MODULE_NAME_LEN: 64 - sizeof(unsigned long) (include/linux/moduleparam.h)."""
    return None if rules.name_len is None else rules.name_len - bits // 8


def request_module(kernel: ModelKernel, name: str, wait: bool = True) -> int:
    """The kernel's __request_module(wait, "%s", name) in the model (see the module doc)."""
    rules = kernel.version.kmod
    limit = name_limit(rules, kernel.bits)
    path = kernel.modprobe_path
    if not path and rules.status:  # 6.x refuses; 2.4 goes on to an exec that fails
        return -errno.ENOENT
    if limit is not None and len(name.encode("utf-8", "surrogateescape")) >= limit:
        return -errno.ENAMETOOLONG
    argv = [path, *rules.flags, name]
    depth = kernel.kmod_running
    if depth >= kernel.kmod_concurrent_max:
        # Every running request is this one's caller (the model runs them nested, on one
        # thread), so none can finish while it waits: the wait ends as it would, timed out.
        most = rules.limit_message_max
        if most is None or kernel.kmsg.count(rules.limit_messages[0]) < most:
            for msg in rules.limit_messages:
                kernel.kmsg.append(
                    msg.format(max=kernel.kmod_concurrent_max, name=name, timeout=MAX_KMOD_ALL_BUSY_TIMEOUT)
                )
        req = ModuleRequest(name, wait, argv, -rules.limit_errno, depth)
        kernel.requests.append(req)
        return req.result
    req = ModuleRequest(name, wait, argv, 0, depth)
    kernel.requests.append(req)
    kernel.kmod_running += 1
    try:
        ran = len(kernel.commands)
        code = _modprobe(kernel, name, req.output) if path else 0
        for kind, module, command in kernel.commands[ran:]:
            req.output.append(f"{kind} command for {module} not run (lkm model set exec=host): {command}")
    except (StateError, KmodDeadlock):
        raise  # the state failed, or the kernel would hang: the whole outer call fails
    except LkmError as exc:  # what would make modprobe print FATAL and exit 1
        req.output.append(str(exc))
        code = 1
    finally:
        kernel.kmod_running -= 1
    req.result = (code & 0xFF) << 8 if rules.status and wait else 0
    return req.result


def _modprobe(kernel: ModelKernel, name: str, output: list[str]) -> int:
    """``modprobe -q -- NAME`` in-process against the model: its exit status."""
    mp = kernel.modprobe_factory(kernel.modules_root, kernel.release, kernel)

    def emit(kind: str, text: str) -> None:
        if kind not in ("FATAL", "ERROR"):  # -q: modprobe keeps its own errors to itself
            output.append(text)

    for _prio, msg in mp.messages:
        output.append(msg)
    try:
        mp.load(name, "", None, emit)
    except ModprobeError:  # modprobe exits 1 (its messages kept to itself by -q)
        return 1
    return 0


class ModprobeLike(Protocol):
    """What request_module needs of modprobe (:class:`lkm.modprobe.Modprobe`)."""

    @property
    def messages(self) -> list[tuple[str, str]]: ...

    def load(self, alias: str, extra: str, flags: Any, emit: Callable[[str, str], None]) -> None: ...


#: Makes the modprobe of a model kernel: (modules root, release, kernel) -> modprobe.
ModprobeFactory = Callable[[str, str, "ModelKernel"], ModprobeLike]

#: The modprobe a model runs unless it is given one (``ModelKernel(modprobe=...)``): lkm's,
#: named rather than imported (lkm.modprobe works over any Kernel, so it sits above
#: lkm.kernel; it is loaded by name at a model's first request, as backends are).
DEFAULT_MODPROBE_FACTORY = "lkm.modprobe:Modprobe.for_model"


def default_modprobe_factory() -> ModprobeFactory:
    modname, _, attr = DEFAULT_MODPROBE_FACTORY.partition(":")
    obj: Any = importlib.import_module(modname)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return cast(ModprobeFactory, obj)

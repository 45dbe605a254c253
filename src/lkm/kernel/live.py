"""The running Linux kernel, through its real interfaces.

System calls go through libc's ``syscall(2)`` (glibc has no wrappers for the module calls);
everything else is read from /proc and /sys exactly where kmod reads it, so that the tools
built on this backend print what kmod's do.
"""

from __future__ import annotations

import errno
import os

from lkm.errors import LkmError
from lkm.kernel.interface import O_NONBLOCK, KernelError, LoadedModule
from lkm.modname import path_to_modname

__all__ = ["SYSCALLS", "LiveKernel", "parse_proc_modules"]

# Machine (uname -m) -> syscall numbers (init_module, delete_module, finit_module).
SYSCALLS: dict[str, tuple[int, int, int]] = {
    "x86_64": (175, 176, 313),
    "aarch64": (105, 106, 273),
    "i386": (128, 129, 350),
    "i686": (128, 129, 350),
}

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import ctypes

# ctypes is loaded by the first system call, not by tools that only read /proc and /sys.
_libc: ctypes.CDLL | None = None


def _syscall(number: int, *args: object) -> int:
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    ret: int = _libc.syscall(ctypes.c_long(number), *args)
    return ctypes.get_errno() if ret != 0 else 0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


def parse_proc_modules(text: str) -> list[tuple[str, int, int, tuple[str, ...], str, int, str]]:
    """Rows of /proc/modules: (name, size, refcount, users, state, address, taints)."""
    rows = []
    for line in text.splitlines():
        f = line.split(" ")
        if len(f) < 6:
            continue
        users = tuple(u for u in f[3].split(",") if u and u != "-")
        taints = f[6] if len(f) > 6 else ""
        try:
            size, refs, address = int(f[1]), int(f[2]), int(f[5], 16)
        except ValueError:
            continue  # not a /proc/modules line (a damaged copy): skipped, as the kernel never writes one
        rows.append((f[0], size, refs, users, f[4], address, taints))
    return rows


class LiveKernel:
    """:class:`~lkm.kernel.interface.Kernel` over the kernel this process runs on."""

    def __init__(self, proc: str = "/proc", sys: str = "/sys", modules_dir: str | None = None) -> None:
        u = os.uname()
        self.release = u.release
        self.machine = u.machine
        self.proc = proc
        self.sys = sys
        self.modules_dir = modules_dir or f"/lib/modules/{self.release}"
        nums = SYSCALLS.get(self.machine)
        if nums is None:
            raise KernelError("init_module", errno.ENOSYS, f"no module system calls known for {self.machine}")
        self._init, self._delete, self._finit = nums

    # -- system calls -------------------------------------------------------------------------
    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        import ctypes

        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise KernelError("finit_module", exc.errno or errno.EIO, path=path) from None
        try:
            args = (
                ctypes.c_int(fd),
                ctypes.c_char_p(params.encode("utf-8", "surrogateescape")),
                ctypes.c_int(flags),
            )
            err = _syscall(self._finit, *args)
        finally:
            os.close(fd)
        if err:
            raise KernelError("finit_module", err, path=path)

    def init_module(self, image: bytes, params: str = "") -> None:
        import ctypes

        buf = ctypes.create_string_buffer(image, len(image))
        err = _syscall(
            self._init,
            buf,
            ctypes.c_ulong(len(image)),
            ctypes.c_char_p(params.encode("utf-8", "surrogateescape")),
        )
        if err:
            raise KernelError("init_module", err)

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        import ctypes

        err = _syscall(
            self._delete, ctypes.c_char_p(name.encode("utf-8", "surrogateescape")), ctypes.c_uint(flags)
        )
        if err:
            raise KernelError("delete_module", err)

    # -- /proc and /sys -----------------------------------------------------------------------
    def _module_dir(self, name: str) -> str:
        return f"{self.sys}/module/{name}"

    def modules(self) -> list[LoadedModule]:
        text = _read(f"{self.proc}/modules")
        if text is None:
            raise KernelError("modules", errno.ENOENT, f"cannot read {self.proc}/modules")
        return [self._sysfs_view(*row) for row in parse_proc_modules(text)]

    def _sysfs_view(
        self, name: str, size: int, _refs: int, _users: tuple[str, ...], state: str, address: int, taints: str
    ) -> LoadedModule:
        # lsmod's sources: coresize and refcnt from sysfs (the /proc/modules size when coresize
        # is missing, -errno for a missing refcnt), holders in the directory's readdir order.
        d = self._module_dir(name)
        core = _read(f"{d}/coresize")
        ref = _read(f"{d}/refcnt")
        holders: tuple[str, ...] | None
        try:
            holders = tuple(h for h in os.listdir(f"{d}/holders") if not h.startswith("."))
        except OSError:
            holders = None  # kmod: no holders directory, no holders listed
        return LoadedModule(
            name,
            int(core) if core is not None else size,
            int(ref) if ref is not None else -errno.ENOENT,
            holders,
            state,
            address,
            taints,
        )

    def module(self, name: str) -> LoadedModule | None:
        state = self.initstate(name)
        if state is None or state == "builtin":
            return None
        return self._sysfs_view(name, 0, 0, (), state.capitalize(), 0, "")

    def module_compression(self) -> str | None:
        text = _read(f"{self.sys}/module/compression")
        return text.strip() or None if text is not None else None

    def sections(self, name: str) -> dict[str, int]:
        d = f"{self._module_dir(name)}/sections"
        try:
            names = os.listdir(d)
        except OSError:
            raise KernelError("sections", errno.ENOENT, f"Module {name} is not currently loaded") from None
        out: dict[str, int] = {}
        for sec in names:
            text = _read(f"{d}/{sec}")
            if text is not None and text.strip():
                out[sec] = int(text.strip(), 16)
        return out

    def parameters(self, name: str) -> dict[str, str]:
        d = f"{self._module_dir(name)}/parameters"
        try:
            names = sorted(os.listdir(d))
        except OSError:
            return {}
        out: dict[str, str] = {}
        for p in names:
            text = _read(f"{d}/{p}")
            if text is not None:
                out[p] = text[:-1] if text.endswith("\n") else text
        return out

    def initstate(self, name: str) -> str | None:
        """As libkmod's kmod_module_get_initstate: "builtin" when the module directory's
        modules.builtin lists NAME; else sysfs initstate; a sysfs directory without one is
        taken for a module still coming; None when there is no trace of NAME."""
        if self.is_builtin(name):
            return "builtin"
        text = _read(f"{self._module_dir(name)}/initstate")
        if text is not None:
            return text.strip()
        return "coming" if os.path.isdir(self._module_dir(name)) else None

    def is_builtin(self, name: str) -> bool:
        """Listed in /lib/modules/RELEASE/modules.builtin.bin (or modules.builtin)."""
        from lkm.index import IndexFile

        d = f"{self.modules_dir}"
        try:
            return IndexFile(f"{d}/modules.builtin.bin").search(name) is not None
        except (OSError, LkmError):
            pass
        text = _read(f"{d}/modules.builtin")
        return text is not None and any(path_to_modname(line) == name for line in text.splitlines())

    def kallsyms(self) -> str:
        text = _read(f"{self.proc}/kallsyms")
        if text is None:
            raise KernelError("kallsyms", errno.ENOENT, f"cannot read {self.proc}/kallsyms")
        return text

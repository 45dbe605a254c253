"""A captured kernel: what ``lkm verify --snapshot DIR`` checks when lkm cannot run on the
machine itself (another architecture, a crashed or suspicious machine).

DIR holds what the machine's kernel printed and pieces of its memory:

    release, machine            uname -r, uname -m (one line each)
    proc-modules.txt            /proc/modules
    proc-kallsyms.txt           /proc/kallsyms (read with kptr_restrict=0)
    sections.txt                "MODULE SECTION ADDRESS" per line, from /sys/module/*/sections
    config                      the kernel's .config (optional; layout knobs)
    System.map                  more kernel symbols at their run-time addresses (optional): the
                                data exports a kernel without CONFIG_KALLSYMS_ALL does not list
    memory/ADDR-SIZE.bin        SIZE bytes of kernel virtual memory from ADDR (hex, no 0x),
                                e.g. from QEMU's monitor (QMP ``memsave``) or a crash dump

:class:`SnapshotKernel` is the read-only :class:`~lkm.kernel.interface.Kernel` over it and
:class:`SnapshotMemory` the memory reader that stands in for /proc/kcore.
"""

from __future__ import annotations

import errno
import os

from lkm.errors import LkmError
from lkm.kernel.interface import O_NONBLOCK, KernelError, LoadedModule
from lkm.kernel.live import parse_proc_modules
from lkm.safeio import open_regular, os_error, read_text

__all__ = ["SnapshotKernel", "SnapshotMemory"]


def _read(path: str) -> str:
    return read_text(path)


def _hex(text: str, what: str, path: str) -> int:
    """A hexadecimal field of a snapshot file (with or without 0x), or a one-line error."""
    try:
        value = int(text, 16)
    except ValueError:
        raise LkmError(f"bad {what} {text!r} (not hexadecimal)", path=path) from None
    if not 0 <= value < 1 << 64:
        raise LkmError(f"bad {what} {text!r} (not a 64-bit value)", path=path)
    return value


class SnapshotKernel:
    """The kernel a snapshot directory describes; loading and unloading are refused (EROFS)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.release = _read(os.path.join(path, "release")).strip()
        self.machine = _read(os.path.join(path, "machine")).strip()
        self._sections: dict[str, dict[str, int]] = {}
        sections = os.path.join(path, "sections.txt")
        for line in _read(sections).splitlines():
            f = line.split()
            if len(f) == 3:
                self._sections.setdefault(f[0], {})[f[1]] = _hex(f[2], "section address", sections)

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        raise KernelError("finit_module", errno.EROFS, "a snapshot cannot load modules")

    def init_module(self, image: bytes, params: str = "") -> None:
        raise KernelError("init_module", errno.EROFS, "a snapshot cannot load modules")

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        raise KernelError("delete_module", errno.EROFS, "a snapshot cannot unload modules")

    def modules(self) -> list[LoadedModule]:
        rows = parse_proc_modules(_read(os.path.join(self.path, "proc-modules.txt")))
        return [
            LoadedModule(n, size, refs, users, state, addr, taints)
            for n, size, refs, users, state, addr, taints in rows
        ]

    def module(self, name: str) -> LoadedModule | None:
        return next((m for m in self.modules() if m.name == name), None)

    def module_compression(self) -> str | None:
        return None

    def sections(self, name: str) -> dict[str, int]:
        if name not in self._sections:
            raise KernelError("sections", errno.ENOENT, f"Module {name} is not in the snapshot")
        return dict(self._sections[name])

    def parameters(self, name: str) -> dict[str, str]:
        return {}

    def kallsyms(self) -> str:
        return _read(os.path.join(self.path, "proc-kallsyms.txt"))

    def initstate(self, name: str) -> str | None:
        return "live" if self.module(name) is not None else None

    def is_builtin(self, name: str) -> bool:
        return False


class SnapshotMemory:
    """Reads kernel virtual memory from the snapshot's ``memory/ADDR-SIZE.bin`` pieces."""

    def __init__(self, path: str) -> None:
        self.path = os.path.join(path, "memory")
        self.pieces: list[tuple[int, int, str]] = []
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=self.path) from None
        for n in names:
            stem, dot, ext = n.partition(".")
            addr, dash, size = stem.partition("-")
            if dot and dash and ext == "bin":
                where = os.path.join(self.path, n)
                self.pieces.append((_hex(addr, "address", where), _hex(size, "size", where), where))
        self.pieces.sort()

    def read(self, address: int, size: int) -> bytes:
        for start, length, file in self.pieces:
            if start <= address and address + size <= start + length:
                fd, _st = open_regular(file)
                try:
                    data = os.pread(fd, size, address - start)
                except OSError as exc:
                    raise os_error(exc, file) from None
                finally:
                    os.close(fd)
                if len(data) == size:
                    return data
        raise LkmError(f"address {address:#x}+{size:#x} not in the snapshot's memory", path=self.path)

    def close(self) -> None:
        pass

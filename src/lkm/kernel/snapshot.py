"""A snapshot of a kernel's modules: what ``lkm verify --snapshot DIR`` checks instead of a
running kernel.

A snapshot directory is taken from a QEMU guest (scripts/guest_snapshot.py), or by a user from
a crashed or suspicious machine (copy the /proc and /sys files, dump module memory from a
vmcore or a debugger).  Its format (``"format": 1``)::

    DIR/snapshot.json   {"format": 1, "release": "6.1.0-56-arm64", "machine": "aarch64",
                         "sections": {"fat": {".text": "0xffff800001230000", ...}, ...},
                         "memory": [{"address": "0xffff80000122f000", "size": 40960,
                                     "file": "memory/fat.bin", "module": "fat"}, ...]}
    DIR/kallsyms        /proc/kallsyms as read (kptr_restrict=0, as root)
    DIR/modules         /proc/modules as read
    DIR/config          the kernel's .config (optional; layout knobs such as STRICT_MODULE_RWX)
    DIR/memory/*.bin    raw bytes of the kernel's memory at ``address`` (a module's core
                        region from /proc/modules, or per section; any covering ranges do)

Addresses are strings (hex) so 64-bit values survive every JSON reader.  :class:`Snapshot`
implements the read side of :class:`~lkm.kernel.interface.Kernel` (a snapshot loads nothing:
the load calls fail with EROFS) and ``read(address, size)``, the memory source verify reads
in place of /proc/kcore.
"""

from __future__ import annotations

import bisect
import errno
import json
import os
from pathlib import Path

from lkm.errors import LkmError
from lkm.kernel.interface import KernelError, LoadedModule, O_NONBLOCK, not_loaded
from lkm.kernel.live import parse_proc_modules
from lkm.record import Record

SNAPSHOT_FORMAT = 1
INDEX = "snapshot.json"


class SnapshotError(LkmError):
    """A snapshot directory that is missing a part or is malformed."""


class MemoryRange(Record):
    __slots__ = ("address", "size", "file", "module")

    def __init__(self, address: int, size: int, file: str, module: str = "") -> None:
        self.address = address
        self.size = size
        self.file = file  # relative to the snapshot directory
        self.module = module


class Snapshot:
    """An open snapshot directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        index = self.path / INDEX
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            if data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotError(f"unknown snapshot format {data.get('format')!r}", path=str(index))
            self.release: str = str(data["release"])
            self.machine: str = str(data["machine"])
            self._sections = {
                m: {s: int(a, 16) for s, a in secs.items()} for m, secs in data["sections"].items()
            }
            ranges = [
                MemoryRange(int(r["address"], 16), int(r["size"]), str(r["file"]), str(r.get("module", "")))
                for r in data["memory"]
            ]
        except OSError as exc:
            raise SnapshotError(exc.strerror or "cannot read", path=str(index)) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"malformed snapshot index ({exc})", path=str(index)) from None
        self.ranges = sorted(ranges, key=lambda r: r.address)
        self._starts = [r.address for r in self.ranges]
        self._data: dict[str, bytes] = {}

    def _text(self, name: str) -> str:
        try:
            return (self.path / name).read_text(encoding="latin-1")
        except OSError as exc:
            raise SnapshotError(exc.strerror or "cannot read", path=str(self.path / name)) from None

    def config_text(self) -> str | None:
        p = self.path / "config"
        return p.read_text(encoding="utf-8", errors="replace") if p.is_file() else None

    # -- memory ------------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        """*size* bytes at *address*, from the one range that holds them all."""
        i = bisect.bisect_right(self._starts, address) - 1
        for r in self.ranges[max(0, i - 4) : i + 1][::-1]:
            if r.address <= address and address + size <= r.address + r.size:
                data = self._data.get(r.file)
                if data is None:
                    try:
                        data = self._data[r.file] = (self.path / r.file).read_bytes()
                    except OSError as exc:
                        raise SnapshotError(exc.strerror or "cannot read", path=str(self.path / r.file)) from None
                    if len(data) != r.size:
                        raise SnapshotError(f"{len(data)} bytes, index says {r.size}", path=str(self.path / r.file))
                return data[address - r.address : address - r.address + size]
        raise SnapshotError(f"address {address:#x}+{size:#x} not in the snapshot's memory", path=str(self.path))

    def close(self) -> None:
        self._data.clear()

    # -- the Kernel protocol's read side -----------------------------------------------------

    def modules(self) -> list[LoadedModule]:
        return [
            LoadedModule(name, size, refs, users, state, address, taints)
            for name, size, refs, users, state, address, taints in parse_proc_modules(self._text("modules"))
        ]

    def module(self, name: str) -> LoadedModule | None:
        return next((m for m in self.modules() if m.name == name), None)

    def sections(self, name: str) -> dict[str, int]:
        secs = self._sections.get(name)
        if secs is None:
            raise not_loaded("sections", name)
        return dict(secs)

    def kallsyms(self) -> str:
        return self._text("kallsyms")

    def kallsyms_path(self) -> str:
        return str(self.path / "kallsyms")

    def parameters(self, name: str) -> dict[str, str]:
        return {}

    def module_compression(self) -> str | None:
        return None

    def initstate(self, name: str) -> str | None:
        return "live" if name in self._sections else None

    def is_builtin(self, name: str) -> bool:
        return False

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        raise KernelError("finit_module", errno.EROFS, "a snapshot loads no modules")

    def init_module(self, image: bytes, params: str = "") -> None:
        raise KernelError("init_module", errno.EROFS, "a snapshot loads no modules")

    def delete_module(self, name: str, flags: int = O_NONBLOCK) -> None:
        raise KernelError("delete_module", errno.EROFS, "a snapshot unloads no modules")


def write_snapshot(
    dest: str | os.PathLike[str],
    *,
    release: str,
    machine: str,
    kallsyms: str,
    modules: str,
    sections: dict[str, dict[str, int]],
    memory: list[tuple[int, bytes, str]],
    config: str | None = None,
) -> Path:
    """Write a snapshot directory (*memory*: (address, bytes, module) ranges) to *dest*: built
    next to it and renamed into place, so a failed capture leaves no partial snapshot."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        import shutil

        shutil.rmtree(part)
    (part / "memory").mkdir(parents=True)
    (part / "kallsyms").write_text(kallsyms, encoding="latin-1")
    (part / "modules").write_text(modules, encoding="latin-1")
    if config is not None:
        (part / "config").write_text(config, encoding="utf-8")
    ranges = []
    for address, data, module in memory:
        name = f"memory/{module or 'range'}@{address:x}.bin"
        (part / name).write_bytes(data)
        ranges.append({"address": f"{address:#x}", "size": len(data), "file": name, "module": module})
    index = {
        "format": SNAPSHOT_FORMAT,
        "release": release,
        "machine": machine,
        "sections": {m: {s: f"{a:#x}" for s, a in sorted(secs.items())} for m, secs in sorted(sections.items())},
        "memory": ranges,
    }
    (part / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    part.replace(dest)
    return dest

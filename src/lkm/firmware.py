"""Which firmware files a set of modules asks for, and where the kernel would find them.

A module names its firmware with ``MODULE_FIRMWARE(x)`` (``firmware=x`` in .modinfo); modprobe
loads its dependencies and soft dependencies with it, so an initramfs needs all of theirs
(:func:`modules_firmware`, over :class:`lkm.modprobe.resolve.Resolver`).  :func:`find_firmware`
is drivers/base/firmware_loader/main.c's search (trust spec §5): ``firmware_class.path``, then
/lib/firmware/updates/RELEASE, /lib/firmware/updates, /lib/firmware/RELEASE, /lib/firmware,
first the plain name everywhere, then ``.zst``, then ``.xz`` (each when the kernel has it).
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass

from lkm.errors import LkmError
from lkm.moddir import ModulesDir
from lkm.modprobe.config import load_config
from lkm.modprobe.resolve import Resolver
from lkm.module.file import ModuleFile

__all__ = ["FirmwareFile", "find_firmware", "firmware_report", "modules_firmware", "search_dirs"]


@dataclass(frozen=True, slots=True)
class FirmwareFile:
    """One firmware name: the modules asking for it, where it was found (None: missing), and
    ``errno`` when the kernel refuses the name itself (EINVAL: empty or a ``..`` component)."""

    name: str
    modules: list[str]
    found: str | None
    errno: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "modules": self.modules, "found": self.found,
                "error": errno.errorcode.get(self.errno) if self.errno else None}  # fmt: skip


def search_dirs(release: str, fw_path: str = "", root: str = "/") -> list[str]:
    """fw_path[] in the kernel's order (an empty firmware_class.path is skipped)."""
    dirs = [fw_path] if fw_path else []
    dirs += [
        f"/lib/firmware/updates/{release}",
        "/lib/firmware/updates",
        f"/lib/firmware/{release}",
        "/lib/firmware",
    ]
    return [os.path.join(root, d.lstrip("/")) if root not in ("", "/") else d for d in dirs]


def find_firmware(
    name: str, release: str, *, root: str = "/", fw_path: str = "", zstd: bool = True, xz: bool = True
) -> tuple[str | None, int]:
    """(path found or None, errno) for ``request_firmware(name)`` (``fw_path`` taken relative to
    ``root`` like the others; the kernel reads it in init's mount namespace)."""
    if not name:
        return None, errno.EINVAL
    if ".." in name.split("/"):
        return None, errno.EINVAL
    dirs = search_dirs(release, fw_path, root)
    suffixes = [""] + ([".zst"] if zstd else []) + ([".xz"] if xz else [])
    for suffix in suffixes:
        for d in dirs:
            p = os.path.join(d, name + suffix)
            if os.path.isfile(p):
                return p, 0
    return None, errno.ENOENT


def _firmware_names(path: str) -> list[str]:
    with ModuleFile.open(path) as m:
        return m.get_all("firmware")


def modules_firmware(
    wanted: Sequence[str], moddir: str, *, config_paths: list[str] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """({firmware name: [modules asking]}, [names that matched no module]) for module names,
    aliases or module files, each with the modules modprobe would load with it."""
    res = Resolver(ModulesDir(moddir), load_config(moddir, config_paths, cmdline=None))
    paths: list[str] = []
    unknown: list[str] = []
    for w in wanted:
        if os.path.isfile(w):
            paths.append(w)
            with ModuleFile.open(w) as m:
                extra = [*m.depends, *_softdep_names(m.get_all("softdep"))]
            for dep in extra:
                for mod in res.lookup(dep):
                    paths.extend(x.path for x in res.probe_list(mod) if x.path)
            continue
        mods = res.lookup(w)
        if not mods:
            unknown.append(w)
        for mod in mods:
            paths.extend(x.path for x in res.probe_list(mod) if x.path)
    out: dict[str, list[str]] = {}
    for p in dict.fromkeys(paths):
        name = os.path.basename(p).split(".ko")[0]
        for fw in _firmware_names(p):
            out.setdefault(fw, [])
            if name not in out[fw]:
                out[fw].append(name)
    return out, unknown


def _softdep_names(values: list[str]) -> list[str]:
    names = []
    for v in values:
        names += [w for w in v.split() if w not in ("pre:", "post:")]
    return names


def firmware_report(
    wanted: Sequence[str], moddir: str, release: str, *, root: str = "/", fw_path: str = "",
    zstd: bool = True, xz: bool = True,
) -> tuple[list[FirmwareFile], list[str]]:  # fmt: skip
    """Every firmware file the modules ask for, found or missing under ``root``."""
    if not os.path.isdir(moddir):
        raise LkmError("no such modules directory", path=moddir)
    names, unknown = modules_firmware(wanted, moddir)
    files = []
    for fw, mods in sorted(names.items()):
        if "*" in fw or "?" in fw:  # a few drivers name a pattern: initramfs builders glob it
            hits = sorted(
                {p for d in search_dirs(release, fw_path, root) for p in glob.glob(os.path.join(d, fw))}
            )
            files.append(FirmwareFile(fw, mods, hits[0] if hits else None))
            continue
        found, err = find_firmware(fw, release, root=root, fw_path=fw_path, zstd=zstd, xz=xz)
        files.append(FirmwareFile(fw, mods, found, err if err != errno.ENOENT else 0))
    return files, unknown

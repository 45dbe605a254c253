"""Helpers for depmod/modprobe tests: scratch module trees and the kmod oracle."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import require

RELEASE = "6.1.0-syn"


def kmod_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    require(path, f"Debian's kmod ({name}) is not installed: apt-get install kmod")
    assert path is not None
    return path


def make_tree(root: Path, modules: dict[str, bytes], release: str = RELEASE, **files: bytes) -> Path:
    """root/lib/modules/RELEASE with ``modules`` (relative path -> bytes) and extra files
    (modules_order=..., modules_builtin=...; underscores become dots)."""
    d = root / "lib" / "modules" / release
    for rel, data in modules.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name.replace("_", ".")).write_bytes(data)
    return d


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def outputs(d: Path) -> dict[str, bytes]:
    """depmod's files in ``d`` (not lkm's own modules.lkm-cache, which kmod does not write)."""
    return {
        p: (d / p).read_bytes()
        for p in sorted(os.listdir(d))
        if p.startswith("modules.") and p != "modules.lkm-cache"
    }

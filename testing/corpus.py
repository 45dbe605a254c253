"""Access to the corpus of real Debian kernel modules.

The corpus is fetched by ``scripts/fetch_corpus.py``: it downloads Debian
``linux-image-*-unsigned`` packages (and matching ``linux-headers``/``linux-kbuild``
packages) and extracts each into its own directory under :func:`corpus_dir`, then
writes ``manifest.json`` there.  This module only reads that manifest; it never
downloads anything and has no dependencies outside the standard library.

Manifest layout (``"format": 1``)::

    {
      "format": 1,
      "trees":   [{"name": "amd64-6.1", "arch": "amd64", "release": "6.1.0-56-amd64",
                   "package": "linux-image-6.1.0-56-amd64-unsigned",
                   "version": "6.1.192-2", "root": "amd64-6.1",
                   "modules_dir": "amd64-6.1/lib/modules/6.1.0-56-amd64",
                   "vmlinuz": "amd64-6.1/boot/vmlinuz-6.1.0-56-amd64",
                   "config": "amd64-6.1/boot/config-6.1.0-56-amd64", ...}],
      "headers": [{"name": "headers-6.1", "release": "6.1.0-56-amd64",
                   "version": "6.1.192-2", "root": "headers-6.1",
                   "kbuild_dir": "headers-6.1/usr/src/linux-headers-6.1.0-56-amd64",
                   "module_symvers": ".../Module.symvers", ...}]
    }

Relative paths are relative to the directory holding the manifest, so the corpus
can be moved as a whole.  Unknown keys are ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MODULE_SUFFIXES",
    "CorpusError",
    "CorpusTree",
    "HeadersTree",
    "corpus_dir",
    "find_headers",
    "find_tree",
    "load_headers",
    "load_manifest",
    "load_trees",
    "manifest_path",
    "module_files",
]

_T = TypeVar("_T", "CorpusTree", "HeadersTree")

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

#: File name endings of (possibly compressed) kernel modules.
MODULE_SUFFIXES: tuple[str, ...] = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")

#: Sub-directories of ``lib/modules/<release>`` that hold modules.
_MODULE_SUBDIRS: tuple[str, ...] = ("kernel", "updates", "extra")


class CorpusError(ValueError):
    """The manifest exists but is malformed or does not contain what was asked."""


@dataclass(frozen=True)
class CorpusTree:
    """One extracted ``linux-image`` package."""

    name: str
    """Corpus name, e.g. ``"amd64-6.1"``."""
    arch: str
    """Debian architecture: ``"amd64"``, ``"arm64"`` or ``"i386"``."""
    release: str
    """Kernel release (``uname -r``), e.g. ``"6.1.0-56-amd64"``."""
    package: str
    """Debian binary package name."""
    version: str
    """Debian package version."""
    root: Path
    """Directory the package was extracted into."""
    modules_dir: Path
    """``root/lib/modules/<release>``."""
    vmlinuz: Path | None
    """Kernel image from the same package, if it has one."""
    config: Path | None
    """Kernel ``.config`` from the same package, if it has one."""
    system_map: Path | None = None
    """``System.map`` from the same package, if it has one."""


@dataclass(frozen=True)
class HeadersTree:
    """Extracted ``linux-headers-<abi>-<flavour>`` + ``-common`` + ``linux-kbuild``."""

    name: str
    """Corpus name, e.g. ``"headers-6.1"``."""
    release: str
    """Kernel release the headers belong to, e.g. ``"6.1.0-56-amd64"``."""
    root: Path
    """Directory all the packages were extracted into."""
    kbuild_dir: Path
    """``root/usr/src/linux-headers-<release>`` (the ``M=``-build directory)."""
    module_symvers: Path
    """``kbuild_dir/Module.symvers``."""
    version: str = ""
    """Debian version of the headers package."""
    packages: tuple[str, ...] = ()
    """``package=version`` of every package extracted into :attr:`root`."""
    common_dir: Path | None = None
    """``root/usr/src/linux-headers-<abi>-common`` if present."""


def corpus_dir() -> Path:
    """Default corpus location.

    ``$LKM_CORPUS`` if set, else ``$XDG_CACHE_HOME/lkm/corpus``, else
    ``~/.cache/lkm/corpus``.
    """
    env = os.environ.get("LKM_CORPUS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "lkm" / "corpus"
    return Path.home() / ".cache" / "lkm" / "corpus"


def manifest_path(base: Path | None = None) -> Path:
    """Path of the manifest in *base* (default :func:`corpus_dir`)."""
    return (corpus_dir() if base is None else Path(base)) / MANIFEST_NAME


def load_manifest(base: Path | None = None) -> dict[str, object]:
    """Read and minimally validate the raw manifest.

    Raises :class:`FileNotFoundError` if there is no manifest and
    :class:`CorpusError` if it is not a valid manifest.
    """
    path = manifest_path(base)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no corpus manifest at {path} (run scripts/fetch_corpus.py)") from None
    try:
        data: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: manifest is not a JSON object")
    fmt = data.get("format")
    if fmt != MANIFEST_FORMAT:
        raise CorpusError(f"{path}: unsupported manifest format {fmt!r}")
    return {str(k): v for k, v in data.items()}


def _entries(data: dict[str, object], key: str, where: Path) -> list[dict[str, object]]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        raise CorpusError(f"{where}: {key!r} is not a list")
    out: list[dict[str, object]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise CorpusError(f"{where}: {key!r} entry is not an object")
        out.append({str(k): v for k, v in item.items()})
    return out


def _str(entry: dict[str, object], key: str, where: Path) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise CorpusError(f"{where}: entry {entry.get('name')!r} lacks string {key!r}")
    return value


def _path(entry: dict[str, object], key: str, base: Path, where: Path) -> Path:
    return base / _str(entry, key, where)


def _opt_path(entry: dict[str, object], key: str, base: Path, where: Path) -> Path | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise CorpusError(f"{where}: entry {entry.get('name')!r} has bad {key!r}")
    return base / value


def load_trees(base: Path | None = None) -> list[CorpusTree]:
    """All ``linux-image`` trees listed in the manifest in *base*, in manifest order."""
    root = corpus_dir() if base is None else Path(base)
    where = manifest_path(root)
    data = load_manifest(root)
    trees: list[CorpusTree] = []
    for e in _entries(data, "trees", where):
        trees.append(
            CorpusTree(
                name=_str(e, "name", where),
                arch=_str(e, "arch", where),
                release=_str(e, "release", where),
                package=_str(e, "package", where),
                version=_str(e, "version", where),
                root=_path(e, "root", root, where),
                modules_dir=_path(e, "modules_dir", root, where),
                vmlinuz=_opt_path(e, "vmlinuz", root, where),
                config=_opt_path(e, "config", root, where),
                system_map=_opt_path(e, "system_map", root, where),
            )
        )
    return trees


def load_headers(base: Path | None = None) -> list[HeadersTree]:
    """All headers trees listed in the manifest in *base*, in manifest order."""
    root = corpus_dir() if base is None else Path(base)
    where = manifest_path(root)
    data = load_manifest(root)
    out: list[HeadersTree] = []
    for e in _entries(data, "headers", where):
        raw_pkgs = e.get("packages", [])
        packages: list[str] = []
        if isinstance(raw_pkgs, list):
            for p in raw_pkgs:
                if isinstance(p, dict) and isinstance(p.get("package"), str):
                    packages.append(f"{p['package']}={p.get('version', '')}")
        version = e.get("version", "")
        out.append(
            HeadersTree(
                name=_str(e, "name", where),
                release=_str(e, "release", where),
                root=_path(e, "root", root, where),
                kbuild_dir=_path(e, "kbuild_dir", root, where),
                module_symvers=_path(e, "module_symvers", root, where),
                version=version if isinstance(version, str) else "",
                packages=tuple(packages),
                common_dir=_opt_path(e, "common_dir", root, where),
            )
        )
    return out


def find_tree(name: str, base: Path | None = None) -> CorpusTree:
    """The tree called *name* (e.g. ``"arm64-6.1"``); :class:`CorpusError` if absent."""
    return _named(load_trees(base), name, "corpus tree")


def find_headers(name: str, base: Path | None = None) -> HeadersTree:
    """The headers tree called *name* (e.g. ``"headers-6.12"``)."""
    return _named(load_headers(base), name, "corpus headers tree")


def _named(trees: list[_T], name: str, what: str) -> _T:
    for tree in trees:
        if tree.name == name:
            return tree
    known = ", ".join(t.name for t in trees) or "none"
    raise CorpusError(f"no {what} {name!r} (have: {known})")


def _is_module(name: str) -> bool:
    return name.endswith(MODULE_SUFFIXES)


def module_files(tree: CorpusTree) -> list[Path]:
    """Every module file under ``modules_dir/{kernel,updates,extra}``, sorted.

    Symbolic links are neither followed nor returned.
    """
    from lkm.moddir import find_modules

    found: list[Path] = []
    for sub in _MODULE_SUBDIRS:
        top = tree.modules_dir / sub
        if not top.is_dir() or top.is_symlink():
            continue
        found.extend(Path(p) for p in find_modules(str(top)))
    found.sort()
    return found


#: What depmod reads from a modules directory besides the modules (it writes the rest).
DEPMOD_INPUTS: tuple[str, ...] = ("kernel", "modules.order", "modules.builtin", "modules.builtin.modinfo")


def depmod_root(tree: CorpusTree, root: Path, per_file: bool = False) -> Path:
    """A scratch ``root/lib/modules/<release>`` of links to the tree's depmod inputs, for
    ``depmod -b root`` and ``modprobe -d root`` without ever writing into the corpus.

    ``per_file``: the directories are made and each file linked on its own, so that a module
    can be replaced, removed or added in the scratch tree (incremental depmod)."""
    d = root / "lib" / "modules" / tree.release
    d.mkdir(parents=True)
    for name in DEPMOD_INPUTS:
        src = tree.modules_dir / name
        if not src.exists():
            continue
        if per_file and src.is_dir():
            for top, dirs, files in os.walk(src):
                rel = os.path.relpath(top, tree.modules_dir)
                (d / rel).mkdir(exist_ok=True)
                for f in files:
                    (d / rel / f).symlink_to(os.path.join(top, f))
                dirs.sort()
        else:
            (d / name).symlink_to(src)
    return d

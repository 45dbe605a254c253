"""The real-module corpus written by scripts/fetch_corpus.py, read through testing.corpus.

Without a manifest these tests skip locally and fail under CI=true (CI must run
``scripts/fetch_corpus.py`` first).  The corpus_dir()/load_trees() unit tests at
the bottom need no corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import testing.corpus as corpus

from support import require

IMAGE_TREES = {
    # name: (arch, module file suffix used by Debian for that kernel)
    "amd64-6.1": ("amd64", ".ko"),
    "amd64-6.12": ("amd64", ".ko.xz"),
    "arm64-6.1": ("arm64", ".ko"),
    "i386-6.1": ("i386", ".ko"),
}
HEADERS_TREES = {"headers-6.1": "amd64-6.1", "headers-6.12": "amd64-6.12"}
MIN_MODULES = 1000  # each Debian flavour ships thousands


def _missing_corpus(exc: Exception) -> None:
    require(False, str(exc))  # skip on a developer's machine, fail in CI


@pytest.fixture(scope="module")
def trees() -> dict[str, corpus.CorpusTree]:
    try:
        return {t.name: t for t in corpus.load_trees()}
    except FileNotFoundError as exc:
        _missing_corpus(exc)
        raise


@pytest.fixture(scope="module")
def headers() -> dict[str, corpus.HeadersTree]:
    try:
        return {h.name: h for h in corpus.load_headers()}
    except FileNotFoundError as exc:
        _missing_corpus(exc)
        raise


@pytest.mark.corpus
def test_all_image_trees_listed(trees: dict[str, corpus.CorpusTree]) -> None:
    assert set(IMAGE_TREES) <= set(trees), f"manifest has {sorted(trees)}"


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(IMAGE_TREES))
def test_image_tree(trees: dict[str, corpus.CorpusTree], name: str) -> None:
    if name not in trees:
        pytest.fail(f"{name} missing from the corpus manifest")
    tree = trees[name]
    arch, suffix = IMAGE_TREES[name]
    assert tree.arch == arch
    assert tree.package.startswith("linux-image-") and tree.package.endswith("-unsigned")
    assert "cloud" not in tree.package and "-rt-" not in tree.package
    assert tree.root.is_dir()
    assert tree.modules_dir == tree.root / "lib" / "modules" / tree.release
    assert tree.modules_dir.is_dir()
    assert tree.vmlinuz is not None and tree.vmlinuz.is_file()
    assert tree.config is not None and tree.config.is_file()

    mods = corpus.module_files(tree)
    assert len(mods) >= MIN_MODULES, f"{name}: only {len(mods)} modules"
    assert mods == sorted(mods)
    assert all(m.name.endswith(suffix) for m in mods), f"{name}: expected *{suffix} modules"
    assert all(m.is_relative_to(tree.modules_dir) for m in mods)


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(HEADERS_TREES))
def test_headers_tree(
    headers: dict[str, corpus.HeadersTree], trees: dict[str, corpus.CorpusTree], name: str
) -> None:
    if name not in headers:
        pytest.fail(f"{name} missing from the corpus manifest")
    h = headers[name]
    image = trees.get(HEADERS_TREES[name])
    if image is not None:
        assert h.release == image.release
        assert h.version == image.version
    assert h.kbuild_dir == h.root / "usr" / "src" / f"linux-headers-{h.release}"
    assert h.kbuild_dir.is_dir()
    assert h.module_symvers.is_file()
    assert h.module_symvers.stat().st_size > 100_000
    # kbuild's symlinks (scripts -> ../../lib/linux-kbuild-*/scripts) resolve inside the tree
    scripts = (h.kbuild_dir / "scripts").resolve()
    assert scripts.is_dir() and scripts.is_relative_to(h.root.resolve())


# ---------------------------------------------------------------- no corpus needed


def test_corpus_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LKM_CORPUS", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert corpus.corpus_dir() == tmp_path / "home" / ".cache" / "lkm" / "corpus"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus.corpus_dir() == tmp_path / "xdg" / "lkm" / "corpus"
    monkeypatch.setenv("LKM_CORPUS", str(tmp_path / "c"))
    assert corpus.corpus_dir() == tmp_path / "c"


def test_load_from_small_manifest(tmp_path: Path) -> None:
    mods = tmp_path / "t" / "lib" / "modules" / "6.1.0-1-amd64"
    for rel in ("kernel/fs/a.ko", "kernel/b.ko.xz", "kernel/c.ko.zst", "updates/d.ko.gz", "kernel/x.txt"):
        (mods / rel).parent.mkdir(parents=True, exist_ok=True)
        (mods / rel).write_bytes(b"")
    manifest = {
        "format": corpus.MANIFEST_FORMAT,
        "trees": [
            {
                "name": "t",
                "arch": "amd64",
                "release": "6.1.0-1-amd64",
                "package": "linux-image-6.1.0-1-amd64-unsigned",
                "version": "6.1.1-1",
                "root": "t",
                "modules_dir": "t/lib/modules/6.1.0-1-amd64",
                "vmlinuz": None,
                "config": "t/boot/config-6.1.0-1-amd64",
            }
        ],
        "headers": [
            {
                "name": "h",
                "release": "6.1.0-1-amd64",
                "root": "h",
                "kbuild_dir": "h/usr/src/linux-headers-6.1.0-1-amd64",
                "module_symvers": "h/usr/src/linux-headers-6.1.0-1-amd64/Module.symvers",
            }
        ],
    }
    (tmp_path / corpus.MANIFEST_NAME).write_text(json.dumps(manifest))

    (tree,) = corpus.load_trees(tmp_path)
    assert tree == corpus.find_tree("t", tmp_path)
    assert tree.root == tmp_path / "t"
    assert tree.vmlinuz is None
    assert tree.config == tmp_path / "t" / "boot" / "config-6.1.0-1-amd64"
    names = [p.relative_to(mods).as_posix() for p in corpus.module_files(tree)]
    assert names == ["kernel/b.ko.xz", "kernel/c.ko.zst", "kernel/fs/a.ko", "updates/d.ko.gz"]

    (h,) = corpus.load_headers(tmp_path)
    assert h.module_symvers.name == "Module.symvers"
    assert h.kbuild_dir.parent == tmp_path / "h" / "usr" / "src"

    with pytest.raises(corpus.CorpusError):
        corpus.find_tree("nope", tmp_path)
    with pytest.raises(FileNotFoundError):
        corpus.load_trees(tmp_path / "empty")
    (tmp_path / corpus.MANIFEST_NAME).write_text('{"format": 99}')
    with pytest.raises(corpus.CorpusError):
        corpus.load_trees(tmp_path)

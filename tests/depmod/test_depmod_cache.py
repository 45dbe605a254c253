"""Incremental depmod (modules.lkm-cache) against kmod's full depmod: after any sequence of
edits to a tree — modules added, removed, replaced (new file, or rewritten in place), touched,
the cache corrupted or truncated — lkm's cached run writes exactly kmod's files and messages,
and reads only the modules whose files changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lkm.depmod.cache as cache_mod
from lkm.depmod import DepmodOptions, depmod, write_outputs
from lkm.depmod.cache import CACHE_NAME

from support import RELEASE, ROOT, kmod_tool, make_module, make_tree, outputs

FIXTURES = ROOT / "tests" / "fixtures" / "6x"


def _pool() -> list[bytes]:
    """Module contents to place under any name: the 6.x fixtures (plain and compressed) and
    generated modules whose exports, needs and aliases overlap."""
    out = []
    for name in ("chardev.ko", "exporter.ko", "importer.ko", "params.ko", "kreq.ko", "kreqfs.ko"):
        p = FIXTURES / name
        if p.exists():
            out.append(p.read_bytes())
    out += [
        make_module("g", exports={"f_a": 1, "f_b": 2}, modinfo=["alias=pci:v00001234d*", "softdep=pre: g1"]),
        make_module(
            "g", exports={"f_a": 1}, needs={"f_c": 3}, modinfo=["alias=devname:gx", "alias=char-major-9-9"]
        ),
        make_module("g", exports={"f_c": 3}, needs={"f_a": 1, "printk": 0}, weak=("f_z",)),
        make_module("g", needs={"f_b": 2, "f_c": 3}, modinfo=["alias=usb:v1d2*", "alias=fs-gfs"]),
        make_module("g", exports={"f_b": 2}),  # replaces the owner of f_b
        b"not a module",
    ]
    return out


POOL = _pool()
OUTPUT_NAMES = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
]
NAMES = [
    "kernel/a/m0.ko",
    "kernel/a/m1.ko",
    "kernel/b/m2.ko",
    "kernel/b/m-3.ko",
    "updates/m0.ko",
    "kernel/m4.ko",
]

edit = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMES), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("inplace"), st.sampled_from(NAMES), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("touch"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("corrupt"), st.just(""), st.integers(0, 1 << 20)),
    st.tuples(st.just("truncate"), st.just(""), st.integers(0, 1 << 20)),
    # one of lkm's output files changed behind its back (kmod's are left alone: it rewrites)
    st.tuples(st.just("output"), st.sampled_from(OUTPUT_NAMES), st.integers(0, 5)),
)

_clock = [1_600_000_000_000_000_000]


def _new_mtime(p: Path) -> None:
    """A distinct mtime for every write, whatever the file system's timestamp tick."""
    _clock[0] += 1_000_000_007
    os.utime(p, ns=(_clock[0], _clock[0]))


def _apply(op: tuple[str, str, int], dirs: list[Path], lkm_dir: Path) -> set[str]:
    """Apply one edit to both trees; the relative paths whose files changed."""
    kind, rel, arg = op
    changed: set[str] = set()
    for d in dirs:
        p = d / rel
        if kind == "put":  # a new file renamed into place, as package managers do
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".new")
            tmp.write_bytes(POOL[arg])
            _new_mtime(tmp)
            os.replace(tmp, p)
            changed.add(rel)
        elif kind == "inplace" and p.exists():  # same inode, new bytes
            with open(p, "r+b") as f:
                f.truncate(0)
                f.write(POOL[arg])
            _new_mtime(p)
            changed.add(rel)
        elif kind == "remove" and p.exists():
            p.unlink()
        elif kind == "touch" and p.exists():
            _new_mtime(p)
            changed.add(rel)
    out = lkm_dir / rel
    if kind == "output" and out.exists():
        data = out.read_bytes()
        if arg == 0:  # a byte changed in place, the mtime put back
            st = out.stat()
            with open(out, "r+b") as f:
                f.write(bytes([data[0] ^ 1]) if data else b"x")
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif arg == 1:
            out.unlink()
        elif arg == 2:  # kmod would replace a symbolic link by a file
            copy = lkm_dir.parent / (rel + ".copy")
            copy.write_bytes(data)
            out.unlink()
            out.symlink_to(copy)
        elif arg == 3:  # or a file with another mode
            out.chmod(0o600)
        elif arg == 4:  # or break a hard link
            os.link(out, lkm_dir.parent / (rel + f".link{_clock[0]}"))
            _clock[0] += 1
        else:  # the same bytes, rewritten (a new inode)
            tmp = out.with_name(out.name + ".new")
            tmp.write_bytes(data)
            os.replace(tmp, out)
    cache = lkm_dir / CACHE_NAME
    if kind in ("corrupt", "truncate") and cache.exists():
        data = bytearray(cache.read_bytes())
        if data:
            if kind == "corrupt":
                data[arg % len(data)] ^= 0x5A
            else:
                del data[arg % len(data) :]
            cache.write_bytes(bytes(data))
    return changed


def _kmod_run(root: Path) -> tuple[int, str]:
    p = subprocess.run(
        [kmod_tool("depmod"), "-b", str(root), RELEASE], capture_output=True, text=True, check=False
    )
    return p.returncode, p.stderr.replace(str(root), "ROOT")


def _lkm_run(root: Path, cache: bool = True) -> tuple[int, str, int]:
    """In-process lkm depmod, messages as the CLI prints them (default log level)."""
    from lkm.depmod import DependencyCycle

    try:
        r = depmod(DepmodOptions(RELEASE, basedir=str(root), cache=cache))
    except DependencyCycle as exc:
        msgs = exc.messages
        return (
            1,
            "".join(f"depmod: {p}: {m}\n" for p, m in msgs if p != "INFO").replace(str(root), "ROOT"),
            -1,
        )
    write_outputs(r)
    text = "".join(f"depmod: {p}: {m}\n" for p, m in r.messages if p not in ("INFO", "NOTICE", "DEBUG"))
    return 0, text.replace(str(root), "ROOT"), r.read


def _same_files(kd: Path, ld: Path, op: object) -> None:
    """lkm's output files are what kmod's fresh files are: regular files with one link, the
    same mode, modified by this run (none older than kmod's file written just before)."""
    import stat

    for name in outputs(kd):
        k, m = os.lstat(kd / name), os.lstat(ld / name)
        assert stat.S_ISREG(m.st_mode) and m.st_nlink == 1, (op, name)
        assert stat.S_IMODE(m.st_mode) == stat.S_IMODE(k.st_mode), (op, name)
        assert m.st_mtime_ns >= k.st_mtime_ns, (op, name)


def _winners(d: Path) -> set[str]:
    """The module files of the last successful run (modules.dep's first column)."""
    try:
        text = (d / "modules.dep").read_text()
    except OSError:
        return set()
    return {line.partition(":")[0] for line in text.splitlines()}


def _without_cache(files: dict[str, bytes]) -> dict[str, bytes]:
    return files  # outputs() leaves the cache out already


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Files written by a test are seconds old at most: trust their keys at once (every
    # write here sets a distinct mtime, so no change can hide behind an equal key).
    monkeypatch.setattr(cache_mod, "RACY_NS", -(1 << 62))


@pytest.mark.oracle
@settings(
    max_examples=int(os.environ.get("LKM_CACHE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start=st.lists(st.integers(0, len(POOL) - 1), min_size=len(NAMES), max_size=len(NAMES)),
    edits=st.lists(edit, min_size=1, max_size=6),
)
def test_random_edits_match_kmod(
    tmp_path_factory: pytest.TempPathFactory,
    trusting: None,
    start: list[int],
    edits: list[tuple[str, str, int]],
) -> None:
    kmod_tool("depmod")
    base = tmp_path_factory.mktemp("edits")
    modules = {rel: POOL[i] for rel, i in zip(NAMES, start, strict=True)}
    order = b"kernel/a/m1.ko\nkernel/b/m2.ko\n"
    k_root, l_root = base / "kmod", base / "lkm"
    kd = make_tree(k_root, modules, modules_order=order)
    ld = make_tree(l_root, modules, modules_order=order)
    for rel in NAMES:
        _new_mtime(kd / rel)
        _new_mtime(ld / rel)
    full = _lkm_run(l_root)[0] != 0  # fills the cache, unless a cycle stops the run
    before = _winners(ld)
    corrupted = False
    for op in edits:
        changed = _apply(op, [kd, ld], ld)
        k_rc, k_err = _kmod_run(k_root)
        l_rc, l_err, n_read = _lkm_run(l_root)
        assert (l_rc, l_err) == (k_rc, k_err), op
        if k_rc == 0:
            assert _without_cache(outputs(ld)) == outputs(kd), op
            _same_files(kd, ld, op)
        now = _winners(ld)
        # A corrupt facts section is found when a later run first needs facts from it (and
        # then every module is read again): read counts are only checked before corruption.
        corrupted = corrupted or op[0] in ("corrupt", "truncate")
        if n_read >= 0 and not full and not corrupted:
            # Only changed files, files that now win a name they did not (a duplicate
            # removed), and those that failed to read (errors are never kept).
            bad = sum(
                1 for rel in NAMES if (ld / rel).exists() and (ld / rel).read_bytes() == b"not a module"
            )
            assert n_read <= len(changed | (now - before)) + bad, (op, n_read)
        before = now
        full = l_rc != 0  # a failed run writes nothing, its cache neither: the next reads all


@pytest.mark.oracle
def test_untouched_tree_reads_nothing(tmp_path: Path, trusting: None) -> None:
    kmod_tool("depmod")
    modules = {rel: POOL[i % (len(POOL) - 1)] for i, rel in enumerate(NAMES)}
    for root in (tmp_path / "kmod", tmp_path / "lkm"):
        d = make_tree(root, modules)
        for rel in NAMES:
            _new_mtime(d / rel)
    assert _lkm_run(tmp_path / "lkm")[2] == len(NAMES) - 1  # updates/m0 and kernel/a/m0: one module
    rc, err, n_read = _lkm_run(tmp_path / "lkm")
    assert n_read == 0
    assert (rc, err) == _kmod_run(tmp_path / "kmod")
    ld, kd = tmp_path / "lkm/lib/modules" / RELEASE, tmp_path / "kmod/lib/modules" / RELEASE
    assert _without_cache(outputs(ld)) == outputs(kd)
    # An output file edited behind lkm's back is built again, not trusted.
    (ld / "modules.alias.bin").write_bytes(b"junk")
    (ld / "modules.dep").unlink()
    _lkm_run(tmp_path / "lkm")
    assert _without_cache(outputs(ld)) == outputs(kd)


@pytest.mark.oracle
@pytest.mark.parametrize("how", range(6))
@pytest.mark.parametrize("name", ("modules.dep", "modules.alias.bin"))
def test_outputs_changed_behind_lkm_are_rewritten(
    tmp_path: Path, trusting: None, how: int, name: str
) -> None:
    """Outputs already holding this run's bytes are left in place (a new mtime) only while
    they are the very files lkm checked; edited, linked, replaced or re-moded ones are
    written as kmod writes them."""
    kmod_tool("depmod")
    modules = {rel: POOL[i % (len(POOL) - 1)] for i, rel in enumerate(NAMES)}
    for root in (tmp_path / "kmod", tmp_path / "lkm"):
        d = make_tree(root, modules)
        for rel in NAMES:
            _new_mtime(d / rel)
    ld, kd = tmp_path / "lkm/lib/modules" / RELEASE, tmp_path / "kmod/lib/modules" / RELEASE
    _lkm_run(tmp_path / "lkm")
    _lkm_run(tmp_path / "lkm")  # everything cached
    _apply(("output", name, how), [], ld)
    assert _kmod_run(tmp_path / "kmod")[0] == 0
    assert _lkm_run(tmp_path / "lkm")[2] == 0
    assert _without_cache(outputs(ld)) == outputs(kd)
    _same_files(kd, ld, how)


def test_recent_files_are_read_again(tmp_path: Path) -> None:
    """A file changed within RACY_NS of a run is stored untrusted: the next run reads it
    again even though its key looks the same (a same-tick change could hide behind it)."""
    make_tree(tmp_path, {rel: POOL[-2] for rel in NAMES[:3]})
    assert _lkm_run(tmp_path)[2] == 3
    assert _lkm_run(tmp_path)[2] == 3


def test_no_cache_writes_none(tmp_path: Path) -> None:
    d = make_tree(tmp_path, {rel: POOL[-2] for rel in NAMES[:3]})
    _lkm_run(tmp_path, cache=False)
    assert not (d / CACHE_NAME).exists()


def test_cache_file_is_replaced_whole(tmp_path: Path, trusting: None) -> None:
    """Written through a unique temporary renamed over it: no temporary left behind, and a
    stale temporary of another run is not touched."""
    d = make_tree(tmp_path, {rel: POOL[-2] for rel in NAMES[:3]})
    stale = d / f".{CACHE_NAME}.1.0.tmp"
    stale.write_bytes(b"other run")
    _lkm_run(tmp_path)
    _lkm_run(tmp_path)
    names = sorted(p.name for p in d.iterdir() if p.name.startswith("."))
    assert names == [stale.name]
    assert stale.read_bytes() == b"other run"
    assert (d / CACHE_NAME).read_bytes().startswith(b"lkm-depmod-cache 2 ")


def test_cli_no_cache_flag(tmp_path: Path) -> None:
    import sys

    d = make_tree(tmp_path, {rel: POOL[-2] for rel in NAMES[:3]})
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "lkm", "depmod", "-b", str(tmp_path)]
    subprocess.run([*cmd, "--no-cache", RELEASE], check=True, env=env)
    assert not (d / CACHE_NAME).exists()
    subprocess.run([*cmd, RELEASE], check=True, env=env)
    assert (d / CACHE_NAME).exists()
    shutil.rmtree(tmp_path / "lib")


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", ("amd64-6.1", "amd64-6.12"))
def test_corpus_edits_match_kmod(name: str, corpus_trees, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real tree: full cached run, then modules replaced by copies, removed and added, then
    the cache corrupted; after each step every output equals kmod's full run and only the
    changed files were read."""
    import random

    from testing.corpus import depmod_root

    from support import require

    trees = {t.name: t for t in corpus_trees}
    require(name in trees, f"corpus tree {name} missing: run scripts/fetch_corpus.py")
    tree = trees[name]
    kmod_tool("depmod")
    k_root, l_root = tmp_path / "kmod", tmp_path / "lkm"
    kd = depmod_root(tree, k_root, per_file=True)
    ld = depmod_root(tree, l_root, per_file=True)

    def check(expect_read: int | None) -> None:
        k_rc, _k_err = _kmod_run_release(k_root, tree.release)
        r = depmod(DepmodOptions(tree.release, basedir=str(l_root), cache=True))
        write_outputs(r)
        assert k_rc == 0
        if expect_read is not None:
            assert r.read == expect_read
        assert _without_cache(outputs(ld)) == outputs(kd)

    check(None)
    rels = sorted(str(p.relative_to(ld)) for p in ld.rglob("*.ko*"))
    rng = random.Random(18)
    picked = rng.sample(rels, 12)
    replaced, removed, added = picked[:6], picked[6:9], picked[9:]
    for d in (kd, ld):
        for rel in replaced:
            target = os.readlink(d / rel)
            (d / rel).unlink()
            shutil.copyfile(target, d / rel)
        for rel in removed:
            (d / rel).unlink()
        (d / "extra").mkdir()
        for rel in added:  # a second copy under a new name: its exports win over the first's
            shutil.copyfile(d / rel, d / "extra" / ("x" + Path(rel).name))
    check(len(replaced) + len(added))
    # A byte of the facts section (the bulk, checked when it is decoded) flipped: a run that
    # needs no facts from it (nothing changed) still writes kmod's files; the next run that
    # needs them finds the digest wrong and reads every module.
    data = bytearray((ld / CACHE_NAME).read_bytes())
    data[len(data) // 2] ^= 1
    (ld / CACHE_NAME).write_bytes(bytes(data))
    check(None)
    other = next(r for r in rels if r not in removed and r != picked[0])
    for d in (kd, ld):  # a module rewritten with another's contents: its facts change
        target = os.path.realpath(d / other)
        (d / picked[0]).unlink()
        shutil.copyfile(target, d / picked[0])
    check(len(rels) - len(removed) + len(added))
    # A byte of the header and module keys (checked at load) flipped: everything read again.
    data = bytearray((ld / CACHE_NAME).read_bytes())
    data[data.index(b"\n") + 5] ^= 1
    (ld / CACHE_NAME).write_bytes(bytes(data))
    check(len(rels) - len(removed) + len(added))


def _kmod_run_release(root: Path, release: str) -> tuple[int, str]:
    p = subprocess.run(
        [kmod_tool("depmod"), "-b", str(root), release], capture_output=True, text=True, check=False
    )
    return p.returncode, p.stderr

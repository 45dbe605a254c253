"""The state file: schema versioning, read-only and locked files, one transaction per call."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.state import SCHEMA_VERSION, StateError, default_state_path

from support import FIX6, ROOT, require


def test_default_path_follows_lkm_state_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LKM_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "lkm" / "kernel.db"
    monkeypatch.setenv("LKM_STATE", str(tmp_path / "x.db"))
    assert default_state_path() == tmp_path / "x.db"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    ModelKernel.boot("linux-2.4-i386", tmp_path / "k.db").close()
    db = sqlite3.connect(tmp_path / "k.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer lkm"):
        ModelKernel(tmp_path / "k.db")


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no model kernel"):
        ModelKernel(tmp_path / "none.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match="not an lkm state file"):
        ModelKernel(tmp_path / "junk.db")


def test_read_only_state(tmp_path: Path) -> None:
    """A state file the user may not write: one clear error.  Root writes files whatever their
    mode, so as root (CI) the file and its directory are made immutable (chattr +i) instead."""
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    k.close()
    paths = [str(tmp_path / "k.db"), str(tmp_path)]
    if os.geteuid() == 0:
        r = subprocess.run(["chattr", "+i", *paths], capture_output=True, text=True, check=False)
        require(r.returncode == 0, f"chattr +i does not work here: {r.stderr.strip()}")
    else:
        os.chmod(tmp_path / "k.db", 0o444)
        os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(StateError, match="read-only"):  # on opening or on the first call
            ModelKernel(tmp_path / "k.db").finit_module(str(FIX6 / "exporter.ko"))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *paths], check=False)
        os.chmod(tmp_path, 0o755)


def test_read_only_open(tmp_path: Path) -> None:
    """A state opened read-only (viewers) refuses every system call with one clear error."""
    ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db").close()
    k = ModelKernel(tmp_path / "k.db", readonly=True)
    assert k.modules() == []
    with pytest.raises(StateError, match="read-only"):
        k.finit_module(str(FIX6 / "exporter.ko"))


def test_locked_state_cli(tmp_path: Path) -> None:
    """A state locked by another process: insmod fails after the busy timeout with one line."""
    ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db").close()
    other = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), LKM_STATE_TIMEOUT="0.2")
    r = subprocess.run([sys.executable, "-m", "lkm", "insmod", "--state", str(tmp_path / "k.db"),
                        str(FIX6 / "exporter.ko")], capture_output=True, text=True, env=env)  # fmt: skip
    other.execute("ROLLBACK")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "locked" in r.stderr and "Traceback" not in r.stderr


def test_locked_state(tmp_path: Path) -> None:
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    other = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process mid-call
    k.state.db.execute("PRAGMA busy_timeout=200")
    with pytest.raises(StateError, match="locked"):
        k.finit_module(str(FIX6 / "exporter.ko"))
    other.execute("ROLLBACK")
    k.finit_module(str(FIX6 / "exporter.ko"))
    assert [m.name for m in k.modules()] == ["exporter"]


def test_state_persists_across_processes(tmp_path: Path) -> None:
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    k.finit_module(str(FIX6 / "exporter.ko"))
    k.close()
    again = ModelKernel(tmp_path / "k.db")
    assert [m.name for m in again.modules()] == ["exporter"]
    assert again.check_integrity() == []


def test_boot_again_over_a_booted_state(tmp_path: Path) -> None:
    """`lkm model boot --force` on a state that holds a kernel replaces it; without --force it is
    refused (issue 15: boot never replaces a state unasked)."""
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    k.finit_module(str(FIX6 / "exporter.ko"))
    k.close()
    with pytest.raises(StateError, match="already booted"):
        ModelKernel.boot("linux-2.4-i386", tmp_path / "k.db")
    again = ModelKernel.boot("linux-2.4-i386", tmp_path / "k.db", force=True)
    assert again.modules() == [] and again.version.user_space_link and again.check_integrity() == []


def test_calls_of_other_connections_and_rollbacks_reach_the_cache(tmp_path: Path) -> None:
    """A kernel keeps the areas it allocated from between its calls (lkm.kernel.model.state.Cache).
    Two kernels on one state, used in turn (as two processes would), with a load that fails
    after its memory was allocated (rolled back): every module lands exactly where a kernel
    opened afresh for each call (nothing kept between calls) puts it."""
    fix = {n: str(FIX6 / f"{n}.ko") for n in ("exporter", "importer", "chardev", "params")}
    steps = [
        ("a", "load", "exporter"),
        ("b", "load", "chardev"),  # behind a's back
        ("a", "load", "params"),
        ("b", "unload", "chardev"),
        ("a", "unload", "exporter"),
        ("a", "fail", "importer"),  # Unknown symbol: allocated, then rolled back
        ("a", "load", "chardev"),
        ("b", "load", "exporter"),
        ("a", "load", "importer"),
    ]

    def act(k: ModelKernel, op: str, name: str) -> None:
        if op == "load":
            k.finit_module(fix[name])
        elif op == "unload":
            k.delete_module(name)
        else:
            with pytest.raises(KernelError):
                k.finit_module(fix[name])

    shared = {"a": ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")}
    shared["b"] = ModelKernel(tmp_path / "k.db")
    ModelKernel.boot("linux-6.1-amd64", tmp_path / "fresh.db").close()
    for who, op, name in steps:
        act(shared[who], op, name)
        fresh = ModelKernel(tmp_path / "fresh.db")
        act(fresh, op, name)
        fresh.close()
        want = ModelKernel(tmp_path / "fresh.db", readonly=True)
        for k in shared.values():
            assert k.areas() == want.areas()
        want.close()
    assert [m.name for m in shared["a"].modules()] == ["importer", "exporter", "chardev", "params"]
    assert shared["a"].check_integrity() == []


def test_a_version_1_state_is_read_and_upgraded(tmp_path: Path) -> None:
    """Schema 1 stored module memory and kallsyms zlib-compressed, schema 2 zstd: a schema-1
    state (made here by rewriting a state's blobs with zlib) reads back the same bytes, and its
    first write marks it schema 2 (an older lkm then refuses it, test_newer_schema_is_refused)."""
    import zlib

    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    k.finit_module(str(FIX6 / "exporter.ko"))
    memory, kallsyms = k.memory("exporter"), k.module_kallsyms()
    k.close()
    db = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    db.execute("BEGIN")
    for table, key, column in (("memory", "region", "data"), ("kallsyms", "seq", "lines")):
        for ident, blob in db.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
            plain = zlib.compress(_zstd_plain(blob), 1)
            db.execute(f"UPDATE {table} SET {column}=? WHERE {key}=?", (plain, ident))
    db.execute("PRAGMA user_version=1")
    db.execute("COMMIT")
    db.close()
    old = ModelKernel(tmp_path / "k.db")
    assert (old.memory("exporter"), old.module_kallsyms()) == (memory, kallsyms)
    assert old.check_integrity() == []
    old.finit_module(str(FIX6 / "importer.ko"))
    version = sqlite3.connect(tmp_path / "k.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2
    assert old.memory("exporter") == memory and "[importer]" in old.module_kallsyms()


def _zstd_plain(blob: bytes) -> bytes:
    import zstandard

    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # what schema 2 writes
    return zstandard.ZstdDecompressor().decompress(blob)

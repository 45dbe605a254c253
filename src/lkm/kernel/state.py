"""The model kernel's persistent state: one SQLite database.

Every system call of the model runs as one transaction (:meth:`State.transaction`, ``BEGIN
IMMEDIATE``: the write lock is taken first, so concurrent callers queue on the busy timeout
instead of failing half way).  A crash or kill at any point leaves either the whole call or
none of it.  The schema is versioned (``PRAGMA user_version``); a database written by a newer
lkm is refused rather than misread.

Tables: ``meta`` (the booted profile's fields), ``ksyms`` (the base kernel's exports),
``modules`` (one row per module, ``seq`` = load order), ``msyms`` (a module's exported symbols,
``kind='export'``), ``kallsyms`` (its /proc/kallsyms lines, compressed), ``refs`` (user -> used), ``areas``
(memory handed out: pool, start, span), ``memory`` (the bytes of each loaded region).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from lkm.errors import LkmError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # how long a call waits for another process's call ($LKM_STATE_TIMEOUT)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE ksyms (name TEXT PRIMARY KEY, address ADDR NOT NULL, type TEXT, crc INTEGER,
                    gpl INTEGER NOT NULL, ns TEXT);
CREATE TABLE modules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL, design TEXT NOT NULL,
    base ADDR NOT NULL, size INTEGER NOT NULL, flags INTEGER NOT NULL DEFAULT 0,
    usecount INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, taints TEXT NOT NULL DEFAULT '',
    init ADDR NOT NULL DEFAULT 0, cleanup ADDR NOT NULL DEFAULT 0,
    path TEXT, info TEXT NOT NULL DEFAULT '{}');
CREATE TABLE msyms (seq INTEGER NOT NULL REFERENCES modules(seq), name TEXT NOT NULL,
                    address ADDR NOT NULL, kind TEXT NOT NULL, type TEXT, gpl INTEGER NOT NULL DEFAULT 0,
                    crc INTEGER, ns TEXT, ord INTEGER NOT NULL);
CREATE INDEX msyms_name ON msyms(name, kind);
CREATE INDEX msyms_seq ON msyms(seq, kind, ord);
CREATE TABLE refs (user INTEGER NOT NULL REFERENCES modules(seq),
                   used INTEGER NOT NULL REFERENCES modules(seq),
                   ord INTEGER NOT NULL, PRIMARY KEY (user, used));
CREATE INDEX refs_used ON refs(used);
CREATE TABLE areas (pool TEXT NOT NULL, start ADDR NOT NULL, span INTEGER NOT NULL, size INTEGER NOT NULL,
                    seq INTEGER NOT NULL REFERENCES modules(seq), region TEXT NOT NULL,
                    PRIMARY KEY (pool, start));
CREATE INDEX areas_seq ON areas(seq);
CREATE TABLE kallsyms (seq INTEGER PRIMARY KEY REFERENCES modules(seq), lines BLOB NOT NULL);
CREATE TABLE memory (seq INTEGER NOT NULL REFERENCES modules(seq), region TEXT NOT NULL,
                     base ADDR NOT NULL,
                     data BLOB NOT NULL, PRIMARY KEY (seq, region));
"""


U64 = (1 << 64) - 1


def addr(value: int) -> int:
    """An address as stored: SQLite integers are signed 64-bit, kernel addresses are not (the
    two's complement keeps their order).  Columns declared ADDR read back unsigned."""
    return value - (1 << 64) if value >= 1 << 63 else value


sqlite3.register_converter("ADDR", lambda raw: int(raw) & U64)


class StateError(LkmError):
    """The state file cannot be used (newer schema, read-only, locked, not a database)."""


def default_state_path() -> Path:
    """``$LKM_STATE``, else ``$XDG_STATE_HOME/lkm/kernel.db``, else ``~/.local/state/lkm/kernel.db``."""
    env = os.environ.get("LKM_STATE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "lkm" / "kernel.db"


def _why(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return "state file is read-only"
    if "locked" in text or "busy" in text:
        return "state file is locked by another process"
    if "not a database" in text or "malformed" in text:
        return "not an lkm state file (not a SQLite database, or corrupt)"
    if "unable to open" in text:
        return "cannot open state file"
    return f"state database error: {text}"


class State:
    """An open state database."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False, readonly: bool = False) -> None:
        self.path = str(path)
        self.timeout = float(os.environ.get("LKM_STATE_TIMEOUT") or BUSY_TIMEOUT_S)
        self._depth = 0  # open nested calls (savepoints)
        p = Path(self.path)
        if not create and not p.exists():
            raise StateError("no model kernel booted here (lkm model boot PROFILE)", path=self.path)
        try:
            if create:
                p.parent.mkdir(parents=True, exist_ok=True)
            target = f"file:{p.resolve()}?mode=ro" if readonly else self.path
            self.db = sqlite3.connect(
                target,
                timeout=self.timeout,
                isolation_level=None,
                detect_types=sqlite3.PARSE_DECLTYPES,
                uri=readonly,
            )
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            reason = _why(exc) if isinstance(exc, sqlite3.Error) else (exc.strerror or str(exc))
            if reason == "cannot open state file" and not (
                os.access(p, os.W_OK) and os.access(p.parent, os.W_OK)
            ):  # WAL needs its -wal/-shm files beside the database
                reason = "state file is read-only (it or its directory cannot be written)"
            raise StateError(reason, path=self.path) from None
        if version > SCHEMA_VERSION:
            self.db.close()
            raise StateError(
                f"state was written by a newer lkm (schema {version}, this lkm reads up to "
                f"{SCHEMA_VERSION}); use that lkm or boot a new state",
                path=self.path,
            )
        if version == 0 and not create:
            self.db.close()
            raise StateError("no model kernel booted here (lkm model boot PROFILE)", path=self.path)
        if readonly:
            return
        with contextlib.suppress(sqlite3.Error):  # WAL: readers never wait for the writer
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")

    @property
    def booted(self) -> bool:
        return bool(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One system call: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.  A call
        made while another is open (a module's init asking for a module: request_module runs
        modprobe, whose finit_module nests) is a savepoint inside it: its failure undoes only
        its own work, its success becomes part of the outer call."""
        if self.db.in_transaction:
            yield from self._nested()
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(_why(exc), path=self.path) from None
        try:
            yield self.db
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StateError(_why(exc), path=self.path) from None
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise StateError(_why(exc), path=self.path) from None

    def _nested(self) -> Iterator[sqlite3.Connection]:
        self._depth += 1
        name = f"nested{self._depth}"
        try:
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute(f"ROLLBACK TO {name}")
                    self.db.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(_why(exc), path=self.path) from None
                raise
            self.db.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            raise StateError(_why(exc), path=self.path) from None
        finally:
            self._depth -= 1

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot) of the state; inside an open call, that call's
        view (what the kernel itself sees mid-call: a module still coming, say)."""
        if self.db.in_transaction:
            yield self.db
            return
        try:
            self.db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StateError(_why(exc), path=self.path) from None
        try:
            yield self.db
        finally:
            self.db.execute("ROLLBACK")

    def create_schema(self, db: sqlite3.Connection) -> None:
        """Inside a transaction on an empty database: the tables (drops an older boot's)."""
        for (name,) in db.execute(  # read out first: a DROP under an open cursor is SQLITE_LOCKED
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall():
            db.execute(f'DROP TABLE "{name}"')
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

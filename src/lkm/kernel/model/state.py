"""The model kernel's state file: one SQLite database (the statements on its tables are
:mod:`lkm.kernel.model.store`'s).

Every system call of the model runs as one transaction (:meth:`State.transaction`, ``BEGIN
IMMEDIATE``: the write lock is taken first, so concurrent callers queue on the busy timeout
instead of failing half way).  A crash or kill at any point leaves either the whole call or
none of it.  The schema is versioned (``PRAGMA user_version``); a database written by a newer
lkm is refused rather than misread.  Version 2 compresses the ``memory`` and ``kallsyms`` blobs
with zstd (level 1: four times zlib's speed at the same size) where version 1 used zlib; a
version-1 state is read as it is (each blob is recognised by its first bytes) and marked
version 2 by its first write, after which an older lkm refuses it instead of misreading it.

Tables: ``meta`` (the booted profile's fields), ``ksyms`` (the base kernel's exports),
``modules`` (one row per module, ``seq`` = load order), ``msyms`` (a module's exported symbols,
``kind='export'``), ``kallsyms`` (its /proc/kallsyms lines, compressed), ``refs`` (user -> used), ``areas``
(memory handed out: pool, start, span), ``memory`` (the bytes of each loaded region),
``kmsg`` (the kernel log).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from lkm.compress import COMPRESSIONS, decompress
from lkm.errors import LkmError

if TYPE_CHECKING:
    from lkm.kernel.model.vmalloc import AreaList
    from lkm.symbols.table import KernelSymbol

__all__ = [
    "BUSY_TIMEOUT_S",
    "KMSG_TABLE",
    "REQUIRED_META",
    "ROW_TYPES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SQLITE_MAGIC",
    "TABLES",
    "U64",
    "ZSTD_MAGIC",
    "Cache",
    "State",
    "StateError",
    "addr",
    "decode_blob",
    "decode_json",
    "default_state_path",
    "encode_blob",
    "is_lkm_state",
    "new_state_file",
    "replace_state",
]


SCHEMA_VERSION = 2
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The kernel log (what ``lkm model dmesg`` shows).  Optional: a state booted before it existed
# gets it with its first message, and an older lkm ignores it.
KMSG_TABLE = "CREATE TABLE IF NOT EXISTS kmsg (seq INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);\n"
BUSY_TIMEOUT_S = 30.0  # how long a call waits for another process's call ($LKM_STATE_TIMEOUT)

SCHEMA = (
    """
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
    + KMSG_TABLE
)


U64 = (1 << 64) - 1


def addr(value: int) -> int:
    """An address as stored: SQLite integers are signed 64-bit, kernel addresses are not (the
    two's complement keeps their order).  Columns declared ADDR read back unsigned."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _addr_column(raw: bytes) -> int:
    try:
        return int(raw) & U64
    except ValueError:  # only a damaged file holds a non-integer address
        raise sqlite3.DataError(f"damaged state: address column holds {raw[:20]!r}") from None


sqlite3.register_converter("ADDR", _addr_column)


# Names are bytes to the kernel (a module, symbol or file name need not be UTF-8); lkm carries
# them as str with surrogate escapes (U+DC80..U+DCFF for the bytes 0x80..0xFF that are not
# UTF-8).  SQLite text must be encodable, so those escapes are stored as the private-use
# characters U+EF80..U+EFFF (the OPTU-8 convention) and mapped back on reading: the same name
# always binds to the same text (lookups match) and reads back as the very same str.
_TO_PUA = {0xDC80 + i: 0xEF80 + i for i in range(128)}
_FROM_PUA = {0xEF80 + i: 0xDC80 + i for i in range(128)}


def _adapt_str(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.translate(_TO_PUA).encode("utf-8", "replace").decode("utf-8")
    return value


def _text(raw: bytes) -> str:
    """Every TEXT value read: escapes mapped back; bytes that are not UTF-8 (a damaged or
    foreign file) read as surrogate escapes instead of failing the query."""
    text = raw.decode("utf-8", "surrogateescape")
    return text.translate(_FROM_PUA) if b"\xee\xbe" in raw or b"\xee\xbf" in raw else text


sqlite3.register_adapter(str, _adapt_str)


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


def _timeout() -> float:
    raw = os.environ.get("LKM_STATE_TIMEOUT") or ""
    try:
        value = float(raw) if raw else BUSY_TIMEOUT_S
    except ValueError:
        return BUSY_TIMEOUT_S
    return value if 0 <= value < 1e6 else BUSY_TIMEOUT_S  # nan, inf, negative: the default


def _writable(p: Path) -> bool:
    """Whether a state can be opened for writing (it, and for WAL its directory)."""
    return os.access(p, os.W_OK) and os.access(p.parent, os.W_OK | os.X_OK)


def _connect(p: Path, readonly: bool, timeout: float) -> sqlite3.Connection:
    if not readonly:
        db = sqlite3.connect(
            str(p), timeout=timeout, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES
        )
        db.text_factory = _text
        return db
    uri = f"file:{quote(str(p.resolve()))}?mode=ro"
    db = sqlite3.connect(
        uri, timeout=timeout, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES, uri=True
    )
    db.text_factory = _text
    try:
        db.execute("PRAGMA user_version").fetchone()
    except sqlite3.OperationalError:
        # A WAL database in a directory we cannot write: no -shm can be made; read it as an
        # immutable file (what is committed to the database file itself).
        db.close()
        db = sqlite3.connect(
            uri + "&immutable=1",
            timeout=timeout,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
            uri=True,
        )
    db.text_factory = _text
    return db


def is_lkm_state(path: str | os.PathLike[str]) -> bool | None:
    """None: no file (or an empty one); True: an lkm state; False: anything else (another
    program's database, a text file, a damaged file)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return None
    except OSError:
        return False
    if not p.is_file():
        return False
    if st.st_size == 0:
        return None
    try:
        with p.open("rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                return False
        db = _connect(p, True, 1.0)
    except (OSError, sqlite3.Error):
        return False
    try:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        return names >= set(TABLES) and version >= 1
    except sqlite3.Error:
        return False
    finally:
        db.close()


def _why(exc: sqlite3.Error) -> str:
    text = str(exc)
    if text.startswith("damaged state"):
        return text
    if "readonly" in text or "read-only" in text:
        return "state file is read-only"
    if "locked" in text or "busy" in text:
        return "state file is locked by another process"
    if "not a database" in text or "malformed" in text or "disk image" in text:
        return "not an lkm state file (not a SQLite database, or damaged; lkm model check)"
    if "unable to open" in text:
        return "cannot open state file"
    return f"state database error: {text}"


class Cache:
    """What one process keeps of its state between system calls, so that a load does not read
    whole tables: the base kernel's exports by name (written once, at boot), each pool's areas
    (:class:`~lkm.kernel.model.vmalloc.AreaList`) and the highest reference order.  Only the
    calls of a write transaction use it (:meth:`State.write_cache`); the store keeps it equal
    to the tables as it writes them.  :meth:`State.transaction` clears it when another
    connection has committed since (``PRAGMA data_version``) and whenever a call is rolled
    back, so it is never older than the tables it stands for."""

    def __init__(self) -> None:
        self.kernel: dict[str, KernelSymbol] | None = None  # never changes after boot
        self.areas: dict[str, AreaList] = {}
        self.max_ord: int | None = None

    def clear(self) -> None:
        self.areas.clear()
        self.max_ord = None


SQLITE_MAGIC = b"SQLite format 3\0"
TABLES = ("meta", "ksyms", "modules", "msyms", "refs", "areas", "kallsyms", "memory")
REQUIRED_META = ("release", "arch", "bits", "range", "layout")
# The column types of every table, checked on every open (SQLite enforces NOT NULL and types
# only on writing: a damaged page reads back anything); the symbol tables' scan is SQLite's own,
# a few milliseconds for a whole tree's modules.
_INT, _TEXT = "typeof({}) = 'integer'", "typeof({}) = 'text'"
_OPT_INT, _OPT_TEXT = "typeof({}) IN ('integer', 'null')", "typeof({}) IN ('text', 'null')"
ROW_TYPES = {
    "ksyms": " AND ".join(
        [
            *(_TEXT.format(c) for c in ("name",)),
            *(_INT.format(c) for c in ("address", "gpl")),
            *(_OPT_TEXT.format(c) for c in ("type", "ns")),
            _OPT_INT.format("crc"),
        ]
    ),
    "msyms": " AND ".join(
        [_INT.format(c) for c in ("seq", "address", "gpl", "ord")]
        + [_TEXT.format("name"), _TEXT.format("kind")]
        + [_OPT_TEXT.format("type"), _OPT_INT.format("crc"), _OPT_TEXT.format("ns")]
    ),
    "modules": " AND ".join(
        [_TEXT.format(c) for c in ("name", "design", "state", "taints", "info")]
        + [_INT.format(c) for c in ("base", "size", "flags", "usecount", "init", "cleanup")]
        + ["typeof(path) IN ('text', 'null')"]
    ),
    "refs": " AND ".join(_INT.format(c) for c in ("user", "used", "ord")),
    "areas": " AND ".join(
        [_TEXT.format("pool"), _TEXT.format("region")]
        + [_INT.format(c) for c in ("start", "span", "size", "seq")]
    ),
    "memory": " AND ".join(
        [_INT.format("seq"), _TEXT.format("region"), _INT.format("base"), "typeof(data) = 'blob'"]
    ),
    "kallsyms": "typeof(seq) = 'integer' AND typeof(lines) = 'blob'",
}


class State:
    """An open state database.  ``readonly``: opened read-only (what cannot be written -- a
    read-only file or directory, an immutable file -- is opened so without asking); every
    call that would write then fails with "state file is read-only"."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        readonly: bool = False,
        check: bool = True,
    ) -> None:
        self.path = str(path)
        self.timeout = _timeout()
        self._depth = 0  # open nested calls (savepoints)
        self.cache = Cache()
        self._data_version: int | None = None  # PRAGMA data_version the cache was taken at
        self._writing = False
        self.damaged: str | None = None  # set on the first corruption SQLite reports: no more writes
        p = Path(self.path)
        if not create and not p.exists():
            raise StateError("no model kernel booted here (lkm model boot PROFILE)", path=self.path)
        if p.exists() and not p.is_file():
            raise StateError("not a regular file", path=self.path)
        if not create and not readonly and not _writable(p):
            readonly = True
        self.readonly = readonly
        try:
            if create:
                p.parent.mkdir(parents=True, exist_ok=True)
            self.db = _connect(p, readonly, self.timeout)
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
        self.version = version
        if version == 0 and not create:
            self.db.close()
            raise StateError("no model kernel booted here (lkm model boot PROFILE)", path=self.path)
        if not create and check:
            problem = self._schema_problem()
            if problem:
                self.db.close()
                raise StateError(f"damaged state: {problem} (lkm model check)", path=self.path)
        if readonly:
            return
        with contextlib.suppress(sqlite3.Error):  # WAL: readers never wait for the writer
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A freed page (a module's memory, once unloaded) is not zeroed and written again
            # where that costs I/O (some builds of SQLite default to secure_delete on).
            self.db.execute("PRAGMA secure_delete=FAST")
            self.db.execute("PRAGMA cache_size=-16384")  # 16 MiB: a whole tree's indexes

    def _schema_problem(self) -> str | None:
        """A cheap structural check done on every open: the tables and the boot's fields are
        there.  (The full check, SQLite's own, is :meth:`integrity`.)"""
        try:
            names = {n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [t for t in TABLES if t not in names]
            if missing:
                return f"missing table {missing[0]}"
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            return _why(exc)
        except UnicodeDecodeError:  # a damaged page: names, meta values or SQLite's message
            return "schema or meta text is not UTF-8"
        for key in REQUIRED_META:
            if not isinstance(meta.get(key), str):
                return f"meta has no {key}"
        try:  # the tables' rows hold what their columns declare (NOT NULL, types)
            for table, cond in ROW_TYPES.items():
                bad = self.db.execute(f"SELECT rowid FROM {table} WHERE NOT ({cond}) LIMIT 1").fetchone()
                if bad is not None:
                    return f"{table} row {bad[0]} holds a NULL or a value of the wrong type"
        except sqlite3.Error as exc:
            return _why(exc)
        return None

    def integrity(self) -> list[str]:
        """SQLite's own check (``PRAGMA quick_check``) and ``foreign_key_check``: the problems
        found, empty when the file is sound."""
        factory = self.db.text_factory
        # a damaged page's names are not always UTF-8: the report keeps them, replaced
        self.db.text_factory = lambda b: b.decode("utf-8", "replace")
        try:
            rows = [r[0] for r in self.db.execute("PRAGMA quick_check(20)").fetchall()]
            if rows != ["ok"]:
                return [f"sqlite: {r}" for r in rows]
            fk = self.db.execute("PRAGMA foreign_key_check").fetchall()
        except sqlite3.Error as exc:
            return [f"sqlite: {_why(exc)}"]
        except UnicodeDecodeError:  # SQLite's own message quotes the damaged, non-UTF-8 schema
            return ["sqlite: malformed database schema (its text is not UTF-8)"]
        finally:
            self.db.text_factory = factory
        return [
            f"foreign key: {t} row {rowid} refers to missing {parent}" for t, rowid, parent, _i in fk[:20]
        ]

    @property
    def booted(self) -> bool:
        return bool(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One system call: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.  A call
        made while another is open (a module's init asking for a module: request_module runs
        modprobe, whose finit_module nests) is a savepoint inside it: its failure undoes only
        its own work, its success becomes part of the outer call."""
        if self.readonly:
            raise StateError("state file is read-only", path=self.path)
        if self.damaged:
            raise StateError(f"damaged state, not written: {self.damaged}", path=self.path)
        if self.db.in_transaction:
            yield from self._nested()
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            # another connection committed since the cache was taken: it is stale
            version = self.db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            raise self._error(exc) from None
        if version != self._data_version:
            self.cache.clear()
            self._data_version = version
        self._writing = True
        try:
            if 0 < self.version < SCHEMA_VERSION:  # an older state: this call writes zstd blobs
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            yield self.db
        except BaseException as exc:
            self.cache.clear()
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise
        finally:
            self._writing = False
        try:
            self.db.execute("COMMIT")
            if 0 < self.version < SCHEMA_VERSION:
                self.version = SCHEMA_VERSION
        except sqlite3.Error as exc:
            self.cache.clear()
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise self._error(exc) from None

    def write_cache(self) -> Cache | None:
        """The cache, inside a write transaction (where it is known to be current); else None."""
        return self.cache if self._writing else None

    def _error(self, exc: sqlite3.Error) -> StateError:
        """A SQLite error as a StateError; corruption marks the state damaged (no more writes)."""
        reason = _why(exc)
        if (
            (isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError))
            or "malformed" in str(exc)
            or "not a database" in str(exc)
        ):
            self.damaged = reason
        return StateError(reason, path=self.path)

    def _nested(self) -> Iterator[sqlite3.Connection]:
        self._depth += 1
        name = f"nested{self._depth}"
        try:
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException as exc:
                self.cache.clear()
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute(f"ROLLBACK TO {name}")
                    self.db.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise
            self.db.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            raise self._error(exc) from None
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
            raise self._error(exc) from None
        try:
            yield self.db
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def create_schema(self, db: sqlite3.Connection) -> None:
        """Inside a transaction on a new, empty database: the tables.  (A booted state is
        replaced whole by :func:`replace_state`, never emptied table by table.)"""
        if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StateError("refusing to create a state in a database that has tables", path=self.path)
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.version = SCHEMA_VERSION

    def seal(self) -> None:
        """A freshly booted state made one file (rollback journal) before it is renamed in."""
        self.db.execute("PRAGMA journal_mode=DELETE")

    def close(self) -> None:
        self.db.close()


def encode_blob(data: bytes) -> bytes:
    """A blob column as written (schema 2): zstd, level 1."""
    import zstandard

    return zstandard.ZstdCompressor(level=1).compress(data)


def decode_blob(data: object, what: str, path: str | None = None) -> bytes:
    """A compressed column (zstd, or zlib as schema 1 wrote it), at most the decompression
    cap (:func:`lkm.compress.limit`); else StateError naming the damage."""
    try:
        if not isinstance(data, bytes):
            raise TypeError("not a blob")
        if data.startswith(ZSTD_MAGIC):
            return decompress(data, next(c for c in COMPRESSIONS if c.magic == ZSTD_MAGIC))
        return zlib.decompress(data)
    except (zlib.error, TypeError, LkmError) as exc:
        raise StateError(f"damaged state: {what}: {exc}", path=path) from None


def decode_json(text: object, what: str, path: str | None = None) -> dict[str, object]:
    """A JSON object column, or StateError naming the damage."""
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else None
    except (ValueError, RecursionError) as exc:
        raise StateError(f"damaged state: {what}: {str(exc).splitlines()[0]}", path=path) from None
    if not isinstance(value, dict):
        raise StateError(f"damaged state: {what}: not a JSON object", path=path)
    return value


def new_state_file(path: str | os.PathLike[str], *, force: bool = False) -> str:
    """Where :meth:`lkm.kernel.model.ModelKernel.boot` builds a state for ``path``: a unique
    temporary file beside it, renamed over it by :func:`replace_state` once complete (a killed
    boot leaves nothing half made).  An existing lkm state is replaced only with ``force``.  Anything that is
    not an lkm state -- another program's database, any other file -- is refused, ``force`` or
    not: boot never destroys data it does not own."""
    p = Path(path)
    kind = is_lkm_state(p)
    if kind is False:
        raise StateError("not an lkm state file; refusing to boot over it", path=str(p))
    if kind is True and not force:
        raise StateError("a model kernel is already booted here (--force replaces it)", path=str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(100):
        tmp = p.parent / f".{p.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o644))
            return str(tmp)
        except FileExistsError:
            continue
    raise StateError("could not create a unique temporary file", path=str(p))


def replace_state(tmp: str, path: str | os.PathLike[str]) -> None:
    """Rename a complete new state (``tmp``, in rollback-journal mode, closed) over ``path``.
    The old state's WAL is checkpointed and removed first (a -wal file left beside the new
    database would be replayed into it); if another process has it open, nothing changes."""
    p = Path(path)
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if p.exists() and p.stat().st_size:
            old = sqlite3.connect(str(p), timeout=_timeout(), isolation_level=None)
            try:
                mode = old.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
                if str(mode).lower() != "delete":
                    raise StateError("state file is in use by another process", path=str(p))
                # hold the write lock across the rename: nobody writes the old file meanwhile
                old.execute("BEGIN EXCLUSIVE")
                os.replace(tmp, p)
                old.execute("ROLLBACK")
            finally:
                old.close()
        else:
            os.replace(tmp, p)
    except sqlite3.Error as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateError(_why(exc), path=str(p)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

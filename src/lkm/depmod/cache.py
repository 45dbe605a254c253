"""depmod's per-module cache (``modules.lkm-cache`` beside the indexes): what the last run read
from each module file, so that a run after N changed modules reads only those N.

**Modules.**  A cached entry is used only when its file's key is unchanged: the path and the
(size, mtime_ns, ctime_ns, inode, device) of the file it names (symbolic links followed).  The
stat is taken before the file is read, so a file changed while it is read has a new key next
time.  An entry whose ctime is within :data:`RACY_NS` of the run's start is stored but marked
untrusted: a change made in the same timestamp tick as the read could leave its key unchanged,
so it is read again next time.  Module files that could not be read are not stored: an error is
looked at again on every run.

**Outputs.**  The last run's output files are remembered per builder (modules.dep and its .bin,
the aliases, the soft dependencies, the symbols, the built-in indexes, the device names): a
digest of everything the builder reads, the digest of each file it wrote and its messages.
When a builder's inputs are unchanged, the files on disk are read back, checked against their
digests and used as they are; anything else (a file edited, removed, or written by another
run meanwhile) builds them again.  A digest of the whole tree as the builders see it (module
paths, names, the digest of every module's facts, the options) is kept as well: when it is
unchanged — modules touched or rebuilt with the same symbols and aliases — every builder's
inputs are known to be the same without computing them.  The cache therefore never changes a
byte of output: it only skips work whose result is known and checked.

**Trust.**  The file is checked before anything in it is used: magic, format version, the
fingerprint of the lkm code that wrote it, the length of both sections and the BLAKE2b digest
of section A; section B's digest is checked when B is first decoded (a run that changes only
keys writes B back byte for byte, with its digest, without hashing it); then every field is
parsed with bounds checks.  A cache that fails any check is ignored (and rewritten by the next
run that writes its outputs).  It is written to a unique ``O_EXCL`` temporary in the same
directory and renamed over the old one, so concurrent runs each leave a whole cache (the last
rename wins) and a reader never sees half of one; it is not fsync'ed (a cache torn by a crash
fails its digests and is ignored).  A run that changed nothing in it does not write it.

**Outputs left in place.**  When an output file on disk already holds exactly the bytes of
this run (its builder's memo: same inputs, same file digest), it is not written again but
given a new mtime, as long as it is still the file that was checked (same inode, size, times,
mode and owner, one link) and a regular file with the mode and owner kmod's new file would
have: the result on disk is kmod's, the bytes and a fresh modification time.

**Format** (version 2): the line ``lkm-depmod-cache 2 <fingerprint> <n> <len paths> <len memos>
<len B> <digest A> <digest B> <byte order>``, then section A, then section B, each a UTF-8
(surrogate escapes for other bytes) string of NUL-separated fields.  A: per module (column by
column) its path, its key, CRC flag, trusted flag and facts digest; the tree digest; the
module order (its input digest and the names); the memos.  B: the facts, column by column
(counts, then every module's exports, export CRCs, needed names, needed CRCs, weak names,
aliases, soft dependencies), in A's order.  A run where nothing but keys changed writes B
again byte for byte without decoding it.
"""

from __future__ import annotations

import os
import stat
import sys

from lkm.depmod.read import ModuleFacts

__all__ = [
    "CACHE_NAME",
    "CRCS",
    "FORMAT",
    "MAGIC",
    "MAX_BYTES",
    "RACY_NS",
    "TRUSTED",
    "BadCache",
    "CachedRead",
    "DepmodCache",
    "Key",
    "Memo",
    "bytes_digest",
    "digest",
    "facts_digest",
    "file_key",
    "fingerprint",
]


CACHE_NAME = "modules.lkm-cache"
FORMAT = 2
MAGIC = "lkm-depmod-cache"
MAX_BYTES = 1 << 30  # a bigger file is no cache of ours
RACY_NS = 2_000_000_000
CRCS, TRUSTED = 1, 2  # row flags
_NOTHING: frozenset[str] = frozenset()

Key = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device
Memo = tuple[str, list[tuple[str, str]], list[tuple[str, str]]]  # input digest, files, messages


def file_key(path: str) -> Key | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def digest(parts: list[str]) -> str:
    """A 128-bit BLAKE2b of NUL-joined strings (callers make the sequence unambiguous)."""
    from _blake2 import blake2b

    return blake2b("\0".join(parts).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def bytes_digest(data: bytes | memoryview) -> str:
    from _blake2 import blake2b

    return blake2b(data, digest_size=16).hexdigest()


def facts_digest(f: ModuleFacts) -> bytes:
    """A digest of everything in ``f`` (lists preceded by their lengths)."""
    weak = sorted(f.weak)
    parts = [
        str(len(f.exports)),
        str(len(f.needed)),
        str(len(weak)),
        str(len(f.aliases)),
        str(len(f.softdeps)),
        "crcs" if f.export_crcs is not None else "-",
        "crcs" if f.needed_crcs is not None else "-",
        f.error if f.error is not None else "-",
        *f.exports,
        *f.needed,
        *weak,
        *f.aliases,
        *f.softdeps,
    ]
    if f.export_crcs is not None:
        parts.extend(map(str, f.export_crcs))
    if f.needed_crcs is not None:
        parts.extend(map(str, f.needed_crcs))
    from _blake2 import blake2b

    return blake2b("\0".join(parts).encode("utf-8", "surrogateescape"), digest_size=16).digest()


def fingerprint() -> str:
    """Changes whenever the installed lkm code changes (size and mtime of every .py file),
    so that facts read by an older reader are never used by a newer one."""
    from _blake2 import blake2b

    import lkm

    stack = [os.path.dirname(os.path.abspath(lkm.__file__))]
    rows = [lkm.__version__]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.name.endswith(".py"):
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    rows.append(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}")
                elif e.name != "__pycache__" and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    rows.sort()
    return blake2b("\n".join(rows).encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


class BadCache(Exception):
    pass


class DepmodCache:
    """One cache file: its modules (columns, in module order), the tree digest and the memos.

    Loaded rows are looked up by path; a run adds the modules it read as new rows
    (:meth:`add_row`) and lists the rows to keep, in order (``keep``)."""

    __slots__ = (
        "path",
        "status",
        "fp",
        "paths",
        "keys",
        "flags",
        "fdigs",
        "index",
        "tree",
        "order",
        "memos",
        "keep",
        "dirty",
        "n_loaded",
        "new_facts",
        "_blob",
        "_blob_digest",
        "_rows",
    )

    def __init__(self, path: str, fp: str) -> None:
        self.path = path
        self.fp = fp
        self.status = "missing"  # "missing", "ok", or "ignored: <reason>"
        self.forget()

    def forget(self) -> None:
        self.paths: list[str] = []
        self.keys: list[Key] = []
        self.flags = bytearray()  # per row: CRCS | TRUSTED
        self.fdigs: list[bytes] = []  # per row: facts_digest
        self.index: dict[str, int] = {}
        self.tree = ""  # tree digest under which the memos' keys were computed
        # The modules in kmod's order (names joined by newlines) and the digest of what that
        # order was computed from: the names found, their paths and modules.order.
        self.order: tuple[str, str] = ("", "")
        self.memos: dict[int, Memo] = {}
        self.keep: list[int] = []
        self.dirty = True  # differs from the file on disk: save() writes it
        self.n_loaded = 0
        self.new_facts: dict[int, ModuleFacts] = {}
        self._blob: memoryview | None = None  # section B as loaded
        self._blob_digest = ""
        self._rows: list[ModuleFacts] | None = None  # section B decoded

    # -- reading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> DepmodCache:
        """The cache at ``path``; empty (with the reason in ``status``) if it is missing or
        fails any check."""
        self = cls(path, fingerprint())
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device planted as the cache
                raise BadCache("not a regular file")
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_BYTES:
                    raise BadCache("too big")
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return self
        except (OSError, BadCache) as exc:
            self.status = f"ignored: {exc}"
            return self
        try:
            self._parse(data)
        except (BadCache, ValueError, IndexError, UnicodeError, OverflowError) as exc:
            self.forget()
            self.status = f"ignored: {exc or type(exc).__name__}"
            return self
        self.status = "ok"
        self.dirty = False
        return self

    def _parse(self, data: bytes) -> None:
        nl = data.find(b"\n", 0, 400)
        if nl < 0:
            raise BadCache("no header")
        head = data[:nl].decode("ascii").split(" ")
        if len(head) != 10 or head[0] != MAGIC:
            raise BadCache("not an lkm depmod cache")
        if head[1] != str(FORMAT):
            raise BadCache("other format version")
        if head[2] != self.fp:
            raise BadCache("written by other lkm code")
        n, len_p, len_m, len_b = (int(x) for x in head[3:7])
        len_k, len_f, len_d = 40 * n, n, 16 * n
        len_a = len_p + len_k + len_f + len_d + len_m
        if min(n, len_p, len_m, len_b) < 0 or len(data) != nl + 1 + len_a + len_b:
            raise BadCache("truncated")
        view = memoryview(data)
        a = view[nl + 1 : nl + 1 + len_a]
        if bytes_digest(a) != head[7]:
            raise BadCache("digest mismatch")
        # Section B (the bulk) is checked against its digest when it is decoded: a run that
        # only needs section A, or writes B back as it was, never hashes it.
        pos = 0
        sections = []
        for size in (len_p, len_k, len_f, len_d, len_m):
            sections.append(a[pos : pos + size])
            pos += size
        p, k, f, d, m = sections
        paths = bytes(p).decode("utf-8", "surrogateescape").split("\0") if n else []
        if len(paths) != n:
            raise BadCache("bad path list")
        if head[9] != sys.byteorder:
            raise BadCache("other byte order")  # written elsewhere: rebuilt, as any other
        # (memoryview rather than array: array imports collections, ~2 ms of start-up)
        keys = memoryview(bytes(k)).cast("q")
        self.paths = paths
        self.keys = list(zip(*[iter(keys.tolist())] * 5, strict=True))
        self.flags = bytearray(f)
        self.n_loaded = n
        raw = bytes(d)
        self.fdigs = [raw[i : i + 16] for i in range(0, len_d, 16)]
        self.index = dict(zip(paths, range(n), strict=True))
        if len(self.index) != n:
            raise BadCache("duplicate path")
        take = _Fields(bytes(m).decode("utf-8", "surrogateescape").split("\0"))
        self.tree = take(1)[0]
        order_key, order_names = take(2)
        self.order = (order_key, order_names)
        for _ in range(take.num()):
            builder = take.num()
            key_digest = take(1)[0]
            files = _pairs(take(2 * take.num()))
            msgs = _pairs(take(2 * take.num()))
            self.memos[builder] = (key_digest, files, msgs)
        take.end()
        self._blob = view[nl + 1 + len_a :]
        self._blob_digest = head[8]

    def _decode_rows(self) -> list[ModuleFacts]:
        """Section B, checked against its digest and decoded on first need."""
        from itertools import accumulate, compress

        if self._rows is not None:
            return self._rows
        if self._blob is None:
            raise BadCache("no facts")
        if bytes_digest(self._blob) != self._blob_digest:
            raise BadCache("digest mismatch")
        fields = bytes(self._blob).decode("utf-8", "surrogateescape").split("\0")
        n = self.n_loaded
        flags = [bool(x & CRCS) for x in self.flags[:n]]
        take = _Fields(fields)
        counts = list(map(int, take(5 * n)))
        if any(c < 0 for c in counts):
            raise BadCache("negative count")
        columns = []
        for col in range(5):
            these = counts[col::5]
            flat = take(sum(these))
            starts = [0, *accumulate(these)]
            crcs = None
            if col < 2:  # exports and needed names: CRCs follow, for the modules that have them
                crcs = list(map(int, take(sum(compress(these, flags)))))
            columns.append((flat, starts, crcs))
        take.end()
        (fx, sx, cx), (fn, sn, cn), (fw, sw, _), (fa, sa, _), (fs, ss, _) = columns
        rows = []
        ex_crc = need_crc = 0
        for i in range(n):
            e0, e1 = sx[i], sx[i + 1]
            n0, n1 = sn[i], sn[i + 1]
            export_crcs = needed_crcs = None
            if flags[i]:
                assert cx is not None and cn is not None
                export_crcs = cx[ex_crc : ex_crc + e1 - e0]
                ex_crc += e1 - e0
                needed_crcs = cn[need_crc : need_crc + n1 - n0]
                need_crc += n1 - n0
            w0, w1 = sw[i], sw[i + 1]
            rows.append(
                ModuleFacts(
                    fx[e0:e1],
                    export_crcs,
                    fn[n0:n1],
                    needed_crcs,
                    frozenset(fw[w0:w1]) if w1 > w0 else _NOTHING,
                    fa[sa[i] : sa[i + 1]],
                    fs[ss[i] : ss[i + 1]],
                )
            )
        self._rows = rows
        return rows

    def lookup(self, path: str, key: Key | None, crcs: bool) -> int:
        """The row of ``path`` if its key is unchanged and trusted, else -1."""
        i = self.index.get(path)
        if i is None or key is None:
            return -1
        flags = self.flags[i]
        if not flags & TRUSTED or (crcs and not flags & CRCS):
            return -1
        return i if self.keys[i] == key else -1

    def add_row(self, path: str, key: Key, crcs: bool, trusted: bool, fdig: bytes, facts: ModuleFacts) -> int:
        """A module read in this run, as a new row (-1 if it cannot be stored)."""
        if "\0" in path or not _storable(key):
            return -1
        self.paths.append(path)
        self.keys.append(key)
        self.flags.append((CRCS if crcs else 0) | (TRUSTED if trusted else 0))
        self.fdigs.append(fdig)
        row = len(self.paths) - 1
        self.new_facts[row] = facts
        self.dirty = True
        return row

    def facts(self, row: int) -> ModuleFacts:
        """The facts of a row; raises BadCache if section B does not decode."""
        got = self.new_facts.get(row)
        if got is not None:
            return got
        try:
            return self._decode_rows()[row]
        except (ValueError, IndexError, UnicodeError) as exc:
            raise BadCache(str(exc)) from None

    # -- writing -----------------------------------------------------------------------

    def serialize(self) -> bytes:
        """The file for the rows of ``keep``, the tree digest and the memos."""
        return b"".join(self._serialize())

    def _serialize(self) -> tuple[bytes, bytes, bytes | memoryview]:
        """The file in three parts (header, section A, section B), not joined."""
        from itertools import chain
        from struct import pack

        keep = self.keep
        paths = [self.paths[r] for r in keep]
        keys = list(chain.from_iterable([self.keys[r] for r in keep]))
        flags = bytearray([self.flags[r] for r in keep])
        fdigs = [self.fdigs[r] for r in keep]
        n = len(paths)
        if keep == list(range(self.n_loaded)) and self._blob is not None:
            b: bytes | memoryview = self._blob  # the same facts in the same order: B as it was
            b_digest = self._blob_digest
        else:
            rows = [self.facts(r) for r in keep]
            body = _section_b(rows, [bool(x & CRCS) for x in flags])
            if body is None:
                # Some string holds a NUL (the field separator): leave those modules out.
                ok = [_clean(_strings(f)) for f in rows]
                paths = [x for x, y in zip(paths, ok, strict=True) if y]
                keys = [x for i, x in enumerate(keys) if ok[i // 5]]
                flags = bytearray(x for x, y in zip(flags, ok, strict=True) if y)
                fdigs = [x for x, y in zip(fdigs, ok, strict=True) if y]
                rows = [x for x, y in zip(rows, ok, strict=True) if y]
                n = len(paths)
                body = _section_b(rows, [bool(x & CRCS) for x in flags]) or ""
            b = body.encode("utf-8", "surrogateescape")
            b_digest = bytes_digest(b)
        memos = [(i, m) for i, m in sorted(self.memos.items()) if _clean([m[0], *_flat(m[1]), *_flat(m[2])])]
        order = self.order if _clean(list(self.order)) else ("", "")
        parts: list[str] = [self.tree, *order, str(len(memos))]
        for builder, (key_digest, files, msgs) in memos:
            parts += (str(builder), key_digest, str(len(files)), *_flat(files), str(len(msgs)), *_flat(msgs))
        parts.append("")
        p = "\0".join(paths).encode("utf-8", "surrogateescape")
        m = "\0".join(parts).encode("utf-8", "surrogateescape")
        a = b"".join((p, pack(f"={len(keys)}q", *keys), bytes(flags), b"".join(fdigs), m))
        head = (
            f"{MAGIC} {FORMAT} {self.fp} {n} {len(p)} {len(m)} {len(b)} "
            f"{bytes_digest(a)} {b_digest} {sys.byteorder}\n"
        )
        return head.encode(), a, b

    def save(self) -> None:
        """Write the cache, unless it is the file loaded and nothing changed: a unique temporary
        in its directory, then renamed over the old one (no fsync: a cache torn by a crash
        fails its digests and is ignored).  A cache that cannot be written is no error (the
        next run reads more)."""
        if not self.dirty and self.keep == list(range(self.n_loaded)):
            return
        try:
            data = self._serialize()
        except (BadCache, OverflowError, ValueError):
            return
        d, base = os.path.split(self.path)
        tmp = None
        try:
            for i in range(100):
                name = os.path.join(d, f".{base}.{os.getpid()}.{i}.tmp")
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                except FileExistsError:
                    continue
                tmp = name
                break
            if tmp is None:
                return
            try:
                for part in data:
                    view = memoryview(part)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                import contextlib  # only here: ~1 ms of start-up for every run otherwise

                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _storable(key: Key) -> bool:
    return all(-(1 << 63) <= x < (1 << 63) for x in key)


class _Fields:
    """Bounds-checked reading of a field list."""

    __slots__ = ("fields", "pos")

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.pos = 0

    def __call__(self, n: int) -> list[str]:
        if n < 0 or self.pos + n > len(self.fields):
            raise BadCache("field count out of range")
        out = self.fields[self.pos : self.pos + n]
        self.pos += n
        return out

    def num(self) -> int:
        v = int(self(1)[0])
        if v < 0:
            raise BadCache("negative count")
        return v

    def end(self) -> None:
        if self.pos != len(self.fields) - 1 or self.fields[self.pos] != "":
            raise BadCache("trailing data")


def _section_b(facts: list[ModuleFacts], flags: list[bool]) -> str | None:
    from itertools import chain

    weak = [tuple(f.weak) for f in facts]
    parts: list[str] = []
    for f, w in zip(facts, weak, strict=True):
        parts += (
            str(len(f.exports)),
            str(len(f.needed)),
            str(len(w)),
            str(len(f.aliases)),
            str(len(f.softdeps)),
        )
    with_crcs = [f for f, x in zip(facts, flags, strict=True) if x]
    parts.extend(chain.from_iterable(f.exports for f in facts))
    parts.extend(map(str, chain.from_iterable(f.export_crcs or [0] * len(f.exports) for f in with_crcs)))
    parts.extend(chain.from_iterable(f.needed for f in facts))
    parts.extend(map(str, chain.from_iterable(f.needed_crcs or [0] * len(f.needed) for f in with_crcs)))
    parts.extend(chain.from_iterable(weak))
    parts.extend(chain.from_iterable(f.aliases for f in facts))
    parts.extend(chain.from_iterable(f.softdeps for f in facts))
    parts.append("")
    body = "\0".join(parts)
    if body.count("\0") != len(parts) - 1:
        return None
    return body


def _strings(f: ModuleFacts) -> list[str]:
    return [*f.exports, *f.needed, *f.weak, *f.aliases, *f.softdeps]


def _flat(pairs: list[tuple[str, str]]) -> list[str]:
    return [x for pair in pairs for x in pair]


def _pairs(xs: list[str]) -> list[tuple[str, str]]:
    return list(zip(xs[0::2], xs[1::2], strict=True))


def _clean(xs: list[str]) -> bool:
    """No NUL in any string (they separate fields)."""
    return not xs or "\0".join(xs).count("\0") == len(xs) - 1


# -- one run ------------------------------------------------------------------------------


class CachedRead:
    """The facts of one run's modules: from the cache where a key is unchanged and trusted,
    read from the file otherwise (only those: ``read`` is their count)."""

    __slots__ = ("cache", "facts", "fdigs", "read", "rows")

    def __init__(
        self,
        cache: DepmodCache,
        paths: list[str],
        workers: int | None,
        crcs: bool,
        stats: dict[str, os.stat_result],
        started_ns: int,
    ) -> None:
        """``stats``: the stat of files already taken (since ``started_ns``, a time taken
        before any of them)."""
        from lkm.depmod.read import read_all

        self.cache = cache
        trusted_before = started_ns - RACY_NS
        taken = list(map(stats.get, paths))
        keys = [
            (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
            if st is not None
            else file_key(p)
            for p, st in zip(paths, taken, strict=True)
        ]
        # cache.lookup for every path, in one comprehension
        ckeys, cflags = cache.keys, cache.flags
        need = TRUSTED | (CRCS if crcs else 0)
        rows = self.rows = [
            -1 if i is None or k is None or cflags[i] & need != need or ckeys[i] != k else i
            for i, k in zip(map(cache.index.get, paths), keys, strict=True)
        ]
        miss = [i for i, r in enumerate(rows) if r < 0]
        got = read_all([paths[i] for i in miss], workers, crcs=crcs) if miss else []
        self.read = len(miss)
        # None: in the cache, decoded only if needed
        self.facts: list[ModuleFacts | None] = [None] * len(paths)
        old = cache.fdigs
        self.fdigs: list[bytes] = [old[r] if r >= 0 else b"" for r in rows]
        for i, f in zip(miss, got, strict=True):
            self.facts[i] = f
            self.fdigs[i] = facts_digest(f)
        keep = rows[:]
        for i in miss:
            k = keys[i]
            new = self.facts[i]
            assert new is not None
            if k is None or new.error is not None:
                continue
            trusted = k[2] < trusted_before
            old_row = cache.index.get(paths[i])
            if old_row is not None and cache.fdigs[old_row] == self.fdigs[i] and _storable(k):
                # Read again, found the same (a touch, a rebuild): only the key changes, and
                # the stored facts, section B, stay as they are.
                cache.keys[old_row] = k
                cache.dirty = True
                cache.flags[old_row] = (cache.flags[old_row] & CRCS) | (TRUSTED if trusted else 0)
                keep[i] = old_row
            else:
                keep[i] = cache.add_row(paths[i], k, crcs, trusted, self.fdigs[i], new)
        cache.keep = [r for r in keep if r >= 0]

    def all_facts(self, paths: list[str], workers: int | None, crcs: bool) -> list[ModuleFacts]:
        """Every module's facts, decoding the cache's for the hits (or, should that fail,
        reading those files after all)."""
        from lkm.depmod.read import read_all

        out = self.facts
        cache = self.cache
        try:
            for i, r in enumerate(self.rows):
                if r >= 0:
                    out[i] = cache.facts(r)
        except BadCache as exc:
            cache.status = f"ignored: {exc}"
            todo = [i for i, r in enumerate(self.rows) if r >= 0]
            got = read_all([paths[i] for i in todo], workers, crcs=crcs)
            for i, f in zip(todo, got, strict=True):
                out[i] = f
                self.fdigs[i] = facts_digest(f)
            self.read += len(todo)
            # Nothing of the old file is kept; the modules just read are not stored (their
            # keys were not taken before the read).
            cache.keep = [r for r in cache.keep if r >= cache.n_loaded]
            cache.memos = {}
            cache.tree = ""
            cache.order = ("", "")
        return out  # type: ignore[return-value]  # every None filled above

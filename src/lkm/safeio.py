"""Files from strangers, files for users: the one way lkm opens what it reads and writes what
it makes.

Reading (:func:`open_regular`, :func:`map_file`, :func:`read_bytes`, :func:`read_text`): the
file is opened with ``O_NONBLOCK`` (a FIFO or a device never blocks the open), ``fstat``-ed,
and refused unless it is a regular file -- with ``EINVAL``, the errno the kernel's
``kernel_read_file`` gives ``finit_module`` for anything else.  Large files are mapped, not read
whole, and every read has a size limit checked against ``st_size`` before anything is
allocated.

Writing (:func:`write_file`): as kmod's depmod writes its indexes -- a temporary file with a
unique name in the target directory, created ``O_CREAT|O_EXCL|O_NOFOLLOW`` (a planted symlink
or file is never followed nor truncated), written, ``fsync``-ed, then renamed over the target;
on any error the temporary is removed and the target is untouched.  Concurrent writers of one
file each write their own temporary; the last rename wins and a reader sees one whole file.
"""

from __future__ import annotations

import errno
import os
import stat

from lkm.errors import LkmError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import mmap
    from collections.abc import Callable, Iterable

MMAP_THRESHOLD = 256 * 1024
# Text inputs (configs, logs, symbol maps, /proc copies): far above any real one.
TEXT_LIMIT = 256 << 20


class FileError(LkmError, OSError):
    """A file lkm cannot read or write; ``errno`` is the system's (or the kernel's) code.  It is
    an OSError too, so callers that treat an unreadable optional file as absent still do."""

    def __init__(self, reason: str, err: int = errno.EIO, *, path: str | None = None) -> None:
        OSError.__init__(self, err, reason, path)
        self.reason = reason
        self.path = path


def os_error(exc: OSError, path: str | None = None) -> FileError:
    """An OSError as a one-line :class:`FileError` (strerror, never the repr)."""
    code = exc.errno or errno.EIO
    return FileError(os.strerror(code), code, path=path if path is not None else _fname(exc))


def _fname(exc: OSError) -> str | None:
    name = exc.filename
    if name is None:
        return None
    return os.fsdecode(name) if isinstance(name, bytes) else str(name)


# -- reading --------------------------------------------------------------------------------


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """An O_RDONLY descriptor of the regular file ``path`` and its fstat; FileError otherwise."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(exc, p) from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise os_error(exc, p) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileError("not a regular file", errno.EINVAL, path=p)
    return fd, st


def _check_size(p: str, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise FileError(f"file size {size} exceeds {limit}", errno.EFBIG, path=p)


def _pread_all(fd: int, size: int, limit: int | None = None, path: str = "") -> bytes:
    """``size`` bytes (fstat's), or up to EOF for files that report 0 (/proc, /sys), never more
    than ``limit``."""
    chunks = []
    got = 0
    want = size if size else (limit if limit is not None else TEXT_LIMIT) + 1
    while got < want:
        b = os.pread(fd, min(want - got, 1 << 24), got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    if not size and limit is not None and got > limit:
        raise FileError(f"file size exceeds {limit}", errno.EFBIG, path=path)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def map_file(path: str | os.PathLike[str], *, limit: int | None = None) -> bytes | mmap.mmap:
    """The contents of a regular file: bytes when small, else a read-only mmap (only the pages
    used are read).  A file that shrinks under us reads short rather than faulting: mapped
    pages past a truncation raise SIGBUS, so maps are only taken of files at least
    :data:`MMAP_THRESHOLD` long and readers bound every access by ``len()``."""
    p = os.fspath(path)
    fd, st = open_regular(p)
    try:
        _check_size(p, st.st_size, limit)
        if st.st_size < MMAP_THRESHOLD:
            return _pread_all(fd, st.st_size, limit, p)
        import mmap  # lazy: start-up (lsmod maps nothing)

        return mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
    except OSError as exc:
        raise os_error(exc, p) from None
    finally:
        os.close(fd)


def read_bytes(path: str | os.PathLike[str], *, limit: int | None = TEXT_LIMIT) -> bytes:
    """A regular file's bytes, refusing one longer than ``limit``."""
    p = os.fspath(path)
    fd, st = open_regular(p)
    try:
        _check_size(p, st.st_size, limit)
        return _pread_all(fd, st.st_size, limit, p)
    except OSError as exc:
        raise os_error(exc, p) from None
    finally:
        os.close(fd)


def read_text(
    path: str | os.PathLike[str], *, limit: int | None = TEXT_LIMIT, errors: str = "surrogateescape"
) -> str:
    """A regular text file, decoded UTF-8 (undecodable bytes kept as surrogates by default)."""
    return read_bytes(path, limit=limit).decode("utf-8", errors)


# -- writing --------------------------------------------------------------------------------


def write_temp(
    path: str | os.PathLike[str],
    data: bytes | bytearray | memoryview | Iterable[bytes] | Callable[[int], None],
    *,
    mode: int = 0o644,
    fsync: bool = True,
) -> str:
    """Write ``data`` (bytes, an iterable of chunks, or a function writing to the descriptor it
    is given) to a new temporary file beside ``path`` -- unique name, O_CREAT|O_EXCL|O_NOFOLLOW,
    fsync-ed -- and return its name; on failure nothing is left behind."""
    p = os.fspath(path)
    d = os.path.dirname(p) or "."
    base = os.path.basename(p)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = -1
    tmp = ""
    for _attempt in range(100):
        tmp = os.path.join(d, f".{base}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise os_error(exc, p) from None
    if fd < 0:
        raise FileError("could not create a unique temporary file", errno.EEXIST, path=p)
    try:
        try:
            if callable(data):
                data(fd)
            elif isinstance(data, (bytes, bytearray, memoryview)):
                _write_all(fd, data)
            else:
                for chunk in data:
                    _write_all(fd, chunk)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise os_error(exc, p) from None
        raise
    return tmp


def commit(tmp: str, path: str | os.PathLike[str]) -> None:
    """Rename a :func:`write_temp` file over ``path`` (removing it if that fails)."""
    p = os.fspath(path)
    try:
        os.replace(tmp, p)
    except OSError as exc:
        discard(tmp)
        raise os_error(exc, p) from None


def discard(tmp: str) -> None:
    """Remove a temporary file, ignoring its absence."""
    try:  # noqa: SIM105 (contextlib.suppress: its import costs every tool's start-up)
        os.unlink(tmp)
    except OSError:
        pass


def write_file(
    path: str | os.PathLike[str],
    data: bytes | bytearray | memoryview | Iterable[bytes] | Callable[[int], None],
    *,
    mode: int = 0o644,
    fsync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically (:func:`write_temp` then :func:`commit`): on
    any failure the temporary is gone and ``path`` is as it was."""
    commit(write_temp(path, data, mode=mode, fsync=fsync), path)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view[: 1 << 24])
        view = view[n:]


def write_text(path: str | os.PathLike[str], text: str, **kw: int | bool) -> None:
    """:func:`write_file` of ``text`` encoded UTF-8 (surrogate-escaped bytes written back as bytes)."""
    write_file(path, text.encode("utf-8", "surrogateescape"), **kw)  # type: ignore[arg-type]


__all__ = [
    "MMAP_THRESHOLD",
    "TEXT_LIMIT",
    "FileError",
    "commit",
    "discard",
    "map_file",
    "open_regular",
    "os_error",
    "read_bytes",
    "read_text",
    "write_file",
    "write_temp",
    "write_text",
]

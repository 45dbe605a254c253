"""Getting a module's bytes: plain files read whole or mapped (large ones by mmap, so only the
pages a tool touches are read, like kmod), compressed ones (.ko.xz, .ko.zst, .ko.gz; detected
by magic) decompressed in memory."""

from __future__ import annotations

import errno
import os

from lkm.compress import decompress, detect, limit
from lkm.errors import InvalidModule, LkmError
from lkm.record import Record
from lkm.safeio import FileError, open_regular

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import mmap

__all__ = ["MMAP_THRESHOLD", "ModuleBytes", "read_module"]

MMAP_THRESHOLD = 256 * 1024


class ModuleBytes(Record):
    """A module's (decompressed) contents, its compression ("xz", "zstd", "gzip" or None) and
    its size on disk."""

    __slots__ = ("data", "compression", "file_size")

    def __init__(self, data: bytes | mmap.mmap, compression: str | None, file_size: int) -> None:
        self.data = data
        self.compression = compression
        self.file_size = file_size


def read_module(path: str) -> ModuleBytes:
    """The (decompressed) contents of the module at ``path``: a regular file only (opened
    O_NONBLOCK, fstat-ed first; see :mod:`lkm.safeio`), mapped when large, decompression capped
    (:func:`lkm.compress.limit`)."""
    try:
        fd, st = open_regular(path)
    except FileError as exc:
        if exc.errno == errno.EINVAL:  # what the kernel's kernel_read_file says of a non-file
            raise InvalidModule(exc.reason, exc.errno, path=path) from None
        raise
    try:
        size = st.st_size
        if size == 0:
            raise InvalidModule("empty file", errno.EINVAL, path=path)
        if size > limit():
            raise InvalidModule(f"file size {size} exceeds {limit()}", errno.EFBIG, path=path)
        data: bytes | mmap.mmap
        if size < MMAP_THRESHOLD:
            data = _read_all(fd, size)
        else:
            import mmap  # lazy: start-up (a small module is read, not mapped)

            data = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        head = data[:8]
        comp = None if head.startswith(b"\x7fELF") else detect(head)  # most modules: plain ELF
        if comp is None:
            return ModuleBytes(data, None, size)
        raw = data if isinstance(data, bytes) else data[:]
        try:
            out = decompress(raw, comp)
        except InvalidModule as exc:
            exc.path = path
            raise
        if not out:
            raise InvalidModule(f"{comp.name} stream decompresses to nothing", path=path)
        return ModuleBytes(out, comp.name, size)
    except OSError as exc:
        raise LkmError(os.strerror(exc.errno or errno.EIO), path=path) from None
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    got = 0
    while got < size:
        b = os.pread(fd, size - got, got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]

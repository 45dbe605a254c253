"""Compressed modules: detection by magic (as kmod does) and bounded decompression.

kmod ignores the file name and looks at the first bytes; so do we.  The table maps each
magic to the name kmod uses in ``/sys/module/compression`` and a streaming decompressor.

Decompression is capped: a stream whose output would pass :func:`limit` bytes stops there
with "decompressed size exceeds N" -- a 133 KB zstd bomb no longer expands to gigabytes.  The
reference is the kernel's own bound on a module it reads: ``finit_module`` reads the file with
``kernel_read_file(..., INT_MAX, ...)`` (2 GiB - 1), and in-kernel decompression
(kernel/module/decompress.c) grows its page array one page at a time with no smaller cap.
lkm's default, :data:`DEFAULT_LIMIT` (128 MiB), is far above any real module (the largest of
Debian's trees, amdgpu.ko, is 19 MB) and keeps a tool within a bounded memory; raise it
with ``$LKM_DECOMPRESS_LIMIT`` (bytes; ``0`` means the kernel's INT_MAX) or :func:`set_limit`.
"""

from __future__ import annotations

import errno
import os

from lkm.errors import DecompressionError
from lkm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "CHUNK",
    "COMPRESSIONS",
    "DEFAULT_LIMIT",
    "KERNEL_LIMIT",
    "Compression",
    "TooLarge",
    "decompress",
    "detect",
    "limit",
    "set_limit",
    "xz_declared_size",
]

KERNEL_LIMIT = (1 << 31) - 1  # INT_MAX: kernel_read_file's max_size for finit_module
DEFAULT_LIMIT = 128 << 20
CHUNK = 1 << 20

_limit: int | None = None


def limit() -> int:
    """The decompressed-size cap in bytes ($LKM_DECOMPRESS_LIMIT, else :data:`DEFAULT_LIMIT`)."""
    if _limit is not None:
        return _limit
    env = os.environ.get("LKM_DECOMPRESS_LIMIT", "").strip()
    if env:
        try:
            value = int(env, 0)
        except ValueError:
            return DEFAULT_LIMIT
        return KERNEL_LIMIT if value <= 0 else min(value, KERNEL_LIMIT)
    return DEFAULT_LIMIT


def set_limit(value: int | None) -> None:
    """Set the cap for this process (None: back to the environment/default)."""
    global _limit
    _limit = None if value is None else (KERNEL_LIMIT if value <= 0 else min(value, KERNEL_LIMIT))


class TooLarge(DecompressionError):
    """The stream decompresses to more than the cap."""

    def __init__(self, cap: int, *, path: str | None = None) -> None:
        super().__init__(f"decompressed size exceeds {cap}", errno.EFBIG, path=path)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(9):
        b = data[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("bad multibyte integer")


def xz_declared_size(data: bytes) -> int | None:
    """The uncompressed size the last xz stream's index declares (its records' sum), or None
    when the footer or index cannot be read (the decoder then finds out)."""
    try:
        if len(data) < 24 or data[-2:] != b"YZ":
            return None
        backward = (int.from_bytes(data[-8:-4], "little") + 1) * 4
        pos = len(data) - 12 - backward
        if pos < 12 or data[pos] != 0:
            return None
        count, pos = _varint(data, pos + 1)
        total = 0
        for _ in range(min(count, 1 << 20)):
            _unpadded, pos = _varint(data, pos)
            size, pos = _varint(data, pos)
            total += size
        return total
    except (IndexError, ValueError):
        return None


def _xz(data: bytes, cap: int) -> Iterator[bytes]:
    import lzma

    declared = xz_declared_size(data)
    if declared is not None and declared > cap:  # the index says so: refused without inflating
        raise TooLarge(cap)

    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    pending = data
    while True:
        out = d.decompress(pending, max_length=cap + 1)  # one C call up to the cap
        pending = b""
        if out:
            yield out
        if d.eof:
            rest = d.unused_data
            if rest.strip(b"\0"):
                # another stream (xz allows concatenation): decode it too, as xz -d does
                d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                pending = rest.lstrip(b"\0")
                continue
            return
        if d.needs_input:
            raise ValueError("truncated xz stream")


def _gzip(data: bytes, cap: int) -> Iterator[bytes]:
    import zlib

    if len(data) >= 18 and int.from_bytes(data[-4:], "little") > cap and data.count(b"\x1f\x8b\x08") == 1:
        # one member whose trailer (ISIZE) declares more than the cap: refused without inflating
        raise TooLarge(cap)
    # wbits 16+MAX_WBITS: gzip header and trailer, CRC checked.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data
    while True:
        out = d.decompress(pending, cap + 1)  # one C call up to the cap
        pending = d.unconsumed_tail
        if out:
            yield out
        if d.eof:
            return
        if not pending and not out:
            tail = d.flush()
            if tail:
                yield tail
            if not d.eof:
                raise ValueError("truncated gzip stream")
            return


def _zstd(data: bytes, cap: int) -> Iterator[bytes]:
    import io

    import zstandard

    declared = zstandard.frame_content_size(data) if len(data) >= 18 else -1
    if declared > cap:  # the frame header says so: no need to inflate it to find out
        raise TooLarge(cap)
    dctx = zstandard.ZstdDecompressor()
    produced = 0
    with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        while True:
            out = reader.read(cap + 1 - produced if produced <= cap else 1)
            if not out:
                break
            produced += len(out)
            yield bytes(out)
    if not produced and len(data) > 0:
        # A frame that yields nothing: make zstandard say why (or accept a truly empty frame).
        dctx.decompress(data, max_output_size=1)


class Compression(Record):
    """A compression format: ``name`` as in /sys/module/compression and kmod's messages."""

    __slots__ = ("name", "magic", "stream")

    def __init__(self, name: str, magic: bytes, stream: Callable[[bytes, int], Iterator[bytes]]) -> None:
        self.name = name
        self.magic = magic
        self.stream = stream

    def decompress(self, data: bytes) -> bytes:
        return decompress(data, self)


COMPRESSIONS: tuple[Compression, ...] = (
    Compression("zstd", b"\x28\xb5\x2f\xfd", _zstd),
    Compression("xz", b"\xfd\x37\x7a\x58\x5a\x00", _xz),
    Compression("gzip", b"\x1f\x8b", _gzip),
)


def detect(head: bytes) -> Compression | None:
    """The compression whose magic starts ``head``, or None for plain data."""
    for c in COMPRESSIONS:
        if head.startswith(c.magic):
            return c
    return None


def decompress(data: bytes, compression: Compression, *, cap: int | None = None) -> bytes:
    """Decompress, at most ``cap`` bytes (default :func:`limit`); raise
    :class:`DecompressionError` with a one-line reason (:class:`TooLarge` past the cap)."""
    cap = limit() if cap is None else cap
    out = bytearray()
    try:
        for chunk in compression.stream(data, cap):
            if len(out) + len(chunk) > cap:
                raise TooLarge(cap)
            out += chunk
    except DecompressionError:
        raise
    except MemoryError:
        raise TooLarge(cap) from None
    except Exception as exc:  # each library has its own error types; all mean "corrupt"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecompressionError(f"corrupt {compression.name} stream: {msg}") from None
    return bytes(out)

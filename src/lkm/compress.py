"""Compressed modules: detection by magic (as kmod does) and decompression.

kmod ignores the file name and looks at the first bytes; so do we.  The table maps each
magic to the name kmod uses in ``/sys/module/compression`` and a decompressor.
"""

from __future__ import annotations

from collections.abc import Callable

from lkm.errors import DecompressionError
from lkm.record import Record


def _xz(data: bytes) -> bytes:
    import lzma

    return lzma.decompress(data, format=lzma.FORMAT_XZ)


def _gzip(data: bytes) -> bytes:
    import zlib

    # wbits 16+MAX_WBITS: gzip header and trailer, CRC checked.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data) + d.flush()
    if not d.eof:
        raise ValueError("truncated gzip stream")
    return out


def _zstd(data: bytes) -> bytes:
    import io

    import zstandard

    dctx = zstandard.ZstdDecompressor()
    with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        out = reader.read()
    if not out and len(data) > 0:
        # A frame that yields nothing: make zstandard say why (or accept a truly empty frame).
        dctx.decompress(data, max_output_size=1)
    return bytes(out)


class Compression(Record):
    """A compression format: ``name`` as in /sys/module/compression and kmod's messages."""

    __slots__ = ("name", "magic", "decompress")

    def __init__(self, name: str, magic: bytes, decompress: Callable[[bytes], bytes]) -> None:
        self.name = name
        self.magic = magic
        self.decompress = decompress


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


def decompress(data: bytes, compression: Compression) -> bytes:
    """Decompress or raise :class:`DecompressionError` with a one-line reason."""
    try:
        return compression.decompress(data)
    except Exception as exc:  # each library has its own error types; all mean "corrupt"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecompressionError(f"corrupt {compression.name} stream: {msg}") from None

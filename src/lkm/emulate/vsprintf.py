"""The kernel's vsnprintf (lib/vsprintf.c, 6.1): format_decode's flags, width, precision and
qualifiers, number()'s rules (``%#x`` of 0 is ``0x0``), string()'s ``(null)``/``(efault)``,
and the ``%p`` extensions modules use (S s B, I4 i4 I6 i6 I6c, M m MF MR, U*, h with C D N,
E, V, a, x, e, K).  A plain ``%p`` prints a hash of the pointer, as the kernel does; the
hash here is stable per run, not the kernel's siphash of a boot-time random key.
"""

from __future__ import annotations

import errno as _errno
import hashlib
import ipaddress
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "LEFT",
    "PAGE",
    "PLUS",
    "SPACE",
    "SPECIAL",
    "ZEROPAD",
    "Args",
    "Formatter",
    "Memory",
    "number",
    "split_level",
    "to_signed",
]


PAGE = 0x1000

LEFT, PLUS, SPACE, SPECIAL, ZEROPAD = 1, 2, 4, 8, 16

# The kernel's errno names for %pe (include/linux/errno.h adds these to the uapi ones).
_KERNEL_ERRNO = {
    512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM",
    521: "EBADHANDLE", 522: "ENOTSYNC", 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL",
    526: "ESERVERFAULT", 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED", 530: "ERECALLCONFLICT",
}  # fmt: skip


class Args(Protocol):
    """Where the variadic arguments come from (registers and stack, or a va_list)."""

    def next(self) -> int: ...  # one machine word, unsigned

    def next64(self) -> int: ...  # a 64-bit value (two words on i386)


class Memory(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...

    def read_cstr(self, addr: int, limit: int = ...) -> bytes | None: ...

    def is_mapped(self, addr: int, size: int = ...) -> bool: ...


class Formatter:
    """vsnprintf over emulated memory.  ``symbolize(addr, offset)`` names a text address for
    %pS/%ps (``offset`` False: the name only); ``va_args(addr)`` reads a ``va_list`` for %pV."""

    def __init__(
        self,
        mem: Memory,
        word: int,
        symbolize: Callable[[int, bool], str | None],
        va_args: Callable[[int], Args] | None = None,
    ) -> None:
        self.mem = mem
        self.word = word
        self.symbolize = symbolize
        self.va_args = va_args
        self._salt = b"lkm"

    def format(self, fmt: bytes, args: Args) -> bytes:
        out = bytearray()
        i, n = 0, len(fmt)
        while i < n:
            c = fmt[i]
            if c != 0x25:  # '%'
                j = fmt.find(b"%", i)
                j = n if j < 0 else j
                out += fmt[i:j]
                i = j
                continue
            i += 1
            flags = 0
            while i < n and chr(fmt[i]) in "-+ #0":
                flags |= {"-": LEFT, "+": PLUS, " ": SPACE, "#": SPECIAL, "0": ZEROPAD}[chr(fmt[i])]
                i += 1
            width = -1
            if i < n and fmt[i] == 0x2A:  # '*'
                width = to_signed(args.next(), 32)
                if width < 0:
                    flags |= LEFT
                    width = -width
                i += 1
            else:
                start = i
                while i < n and 0x30 <= fmt[i] <= 0x39:
                    i += 1
                if i > start:
                    width = int(fmt[start:i])
            precision = -1
            if i < n and fmt[i] == 0x2E:  # '.'
                i += 1
                if i < n and fmt[i] == 0x2A:
                    precision = max(to_signed(args.next(), 32), 0)
                    i += 1
                else:
                    start = i
                    while i < n and 0x30 <= fmt[i] <= 0x39:
                        i += 1
                    precision = int(fmt[start:i] or b"0")
            qual = ""
            if i < n and chr(fmt[i]) in "hlLzZt":
                qual = chr(fmt[i])
                i += 1
                if i < n and qual in "hl" and chr(fmt[i]) == qual:
                    qual *= 2
                    i += 1
            if i >= n:
                break
            conv = chr(fmt[i])
            i += 1
            if conv == "%":
                out += b"%"
            elif conv == "c":
                ch = bytes([args.next() & 0xFF])
                out += _pad(ch, width, flags & ~ZEROPAD)
            elif conv == "s":
                out += self._string(args.next(), width, precision, flags)
            elif conv == "p":
                start = i
                while i < n and chr(fmt[i]).isalnum():
                    i += 1
                out += self._pointer(
                    fmt[start:i].decode("latin-1"), args.next(), width, precision, flags, args
                )
            elif conv == "n":
                args.next()  # ignored by the kernel (with a warning)
            elif conv in "diouxX":
                signed = conv in "di"
                bits = {"hh": 8, "h": 16, "l": 8 * self.word, "ll": 64, "L": 64, "z": 8 * self.word,
                        "Z": 8 * self.word, "t": 8 * self.word}.get(qual, 32)  # fmt: skip
                v = args.next64() if bits == 64 else args.next()
                v &= (1 << bits) - 1
                if signed:
                    v = to_signed(v, bits)
                base = {"o": 8, "x": 16, "X": 16}.get(conv, 10)
                out += number(v, base, width, precision, flags, upper=conv == "X", signed=signed)
            else:
                # The kernel WARNs "Please remove unsupported %<c> in format string" and stops.
                break
        return bytes(out)

    # -- strings and pointers ----------------------------------------------------------
    def _string(self, ptr: int, width: int, precision: int, flags: int) -> bytes:
        bad = _check_pointer(ptr, self.word)
        if bad is None and not self.mem.is_mapped(ptr):
            bad = b"(efault)"
        if bad is not None:
            return _pad(bad[: precision if precision >= 0 else None], width, flags)
        s = self.mem.read_cstr(ptr, precision if precision >= 0 else 1 << 16) or b""
        return _pad(s, width, flags)

    def _pointer(self, ext: str, ptr: int, width: int, precision: int, flags: int, args: Args) -> bytes:
        k = ext[:1]
        w = 2 * self.word
        if k in ("S", "s", "B"):
            addr = ptr - 1 if k == "B" else ptr
            name = self.symbolize(addr, k != "s")
            if name is not None:
                if k == "B" and "+0x" in name:  # the offset printed is of the return address
                    base, _, rest = name.partition("+0x")
                    off, _, tail = rest.partition("/")
                    name = f"{base}+{int(off, 16) + 1:#x}/{tail}"
                return _pad(name.encode("utf-8", "surrogateescape"), width, flags)
            return number(ptr, 16, w + 2, -1, SPECIAL | ZEROPAD)  # special_hex_number
        if k in ("h", "M", "m", "I", "i", "U", "E", "V", "a") and _check_pointer(ptr, self.word) is not None:
            return _pad(_check_pointer(ptr, self.word) or b"", width, flags)
        if k == "h":
            length = width if width > 0 else 1
            sep = {"C": b":", "D": b"-", "N": b""}.get(ext[1:2], b" ")
            data = self._read(ptr, min(length, 64))
            return sep.join(b"%02x" % b for b in data)
        if k in ("M", "m"):
            data = self._read(ptr, 6)
            if "R" in ext:
                data = data[::-1]
            sep = b"" if k == "m" else (b"-" if "F" in ext else b":")
            return _pad(sep.join(b"%02x" % b for b in data), width, flags)
        if k in ("I", "i") and ext[1:2] == "4":
            data = self._read(ptr, 4)
            text = ".".join((f"{b:03d}" if k == "i" else str(b)) for b in data)
            return _pad(text.encode("utf-8", "surrogateescape"), width, flags)
        if k in ("I", "i") and ext[1:2] == "6":
            data = self._read(ptr, 16)
            if k == "i":
                return _pad(data.hex().encode("utf-8", "surrogateescape"), width, flags)
            if "c" in ext:
                return _pad(str(ipaddress.IPv6Address(data)).encode("utf-8", "surrogateescape"), width, flags)
            return _pad(
                b":".join(data[j : j + 2].hex().encode("utf-8", "surrogateescape") for j in range(0, 16, 2)),
                width,
                flags,
            )
        if k == "U":
            data = self._read(ptr, 16)
            order = range(16)
            if ext[1:2] in ("l", "L"):  # guid_index: little-endian first three fields
                order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]  # type: ignore[assignment]
            hx = "".join(f"{data[j]:02x}" for j in order)
            text = f"{hx[:8]}-{hx[8:12]}-{hx[12:16]}-{hx[16:20]}-{hx[20:]}"
            return (text.upper() if ext[1:2] in ("B", "L") else text).encode("utf-8", "surrogateescape")
        if k == "E":
            length = width if width > 0 else 1
            data = self._read(ptr, length)
            return b"".join(bytes([b]) if 0x20 <= b < 0x7F and b != 0x5C else b"\\%03o" % b for b in data)
        if k == "V" and self.va_args is not None:
            fmt_ptr = int.from_bytes(self._read(ptr, self.word), "little")
            va_ptr = int.from_bytes(self._read(ptr + self.word, self.word), "little")
            inner = self.mem.read_cstr(fmt_ptr) or b""
            return self.format(inner, self.va_args(va_ptr))
        if k == "a":
            size = 8 if ext[1:2] == "d" or self.word == 8 else 4
            v = int.from_bytes(self._read(ptr, size), "little")
            return number(v, 16, 2 * size + 2, -1, SPECIAL | ZEROPAD)
        if k == "x":
            return number(ptr, 16, w if width < 0 else width, -1, ZEROPAD)
        if k == "e":
            v = to_signed(ptr, 8 * self.word)
            if -4095 <= v < 0:
                name = _KERNEL_ERRNO.get(-v) or _errno.errorcode.get(-v)
                return (f"-{name}" if name else str(v)).encode("utf-8", "surrogateescape")
        return self._hashed(ptr)

    def _hashed(self, ptr: int) -> bytes:
        # ptr_to_id: a 32-bit hash, printed as a zero-padded pointer-width number.
        h = int.from_bytes(hashlib.blake2s(ptr.to_bytes(8, "little"), key=self._salt).digest()[:4], "little")
        return b"%0*x" % (2 * self.word, h)

    def _read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        if not self.mem.is_mapped(addr, size):
            return b""
        return self.mem.read(addr, size)


def _check_pointer(ptr: int, word: int) -> bytes | None:
    if ptr == 0:
        return b"(null)"
    if ptr < PAGE or ptr >= (1 << (8 * word)) - 4095:
        return b"(efault)"
    return None


def to_signed(v: int, bits: int) -> int:
    """``v`` as a signed ``bits``-bit integer (the C cast to s32, long...)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _pad(s: bytes, width: int, flags: int) -> bytes:
    if width <= len(s):
        return s
    fill = b" " * (width - len(s))
    return s + fill if flags & LEFT else fill + s


def number(
    v: int, base: int, width: int, precision: int, flags: int, upper: bool = False, signed: bool = False
) -> bytes:
    """lib/vsprintf.c number(): sign, 0/0x prefix with SPECIAL, precision as minimum digits,
    zero padding (ignored with LEFT), width counting everything."""
    sign = b""
    if v < 0:
        sign, v = b"-", -v
    elif flags & PLUS and signed:
        sign = b"+"
    elif flags & SPACE and signed:
        sign = b" "
    digits = (b"%X" if upper else b"%x") % v if base == 16 else (b"%o" % v if base == 8 else b"%d" % v)
    prefix = b""
    if flags & SPECIAL and base == 16:
        prefix = b"0X" if upper else b"0x"
    elif flags & SPECIAL and base == 8 and digits != b"0":
        prefix = b"0"
    if precision > len(digits):
        digits = b"0" * (precision - len(digits)) + digits
    body_len = len(sign) + len(prefix) + len(digits)
    if width > body_len:
        if flags & LEFT:
            return sign + prefix + digits + b" " * (width - body_len)
        if flags & ZEROPAD:
            return sign + prefix + b"0" * (width - body_len) + digits
        return b" " * (width - body_len) + sign + prefix + digits
    return sign + prefix + digits


def split_level(text: bytes, default: int = 4, angle: bool = False) -> tuple[int, bool, bytes]:
    """printk's header: the first "\\001<digit>" sets the level, "\\001c" marks a
    continuation; every header is stripped (vprintk_store).  ``angle``: 2.4's "<N>" prefix."""
    if angle:
        if len(text) >= 3 and text[0] == 0x3C and 0x30 <= text[1] <= 0x37 and text[2] == 0x3E:
            return text[1] - 0x30, False, text[3:]
        return default, False, text
    level = -1
    cont = False
    while len(text) >= 2 and text[0] == 1 and chr(text[1]) in "01234567cd":
        ch = chr(text[1])
        if ch.isdigit() and level < 0:
            level = int(ch)
        elif ch == "c":
            cont = True
        text = text[2:]
    return (default if level < 0 else level), cont, text

"""lib/string.c and the kstrto* parsers, over emulated memory."""

from __future__ import annotations

import re

from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = ["E2BIG", "EINVAL", "ERANGE", "parse_bool", "parse_integer"]


EINVAL, ERANGE, E2BIG = 22, 34, 7


@kfunc("memcpy", "__memcpy", "memmove", "__memmove", nargs=3)
def _memcpy(k: BaseKernel, c: TrapCall) -> int:
    dst, src, n = c.arg(0), c.arg(1), c.arg(2)
    if n:
        k.machine.write(dst, k.machine.read(src, n))
    return dst


@kfunc("memset", "__memset", nargs=3)
def _memset(k: BaseKernel, c: TrapCall) -> int:
    dst, v, n = c.arg(0), c.arg(1) & 0xFF, c.arg(2)
    if n:
        k.machine.write(dst, bytes([v]) * n)
    return dst


@kfunc("memcmp", "bcmp", nargs=3)
def _memcmp(k: BaseKernel, c: TrapCall) -> int:
    a, b = k.machine.read(c.arg(0), c.arg(2)), k.machine.read(c.arg(1), c.arg(2))
    for x, y in zip(a, b, strict=False):
        if x != y:
            return x - y
    return 0


def _cmp(a: bytes, b: bytes) -> int:
    for x, y in zip(a + b"\0", b + b"\0", strict=False):
        if x != y:
            return 1 if x > y else -1
    return 0


@kfunc("strlen", nargs=1)
def _strlen(k: BaseKernel, c: TrapCall) -> int:
    return len(k.machine.read_cstr(c.arg(0)) or b"")


@kfunc("strnlen", nargs=2)
def _strnlen(k: BaseKernel, c: TrapCall) -> int:
    return len(k.machine.read_cstr(c.arg(0), c.arg(1)) or b"")


@kfunc("strcmp", nargs=2)
def _strcmp(k: BaseKernel, c: TrapCall) -> int:
    return _cmp(k.machine.read_cstr(c.arg(0)) or b"", k.machine.read_cstr(c.arg(1)) or b"")


@kfunc("strncmp", "strncasecmp", "strcasecmp", nargs=3)
def _strncmp(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(2) if c.name != "strcasecmp" else 1 << 16
    a = k.machine.read_cstr(c.arg(0), n) or b""
    b = k.machine.read_cstr(c.arg(1), n) or b""
    if "case" in c.name:
        a, b = a.lower(), b.lower()
    return _cmp(a, b)


@kfunc("strcpy", nargs=2)
def _strcpy(k: BaseKernel, c: TrapCall) -> int:
    k.machine.write(c.arg(0), (k.machine.read_cstr(c.arg(1)) or b"") + b"\0")
    return c.arg(0)


@kfunc("strncpy", nargs=3)
def _strncpy(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(2)
    s = (k.machine.read_cstr(c.arg(1), n) or b"")[:n]
    k.machine.write(c.arg(0), s + b"\0" * (n - len(s)))
    return c.arg(0)


@kfunc("strscpy", "strlcpy", nargs=3)
def _strscpy(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(2)
    s = k.machine.read_cstr(c.arg(1), 1 << 16) or b""
    if n == 0:
        return -E2BIG if c.name == "strscpy" else len(s)
    k.machine.write(c.arg(0), s[: n - 1] + b"\0")
    if c.name == "strlcpy":
        return len(s)
    return -E2BIG if len(s) >= n else len(s)


@kfunc("strcat", "strncat", "strlcat", nargs=3)
def _strcat(k: BaseKernel, c: TrapCall) -> int:
    dst = c.arg(0)
    cur = k.machine.read_cstr(dst) or b""
    add = k.machine.read_cstr(c.arg(1)) or b""
    if c.name == "strncat":
        add = add[: c.arg(2)]
    if c.name == "strlcat":
        total = len(cur) + len(add)
        k.machine.write(dst + len(cur), add[: max(c.arg(2) - len(cur) - 1, 0)] + b"\0")
        return total
    k.machine.write(dst + len(cur), add + b"\0")
    return dst


@kfunc("strchr", "strrchr", "strnchr", nargs=2)
def _strchr(k: BaseKernel, c: TrapCall) -> int:
    s = k.machine.read_cstr(c.arg(0)) or b""
    ch = (c.arg(2) if c.name == "strnchr" else c.arg(1)) & 0xFF
    if c.name == "strnchr":
        s = s[: c.arg(1)]
    if ch == 0:
        return c.arg(0) + len(s)
    i = s.rfind(bytes([ch])) if c.name == "strrchr" else s.find(bytes([ch]))
    return 0 if i < 0 else c.arg(0) + i


@kfunc("strstr", nargs=2)
def _strstr(k: BaseKernel, c: TrapCall) -> int:
    i = (k.machine.read_cstr(c.arg(0)) or b"").find(k.machine.read_cstr(c.arg(1)) or b"")
    return 0 if i < 0 else c.arg(0) + i


def parse_integer(text: bytes, base: int, signed: bool, bits: int) -> int | None:
    """kstrtoll/kstrtoull: optional sign, 0x/0 prefixes with base 0, one trailing newline;
    None when invalid or out of range (the caller words -EINVAL / -ERANGE)."""
    s = text[:-1] if text.endswith(b"\n") else text
    neg = False
    if s[:1] == b"+":
        s = s[1:]
    elif s[:1] == b"-" and signed:
        neg, s = True, s[1:]
    if base == 0:
        base = 16 if s[:2].lower() == b"0x" and len(s) > 2 else 8 if s[:1] == b"0" and len(s) > 1 else 10
    if base == 16 and s[:2].lower() == b"0x":
        s = s[2:]
    if not s:
        return None
    try:
        v = int(s, base)
    except ValueError:
        return None
    if neg:
        v = -v
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return v if lo <= v <= hi else None


_KSTRTO = {
    "kstrtoull": (False, 64, 8), "kstrtoll": (True, 64, 8), "kstrtouint": (False, 32, 4),
    "kstrtoint": (True, 32, 4), "kstrtou16": (False, 16, 2), "kstrtos16": (True, 16, 2),
    "kstrtou8": (False, 8, 1), "kstrtos8": (True, 8, 1), "_kstrtoul": (False, 64, 8),
    "_kstrtol": (True, 64, 8), "kstrtoul": (False, 64, 8), "kstrtol": (True, 64, 8),
}  # fmt: skip

for _name, (_signed, _bits, _size) in _KSTRTO.items():

    def _make(name: str, signed: bool, bits: int, size: int) -> None:
        @kfunc(name, nargs=3)
        def kstrto(k: BaseKernel, c: TrapCall) -> int:
            v = parse_integer(k.machine.read_cstr(c.arg(0)) or b"", c.arg(1), signed, bits)
            if v is None:
                return -EINVAL
            k.machine.write_int(c.arg(2), size, v)
            return 0

    _make(_name, _signed, _bits, _size)


@kfunc("kstrtobool", "strtobool", nargs=2)
def _kstrtobool(k: BaseKernel, c: TrapCall) -> int:
    v = parse_bool(k.machine.read_cstr(c.arg(0), 3) or b"")
    if v is None:
        return -EINVAL
    k.machine.write_int(c.arg(1), 1, int(v))
    return 0


def parse_bool(s: bytes) -> bool | None:
    """kstrtobool: y/Y/1, n/N/0, on/off."""
    c = s[:1].lower()
    if c in (b"y", b"1", b"t"):
        return True
    if c in (b"n", b"0", b"f"):
        return False
    if s[:2].lower() == b"on":
        return True
    if s[:2].lower() == b"of":
        return False
    return None


@kfunc("simple_strtoul", "simple_strtoull", "simple_strtol", "simple_strtoll", nargs=3)
def _simple_strtoul(k: BaseKernel, c: TrapCall) -> int:
    s = k.machine.read_cstr(c.arg(0)) or b""
    base = c.arg(2)
    i = 0
    neg = s[:1] == b"-" and c.name in ("simple_strtol", "simple_strtoll")
    if neg:
        i = 1
    if base in (0, 16) and s[i : i + 2].lower() == b"0x":
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if s[i : i + 1] == b"0" else 10
    v = 0
    while i < len(s):
        d = int(chr(s[i]), 36) if chr(s[i]).isalnum() else 99
        if d >= base:
            break
        v, i = v * base + d, i + 1
    if c.arg(1):
        k.machine.write_word(c.arg(1), c.arg(0) + i)
    return -v if neg else v


# -- lib/find_bit.c and bitmap helpers (cpumask iteration goes through these) ----------------------
def _bitmap(k: BaseKernel, addr: int, size: int) -> int:
    nbytes = (size + 7) // 8
    return int.from_bytes(k.machine.read(addr, nbytes), "little") & ((1 << size) - 1) if size else 0


def _next_set(value: int, size: int, offset: int) -> int:
    v = value >> offset if offset < size else 0
    return size if v == 0 else min(offset + ((v & -v).bit_length() - 1), size)


@kfunc("_find_next_bit", "_find_next_zero_bit", "_find_next_and_bit", "_find_next_andnot_bit", nargs=4)
def _find_next_bit(k: BaseKernel, c: TrapCall) -> int:
    if c.name in ("_find_next_and_bit", "_find_next_andnot_bit"):
        size, offset = c.arg(2), c.arg(3)
        other = _bitmap(k, c.arg(1), size)
        value = _bitmap(k, c.arg(0), size) & (other if c.name == "_find_next_and_bit" else ~other)
    else:
        size, offset = c.arg(1), c.arg(2)
        value = _bitmap(k, c.arg(0), size)
        if c.name == "_find_next_zero_bit":
            value = ~value & ((1 << size) - 1)
    return _next_set(value, size, offset)


@kfunc("_find_first_bit", "_find_first_zero_bit", nargs=2)
def _find_first_bit(k: BaseKernel, c: TrapCall) -> int:
    size = c.arg(1)
    value = _bitmap(k, c.arg(0), size)
    if c.name == "_find_first_zero_bit":
        value = ~value & ((1 << size) - 1)
    return _next_set(value, size, 0)


@kfunc("_find_last_bit", nargs=2)
def _find_last_bit(k: BaseKernel, c: TrapCall) -> int:
    size = c.arg(1)
    value = _bitmap(k, c.arg(0), size)
    return value.bit_length() - 1 if value else size


@kfunc("__bitmap_weight", nargs=2)
def _bitmap_weight(k: BaseKernel, c: TrapCall) -> int:
    return bin(_bitmap(k, c.arg(0), c.arg(1))).count("1")


@kfunc("sscanf", nargs=2, varargs=True)
def _sscanf(k: BaseKernel, c: TrapCall) -> int:
    """sscanf(buf, fmt, ...) as lib/vsprintf.c's vsscanf: whitespace matches any run of
    whitespace, literals must match, conversions %[*][width][hh|h|l|ll|z]{d,i,u,x,X,o,s,c,n};
    the number of values stored, up to the first mismatch."""
    m = k.machine
    text = (m.read_cstr(c.arg(0)) or b"").decode("latin-1")
    fmt = (m.read_cstr(c.arg(1)) or b"").decode("latin-1")
    spec = re.compile(r"%(\*?)(\d*)(hh|h|ll|l|z|L)?([diuxXosc n%])")
    pos = fi = stored = argi = 0
    sizes = {"hh": 1, "h": 2, None: 4, "l": 8, "ll": 8, "z": 8, "L": 8}
    while fi < len(fmt):
        ch = fmt[fi]
        if ch.isspace():
            while fi < len(fmt) and fmt[fi].isspace():
                fi += 1
            while pos < len(text) and text[pos].isspace():
                pos += 1
            continue
        if ch != "%":
            if pos >= len(text) or text[pos] != ch:
                break
            pos, fi = pos + 1, fi + 1
            continue
        mt = spec.match(fmt, fi)
        if mt is None:
            break
        fi = mt.end()
        skip, width, qual, conv = mt.group(1), mt.group(2), mt.group(3), mt.group(4)
        if conv == "%":
            if pos >= len(text) or text[pos] != "%":
                break
            pos += 1
            continue
        if conv == "n":
            if not skip:
                m.write_int(c.arg(2 + argi), 4, pos)
                argi += 1
            continue
        if conv not in "c" and conv != "n":
            while pos < len(text) and text[pos].isspace():
                pos += 1
        if pos >= len(text):
            break
        limit = int(width) if width else None
        if conv == "c":
            n = limit or 1
            chunk = text[pos : pos + n]
            if len(chunk) < n:
                break
            pos += n
            if not skip:
                m.write(c.arg(2 + argi), chunk.encode("latin-1"))
                argi, stored = argi + 1, stored + 1
            continue
        if conv == "s":
            end = pos
            while end < len(text) and not text[end].isspace() and (limit is None or end - pos < limit):
                end += 1
            word = text[pos:end]
            pos = end
            if not skip:
                m.write(c.arg(2 + argi), word.encode("latin-1") + b"\0")
                argi, stored = argi + 1, stored + 1
            continue
        base = {"d": 10, "u": 10, "x": 16, "X": 16, "o": 8, "i": 0}[conv]
        field = text[pos : pos + limit] if limit else text[pos:]
        pat = {10: r"[-+]?\d+", 16: r"[-+]?(0[xX])?[0-9a-fA-F]+", 8: r"[-+]?[0-7]+",
               0: r"[-+]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)"}[base]  # fmt: skip
        num = re.match(pat, field)
        if num is None or (conv == "u" and num.group(0).startswith("-")):
            break
        pos += num.end()
        if not skip:
            size = sizes[qual]
            digits = num.group(0)
            body = digits.lstrip("+-")
            if base == 0:
                base = 16 if body[:2] in ("0x", "0X") else 8 if len(body) > 1 and body[0] == "0" else 10
            value = int(body, base) * (-1 if digits.startswith("-") else 1)
            m.write_int(c.arg(2 + argi), size, value & ((1 << (8 * size)) - 1))
            argi, stored = argi + 1, stored + 1
    return stored


@kfunc("bin2hex", nargs=3)
def _bin2hex(k: BaseKernel, c: TrapCall) -> int:
    """bin2hex(dst, src, count): two lowercase hex digits per byte (lib/hexdump.c's
    hex_byte_pack), no terminating NUL; returns dst + 2 * count."""
    dst, src, count = c.arg(0), c.arg(1), c.arg(2)
    if count:
        k.machine.write(dst, k.machine.read(src, count).hex().encode())
    return dst + 2 * count

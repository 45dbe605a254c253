"""insmod's ``name=value`` module arguments for 2.4 objects (process_module_arguments of
modutils 2.4): each value parsed per the ``parm_<name>`` type in .modinfo and written into the
module image at the parameter's symbol.  Strings of type ``s`` are copied after the image
(insmod's string patches) and the pointer set to the copy; ``c<N>`` strings are copied in place.

Errors are modutils' sentences (:class:`ParamError`).
"""

from __future__ import annotations

import struct

from lkm.errors import LkmError
from lkm.module.file import ModuleFile
from lkm.module.modinfo import parse_param24_spec

SIZES = {"b": 1, "h": 2, "i": 4, "l": 4}  # i386 char, short, int, long
POINTER = 4
ESCAPES = {"a": "\a", "b": "\b", "e": "\033", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class ParamError(LkmError):
    """An argument insmod refuses (its message, e.g. "too many values for x (max 4)")."""


class Patch:
    """Bytes to write at an image offset; ``string`` is a copy placed after the image whose
    address goes into the pointer at ``offset``."""

    __slots__ = ("offset", "data", "string")

    def __init__(self, offset: int, data: bytes = b"", string: bytes | None = None) -> None:
        self.offset = offset
        self.data = data
        self.string = string


def _strtoul(text: str) -> tuple[int, str]:
    """C strtoul(text, &end, 0): optional sign, 0x/0 prefixes; returns (value, rest)."""
    i, sign = 0, 1
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    base = 10
    if text[i : i + 2].lower() == "0x" and i + 2 < len(text) and text[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif text[i : i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < len(text) and text[j].lower() in digits:
        j += 1
    value = int(text[i:j], base) if j > i else 0
    return sign * value, text[j:]


def _c_unquote(text: str, key: str) -> tuple[str, str]:
    """A double-quoted C string at the start of ``text``: (value, rest after the quote)."""
    out: list[str] = []
    i = 1
    while True:
        if i >= len(text):
            raise ParamError(f"improperly terminated string argument for {key}")
        ch = text[i]
        if ch == '"':
            return "".join(out), text[i + 1 :]
        if ch == "\\" and i + 1 < len(text):
            i += 1
            ch = text[i]
            if ch in "01234567":
                j = i
                while j < len(text) and j < i + 3 and text[j] in "01234567":
                    j += 1
                out.append(chr(int(text[i:j], 8)))
                i = j
                continue
            out.append(ESCAPES.get(ch, ch))
        else:
            out.append(ch)
        i += 1


def module_arguments(
    mod: ModuleFile, args: list[str], symbol_offset: dict[str, int], *, optional: bool = False
) -> list[Patch]:
    """The patches for ``args`` (``name=value`` words; others ignored).  ``symbol_offset``: each
    symbol the module defines -> its offset in the image.  ``optional``: unknown names skipped
    (arguments restored from a persist file)."""
    has_modinfo = mod.get("kernel_version") is not None or any(k.startswith("parm_") for k, _ in mod.modinfo)
    patches: list[Patch] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        if not eq:
            continue
        if has_modinfo:
            fmt = mod.get(f"parm_{name}")
            if fmt is None:
                if optional:
                    continue
                raise ParamError(f"invalid parameter parm_{name}")
            spec = parse_param24_spec(fmt)
            lo, hi, typ, size = spec.min, spec.max, spec.type, spec.size
        else:
            typ = "i" if value[:1].isdigit() else "s"
            lo = hi = 0
            size = None
        if name not in symbol_offset:
            if optional:
                continue
            raise ParamError(f"symbol for parameter {name} not found")
        patches.extend(_values(name, value, typ, size, lo, hi, symbol_offset[name]))
    return patches


def _values(key: str, text: str, typ: str, size: int | None, lo: int, hi: int, loc: int) -> list[Patch]:
    out: list[Patch] = []
    n = 1
    while text:
        if typ in ("s", "c"):
            if text[0] == '"':
                value, text = _c_unquote(text, key)
            else:
                value, comma, rest = text.partition(",")
                text = comma + rest
            raw = value.encode("latin-1", "replace")
            if typ == "s":
                out.append(Patch(loc, string=raw))
                loc += POINTER
            else:
                if size is None:
                    raise ParamError(f"parameter type 'c' for {key} must be followed by the maximum size")
                if len(raw) >= size:
                    raise ParamError(f"string too long for {key} (max {size - 1})")
                out.append(Patch(loc, raw + b"\0"))
                loc += size
        elif typ in SIZES:
            value_int, text = _strtoul(text)
            width = SIZES[typ]
            out.append(Patch(loc, struct.pack("<Q", value_int & (1 << 64) - 1)[:width]))
            loc += width
        else:
            raise ParamError(f"unknown parameter type '{typ}' for {key}")
        text = text.lstrip()
        if not text:
            break
        if text[0] != ",":
            raise ParamError(f"invalid argument syntax for {key}: '{text[0]}'")
        n += 1
        if hi and n > hi:
            raise ParamError(f"too many values for {key} (max {hi})")
        text = text[1:]
    if lo and n < lo:
        raise ParamError(f"too few values for {key} (min {lo})")
    return out


def strings_size(patches: list[Patch]) -> int:
    """Bytes the string copies take after the image."""
    return sum(len(p.string) + 1 for p in patches if p.string is not None)


def apply(image: bytearray, base: int, patches: list[Patch]) -> None:
    """Write ``patches`` into ``image`` (at ``base``); string copies go at its current end."""
    for p in patches:
        if p.string is not None:
            at = len(image)
            image += p.string + b"\0"
            struct.pack_into("<I", image, p.offset, base + at)
        else:
            image[p.offset : p.offset + len(p.data)] = p.data

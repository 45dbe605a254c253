"""2.4 insmod's ``symbol=value`` arguments (insmod.c process_module_arguments): each value is
written into the module's own variable before relocation, as ``.modinfo``'s
``parm_<name>=[min[-max]]type`` says: ``b``/``h``/``i``/``l`` integers (strtoul, base 0), ``s``
a pointer to a copy of the string (patched to .kstrtab), ``c<N>`` the string copied into an
N-byte slot; comma-separated values fill an array; a value in double quotes is C-unescaped.
Errors carry insmod's wording."""

from __future__ import annotations

import struct

from lkm.link.obj24 import SHN_HIRESERVE, ObjFile
from lkm.module.file import ModuleFile

__all__ = ["INT_WIDTH", "ParamError", "apply_arguments", "strtoul"]

INT_WIDTH = {"b": 1, "h": 2, "i": 4, "l": 4}  # i386
_ESCAPES = {"a": 7, "b": 8, "e": 27, "f": 12, "n": 10, "r": 13, "t": 9}


class ParamError(ValueError):
    """A module argument insmod refuses (message in insmod's words)."""


def strtoul(text: str, at: int) -> tuple[int, int]:
    """C strtoul(text + at, &end, 0) on a 32-bit long: (value, end)."""
    i = at
    while i < len(text) and text[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < len(text) and text[i] in "+-":
        neg, i = text[i] == "-", i + 1
    base = 10
    if text[i : i + 2].lower() == "0x" and i + 2 < len(text) and text[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif text[i : i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    start = i
    while i < len(text) and text[i].lower() in digits:
        i += 1
    if i == start:
        return 0, at  # no number: nothing consumed
    value = min(int(text[start:i], base), 0xFFFFFFFF)
    return (-value if neg else value) & 0xFFFFFFFF, i


def _decimal(text: str, at: int) -> tuple[int, int]:
    """strtoul(text + at, &end, 10) for the min/max of a parameter type."""
    end = at
    while end < len(text) and text[end].isdigit():
        end += 1
    return (int(text[at:end]) if end > at else 0), end


def _quoted(text: str, at: int, key: str) -> tuple[str, int]:
    """A "..." value C-unescaped; (string, index after the closing quote)."""
    out: list[str] = []
    i = at + 1
    while True:
        if i >= len(text):
            raise ParamError(f"improperly terminated string argument for {key}")
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            i += 1
            ch = text[i]
            if ch in "01234567":
                n = 1
                while n < 3 and i + 1 < len(text) and text[i + 1] in "01234567":
                    i, n = i + 1, n + 1
                out.append(chr(int(text[i - n + 1 : i + 1], 8) & 0xFF))
            else:
                out.append(chr(_ESCAPES[ch]) if ch in _ESCAPES else ch)
        else:
            out.append(ch)
        i += 1


def apply_arguments(obj: ObjFile, mod: ModuleFile, args: list[str] | tuple[str, ...]) -> None:
    """process_module_arguments(required=1) over ``args``."""
    has_modinfo = mod.get("kernel_version") is not None
    for arg in args:
        name, eq, value = arg.partition("=")
        if not eq:
            continue
        if has_modinfo:
            fmt = mod.get(f"parm_{name}")
            if fmt is None:
                raise ParamError(f"invalid parameter parm_{name}")
            lo, hi, k = 1, 1, 0
            if fmt[:1].isdigit():
                lo, k = _decimal(fmt, 0)
                hi = lo
                if fmt[k : k + 1] == "-":
                    hi, k = _decimal(fmt, k + 1)
            fmt = fmt[k:]
        else:
            fmt, lo, hi = ("i" if value[:1].isdigit() else "s"), 0, 0
        sym = obj.find_symbol(name)
        if sym is None or sym.secidx > SHN_HIRESERVE or sym.secidx >= len(obj.sections):
            raise ParamError(f"symbol for parameter {name} not found")
        sec = obj.sections[sym.secidx]
        _fill(obj, sec.idx, sym.value, fmt, value, name, lo, hi)


def _fill(obj: ObjFile, secidx: int, loc: int, fmt: str, text: str, key: str, lo: int, hi: int) -> None:
    sec = obj.sections[secidx]
    kind = fmt[:1]
    n, i = 1, 0
    while i < len(text):
        if kind in ("s", "c"):
            if text[i] == '"':
                value, i = _quoted(text, i, key)
            else:
                comma = text.find(",", i)
                value, i = (text[i:comma], comma) if comma >= 0 else (text[i:], len(text))
            if kind == "s":
                obj.string_patch(secidx, loc, value)
                loc += 4
            else:
                size, end = strtoul(fmt, 1)
                if end == 1:
                    raise ParamError(f"parameter type 'c' for {key} must be followed by the maximum size")
                data = value.encode("latin-1", "replace")
                if len(data) >= size - 1:
                    raise ParamError(f"string too long for {key} (max {size - 1})")
                _store(sec.contents, loc, data + b"\0", key)
                loc += size
        elif kind in INT_WIDTH:
            number, i = strtoul(text, i)
            width = INT_WIDTH[kind]
            _store(sec.contents, loc, struct.pack("<I", number)[:width], key)
            loc += width
        else:
            raise ParamError(f"unknown parameter type '{kind}' for {key}")
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        if text[i] != ",":
            raise ParamError(f"invalid argument syntax for {key}: '{text[i]}'")
        n += 1
        if hi and n > hi:
            raise ParamError(f"too many values for {key} (max {hi})")
        i += 1
    if lo and n < lo:
        raise ParamError(f"too few values for {key} (min {lo})")


def _store(contents: bytearray | None, at: int, data: bytes, key: str) -> None:
    if contents is None or at + len(data) > len(contents):
        raise ParamError(f"parameter {key} does not fit its variable")
    contents[at : at + len(data)] = data

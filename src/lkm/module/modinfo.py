"""The .modinfo section: ``tag=value`` strings, and the parameters they describe.

Strings are split the way libkmod splits them (leading NUL padding skipped, empty strings
dropped, the key ends at the first '='), so every tool sees the same entries as kmod.
Parameters come in two dialects: 2.6+ ``parm=name:desc`` / ``parmtype=name:type`` and 2.4
``parm_<name>=[min[-max]]type[p]`` / ``parm_desc_<name>=desc``.
"""

from __future__ import annotations

from lkm.record import Record

__all__ = ["PARAM24_TYPES", "Param24Spec", "Parameter", "parameters", "parse_modinfo", "parse_param24_spec"]


def parse_modinfo(data: bytes) -> list[tuple[str, str]]:
    """(key, value) pairs in file order, duplicates kept."""
    start = 0
    n = len(data)
    while start < n and data[start] == 0 and n - start > 1:
        start += 1
    if n - start <= 1:
        return []
    text = data[start:].decode("utf-8", "surrogateescape")
    out: list[tuple[str, str]] = []
    for item in text.split("\0"):
        if item:
            k, _, v = item.partition("=")
            out.append((k, v))
    return out


# 2.4 type letters, as modutils' modinfo names them.
PARAM24_TYPES: dict[str, str] = {
    "b": "byte",
    "h": "short",
    "i": "int",
    "l": "long",
    "s": "string",
    "c": "char",
}


class Param24Spec(Record):
    """A 2.4 ``parm_`` type specification, e.g. ``1-4ip`` or ``c20p``: ``type`` is one of
    PARAM24_TYPES ("" or another letter when malformed), ``size`` the N of cN, ``modifier`` any
    modifier letter other than 'p' (malformed)."""

    __slots__ = ("spec", "min", "max", "type", "size", "persistent", "modifier")

    def __init__(
        self, spec: str, min: int, max: int, type: str, size: int | None, persistent: bool, modifier: str
    ) -> None:
        self.spec = spec
        self.min = min
        self.max = max
        self.type = type
        self.size = size
        self.persistent = persistent
        self.modifier = modifier

    @property
    def valid(self) -> bool:
        return (
            self.type in PARAM24_TYPES
            and self.modifier == ""
            and not (self.type == "c" and self.size is None)
            and not (self.type == "s" and self.persistent)
            and self.min <= self.max
        )

    def describe(self) -> str:
        """The parameter's type as modutils' ``modinfo -p`` words it (without the name)."""
        if self.type == "":
            return "no format character!"
        if self.type not in PARAM24_TYPES:
            return f"unknown format character '{self.type}'"
        words = PARAM24_TYPES[self.type]
        if self.type == "c" and self.size is None:
            words += " *** missing string size ***"
        if self.persistent:
            words += " persistent" + (" (invalid)" if self.type == "s" else "")
        elif self.modifier:
            words += f" unknown format modifier '{self.modifier}'"
        if self.min > 1 or self.max > 1:
            words += f" array (min = {self.min}, max = {self.max})"
        return words


_ASCII_DIGITS = frozenset("0123456789")
_ULONG_MAX = 2**64 - 1


def _digits(s: str, i: int) -> int:
    while i < len(s) and s[i] in _ASCII_DIGITS:  # C isdigit: ASCII only
        i += 1
    return i


def _strtoul(digits: str) -> int:
    """strtoul of a run of ASCII digits: saturates at ULONG_MAX (int() refuses huge runs)."""
    return _ULONG_MAX if len(digits) > 20 else min(int(digits), _ULONG_MAX)


def parse_param24_spec(spec: str) -> Param24Spec:
    """Parse like modutils: optional ``min[-max]``, a type letter, ``cN``'s size, one modifier."""
    i = 0
    if spec[:1] in _ASCII_DIGITS:
        j = _digits(spec, 0)
        lo = _strtoul(spec[:j])
        i = j
        if spec[i : i + 1] == "-":
            j = _digits(spec, i + 1)
            hi = _strtoul(spec[i + 1 : j]) if j > i + 1 else 0  # strtoul of nothing is 0
            i = j
        else:
            hi = lo
    else:
        lo = hi = 1
    typ = spec[i : i + 1]
    i += 1
    size = None
    if typ == "c":
        j = _digits(spec, i)
        size = _strtoul(spec[i:j]) if j > i else None
        i = j
    mod = spec[i : i + 1]
    return Param24Spec(spec, lo, hi, typ, size, mod == "p", "" if mod in ("", "p") else mod)


class Parameter(Record):
    """One module parameter, merged from its .modinfo entries.  ``type`` is the parmtype value
    ("int", "charp", "array of int") or, for 2.4, the raw spec that ``spec24`` parses."""

    __slots__ = ("name", "type", "description", "spec24")

    def __init__(
        self, name: str, type: str | None, description: str | None, spec24: Param24Spec | None = None
    ) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.spec24 = spec24

    def describe24(self) -> str:
        """modutils' one-line description: ``name type[ persistent][ array ...][, description "..."]``."""
        assert self.spec24 is not None
        out = f"{self.name} {self.spec24.describe()}"
        if self.description:
            # modutils indents continuation lines of a multi-line description by two spaces.
            out += ', description "' + self.description.replace("\n", "\n  ") + '"'
        return out


def parameters(entries: list[tuple[str, str]], *, dialect24: bool = False) -> list[Parameter]:
    """Parameters in order of first appearance, later duplicates overriding (kmod's merge).
    ``parm_<name>`` entries describe parameters only in 2.4 objects (``dialect24``)."""
    order: list[str] = []
    seen: set[str] = set()
    desc: dict[str, str] = {}
    types: dict[str, str] = {}
    spec24: dict[str, str] = {}
    for key, value in entries:
        if key == "parm" or key == "parmtype":
            name, colon, rest = value.partition(":")
            if not colon:
                continue  # kmod: 'Found invalid "parm=...": missing ':''
            if name not in seen:
                seen.add(name)
                order.append(name)
            (desc if key == "parm" else types)[name] = rest
        elif not dialect24:
            continue
        elif key.startswith("parm_desc_"):
            desc[key[10:]] = value
        elif key.startswith("parm_"):
            name = key[5:]
            if name not in seen:
                seen.add(name)
                order.append(name)
            spec24[name] = value
    out = []
    for name in order:  # a 2.4 parm_desc_ without its parm_ describes nothing, as in modutils
        if name in spec24:
            s = spec24[name]
            out.append(Parameter(name, s, desc.get(name), parse_param24_spec(s)))
        else:
            out.append(Parameter(name, types.get(name), desc.get(name)))
    return out

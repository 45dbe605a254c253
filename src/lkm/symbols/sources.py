"""Parsers of the text symbol sources, and the format sniffer.

Every parser takes the file's text (str) or bytes, returns a list of
:class:`~lkm.symbols.table.KernelSymbol` in file order, and raises :class:`~lkm.errors.LkmError`
with a one-line reason naming the format and the line (the path too when given).

* System.map: ``ADDRESS TYPE NAME`` (nm -n output).
* /proc/kallsyms: the same, module symbols followed by ``\\t[MODULE]``.  Read without privilege
  every address is zero: kept as 0 here (:func:`addresses_hidden` tells);
  :class:`~lkm.symbols.table.SymbolTable` treats such a batch as having no addresses.  A module
  symbol's letter is upper case only when the module exports it through its non-GPL __ksymtab,
  so those are marked exported (GPL exports of modules cannot be told from locals there).
* 2.4 /proc/ksyms: ``ADDRESS NAME`` (kernel) and ``ADDRESS NAME\\t[MODULE]``; every line is an
  export.  ``GPLONLY_`` marks a GPL-only export; a symbol-version suffix ``_R<prefix><8 hex>``
  (``printk_R1b7d4074``, ``printk_Rsmp_1b7d4074``) is stripped into ``crc`` (see
  :func:`split_versioned_name`).
* Module.symvers: ``CRC\\tNAME\\tMODULE\\tEXPORT_TYPE\\tNAMESPACE`` (5.10 on), ``CRC\\tNAME\\t
  NAMESPACE\\tMODULE\\tEXPORT_TYPE`` (5.4 to 5.9), ``CRC\\tNAME\\tMODULE\\tEXPORT_TYPE``
  (before 5.4), ``CRC\\tNAME\\tMODULE`` (early 2.6); the column order of a 5-column line is told
  by where its EXPORT_* column is.  MODULE ``vmlinux`` is the core kernel.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from array import array
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter

from lkm import cache as store
from lkm.errors import LkmError
from lkm.safeio import read_bytes
from lkm.symbols.image import decompress_kernel_image, kernel_arch, recover_kallsyms
from lkm.symbols.ksymtab import RawExport, raw_image_exports
from lkm.symbols.symbol import (
    GPLONLY_PREFIX,
    KernelSymbol,
    paused_gc,
    split_versioned_name,
    version_prefix,
)
from lkm.symbols.vmlinux import parse_vmlinux

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

__all__ = [
    "EXPORT_TYPES",
    "FORMATS",
    "GPLONLY_PREFIX",
    "IMAGE_SYMBOLS",
    "addresses_hidden",
    "detect_format",
    "format_kallsyms",
    "image_symbols",
    "is_kernel_image",
    "load",
    "parse",
    "parse_kallsyms",
    "parse_kernel_image",
    "parse_ksyms",
    "parse_module_symvers",
    "parse_system_map",
    "raw_load_address",
    "read",
    "split_versioned_name",
    "version_prefix",
]

FORMATS = ("system.map", "kallsyms", "ksyms", "module.symvers", "vmlinux", "kernel-image")

_NAMES = {
    "system.map": "System.map",
    "kallsyms": "kallsyms",
    "ksyms": "ksyms",
    "module.symvers": "Module.symvers",
}

# One line each; the whole text is matched at once (in C) and checked against the line count.
_KALLSYMS_RE = re.compile(r"^([0-9A-Fa-f]+) ([!-~]) (\S+)(?:\t\[([^\s\]]+)\])?$", re.M)
_KALLSYMS_LINE = r"[0-9A-Fa-f]+ [!-~] \S+(?:\t\[[^\s\]]+\])?"
_KALLSYMS_VALID = re.compile(rf"(?:(?:{_KALLSYMS_LINE})?\n)*(?:{_KALLSYMS_LINE})?")
_KSYMS_RE = re.compile(r"^([0-9A-Fa-f]+) (\S+)(?:\t\[([^\s\]]+)\])?$", re.M)


_HEX = frozenset("0123456789abcdefABCDEF")

EXPORT_TYPES = {
    "EXPORT_SYMBOL": False,
    "EXPORT_SYMBOL_GPL": True,
    "EXPORT_SYMBOL_GPL_FUTURE": False,
    "EXPORT_UNUSED_SYMBOL": False,
    "EXPORT_UNUSED_SYMBOL_GPL": True,
}  # export type -> GPL-only


def _text(data: str | bytes | bytearray | memoryview) -> str:
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "surrogateescape")


def _error(fmt: str, lineno: int, reason: str, line: str, path: str | None) -> LkmError:
    shown = line if len(line) <= 100 else line[:97] + "..."
    return LkmError(f"{_NAMES.get(fmt, fmt)} line {lineno}: {reason}: {shown!r}", path=path)


def _match_all(
    regex: re.Pattern[str], text: str, fmt: str, expect: str, path: str | None
) -> list[tuple[str, ...]]:
    """Every line's groups; empty lines skipped; the first line that does not match raises."""
    rows: list[tuple[str, ...]] = regex.findall(text)
    lines = text.split("\n")
    if len(rows) == len(lines) - lines.count(""):
        return rows
    one = re.compile(regex.pattern.strip("^$"))
    for n, line in enumerate(lines, 1):
        if line and one.fullmatch(line) is None:
            raise _error(fmt, n, f"malformed line (expected {expect})", line, path)
    raise LkmError(f"{_NAMES[fmt]}: cannot split into lines", path=path)  # pragma: no cover


# -- System.map and /proc/kallsyms --------------------------------------------------------------


def parse_system_map(data: str | bytes, *, path: str | None = None) -> list[KernelSymbol]:
    """System.map: ``ADDRESS TYPE NAME`` lines of the core kernel."""
    return _parse_map(data, path, "system.map")


def parse_kallsyms(data: str | bytes, *, path: str | None = None) -> list[KernelSymbol]:
    """/proc/kallsyms, module lines included (in file order: modules newest first)."""
    return _parse_map(data, path, "kallsyms")


def _parse_map(data: str | bytes, path: str | None, fmt: str) -> list[KernelSymbol]:
    text = _text(data)
    if _KALLSYMS_VALID.fullmatch(text) is None:
        _match_all(_KALLSYMS_RE, text, fmt, "'ADDRESS TYPE NAME'", path)  # raises at the bad line
        raise LkmError(f"{_NAMES[fmt]}: malformed (no single bad line found)", path=path)  # pragma: no cover
    # Validated: single spaces and one tab per module line are the only blanks, so the columns
    # come out of str.split in C.  Core lines come first in /proc/kallsyms: they are split
    # three tokens a line, the module lines (from the line of the first tab) four a line.
    tab = text.find("\t")
    cut = len(text) if tab < 0 else text.rfind("\n", 0, tab) + 1
    if tab >= 0 and fmt == "system.map":
        bad = text[cut:].partition("\n")[0]
        raise _error(fmt, text.count("\n", 0, cut) + 1, "a module column in a System.map", bad, path)
    head = text[:cut].split()
    addr_s, types, names = head[0::3], head[1::3], head[2::3]
    mods: list[str | None] = []
    if tab >= 0:
        tail = text[cut:]
        words = tail.split()
        mod_cols: list[str | None]
        if len(words) == 4 * tail.count("\t"):  # every line a module line
            addr_s += words[0::4]
            types += words[1::4]
            names += words[2::4]
            mod_cols = [m[1:-1] for m in words[3::4]]
        else:
            rows = _KALLSYMS_RE.findall(tail)
            addr_s += [r[0] for r in rows]
            types += [r[1] for r in rows]
            names += [r[2] for r in rows]
            mod_cols = [r[3] or None for r in rows]
        mods = [None] * (len(head) // 3)
        mods += mod_cols
    return paused_gc(_build_map, addr_s, types, names, mods)


def _build_map(
    addr_s: list[str], types: list[str], names: list[str], mods: list[str | None]
) -> list[KernelSymbol]:
    addrs = map(int, addr_s, repeat(16))
    if not mods:
        return list(map(KernelSymbol, names, addrs, types))
    exported = [m is not None and t.isupper() for m, t in zip(mods, types, strict=True)]
    return list(map(KernelSymbol, names, addrs, types, mods, exported))


def addresses_hidden(symbols: Iterable[KernelSymbol]) -> bool:
    """True when there are addresses and every one is zero (kallsyms read without privilege)."""
    addrs = [a for a in map(attrgetter("address"), symbols) if a is not None]
    return len(addrs) > 1 and not any(addrs)


def format_kallsyms(symbols: Iterable[KernelSymbol], *, bits: int = 64) -> str:
    """/proc/kallsyms lines (``"%px %c %s"``, ``"\\t[%s]"`` for module symbols): addresses in
    16 hex digits, 8 when ``bits`` is 32; an unknown address prints as 0, an unknown type as '?'.
    Core lines are System.map lines too."""
    if bits not in (32, 64):
        raise LkmError(f"word size {bits} bits: expected 32 or 64")
    width = bits // 4
    out = []
    for s in symbols:
        line = f"{s.address or 0:0{width}x} {s.type or '?'} {s.name}"
        out.append(f"{line}\t[{s.module}]\n" if s.module else line + "\n")
    return "".join(out)


# -- 2.4 /proc/ksyms ----------------------------------------------------------------------------


def parse_ksyms(
    data: str | bytes, *, path: str | None = None, prefix: str | None = None
) -> list[KernelSymbol]:
    """2.4 /proc/ksyms (``"%0*lx %s\\t[%s]\\n"`` module, ``"%0*lx %s\\n"`` kernel).  Every line is
    an export; ``GPLONLY_`` is stripped into gpl_only, then a version suffix into crc, with the
    prefix of :func:`version_prefix` (or ``prefix`` if given)."""
    text = _text(data)
    rows = _match_all(_KSYMS_RE, text, "ksyms", "'ADDRESS NAME' or 'ADDRESS NAME<TAB>[MODULE]'", path)
    raw = [r[1] for r in rows]
    if prefix is None:
        prefix = version_prefix(raw)
    out = []
    for (addr, _name, mod), name in zip(rows, raw, strict=True):
        gpl = name.startswith(GPLONLY_PREFIX)
        if gpl:
            name = name[len(GPLONLY_PREFIX) :]
        base, crc = split_versioned_name(name, prefix)
        out.append(KernelSymbol(base, int(addr, 16), None, mod or None, True, gpl, crc, None))
    return out


# -- Module.symvers -----------------------------------------------------------------------------


def parse_module_symvers(data: str | bytes, *, path: str | None = None) -> list[KernelSymbol]:
    """Module.symvers rows (any of the column layouts of the module docstring)."""
    return paused_gc(_parse_symvers, _text(data), path)


def _parse_symvers(text: str, path: str | None) -> list[KernelSymbol]:
    out: list[KernelSymbol] = []
    append = out.append
    types = EXPORT_TYPES
    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        cols = line.split("\t")
        k = len(cols)
        ns: str | None = None
        if k == 5:
            if cols[3] in types:
                crc_s, name, module, kind, ns = cols
            elif cols[4] in types:
                crc_s, name, ns, module, kind = cols
            else:
                raise _error("module.symvers", n, "no EXPORT_* column", line, path)
        elif k == 4:
            crc_s, name, module, kind = cols
            if kind not in types:
                raise _error("module.symvers", n, f"unknown export type {kind!r}", line, path)
        elif k == 3:
            crc_s, name, module = cols
            kind = "EXPORT_SYMBOL"
        else:
            raise _error("module.symvers", n, f"{k} tab-separated columns, expected 3 to 5", line, path)
        if crc_s[:2] not in ("0x", "0X") or not crc_s[2:] or not _HEX.issuperset(crc_s[2:]):
            raise _error("module.symvers", n, f"CRC {crc_s!r} is not 0x<hex>", line, path)
        if not name or not module:
            raise _error("module.symvers", n, "empty symbol or module column", line, path)
        owner = None if module == "vmlinux" else module
        append(KernelSymbol(name, None, None, owner, True, types[kind], int(crc_s, 16), ns or None))
    return out


# -- sniffing and loading -----------------------------------------------------------------------


def detect_format(data: bytes, *, path: str | os.PathLike[str] | None = None) -> str:
    """One of :data:`FORMATS`, from the first bytes (and the file name for System.map versus a
    kallsyms copy without module lines, which read alike)."""
    p = os.fspath(path) if path is not None else None
    if data[:4] == b"\x7fELF":
        return "vmlinux"
    if is_kernel_image(data):
        return "kernel-image"
    head = bytes(data[:4096])
    first = next((ln for ln in head.split(b"\n") if ln), None)
    if first is None:
        raise LkmError("empty file: its symbol format cannot be told", path=p)
    cols = first.split(b"\t")
    if len(cols) >= 3 and cols[0][:2] in (b"0x", b"0X"):
        return "module.symvers"
    words = cols[0].split(b" ")
    if words[0] and all(c in b"0123456789abcdefABCDEF" for c in words[0]):
        if len(words) >= 3 and len(words[1]) == 1:  # names with blanks are refused by the parser
            base = os.path.basename(p or "")
            if b"\t[" in data or "kallsyms" in base:
                return "kallsyms"
            return "system.map"
        if len(words) == 2 and len(cols) <= 2:
            return "ksyms"
    shown = first[:60].decode("utf-8", "replace")
    raise LkmError(f"unrecognised symbol file format (first line {shown!r})", path=p)


def is_kernel_image(data: bytes) -> bool:
    """A compressed or raw kernel image: x86 bzImage ("HdrS" boot header), arm64 Image
    ("ARM\\x64" magic), a gzip'd Image, or an EFI zboot image."""
    return (
        data[0x202:0x206] == b"HdrS"
        or data[0x38:0x3C] == b"ARM\x64"
        or data[:2] == b"\x1f\x8b"
        or data[4:8] == b"zimg"
    )


def parse_kernel_image(data: bytes, *, path: str | None = None) -> list[KernelSymbol]:
    """Every core-kernel symbol of a kernel image, offline: names, addresses and type letters
    from its embedded kallsyms tables; for an x86 image (which carries a whole ELF vmlinux) the
    export flags, GPL-only, CRCs and namespaces from its export tables too.  Derived once per
    image content and kept in lkm's cache (:mod:`lkm.cache`, :func:`image_symbols`)."""
    return image_symbols(data, path=path)[1]


IMAGE_SYMBOLS = "image-symbols"  # lkm.cache kind
#: Part of the cache key: bumped when the symbols derived from an image change (2: arm64
#: exports with CRCs and namespaces, stray __ksymtab-shaped runs left out).
IMAGE_SYMBOLS_REVISION = "r2"


def image_symbols(
    data: bytes | bytearray | memoryview,
    *,
    path: str | None = None,
    arch: str | None = None,
    cache: bool = True,
) -> tuple[str, list[KernelSymbol]]:
    """(architecture, symbols) of a kernel image as :func:`parse_kernel_image` gives them,
    ``arch`` forcing the architecture; from :mod:`lkm.cache` when this image's content was read
    before (keyed by its SHA-256), else recovered and stored there."""
    key = store.content_key(data, arch or "auto", IMAGE_SYMBOLS_REVISION) if cache else ""
    if cache:
        hit = _symbols_from_payload(store.get(IMAGE_SYMBOLS, key))
        if hit is not None:
            return hit
    arch_used, out = _recover_image_symbols(bytes(data), path, arch)
    if cache:
        store.put(IMAGE_SYMBOLS, key, _symbols_payload(arch_used, out))
    return arch_used, out


def _symbols_payload(arch: str, syms: list[KernelSymbol]) -> dict[str, object]:
    """Columns that load in C: names joined by newlines (a kernel symbol name has none),
    addresses packed little-endian u64 in base64, one type letter each."""

    addrs = array("Q", [s.address or 0 for s in syms])
    if sys.byteorder != "little":  # pragma: no cover
        addrs.byteswap()
    return {
        "arch": arch,
        "count": len(syms),
        "names": "\n".join(s.name for s in syms),
        "addresses": base64.b64encode(addrs.tobytes()).decode("ascii"),
        "types": "".join(s.type or "?" for s in syms),
        "exports": [[i, s.gpl_only, s.crc, s.namespace] for i, s in enumerate(syms) if s.exported],
    }


def _symbols_from_payload(p: object) -> tuple[str, list[KernelSymbol]] | None:
    """The symbols of a cache entry, None unless it is whole and consistent."""

    if not isinstance(p, dict):
        return None
    arch, count, names_s, addrs_s, types, exports = (
        p.get(k) for k in ("arch", "count", "names", "addresses", "types", "exports")
    )
    strs = (arch, names_s, addrs_s, types)
    if not (all(isinstance(x, str) for x in strs) and isinstance(count, int) and isinstance(exports, list)):
        return None
    assert (
        isinstance(arch, str)
        and isinstance(names_s, str)
        and isinstance(addrs_s, str)
        and isinstance(types, str)
    )
    names = names_s.split("\n") if count else []
    addrs = array("Q")
    try:
        addrs.frombytes(base64.b64decode(addrs_s, validate=True))
    except (binascii.Error, ValueError):
        return None
    if sys.byteorder != "little":  # pragma: no cover
        addrs.byteswap()
    if not count == len(names) == len(addrs) == len(types):
        return None
    letters = [None if t == "?" else t for t in types]  # "?": an export kallsyms does not list
    out: list[KernelSymbol] = paused_gc(list, map(KernelSymbol, names, addrs.tolist(), letters))
    try:
        for i, gpl, crc, ns in exports:
            s = out[i]
            out[i] = KernelSymbol(s.name, s.address, s.type, None, True, bool(gpl), crc, ns)
    except (TypeError, ValueError, IndexError):
        return None
    return arch, out


def _recover_image_symbols(data: bytes, path: str | None, arch: str | None) -> tuple[str, list[KernelSymbol]]:
    try:
        kernel = decompress_kernel_image(bytes(data))
        arch = arch or kernel_arch(kernel)
        exports = parse_vmlinux(kernel, path=path) if kernel[:4] == b"\x7fELF" else []
        entries = recover_kallsyms(kernel, arch=arch)
    except LkmError as exc:
        exc.path = exc.path or path
        raise
    by_export = {e.name: e for e in exports}
    out = []
    seen: set[str] = set()
    for e in entries:
        x = by_export.get(e.name) if e.name not in seen else None
        seen.add(e.name)
        if x is not None:
            out.append(KernelSymbol(e.name, e.address, e.type, None, True, x.gpl_only, x.crc, x.namespace))
        else:
            out.append(KernelSymbol(e.name, e.address, e.type))
    if kernel[:4] != b"\x7fELF":  # a raw Image (arm64): its exports from __ksymtab, by shape
        out = _with_raw_exports(kernel, out)
    return arch, out


def _with_raw_exports(kernel: bytes, syms: list[KernelSymbol]) -> list[KernelSymbol]:
    """``syms`` (kallsyms order) with the exports of a raw image's __ksymtab/__ksymtab_gpl
    (:func:`lkm.symbols.ksymtab.raw_image_exports`, with their CRCs and namespaces): their
    addresses are image offsets plus the load address, the one most (name, kallsyms address)
    pairs agree on.  An export kallsyms lists at that address is marked exported; one whose
    name it does not list at all (a data symbol of a kernel without CONFIG_KALLSYMS_ALL) is
    appended with no type letter."""
    try:
        exports = raw_image_exports(kernel)
    except LkmError:
        return syms  # no __ksymtab found (a kernel without modules): kallsyms alone
    first: dict[str, int] = {}
    for i, s in enumerate(syms):
        first.setdefault(s.name, i)
    base = raw_load_address(exports, syms)
    if base is None:
        return syms
    out = list(syms)
    at: dict[tuple[str, int | None], int] = {}
    for i, s in enumerate(syms):
        at.setdefault((s.name, s.address), i)
    for x in exports:
        addr = base + x.offset
        i = at.get((x.name, addr))  # type: ignore[assignment]
        if i is not None:
            s = out[i]
            out[i] = KernelSymbol(s.name, s.address, s.type, None, True, x.gpl_only, x.crc, x.namespace)
        elif x.name not in first:  # kallsyms lists the name elsewhere: it wins (a static namesake)
            out.append(KernelSymbol(x.name, addr, None, None, True, x.gpl_only, x.crc, x.namespace))
    return out


def raw_load_address(exports: list[RawExport], syms: list[KernelSymbol]) -> int | None:
    """The address of a raw image's first byte: the one most (export offset, kallsyms address
    of that name) pairs agree on; None when kallsyms lists none of the exports."""
    first: dict[str, int | None] = {}
    for s in syms:
        if s.type is not None:
            first.setdefault(s.name, s.address)
    votes = Counter(a - x.offset for x in exports if (a := first.get(x.name)) is not None)
    return votes.most_common(1)[0][0] if votes else None


def _parse_vmlinux(data: bytes, *, path: str | None = None) -> list[KernelSymbol]:
    return parse_vmlinux(data, path=path)


def parse(data: bytes, fmt: str, *, path: str | None = None) -> list[KernelSymbol]:
    """Symbols of ``data`` read as format ``fmt`` (one of :data:`FORMATS`)."""
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise LkmError(f"unknown symbol source format {fmt!r} (known: {', '.join(FORMATS)})", path=path)
    return parser(data, path=path)


# format -> parser, one entry per name in FORMATS
_PARSERS: dict[str, Callable[..., list[KernelSymbol]]] = {
    "system.map": parse_system_map,
    "kallsyms": parse_kallsyms,
    "ksyms": parse_ksyms,
    "module.symvers": parse_module_symvers,
    "vmlinux": _parse_vmlinux,
    "kernel-image": parse_kernel_image,
}


def read(path: str | os.PathLike[str], *, format: str | None = None) -> tuple[str, list[KernelSymbol]]:
    """(format, symbols) of a file, the format sniffed unless given."""
    p = os.fspath(path)
    try:
        data = read_bytes(p, limit=1 << 30)  # a vmlinux with its DWARF fits
    except OSError as exc:
        raise LkmError(exc.strerror or str(exc), path=p) from exc
    fmt = format or detect_format(data, path=p)
    return fmt, parse(data, fmt, path=p)


def load(path: str | os.PathLike[str], *, format: str | None = None) -> list[KernelSymbol]:
    """Symbols of a file in any of :data:`FORMATS`, the format sniffed unless given."""
    return read(path, format=format)[1]

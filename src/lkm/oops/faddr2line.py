"""``func+0x12/0x40`` to source lines, exactly as the kernel's ``scripts/faddr2line`` prints them.

The script (Linux 6.1, checked line by line against it on fixture and guest modules and a
vmlinux-shaped executable: tests/oops/test_faddr2line.py) does, for each ``func+offset[/size]``:

* every ``FUNC`` symbol of that name, in symbol-table order (duplicates all printed);
* the symbol's size as kallsyms counts it, not its ELF size: the distance to the next symbol of
  its section in address order (any type, the section symbol included) that is at least the ELF
  size away; for the last one, the section's size minus the symbol's value (for a vmlinux, whose
  values are addresses, that is what the script computes too: bash's signed 64-bit arithmetic);
* a given size must equal it and the offset may not pass it (``offset == size`` is allowed),
  else that symbol is skipped; an address of 0 (a module's first function at offset 0) stops that
  spec with "bad address";
* ``func+OFFSET/0xSIZE:`` with the offset as the user wrote it, then addr2line's
  ``--functions --pretty-print --inlines`` lines (``--section`` for modules), each as ``echo
  $line`` prints it (blanks collapsed); a blank line between entries;
* paths as addr2line prints them, minus the source directory found from ``start_kernel``'s
  line in ``init/main.c`` (a vmlinux only: modules keep absolute paths);
* nothing printed for a spec: a second pass prints its "skipping ..." reasons on stdout, and
  "no match for SPEC" goes to stderr.

Numbers are read as bash reads them (``0x`` hex, a leading ``0`` octal, else decimal).  One
difference is deliberate: the script echoes each line unquoted, so a ``??`` in it is a glob
expanded against the current directory; lkm prints the text.
"""

from __future__ import annotations

import os
import re

from lkm.elf import ElfFile
from lkm.elf.constants import SHT_DYNSYM, SHT_SYMTAB
from lkm.errors import LkmError
from lkm.oops.lines import DebugInfo, _load_bytes

__all__ = ["SPEC", "bash_number", "check_object", "faddr2line"]

SPEC = re.compile(r"(?P<func>[^+\s]+)\+(?P<off>0x[0-9a-fA-F]+|\d+)(?:/(?P<size>0x[0-9a-fA-F]+|\d+))?")
_MASK = (1 << 64) - 1
_NO_PREFIX = "supercalifragilisticexpialidocious"  # the script's "no prefix" placeholder
_TYPES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS"}
_BINDS = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}


def _s64(v: int) -> int:
    v &= _MASK
    return v - (1 << 64) if v >> 63 else v


def bash_number(text: str) -> int | None:
    """A number as bash's arithmetic reads it (``0x1f``, ``017`` octal, ``31``), or None."""
    t = text.strip()
    neg = t.startswith("-")
    if neg or t.startswith("+"):
        t = t[1:]
    try:
        if t[:2].lower() == "0x":
            v = int(t[2:], 16)
        elif len(t) > 1 and t[0] == "0":
            v = int(t[1:], 8)
        else:
            v = int(t, 10) if t.isdigit() else None  # type: ignore[assignment]
    except ValueError:
        return None
    if v is None:
        return None
    return _s64(-v if neg else v)


class _Sym:
    __slots__ = ("value", "size", "name", "shndx", "type", "key")

    def __init__(self, value: int, size: int, name: str, shndx: int, type_: int, key: str) -> None:
        self.value = value
        self.size = size
        self.name = name
        self.shndx = shndx
        self.type = type_
        self.key = key  # readelf's line from the Value column on: what ``sort --key=2`` orders


class _Object:
    """What the script asks readelf about one object: type, sections, symbols."""

    def __init__(self, data: bytes) -> None:
        elf = ElfFile(data)
        self.is_vmlinux = elf.e_type in (2, 3)  # EXEC, DYN
        self.width = 16 if elf.elfclass == 64 else 8
        self.sections = [(s.name, s.size, s.addr, s.flags) for s in elf.sections]
        self.syms: list[_Sym] = []
        for sec in elf.sections:
            if sec.type not in (SHT_SYMTAB, SHT_DYNSYM):
                continue
            for y in elf.symbols(sec):
                ndx = {0: "UND", 0xFFF1: "ABS", 0xFFF2: "COM"}.get(y.shndx, str(y.shndx))
                key = (
                    f" {y.value:0{self.width}x} {y.size:5d} {_TYPES.get(y.type, str(y.type))} "
                    f"{_BINDS.get(y.bind, str(y.bind))} {ndx} {y.name}"
                )
                self.syms.append(_Sym(y.value, y.size, y.name, y.shndx, y.type, key))
        self.funcs: dict[str, list[_Sym]] = {}
        self.by_section: dict[int, list[_Sym]] = {}
        for z in self.syms:
            if z.type == 2:  # STT_FUNC
                self.funcs.setdefault(z.name, []).append(z)
            self.by_section.setdefault(z.shndx, []).append(z)
        for lst in self.by_section.values():
            lst.sort(key=lambda s: s.key)  # sort --key=2 (C locale)

    def kallsyms_size(self, sym: _Sym) -> tuple[int | None, str]:
        """(size, "") or (None, the script's warning)."""
        found = 0
        size = 0
        cur = ""
        for y in self.by_section.get(sym.shndx, []):
            cur = f"0x{y.value:0{self.width}x}"
            if y.value == sym.value and y.size == sym.size and y.name == sym.name:
                found = 1
                continue
            if found:
                size = _s64(y.value - sym.value)
                if size < sym.size:
                    continue
                found = 2
                break
        if not found:
            return None, (
                f"can't find symbol: sym_name: {sym.name} sym_sec: {sym.shndx} "
                f"sym_addr: 0x{sym.value:0{self.width}x} sym_elf_size: {sym.size}"
            )
        if found == 1:
            size = _s64(self.sections[sym.shndx][1] - _s64(sym.value))
        if size <= 0:
            return None, f"bad symbol size: sym_addr: 0x{sym.value:0{self.width}x} cur_sym_addr: {cur}"
        return size, ""


def _split_spec(spec: str) -> tuple[str, str, str | None] | None:
    """(name, offset text, size text) as the script's parameter expansions cut them."""
    if "+" not in spec:
        return None
    name = spec.rsplit("+", 1)[0]
    off = spec.split("+", 1)[1]
    off = off.rsplit("/", 1)[0] if "/" in off else off
    size = spec.split("/", 1)[1] if "/" in spec else None
    if not name or not off:
        return None
    return name, off, size


def faddr2line(
    path: str, specs: list[str], *, list_source: bool = False, records: list[dict[str, object]] | None = None
) -> tuple[str, list[str]]:
    """(stdout, stderr lines) of ``scripts/faddr2line [--list] path specs...``; ``records`` (if
    given) receives each location found as a dict: spec, function, offset, size, frames
    (innermost first: function, location)."""
    data = _load_bytes(path)
    obj = _Object(data)
    if not any(name == ".debug_info" for name, *_rest in obj.sections):
        raise LkmError("CONFIG_DEBUG_INFO not enabled", path=path)
    di = DebugInfo(path, data=data)
    prefix = _dir_prefix(obj, di) if obj.is_vmlinux else _NO_PREFIX
    strip = re.compile(" " + _bre(prefix) + r"(?:\./)*")
    out: list[str] = []
    notes: list[str] = []
    first = [True]

    def one(spec: str, warnings: bool) -> bool:
        """The script's __faddr2line: True when it is DONE (printed, or gave up with a warning)."""
        parts = _split_spec(spec)
        off = bash_number(parts[1]) if parts else None
        user_size = bash_number(parts[2]) if parts and parts[2] is not None else None
        if parts is None or off is None or (parts[2] is not None and user_size is None):
            notes.append(f"bad func+offset {spec}")
            return True
        name, off_text, size_text = parts
        done = False
        for sym in obj.funcs.get(name, []):
            if not 0 < sym.shndx < len(obj.sections):
                notes.append(f"bad section size: section: {sym.shndx}")
                return True
            size, why = obj.kallsyms_size(sym)
            if size is None:
                notes.append(why)
                return True
            addr = _s64(_s64(sym.value) + off)
            if addr == 0:
                notes.append(f"bad address: 0x{sym.value:0{obj.width}x} + {off_text}")
                return True
            shown = addr & _MASK
            if size_text is not None and user_size != size:
                if warnings:
                    out.append(
                        f"skipping {name} address at 0x{shown:x} due to size mismatch "
                        f"({size_text} != 0x{size:x})"
                    )
                continue
            if off > size:
                if warnings:
                    out.append(
                        f"skipping {name} address at 0x{shown:x} due to size mismatch "
                        f"({off_text} > 0x{size:x})"
                    )
                continue
            if not first[0]:
                out.append("")
            first[0] = False
            out.append(f"{name}+{off_text}/0x{size:x}:")
            lines = [" ".join(strip.sub(" ", ln, count=1).split()) for ln in _addr2line(obj, di, sym, shown)]
            if records is not None:
                frames = [ln.removeprefix("(inlined by) ").rpartition(" at ") for ln in lines]
                records.append(
                    {
                        "spec": spec,
                        "function": name,
                        "offset": off,
                        "size": size,
                        "frames": [
                            {"function": f or "??", "location": loc}
                            if sep
                            else {"function": name, "location": "??:0"}
                            for f, sep, loc in frames
                        ],
                    }
                )
            if not list_source:
                out.extend(lines)
            else:
                for ln in lines:
                    out.append("")
                    out.append(ln)
                    out.extend(_listing(ln))
            done = True
        return done

    for spec in specs:
        if not one(spec, False):
            one(spec, True)
            notes.append(f"no match for {spec}")
    return ("\n".join(out) + "\n" if out else ""), notes


def _addr2line(obj: _Object, di: object, sym: _Sym, addr: int) -> list[str]:
    """``addr2line --functions --pretty-print --inlines [--section=S]`` lines for ``addr``
    (section-relative for a module, as the script passes it)."""
    if obj.is_vmlinux:
        placed = addr
        inside = any(flags & 2 and a <= addr < a + size for _n, size, a, flags in obj.sections)  # SHF_ALLOC
    else:
        name, size, _a, _f = obj.sections[sym.shndx]
        placed = (di._bases.get(name, 0) + addr) & _MASK  # type: ignore[attr-defined]
        inside = addr < size
    frames = di.frames(placed) if inside else []  # type: ignore[attr-defined]
    if not frames:
        return ["?? ??:0"]
    return [
        f"{'(inlined by) ' if n else ''}{fr.function or '??'} at {fr.location()}"
        for n, fr in enumerate(frames)
    ]


def _dir_prefix(obj: _Object, di: object) -> str:
    """The script's find_dir_prefix: ``addr2line -e vmlinux <start_kernel>``'s file up to
    ``init/main.c:``, or the placeholder when there is no such symbol or file."""
    sk = [y for y in obj.syms if y.name == "start_kernel"]
    if not sk:
        return _NO_PREFIX
    frames = di.frames(sk[0].value)  # type: ignore[attr-defined]
    file_line = frames[0].location() if frames else "??:0"
    at = file_line.find("init/main.c:")
    if at <= 0:
        return _NO_PREFIX
    return file_line[:at]


def _bre(text: str) -> str:
    """A sed basic regular expression (the prefix goes into sed unescaped) in Python's syntax."""
    out = []
    for ch in text:
        out.append(ch if ch in ".*" else re.escape(ch))
    return "".join(out)


def _listing(line: str) -> list[str]:
    """--list: the source lines around ``file:N`` as the script's awk prints them."""
    m = re.match(r".*:([0-9]+)", line)
    f = re.match(r".*at (.+):", line)
    if m is None or f is None:
        return []
    n = int(m.group(1))
    try:
        with open(f.group(1), encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read().split("\n")
    except OSError:
        return []
    if text and text[-1] == "":
        text.pop()
    rows = []
    for nr in range(max(1, n - 5), min(len(text), n + 5) + 1):
        mark = f">{nr}<" if nr == n else f" {nr} "
        rows.append(f"{mark}\t{text[nr - 1]}")
    return rows


def check_object(path: str) -> None:
    if not os.path.isfile(path):
        raise LkmError("No such file or directory", path=path)

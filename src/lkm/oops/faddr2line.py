"""``func+0x12/0x40`` to source lines, as the kernel's scripts/faddr2line prints them.

For each ``func+offset[/size]`` the function symbols of that name in the object (vmlinux or a
module, compressed or not) are found; a given size picks among duplicates (static functions
of one name); the address ``symbol + offset`` is looked up in the DWARF (:mod:`lkm.oops.lines`,
checked against binutils' addr2line -i -f) and printed as the script prints addr2line's
``--functions --pretty-print --inlines`` output: a ``func+0xoff/0xsize:`` line, then
``inner at file:line`` and ``(inlined by) outer at file:line``, paths relative to the build
directory (DW_AT_comp_dir, which the script strips).  ``--list`` adds the source line itself
when the file is readable.
"""

from __future__ import annotations

import os
import re

from lkm.errors import LkmError

SPEC = re.compile(r"(?P<func>[^+\s]+)\+(?P<off>0x[0-9a-fA-F]+|\d+)(?:/(?P<size>0x[0-9a-fA-F]+|\d+))?")


def faddr2line(
    path: str, specs: list[str], *, list_source: bool = False, records: list[dict[str, object]] | None = None
) -> tuple[str, list[str]]:
    """(output, notes) for the ``func+off[/size]`` specs, looked up in the object at ``path``;
    ``records`` (if given) receives each location found as a dict: spec, function, offset,
    size, frames (innermost first: function, location)."""
    from lkm.oops.lines import DebugInfo

    di = DebugInfo(path)
    _values, rows = di._symbols()
    comp_dirs = _comp_dirs(di)
    out: list[str] = []
    notes: list[str] = []
    for spec in specs:
        m = SPEC.fullmatch(spec.strip())
        if m is None:
            notes.append(f"bad func+offset/size: '{spec}'")
            continue
        func = m.group("func")
        off = int(m.group("off"), 0)
        size = int(m.group("size"), 0) if m.group("size") else None
        found = [r for r in rows if r[2] == func]
        if not found:
            notes.append(f"no match for {spec}")
            continue
        if size is not None:
            sized = [r for r in found if r[1] == size]
            if not sized:
                notes.append(f"{spec}: size mismatch (symbol size {', '.join(hex(r[1]) for r in found)})")
                continue
            found = sized
        for value, sym_size, _name, _file, _shndx in found:
            if sym_size and off >= sym_size:
                notes.append(f"{spec}: offset past the end of {func} (size {sym_size:#x})")
                continue
            out.append(f"{func}+{off:#x}/{sym_size:#x}:")
            frames = di.frames(value + off)
            if records is not None:
                shown = [{"function": fr.function or "??", "location": _relative(fr.location(), comp_dirs)}
                         for fr in frames] or [{"function": func, "location": "??:0"}]  # fmt: skip
                records.append(
                    {"spec": spec, "function": func, "offset": off, "size": sym_size, "frames": shown}
                )
            if not frames:
                out.append(f"{func} at ??:0")
            for n, fr in enumerate(frames):
                where = _relative(fr.location(), comp_dirs)
                out.append(f"{'(inlined by) ' if n else ''}{fr.function or '??'} at {where}")
                if list_source and fr.file and fr.line > 0:
                    out.extend(_source_lines(fr.file, fr.line))
    return ("\n".join(out) + "\n" if out else ""), notes


def _comp_dirs(di: object) -> list[str]:
    dirs: set[str] = set()
    try:
        for cu in di._dwarf.iter_CUs():  # type: ignore[attr-defined]
            at = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
            if at is not None:
                v = at.value
                dirs.add(v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v))
    except Exception:  # damaged DWARF: paths stay absolute
        return []
    return sorted(dirs, key=len, reverse=True)


def _relative(location: str, comp_dirs: list[str]) -> str:
    for d in comp_dirs:
        prefix = d.rstrip("/") + "/"
        if location.startswith(prefix):
            rest = location[len(prefix) :]
            while rest.startswith("./"):
                rest = rest[2:]
            return rest
    return location


def _source_lines(file: str, line: int) -> list[str]:
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return []
    lo, hi = max(1, line - 5), min(len(text), line + 5)
    return [f"{'>' if n == line else ' '}{n} {text[n - 1]}" for n in range(lo, hi + 1)]


def check_object(path: str) -> None:
    if not os.path.isfile(path):
        raise LkmError("No such file or directory", path=path)

"""``lkm ksymoops [OPTIONS] [REPORT|-]``: decode kernel oops reports.

ksymoops' options where they still mean something: -k kallsyms (or a 2.4 /proc/ksyms),
-l /proc/modules, -m System.map, -o directory of module files, -v vmlinux (debug info);
-K -L -M -O -V turn a source off.  Added: -s sections snapshot (``MODULE SECTION ADDRESS``
lines; default: /sys/module/*/sections when -l is the live /proc/modules), --offset KASLR
offset (default: the report's "Kernel Offset" line), --format ksymoops|decode-stacktrace|json.
"""

from __future__ import annotations

import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

HELP = """Usage: lkm ksymoops [OPTIONS] [REPORT|-]
  -k FILE  /proc/kallsyms (or 2.4 /proc/ksyms) of the kernel   (-K: none)
  -l FILE  /proc/modules of the kernel                         (-L: none)
  -s FILE  module sections: 'MODULE SECTION ADDRESS' lines
  -m FILE  System.map                                           (-M: none)
  -o DIR   directory holding the module files (.ko, .ko.xz...)  (-O: none)
  -v FILE  vmlinux with debug information                       (-V: none)
  --offset HEX   KASLR offset (default: from the report)
  --format ksymoops|decode-stacktrace|json   (default decode-stacktrace)
"""

FORMATS = ("ksymoops", "decode-stacktrace", "json")


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None


def _live_sections() -> str:
    lines = []
    base = "/sys/module"
    for mod in sorted(os.listdir(base)):
        d = os.path.join(base, mod, "sections")
        if not os.path.isdir(d):
            continue
        for sec in sorted(os.listdir(d)):
            try:
                with open(os.path.join(d, sec)) as f:
                    lines.append(f"{mod} {sec} {f.read().strip()}")
            except OSError:
                continue
    return "\n".join(lines) + "\n"


def _module_files(directory: str) -> dict[str, str]:
    from lkm.corpus import MODULE_SUFFIXES

    found: dict[str, str] = {}
    for root, _dirs, names in os.walk(directory):
        for n in names:
            for suf in (*MODULE_SUFFIXES, ".o", ".o.gz"):  # 2.4 objects too
                if n.endswith(suf):
                    found.setdefault(n[: -len(suf)].replace("-", "_"), os.path.join(root, n))
    return found


def run(prog: str, args: list[str]) -> int:
    try:
        opts, operands = parse(args, "hk:Kl:Lm:Mo:Ov:Vs:", ["help", "format=", "offset="])
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{HELP}")
        return 2
    src: dict[str, str | None] = {"k": None, "l": None, "m": None, "o": None, "v": None, "s": None}
    fmt = "decode-stacktrace"
    offset: int | None = None
    for flag, val in opts:
        if flag in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
        if flag == "--format":
            if val not in FORMATS:
                sys.stderr.write(f"{prog}: unknown format '{val}' (known: {', '.join(FORMATS)})\n")
                return 2
            fmt = val
        elif flag == "--offset":
            try:
                offset = int(val, 16)
            except ValueError:
                sys.stderr.write(f"{prog}: bad offset '{val}'\n")
                return 2
        elif flag[1].islower():
            src[flag[1]] = val
        else:
            src[flag[1].lower()] = ""  # upper case: that source is off
    if len(operands) > 1:
        sys.stderr.write(f"{prog}: one report at a time\n{HELP}")
        return 2
    try:
        text = _read(operands[0] if operands else "-")
        out, notes = decode_text(text, src, fmt, offset)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    sys.stdout.write(out)
    for n in dict.fromkeys(notes):
        sys.stderr.write(f"{prog}: warning: {n}\n")
    return 1 if notes else 0


def decode_text(text: str, src: dict[str, str | None], fmt: str, offset: int | None) -> tuple[str, list[str]]:
    """The report decoded with the sources of ``src`` (option letter -> path; "" or None: off)."""
    from lkm.oops import decode, modmap, report
    from lkm.oops.lines import DebugInfo
    from lkm.oops.symbolize import Symbolizer
    from lkm.symbols import sources

    log = report.parse(text)
    notes: list[str] = []
    if offset is None:
        offset = next((int(v) for r in log.reports if isinstance(v := r.facts.get("kernel_offset"), int)), 0)
    core: list[object] = []
    per_mod: dict[str, list[tuple[int, str]]] = {}
    core_shift = 0
    release = next((str(r.facts["release"]) for r in log.reports if "release" in r.facts), "6.12")
    rules = modmap.kernel_rules(release)
    ksyms24: list[tuple[str, int]] = []
    if src.get("k"):
        fmt_k, syms = sources.read(str(src["k"]))
        for s in syms:
            if s.address is None:
                continue
            if s.module is None:
                core.append(s)
            else:
                per_mod.setdefault(s.module, []).append((s.address, s.name))
            if fmt_k == "ksyms":
                ksyms24.append((s.name, s.address))
    elif src.get("m"):
        core = list(sources.load(str(src["m"])))
        if not offset:  # no "Kernel Offset" line: from frames printed with address and symbol
            from lkm.oops.symbolize import infer_offset

            pairs = [p for r in log.reports for p in report.symbolised_addresses(r, log)]
            offset = infer_offset(pairs, Symbolizer(core)) or 0  # type: ignore[arg-type]
            if offset:
                notes.append(f"KASLR offset {offset:#x} inferred from the report's frames")
        core_shift = offset
    files: dict[str, str] = _module_files(str(src["o"])) if src.get("o") else {}
    maps: dict[str, modmap.ModuleMap] = {}
    if ksyms24:
        maps = modmap.from_ksyms24(ksyms24)
        for mod, exports in per_mod.items():  # no __insmod symbols: ksymoops' object match
            if mod in maps or mod not in files:
                continue
            from lkm.module import ModuleFile

            try:
                got = modmap.match_object24(mod, [(n, a) for a, n in exports], ModuleFile.open(files[mod]))
            except LkmError as exc:
                notes.append(f"{files[mod]}: {exc.reason}")
                continue
            if got is None:
                notes.append(f"{mod}: no exported symbol is unique in {files[mod]}")
                continue
            maps[mod], per_mod[mod] = got
    elif src.get("l"):
        from lkm.module import ModuleFile

        proc_modules = _read(str(src["l"]))
        if src.get("s"):
            secs = _read(str(src["s"]))
        elif src["l"] == "/proc/modules":
            secs = _live_sections()
        else:
            secs = ""
            notes.append("no module sections snapshot (-s): module areas are inferred")
        names = [row[0] for row in modmap.parse_proc_modules(proc_modules)]
        mfiles = {}
        for n in names:
            p = files.get(n)
            if p is not None:
                try:
                    mfiles[n] = ModuleFile.open(p)
                except LkmError as exc:
                    notes.append(f"{p}: {exc.reason}")
        maps = modmap.from_snapshot(proc_modules, secs, rules=rules, files=mfiles)
        for n, mf in mfiles.items():  # no kallsyms lines for a module: its file's symbols
            if n not in per_mod and n in maps:
                try:
                    per_mod[n] = modmap.module_symbols(mf, maps[n], rules)
                except LkmError as exc:
                    notes.append(f"{mf.path}: {exc.reason}")
    sym = Symbolizer(core, maps, per_mod, offset=core_shift) if core else None  # type: ignore[arg-type]
    if sym is None:
        notes.append("no kernel symbols (-k or -m): frames keep their text")
    cache: dict[str | None, DebugInfo | None] = {}

    def debug_for(module: str | None) -> DebugInfo | None:
        if module in cache:
            return cache[module]
        di = None
        try:
            if module is None and src.get("v"):
                di = DebugInfo(str(src["v"]))
            elif module is not None and module in files:
                secs = maps[module].sections if module in maps else None
                di = DebugInfo(files[module], secs)
        except LkmError as exc:
            notes.append(f"{exc}")
        cache[module] = di
        return di

    dec = decode.Decoder(sym, debug_for if (src.get("v") or files) else None, offset=offset)
    decoded = dec.decode(log)
    notes.extend(n for n in decoded.notes if n not in notes)
    if fmt == "json":
        return decode.to_json(decoded), notes
    if fmt == "ksymoops":
        bits = 32 if any(r.arch == "i386" for r in log.reports) else 64
        return decode.format_ksymoops(decoded, bits=bits), notes
    return decode.format_decode_stacktrace(decoded), notes

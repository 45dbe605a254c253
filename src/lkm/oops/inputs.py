"""What a decode is made of: the report and the user's inputs (symbol files, module map
snapshot, module files, debug files) turned into a :class:`lkm.oops.decode.Decoder` and run.

:class:`Inputs` names the inputs ksymoops-style (kallsyms/ksyms, /proc/modules, sections,
System.map, a directory of module files, vmlinux, the debug-file root); :func:`decode_text`
parses a report, builds the symboliser and the debug-file lookup from whatever is given,
decodes, and returns the chosen output and the notes (each missing input said once).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from lkm.arch import by_name as arch_by_name
from lkm.errors import LkmError
from lkm.modname import MODULE_SUFFIXES, strip_suffix
from lkm.module import ModuleFile
from lkm.oops import decode, modmap, report
from lkm.oops.debuginfod import fetch, server_urls
from lkm.oops.lines import DEBUG_ROOT, DebugInfo, find_debug_file
from lkm.oops.symbolize import Symbolizer, infer_offset
from lkm.safeio import read_text as _read_file_text
from lkm.symbols import sources
from lkm.symbols.table import KernelSymbol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.oops.lines import DebugInfo

__all__ = ["FORMATS", "Inputs", "decode_text", "read_text", "release_mismatch"]

FORMATS = ("ksymoops", "decode-stacktrace", "json")


@dataclass(frozen=True, slots=True)
class Inputs:
    """Paths of the inputs (None: not used).  ``kallsyms`` may be a 2.4 /proc/ksyms;
    ``sections`` holds ``MODULE SECTION ADDRESS`` lines (default: the live /sys/module when
    ``modules`` is /proc/modules); ``objects`` a directory searched for module files;
    ``debug_root`` where separate debug files live (build-id and Debian -dbg layouts)."""

    kallsyms: str | None = None
    modules: str | None = None
    sections: str | None = None
    system_map: str | None = None
    objects: str | None = None
    vmlinux: str | None = None
    debug_root: str | None = None
    offset: int | None = None
    debuginfod: str | None = None


def read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return _read_file_text(path)
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
                lines.append(f"{mod} {sec} {_read_file_text(os.path.join(d, sec), limit=4096).strip()}")
            except OSError:
                continue
    return "\n".join(lines) + "\n"


def _bits(arch: str | None) -> int:
    spec = arch_by_name(arch or "")
    return spec.bits if spec is not None else 64


def _module_files(directory: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for root, _dirs, names in os.walk(directory):
        for n in names:
            base = strip_suffix(n, (*MODULE_SUFFIXES, ".o", ".o.gz"))  # 2.4 objects too
            if base is not None:
                found.setdefault(base.replace("-", "_"), os.path.join(root, n))
    return found


def _module_debug_info(
    path: str, sections: dict[str, int] | None, root: str, urls: list[str] | None = None
) -> DebugInfo:
    """The module file's own DWARF, else its separate debug file (by build id, or Debian's
    -dbg path for the module's path), else from the debuginfod servers ``urls``."""

    try:
        return DebugInfo(path, sections)
    except LkmError as own:
        mf = ModuleFile.open(path)
        bid = mf.build_id
        found = find_debug_file(build_id=bid.hex() if bid else None, module_path=path, root=root)
        if found is None and bid and urls:
            found = fetch(bid.hex(), urls)
        if found is None:
            raise own from None
        return DebugInfo(found, sections)


def _is_placeholder_map(path: str) -> bool:
    """Debian ships /boot/System.map-* holding one line saying the real one is elsewhere."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"The real System.map is in" in head


def release_mismatch(report_release: str | None, symbols_release: str | None) -> str | None:
    """A note when the report's kernel release is not the one the symbols come from."""
    if report_release and symbols_release and report_release != symbols_release:
        return (
            f"the report is from kernel {report_release} but the symbols are from {symbols_release}: "
            "addresses will not match"
        )
    return None


def decode_text(text: str, inputs: Inputs, fmt: str = "decode-stacktrace") -> tuple[str, list[str]]:
    """The report decoded with ``inputs``, as ``fmt`` (one of :data:`FORMATS`); and the notes."""

    log = report.parse(text)
    notes: list[str] = []
    offset = inputs.offset
    if offset is None:
        offset = next((int(v) for r in log.reports if isinstance(v := r.facts.get("kernel_offset"), int)), 0)
    core: list[object] = []
    per_mod: dict[str, list[tuple[int, str]]] = {}
    core_shift = 0
    release = next((str(r.facts["release"]) for r in log.reports if "release" in r.facts), "6.12")
    rules = modmap.kernel_rules(release)
    ksyms24: list[tuple[str, int]] = []
    if inputs.kallsyms:
        fmt_k, syms = sources.read(inputs.kallsyms)
        for s in syms:
            if s.address is None:
                continue
            if s.module is None:
                core.append(s)
            else:
                per_mod.setdefault(s.module, []).append((s.address, s.name))
            if fmt_k == "ksyms":
                ksyms24.append((s.name, s.address))
    elif inputs.system_map:
        try:
            core = list(sources.load(inputs.system_map))
        except LkmError:
            if not _is_placeholder_map(inputs.system_map):
                raise
            raise LkmError(
                "Debian's placeholder System.map (the real one is in the -dbg package); "
                "'lkm kallsyms --from-image vmlinuz > kallsyms' recovers the symbols from the kernel image "
                "(then -k kallsyms)",
                path=inputs.system_map,
            ) from None
        if not offset:  # no "Kernel Offset" line: from frames printed with address and symbol
            pairs = [p for r in log.reports for p in report.symbolised_addresses(r, log)]
            offset = infer_offset(pairs, Symbolizer(core)) or 0  # type: ignore[arg-type]
            if offset:
                notes.append(f"KASLR offset {offset:#x} inferred from the report's frames")
        core_shift = offset
    files: dict[str, str] = _module_files(inputs.objects) if inputs.objects else {}
    maps: dict[str, modmap.ModuleMap] = {}
    if ksyms24:
        maps = modmap.from_ksyms24(ksyms24)
        for mod, exports in per_mod.items():  # no __insmod symbols: ksymoops' object match
            if mod in maps or mod not in files:
                continue

            try:
                kernel24 = [(s.name, s.address) for s in core if isinstance(s, KernelSymbol) and s.address]
                mf = ModuleFile.open(files[mod])
                got = modmap.match_object24(mod, [(n, a) for a, n in exports], mf, kernel24)
            except LkmError as exc:
                notes.append(f"{files[mod]}: {exc.reason}")
                continue
            if got is None:
                notes.append(f"{mod}: no exported symbol is unique in {files[mod]}")
                continue
            maps[mod], per_mod[mod] = got
    elif inputs.modules:
        proc_modules = read_text(inputs.modules)
        if inputs.sections:
            secs = read_text(inputs.sections)
        elif inputs.modules == "/proc/modules":
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

    root = inputs.debug_root or DEBUG_ROOT

    urls = server_urls(inputs.debuginfod)
    build_ids = {f.module: f.build_id for r in log.reports for f in r.frames if f.module and f.build_id}

    def debug_for(module: str | None) -> DebugInfo | None:
        if module in cache:
            return cache[module]
        di = None
        try:
            if module is None:
                path = inputs.vmlinux or find_debug_file(release=release, root=root)
                di = DebugInfo(path) if path else None
            elif module in files:
                di = _module_debug_info(
                    files[module], maps[module].sections if module in maps else None, root, urls
                )
            elif urls and module in build_ids:  # "[mod buildid]" frames: the server has it
                got = fetch(build_ids[module], urls)
                di = DebugInfo(got, maps[module].sections if module in maps else None) if got else None
        except LkmError as exc:
            notes.append(f"{exc}")
        cache[module] = di
        return di

    dec = decode.Decoder(sym, debug_for, offset=offset)
    decoded = dec.decode(log)
    notes.extend(n for n in decoded.notes if n not in notes)
    if fmt == "json":
        return decode.to_json(decoded), notes
    if fmt == "ksymoops":
        bits = 32 if any(_bits(r.arch) == 32 for r in log.reports) else 64
        return decode.format_ksymoops(decoded, bits=bits), notes
    return decode.format_decode_stacktrace(decoded), notes

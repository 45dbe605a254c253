"""``lkm modinfo``: kmod's modinfo, byte for byte, plus ``--json`` and 2.4 objects."""

from __future__ import annotations

import errno
import os
import stat
import sys

from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.modname import path_to_modname
from lkm.module.file import ModuleFile
from lkm.module.info import info_entries
from lkm.module.modinfo import parameters

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lkm.module.modinfo import Parameter

__all__ = ["FIELD_FLAGS", "FIELD_LONG", "MODULE_EXTENSIONS", "TOOL", "Options", "run"]


FIELD_FLAGS = {"-a": "author", "-d": "description", "-l": "license", "-p": "parm", "-n": "filename"}
FIELD_LONG = {"--" + v if v != "parm" else "--parameters": v for v in FIELD_FLAGS.values()}
# Files taken as files, not names: kmod's module extensions plus 2.4 objects.
MODULE_EXTENSIONS = (".ko", ".ko.gz", ".ko.xz", ".ko.zst", ".o", ".o.gz")

TOOL = Tool(
    "modinfo",
    "show information about a kernel module (kmod-compatible)",
    usage=["[options] <modulename|filename> [args]"],
    kmod=True,
    width=28,
    options=[
        Opt("a", "author", None, "Print only 'author'"),
        Opt("d", "description", None, "Print only 'description'"),
        Opt("l", "license", None, "Print only 'license'"),
        Opt("p", "parameters", None, "Print only 'parm'"),
        Opt("n", "filename", None, "Print only 'filename'"),
        Opt("0", "null", None, "Use \\0 instead of \\n"),
        Opt("m", "modname", None, "Handle argument as module name instead of alias or filename"),
        Opt("F", "field", "FIELD", "Print only provided FIELD"),
        Opt("k", "set-version", "VERSION", "Use VERSION instead of `uname -r`"),
        Opt("b", "basedir", "DIR", "Use DIR as filesystem root for /lib/modules"),
        Opt("V", "version", None, "Show version"),
        Opt("h", "help", None, "Show this help"),
        Opt("", "json", None, "One JSON object per module, every field (JSON Lines)", own=True),
        Opt("", "exports", None, "With --json: add exported symbols", own=True),
        Opt("", "imports", None, "With --json: add needed symbols", own=True),
    ],
)


class Options:
    field: str | None = None
    sep: str = "\n"
    modname: bool = False
    kversion: str | None = None
    root: str | None = None
    json: bool = False
    exports: bool = False
    imports: bool = False


def run(prog: str, args: list[str]) -> int:
    err = sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    o = Options()
    for flag, val in opts:
        if flag in FIELD_FLAGS:
            o.field = FIELD_FLAGS[flag]
        elif flag in FIELD_LONG:
            o.field = FIELD_LONG[flag]
        elif flag in ("-0", "--null"):
            o.sep = "\0"
        elif flag in ("-m", "--modname"):
            o.modname = True
        elif flag in ("-F", "--field"):
            o.field = val
        elif flag in ("-k", "--set-version"):
            o.kversion = val
        elif flag in ("-b", "--basedir"):
            o.root = val
        elif flag == "--json":
            o.json = True
        elif flag == "--exports":
            o.exports = True
        elif flag == "--imports":
            o.imports = True
    if not operands:
        err(f"{prog}: ERROR: missing module or filename.\n")
        return 1

    if not o.modname and len(operands) >= 64 and all(_is_module_filename(n) for n in operands):
        # A batch of files (e.g. a whole tree): fan out over the cores, output in order.
        from lkm.parallel import map_chunks  # lazy: process pools cost a single call's start-up

        paths = [n if n[:1] == "/" else os.path.join(os.getcwd(), n) for n in operands]
        ok = True
        for events, chunk_ok in map_chunks(lambda chunk: _render_paths(o, prog, chunk), paths):
            _flush(events)
            ok = ok and chunk_ok
        return 0 if ok else 1

    r = _Render(prog)
    show: Callable[..., bool] = _show_json if o.json else _show
    ok = True
    moddir = None
    for name in operands:
        if not o.modname and _is_module_filename(name):
            path = os.path.join(os.getcwd(), name) if name[:1] != "/" else name
            ok = show(o, path, r.emit, r.fail) and ok
            continue
        if moddir is None:
            from lkm.moddir import ModulesDir, modules_dir  # lazy: a file operand needs no index

            moddir = ModulesDir(modules_dir(o.root, o.kversion))
        found = [f for f in [moddir.lookup_name(name)] if f] if o.modname else moddir.lookup(name)
        if not found:
            r.fail(f"Module name {name} not found." if o.modname else f"Module {name} not found.")
            ok = False
            continue
        for f in found:
            if f.path is None:
                ok = _show_builtin(o, f.name, f.builtin_modinfo, r.emit) and ok
            else:
                ok = show(o, f.path, r.emit, r.fail) and ok
    _flush(r.events)
    return 0 if ok else 1


class _Render:
    """Output as an ordered list of (stream, bytes) events, so that a batch rendered in a
    worker process prints exactly as it would have sequentially."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.events: list[tuple[int, bytes]] = []

    def emit(self, text: str) -> None:
        self.events.append((1, text.encode("utf-8", "surrogateescape")))

    def fail(self, msg: str) -> None:
        self.events.append((2, f"{self.prog}: ERROR: {msg}\n".encode("utf-8", "surrogateescape")))


def _render_paths(o: Options, prog: str, paths: Sequence[str]) -> tuple[list[tuple[int, bytes]], bool]:
    r = _Render(prog)
    show: Callable[..., bool] = _show_json if o.json else _show
    ok = True
    for path in paths:
        ok = show(o, path, r.emit, r.fail) and ok
    return r.events, ok


def _flush(events: list[tuple[int, bytes]]) -> None:
    """Write events: stdout coalesced, stdout flushed before each stderr line."""
    out = sys.stdout.buffer
    pending: list[bytes] = []
    for stream, data in events:
        if stream == 1:
            pending.append(data)
            continue
        out.write(b"".join(pending))
        pending.clear()
        out.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.flush()
    out.write(b"".join(pending))
    out.flush()


def _is_module_filename(name: str) -> bool:
    try:
        st = os.stat(name)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and name.endswith(MODULE_EXTENSIONS)


def _modname(path: str) -> str:
    """kmod's path_to_modname: the file name up to its first '.', '-' as '_'."""
    return path_to_modname(path)


def _info_error(path: str, exc: LkmError) -> str:
    """kmod's "could not get modinfo from 'NAME': <strerror>" for a file it cannot read."""
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        code = errno.ENOEXEC if os.path.exists(path) else errno.ENOENT
    if code == errno.ENOEXEC and _elf_header(path):
        code = errno.EINVAL  # libkmod's elf.c: past the magic, a bad header is -EINVAL
    return f"could not get modinfo from '{_modname(path)}': {os.strerror(code)}"


def _missing(path: str, exc: LkmError) -> bool:
    """The file is gone (a stale modules.dep): kmod's own message.  A file lkm read and refused
    is reported with lkm's reason instead (kmod says only EINVAL or ENOEXEC there, lkm says why:
    a truncated section table, a decompression bomb...)."""
    return getattr(exc, "errno", None) == errno.ENOENT or not os.path.exists(path)


def _elf_header(path: str) -> bool:
    """More than an ELF32 header, starting with the ELF magic (an uncompressed file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(53)
    except OSError:
        return False
    return len(head) > 52 and head[:4] == b"\x7fELF"


def _show(o: Options, path: str, emit: Callable[[str], None], fail: Callable[[str], None]) -> bool:
    sep = o.sep
    if o.field == "filename":
        emit(f"{path}{sep}")
        return True
    try:
        mod = ModuleFile.open(path)
        entries = info_entries(mod)
        is24 = mod.version.user_space_link
        params = mod.parameters if (o.field is None or o.field == "parm") else []
    except LkmError as exc:
        if not _missing(path, exc):  # a file lkm read and refused: the file and lkm's reason
            fail(f"{path}: {exc.reason}")
            return False
        # kmod has printed the file name before it finds the file gone (a stale modules.dep)
        if o.field is None:
            emit(f"{'filename:':<16}{path}{sep}")
        fail(_info_error(path, exc))
        return False
    emit(_render(o, path, entries, params, is24))
    return True


def _render(
    o: Options, filename: str, entries: list[tuple[str, str]], params: list[Parameter], is24: bool
) -> str:
    """One module as kmod's modinfo prints it (or the asked field of it)."""
    sep = o.sep
    if o.field == "parm":
        return "".join(_param_text(p, True) + sep for p in _in_kmod_order(params, is24))
    if o.field is not None:
        return "".join(f"{v}{sep}" for k, v in entries if k == o.field)
    parts = [f"{'filename:':<16}{filename}{sep}"]
    for k, v in entries:
        if k == "parm" or k == "parmtype" or (is24 and k.startswith("parm_")):
            continue
        # printf("%s:%-*s", key, 15 - keylen, ""): a negative width pads too, by its magnitude.
        parts.append(f"{k}={v}\0" if sep == "\0" else f"{k}:{' ' * abs(15 - len(k))}{v}\n")
    for p in _in_kmod_order(params, is24):
        parts.append(f"{'parm:':<16}{_param_text(p, False)}{sep}")
    return "".join(parts)


def _param_text(p: Parameter, field: bool) -> str:
    """kmod's parm rendering ("name:desc (type)"; untyped/undescribed variants differ between the
    full listing and -F parm); 2.4 parameters as modutils described them."""
    if p.spec24 is not None:
        return p.describe24()
    if p.description is None:
        return f"{p.name}: ({p.type})" if field else f"{p.name}:{p.type}"
    if p.type is not None:
        return f"{p.name}:{p.description} ({p.type})"
    return f"{p.name}:{p.description}"


def _in_kmod_order(params: list[Parameter], is24: bool) -> list[Parameter]:
    """kmod prints parameters in reverse order of first appearance; modutils in file order."""
    return params if is24 else params[::-1]


def _show_builtin(o: Options, name: str, entries: list[tuple[str, str]], emit: Callable[[str], None]) -> bool:
    """A built-in module: kmod prints its name, "(builtin)" as file name, then its modinfo."""
    sep = o.sep
    if o.field is None:
        emit(f"{'name:':<16}{name}{sep}")
    elif o.field == "name":
        emit(f"{name}{sep}")
    if o.field == "filename":
        emit(f"(builtin){sep}")
    else:
        emit(_render(o, "(builtin)", entries, parameters(entries), False))
    return True


def _show_json(o: Options, path: str, emit: Callable[[str], None], fail: Callable[[str], None]) -> bool:
    # lazy: json and the report (signature, symbols) only for --json, outside the timed start-up
    import json

    from lkm.cli.jsonout import document
    from lkm.module.report import module_report

    try:
        mod = ModuleFile.open(path)
        if o.field is not None:  # -F FIELD (and -a -d -l -p -n): that field's values only
            if o.field == "filename":
                values = [path]
            elif o.field == "parm":
                values = [
                    _param_text(p, True) for p in _in_kmod_order(mod.parameters, mod.version.user_space_link)
                ]
            else:
                values = [v for k, v in info_entries(mod) if k == o.field]
            doc = document("modinfo-field", filename=path, name=mod.name, field=o.field, values=values)
        else:
            report = module_report(mod, exports=o.exports, imports=o.imports)
            doc = document("modinfo", filename=path, **report)
    except LkmError as exc:
        fail(_info_error(path, exc) if _missing(path, exc) else f"{path}: {exc.reason}")
        return False
    emit(json.dumps(doc, ensure_ascii=False) + "\n")
    return True

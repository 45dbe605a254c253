"""``lkm modprobe``: kmod's modprobe.  --show-depends / -n print exactly what kmod prints;
loading goes through the Kernel interface (the live kernel backend)."""

from __future__ import annotations

import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from lkm.kernel.interface import Kernel

SHORT = "arw:RibfDcnC:d:S:sqvVh"
LONG = [
    "all",
    "remove",
    "wait=",
    "resolve-alias",
    "ignore-install",
    "ignore-remove",
    "use-blacklist",
    "force",
    "force-modversion",
    "force-vermagic",
    "show-depends",
    "showconfig",
    "show-config",
    "show-modversions",
    "dump-modversions",
    "show-exports",
    "dry-run",
    "show",
    "config=",
    "dirname=",
    "set-version=",
    "syslog",
    "quiet",
    "verbose",
    "version",
    "help",
    "remove-dependencies",
    "remove-holders",
    "first-time",
    "svg=",
    "dot=",
]


class Opts:
    all = remove = resolve = ignore_install = ignore_remove = blacklist = show = False
    dump_config = dry_run = quiet = first_time = remove_holders = force = False
    modversions = exports = False
    root: str | None = None
    release: str | None = None
    configs: list[str] | None = None
    verbose = 0
    svg: str | None = None
    dot: str | None = None


def run(prog: str, args: list[str]) -> int:
    name = prog.rsplit(" ", 1)[-1]
    env_opts = os.environ.get("MODPROBE_OPTIONS")
    if env_opts:
        args = env_opts.split() + args
    model, state_path, args = _split_backend(args)
    o = Opts()

    def log(prio: str, msg: str) -> None:
        # bytes as the files hold them (surrogate-escaped), like kmod's printf
        if prio == "RAW":
            sys.stderr.buffer.write((msg + "\n").encode("utf-8", "surrogateescape"))
        elif not o.quiet or prio not in ("FATAL", "ERROR"):
            sys.stderr.buffer.write(f"{name}: {prio}: {msg}\n".encode("utf-8", "surrogateescape"))
        sys.stderr.flush()

    try:
        opts, operands = parse(args, SHORT, LONG)
    except UsageError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return 1
    for flag, val in opts:
        f = flag.lstrip("-")
        if f in ("a", "all"):
            o.all = True
        elif f in ("r", "remove"):
            o.remove = True
        elif f in ("R", "resolve-alias"):
            o.resolve = True
        elif f in ("i", "ignore-install", "ignore-remove"):
            o.ignore_install = o.ignore_remove = True
        elif f in ("b", "use-blacklist"):
            o.blacklist = True
        elif f in ("D", "show-depends"):
            o.show = o.dry_run = True
        elif f in ("c", "showconfig", "show-config"):
            o.dump_config = True
        elif f in ("show-modversions", "dump-modversions"):
            o.modversions = True
        elif f == "show-exports":
            o.exports = True
        elif f in ("n", "dry-run", "show"):
            o.dry_run = True
        elif f in ("C", "config"):
            o.configs = [*(o.configs or []), val]
        elif f in ("d", "dirname"):
            o.root = val
        elif f in ("S", "set-version"):
            o.release = val
        elif f in ("q", "quiet"):
            o.quiet = True
        elif f in ("v", "verbose"):
            o.verbose += 1
        elif f == "first-time":
            o.first_time = True
        elif f == "svg":
            o.svg = val
        elif f == "dot":
            o.dot = val
        elif f in ("f", "force", "force-modversion", "force-vermagic"):
            o.force = True  # insert ignoring version magic and symbol versions
        elif f == "remove-holders":
            o.remove_holders = True
        elif f in ("V", "version"):
            from lkm import __version__

            sys.stdout.write(f"lkm version {__version__} (kmod 30 modprobe)\n")
            return 0
        elif f in ("h", "help"):
            sys.stdout.write(
                f"Usage:\n\t{name} [options] [-i] [-b] modulename\n"
                + f"\t{name} [options] --show-depends modulename\n"
            )
            return 0
    if o.modversions or o.exports:
        return _show_symbols(name, operands, o.modversions)
    if not operands and not o.dump_config:
        log("ERROR", "missing parameters. See -h.")
        return 1

    from lkm.moddir import ModulesDir
    from lkm.modprobe import Resolver, load_config, options_from_args
    from lkm.modprobe.actions import Flags, KernelState, load_alias, remove

    release = o.release or os.uname().release
    dirname = f"{o.root or ''}/lib/modules/{release}"
    cfg = load_config(dirname, o.configs)
    for prio, msg in cfg.messages:
        log(prio, msg)
    res = Resolver(ModulesDir(dirname), cfg)
    if o.dump_config:
        sys.stdout.write(_dump(cfg, res))
        return 0
    try:
        kernel = _open_kernel(model, state_path)
    except LkmError as exc:
        log("FATAL", str(exc))
        return 1
    if o.svg or o.dot:
        if not operands:
            log("ERROR", "--svg/--dot need a module name or alias")
            return 1
        try:
            _draw(res, operands[0], kernel, release, o.svg, o.dot)
        except LkmError as exc:
            log("FATAL", str(exc))
            return 1
    state = KernelState(kernel, res)
    flags = Flags(
        dry_run=o.dry_run,
        show=o.show or o.verbose > 0,
        ignore_loaded=o.show,
        first_time=o.first_time,
        blacklist=o.blacklist,
        ignore_commands=o.ignore_install,
        remove_holders=o.remove_holders,
        force=o.force,
    )
    out = sys.stdout

    def emit(kind: str, text: str) -> None:
        if kind == "show":
            out.write(text)
        else:
            out.flush()
            log(kind, text)

    names, extra = (operands, "") if o.all or o.remove else (operands[:1], options_from_args(operands[1:]))
    rc = 0
    for alias in names:
        if not (o.resolve or o.remove):
            rc |= load_alias(res, state, alias, extra, flags, emit, dirname)
            continue
        mods = res.lookup(alias)
        if not mods:
            log(
                "FATAL",
                f"Module {alias} not found."
                if o.remove
                else f"Module {alias} not found in directory {dirname}",
            )
            rc = 1
            continue
        for m in mods:
            if o.resolve:
                out.write(f"{m.name}\n")
                continue
            err = remove(res, state, m, flags, emit)
            if err < 0:
                rc = 1
                break
    out.flush()
    return rc


def _import(name: str) -> Any:
    """importlib.import_module without importing importlib (a millisecond of start-up)."""
    __import__(name)
    return sys.modules[name]


def _draw(
    res: object, query: str, kernel: Kernel | None, release: str, svg: str | None, dot: str | None
) -> None:
    """--svg/--dot: the dependency graph of what ``query`` resolves to (lkm.draw.depgraph);
    the modules holding it when the kernel acted on is the one of this modules directory."""
    from lkm.draw.depgraph import dependency_graph, graph_svg, to_dot
    from lkm.link.output import write_atomic
    from lkm.modprobe.resolve import Resolver

    assert isinstance(res, Resolver)
    holders: dict[str, list[str]] = {}
    if kernel is not None and getattr(kernel, "release", None) == release:
        try:
            holders = {m.name: list(m.holders or ()) for m in kernel.modules()}
        except (OSError, LkmError):
            holders = {}
    g = dependency_graph(res, query, holders=holders)
    if dot:
        write_atomic(dot, to_dot(g).encode("utf-8", "surrogateescape"))
    if svg:
        write_atomic(svg, graph_svg(g).encode("utf-8"))


def _split_backend(args: list[str]) -> tuple[bool, str | None, list[str]]:
    """--model / --state PATH (the model kernel), through lkm.cli.backend where it exists."""
    try:
        backend = _import("lkm.cli.backend")
    except ImportError:
        return False, None, args
    split: Callable[[list[str]], tuple[bool, str | None, list[str]]] = backend.split_backend
    return split(args)


def _open_kernel(model: bool, state: str | None) -> Kernel | None:
    """The kernel modprobe acts on: the model kernel when asked for, else the running one.
    Without a live backend (or /proc) state queries see nothing loaded, and an actual
    insert or removal reports that there is no kernel to act on."""
    if model:
        backend = _import("lkm.cli.backend")
        kernel: Kernel = backend.open_backend(True, state)
        return kernel
    try:
        live = _import("lkm.kernel.live")
        running: Kernel = live.LiveKernel()
    except (ImportError, OSError, LkmError):
        return None
    return running


def _show_symbols(name: str, files: list[str], versions: bool) -> int:
    """--show-modversions / --show-exports of the first operand, as "0x%08x\t%s" lines."""
    from lkm.depmod.exports import kmod_exports, kmod_modversions
    from lkm.depmod.scan import KMOD_DECOMPRESSORS
    from lkm.errors import InvalidModule
    from lkm.module.file import ModuleFile

    if not files:
        sys.stderr.write(f"{name}: ERROR: missing parameters. See -h.\n")
        return 1
    path = files[0]
    if not os.path.isfile(path):
        sys.stderr.write(f"{name}: FATAL: Module {path} not found.\n")
        return 1
    what = "modversions" if versions else "symbols"
    try:
        with ModuleFile.open(path) as m:
            if m.compression is not None and m.compression not in KMOD_DECOMPRESSORS:
                raise InvalidModule(f"kmod 30 cannot read {m.compression} modules", path=path)
            rows = kmod_modversions(m) if versions else kmod_exports(m)
    except LkmError as exc:
        code = getattr(exc, "errno", None)
        why = os.strerror(code) if isinstance(code, int) else exc.reason
        sys.stderr.write(f"{name}: FATAL: could not get {what} of {path}: {why}\n")
        return 1
    sys.stdout.write("".join(f"0x{crc:08x}\t{sym}\n" for sym, crc in rows))
    return 0


def _dump(cfg: object, res: object) -> str:
    """modprobe -c: the configuration (kmod's iterator order), then the alias and symbol indexes."""
    from lkm.modprobe.config import ModprobeConfig
    from lkm.modprobe.resolve import Resolver

    assert isinstance(cfg, ModprobeConfig) and isinstance(res, Resolver)
    lines = [f"blacklist {b}\n" for b in cfg.blacklist]
    lines += [f"install {m} {c}\n" for m, c in cfg.install]
    lines += [f"remove {m} {c}\n" for m, c in cfg.remove]
    lines += [f"alias {a} {m}\n" for a, m in cfg.aliases]
    lines += [f"options {m} {o}\n" for m, o in cfg.options]
    for sd in cfg.softdeps:
        text = ""
        if sd.pre:
            text = "pre:" + "".join(" " + x for x in sd.pre)
        if sd.post:
            text += (" " if text else "") + "post:" + "".join(" " + x for x in sd.post)
        lines.append(f"softdep {sd.name} {text}\n")
    lines.append("\n# End of configuration files. Dumping indexes now:\n\n")
    for index in ("modules.alias.bin", "modules.symbols.bin"):
        idx = res.moddir.index(index)
        if idx is not None:
            lines += [f"alias {k} {v}\n" for k, vals in idx.items() for _p, v in vals]
    return "".join(lines)


__all__ = ["run"]

"""``lkm modprobe``: kmod's modprobe.  --show-depends / -n print exactly what kmod prints;
loading goes through the Kernel interface (the live kernel backend)."""

from __future__ import annotations

import os
import sys

from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import InvalidModule, LkmError, ModprobeError
from lkm.modname import path_to_modname
from lkm.modprobe import Flags, Modprobe, options_from_args
from lkm.modprobe.config import DEFAULT_CONFIG_PATHS, ModprobeConfig
from lkm.modprobe.resolve import Resolver

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from lkm.kernel.interface import Kernel

M, Q, G = "Management Options", "Query Options", "General Options"
TOOL = Tool(
    "modprobe",
    "add or remove modules with their dependencies (kmod-compatible)",
    usage=[
        "[options] [-i] [-b] modulename",
        "[options] -a [-i] [-b] modulename [modulename...]",
        "[options] -r [-i] modulename",
        "[options] -r -a [-i] modulename [modulename...]",
        "[options] -c",
        "[options] --dump-modversions filename",
    ],
    kmod=True,
    width=28,
    options=[
        Opt(
            "a",
            "all",
            None,
            "Consider every non-argument to\nbe a module name to be inserted\nor removed (-r)",
            group=M,
        ),
        Opt("r", "remove", None, "Remove modules instead of inserting", group=M),
        Opt("", "remove-dependencies", None, "Deprecated: use --remove-holders", group=M),
        Opt("", "remove-holders", None, "Also remove module holders (use together with -r)", group=M),
        Opt(
            "w",
            "wait",
            "MSEC",
            "When removing a module, wait up to MSEC for\nmodule's refcount to become 0 so it can be\n"
            "removed (use together with -r)",
            group=M,
            metavar=" <MSEC>",
        ),
        Opt("", "first-time", None, "Fail if module already inserted or removed", group=M),
        Opt("i", "ignore-install", None, "Ignore install commands", group=M),
        Opt("i", "ignore-remove", None, "Ignore remove commands", group=M),
        Opt("b", "use-blacklist", None, "Apply blacklist to resolved alias.", group=M),
        Opt(
            "f",
            "force",
            None,
            "Force module insertion or removal.\nimplies --force-modversions and\n--force-vermagic",
            group=M,
        ),
        Opt("", "force-modversion", None, "Ignore module's version", group=M),
        Opt("", "force-vermagic", None, "Ignore module's version magic", group=M),
        Opt("R", "resolve-alias", None, "Only lookup and print alias and exit", group=Q),
        Opt("D", "show-depends", None, "Only print module dependencies and exit", group=Q),
        Opt("c", "showconfig", None, "Print out known configuration and exit", group=Q),
        Opt("c", "show-config", None, "Same as --showconfig", group=Q),
        Opt("", "show-modversions", None, "Dump module symbol version and exit", group=Q),
        Opt("", "dump-modversions", None, "Same as --show-modversions", group=Q),
        Opt("", "show-exports", None, "Only print module exported symbol versions and exit", group=Q),
        Opt("n", "dry-run", None, "Do not execute operations, just print out", group=G),
        Opt("n", "show", None, "Same as --dry-run", group=G),
        Opt("C", "config", "FILE", "Use FILE instead of default search paths", group=G),
        Opt("d", "dirname", "DIR", "Use DIR as filesystem root for /lib/modules", group=G),
        Opt("S", "set-version", "VERSION", "Use VERSION instead of `uname -r`", group=G),
        Opt("s", "syslog", None, "print to syslog, not stderr", group=G),
        Opt("q", "quiet", None, "disable messages", group=G),
        Opt("v", "verbose", None, "enables more messages", group=G),
        Opt("V", "version", None, "show version", group=G),
        Opt("h", "help", None, "show this help", group=G),
        Opt("", "svg", "FILE", "with -D: also draw the module's dependency graph (SVG)", own=True),
        Opt("", "dot", "FILE", "with -D: the dependency graph for Graphviz (DOT)", own=True),
        Opt("", "json", None, "with -D/-n/-v, -R, -c, --show-*: JSON Lines (schema lkm/1)", own=True),
        *BACKEND,
    ],
    epilog="With --model or --state, modules are loaded into (removed from) that model kernel, and\n"
    "its release and modules root are used unless -S/-d say otherwise.",
)


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
    json = False


def run(prog: str, args: list[str]) -> int:
    name = prog  # as the user invoked it: "lkm modprobe", or "modprobe" through a link
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

    opts, operands = TOOL.parse(name, args)
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
        elif f == "json":
            o.json = True
        elif f in ("f", "force", "force-modversion", "force-vermagic"):
            o.force = True  # insert ignoring version magic and symbol versions
        elif f in ("remove-holders", "remove-dependencies"):
            o.remove_holders = True
    if o.modversions or o.exports:
        return _show_symbols(name, operands, o.modversions, o.json)
    if not operands and not o.dump_config:
        log("ERROR", "missing parameters. See -h.")
        return 1

    model_kernel = None
    if model:  # a model kernel: its release and modules root unless -S / -d say otherwise
        try:
            model_kernel = _open_kernel(True, state_path, "")
        except LkmError as exc:
            log("FATAL", str(exc))
            return 1
    release = o.release or (model_kernel.release if model_kernel is not None else os.uname().release)
    root = o.root
    configs = o.configs
    model_root = getattr(model_kernel, "modules_root", None)
    if root is None and model_root:
        root = model_root
        if configs is None:
            configs = [os.path.join(model_root, p.lstrip("/")) for p in DEFAULT_CONFIG_PATHS]
    mp = Modprobe(root or "", release, None, configs)
    dirname, res = mp.dirname, mp.resolver
    for prio, msg in mp.messages:
        log(prio, msg)
    if o.dump_config:
        sys.stdout.write(_dump_json(mp.config, res) if o.json else _dump(mp.config, res))
        return 0
    try:
        kernel = model_kernel if model else _open_kernel(False, state_path, dirname)
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
    mp.use_kernel(kernel)
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
            out.write(step_json(text) if o.json else text)
        else:
            out.flush()
            log(kind, text)

    names, extra = (operands, "") if o.all or o.remove else (operands[:1], options_from_args(operands[1:]))
    rc = 0
    for alias in names:
        if not (o.resolve or o.remove):
            try:
                # kmod's -a lowers its LOG() priority: a name not found is a WARNING
                mp.load(alias, extra, flags, emit, "WARNING" if o.all else "FATAL")
            except ModprobeError:  # modprobe's lines about it are out already: exit 1
                rc = 1
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
                if o.json:
                    from lkm.cli.jsonout import line  # lazy: json only for --json (start-up)

                    out.write(line("modprobe-alias", alias=alias, module=m.name))
                else:
                    out.write(f"{m.name}\n")
                continue
            try:
                mp.remove(m, flags, emit)
            except ModprobeError:
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
    # lazy: the drawing code only for --svg/--dot, outside the timed start-up
    from lkm.draw.depgraph import dependency_graph, graph_svg, to_dot
    from lkm.link.output import write_atomic

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


def _open_kernel(model: bool, state: str | None, dirname: str) -> Kernel | None:
    """The kernel modprobe acts on: the model kernel when asked for, else the running one.
    Without a live backend (or /proc) state queries see nothing loaded, and an actual
    insert or removal reports that there is no kernel to act on."""
    if model:
        backend = _import("lkm.cli.backend")
        kernel: Kernel = backend.open_backend(True, state)
        return kernel
    try:
        live = _import("lkm.kernel.live")
        running: Kernel = live.LiveKernel(modules_dir=dirname)
    except (ImportError, OSError, LkmError):
        return None
    return running


def _show_symbols(name: str, files: list[str], versions: bool, as_json: bool = False) -> int:
    """--show-modversions / --show-exports of the first operand, as "0x%08x\t%s" lines."""
    # lazy: the ELF reader only for --show-exports/--show-modversions (start-up)
    from lkm.depmod.exports import kmod_exports, kmod_modversions
    from lkm.depmod.scan import KMOD_DECOMPRESSORS
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
    if as_json:
        from lkm.cli.jsonout import line  # lazy: json only for --json (start-up)

        kind = "modversion" if versions else "export-version"
        sys.stdout.write("".join(line(kind, file=path, symbol=sym, crc=crc) for sym, crc in rows))
        return 0
    sys.stdout.write("".join(f"0x{crc:08x}\t{sym}\n" for sym, crc in rows))
    return 0


def step_json(text: str) -> str:
    """The lines modprobe shows (``insmod PATH OPTIONS``, ``builtin NAME``, ``install COMMAND``,
    ``rmmod NAME``, ``remove COMMAND``; one or several in ``text``) as ``"modprobe-step"``
    documents, one per line."""
    return "".join(_step_json(row) for row in text.splitlines() if row)


def _step_json(text: str) -> str:
    from lkm.cli.jsonout import line  # lazy: json only for --json (start-up)

    action, _sp, rest = text.partition(" ")
    if action == "insmod":
        path, _sp, options = rest.partition(" ")
        return line(
            "modprobe-step",
            action=action,
            module=path_to_modname(path),
            path=path,
            options=options.strip(),
            command=None,
        )
    if action in ("install", "remove"):
        return line(
            "modprobe-step", action=action, module=None, path=None, options=None, command=rest.strip()
        )
    return line("modprobe-step", action=action, module=rest.strip(), path=None, options=None, command=None)


def _dump_json(cfg: object, res: object) -> str:
    """modprobe -c as ``"modprobe-config"`` documents: one per directive, then the alias and
    symbol indexes (``"source": "index"``), in the order of the text."""
    from lkm.cli.jsonout import line  # lazy: json only for --json (start-up)

    assert isinstance(cfg, ModprobeConfig) and isinstance(res, Resolver)

    def doc(directive: str, name: str, value: str | None = None, source: str = "config", **kw: object) -> str:
        return line("modprobe-config", directive=directive, name=name, value=value, source=source, **kw)

    out = [doc("blacklist", b) for b in cfg.blacklist]
    out += [doc("install", m, c) for m, c in cfg.install]
    out += [doc("remove", m, c) for m, c in cfg.remove]
    out += [doc("alias", a, m) for a, m in cfg.aliases]
    out += [doc("options", m, o) for m, o in cfg.options]
    out += [doc("softdep", sd.name, None, pre=list(sd.pre), post=list(sd.post)) for sd in cfg.softdeps]
    for index in ("modules.alias.bin", "modules.symbols.bin"):
        idx = res.moddir.index(index)
        if idx is not None:
            out += [doc("alias", k, v, "index") for k, vals in idx.items() for _p, v in vals]
    return "".join(out)


def _dump(cfg: object, res: object) -> str:
    """modprobe -c: the configuration (kmod's iterator order), then the alias and symbol indexes."""
    assert isinstance(cfg, ModprobeConfig) and isinstance(res, Resolver)
    lines = [f"blacklist {b}\n" for b in cfg.blacklist]
    lines += [f"install {m} {c}\n" for m, c in cfg.install]
    lines += [f"remove {m} {c}\n" for m, c in cfg.remove]
    lines += [f"alias {a} {m}\n" for a, m in cfg.aliases]
    lines += [f"options {m} {o}\n" for m, o in cfg.options]
    for sd in cfg.softdeps:
        # libkmod's softdep_to_char: "pre: " and "post: " parts joined with no space between
        text = ("pre: " + " ".join(sd.pre) if sd.pre else "") + (
            "post: " + " ".join(sd.post) if sd.post else ""
        )
        lines.append(f"softdep {sd.name} {text}\n")
    lines.append("\n# End of configuration files. Dumping indexes now:\n\n")
    for index in ("modules.alias.bin", "modules.symbols.bin"):
        idx = res.moddir.index(index)
        if idx is not None:
            lines += [f"alias {k} {v}\n" for k, vals in idx.items() for _p, v in vals]
    return "".join(lines)


__all__ = ["run"]

"""``lkm depmod``: kmod's depmod (options, messages and every output file byte for byte)."""

from __future__ import annotations

import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

SHORT = "aAb:C:E:F:euqrvnP:wmVh"
LONG = [
    "all",
    "quick",
    "basedir=",
    "config=",
    "symvers=",
    "filesyms=",
    "errsyms",
    "unresolved-error",
    "quiet",
    "root",
    "verbose",
    "show",
    "dry-run",
    "symbol-prefix=",
    "warn",
    "map",
    "version",
    "help",
    "jobs=",
    "no-cache",
    "graph=",
]
DEPRECATED = {"-u", "-q", "-r", "-m", "--unresolved-error", "--quiet", "--root", "--map"}
# kmod's log levels: messages above the current level are not shown (-v raises it).
LEVELS = {"FATAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5, "INFO": 6, "DEBUG": 7}
DEFAULT_LEVEL = LEVELS["WARNING"]

HELP = """Usage:
\t{prog} -[aA] [options] [forced_version]

If no arguments (except options) are given, "depmod -a" is assumed

depmod will output a dependency list suitable for the modprobe utility.

Options:
\t-a, --all            Probe all modules
\t-A, --quick          Only does the work if there's a new module
\t-e, --errsyms        Report not supplied symbols
\t-n, --show           Write the dependency file on stdout only
\t-P, --symbol-prefix  Architecture symbol prefix
\t-C, --config=PATH    Read configuration from PATH
\t-v, --verbose        Enable verbose mode
\t-w, --warn           Warn on duplicates
\t-V, --version        show version
\t-h, --help           show this help
\t    --jobs=N         Read modules with N processes (default: every core)

The following options are useful for people managing distributions:
\t-b, --basedir=DIR    Use an image of a module tree.
\t-F, --filesyms=FILE  Use the file instead of the
\t                     current kernel symbols.
\t-E, --symvers=FILE   Use Module.symvers file to check
\t                     symbol versions.
"""


def is_version_number(arg: str) -> bool:
    """sscanf(arg, "%u.%u") == 2: digits, a dot, digits (each %u may have blanks and a sign)."""
    head, dot, tail = arg.partition(".")
    return bool(dot) and _uint(head) and _uint(tail)


def _uint(text: str) -> bool:
    t = text.lstrip(" \t\n\v\f\r")
    t = t[1:] if t[:1] in ("+", "-") else t
    return t[:1].isdigit()


def run(prog: str, args: list[str]) -> int:
    from lkm.depmod import DependencyCycle, DepmodOptions, depmod, up_to_date, write_outputs
    from lkm.depmod.core import modules_dirname

    name = prog.rsplit(" ", 1)[-1]
    level = DEFAULT_LEVEL

    def log(prio: str, msg: str) -> None:
        if LEVELS.get(prio, 7) <= level:
            sys.stderr.write(f"{name}: {prio}: {msg}\n")

    try:
        opts, operands = parse(args, SHORT, LONG)
    except UsageError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return 1
    basedir = symvers = system_map = None
    configs: list[str] = []
    quick = dry_run = errsyms = warn = every = False
    prefix = ""
    workers: int | None = None
    use_cache = True
    graph: str | None = None
    for flag, val in opts:
        if flag in ("-b", "--basedir"):
            basedir = os.path.abspath(val)
        elif flag in ("-C", "--config"):
            configs.append(val)
        elif flag in ("-E", "--symvers"):
            symvers = val
        elif flag in ("-F", "--filesyms"):
            system_map = val
        elif flag in ("-e", "--errsyms"):
            errsyms = True
        elif flag in ("-v", "--verbose"):
            level += 1
        elif flag in ("-n", "--show", "--dry-run"):
            dry_run = True
        elif flag in ("-P", "--symbol-prefix"):
            if len(val) != 1:
                log("FATAL", "-P only takes a single char")
                return 1
            prefix = val
        elif flag in ("-w", "--warn"):
            warn = True
        elif flag in ("-A", "--quick"):
            quick = True
        elif flag in ("-a", "--all"):
            every = True  # the whole tree, even if modules are named
        elif flag in DEPRECATED:
            log("WARNING", f"Ignored deprecated option {flag}")
        elif flag in ("-h", "--help"):
            sys.stderr.write(HELP.format(prog=name))
            return 0
        elif flag in ("-V", "--version"):
            from lkm import __version__

            sys.stdout.write(f"lkm version {__version__} (kmod 30 depmod)\n")
            return 0
        elif flag == "--no-cache":
            use_cache = False
        elif flag == "--graph":
            if not val.endswith((".dot", ".svg")):
                log("FATAL", f"--graph wants a .dot or .svg file name: {val}")
                return 1
            graph = val
        elif flag == "--jobs":
            try:
                workers = max(1, int(val))
            except ValueError:
                log("FATAL", f"--jobs needs a number: {val}")
                return 1
    release = os.uname().release
    if operands:
        if not is_version_number(operands[0]):
            log("ERROR", f"Bad version passed {operands[0]}")
            return 1
        release = operands.pop(0)
    dirname = modules_dirname(basedir, release)
    if quick:
        if dry_run:
            return 0
        fresh, why = up_to_date(dirname)
        if why:
            log("ERROR", why)
        if fresh:
            return 0
    options = DepmodOptions(
        release,
        basedir=basedir,
        config_paths=configs or None,
        symvers=symvers,
        system_map=system_map,
        errsyms=errsyms,
        warn_dups=warn,
        sym_prefix=prefix,
        modules=None if every or not operands else operands,
        workers=workers,
        binaries=not dry_run,
        verbose=level > DEFAULT_LEVEL,
        cache=use_cache,
    )
    try:
        result = depmod(options)
    except DependencyCycle as exc:
        for prio, msg in exc.messages:
            log(prio, msg)
        return 1
    except LkmError as exc:
        msg = str(exc)
        if msg.startswith("could not open directory"):
            log("ERROR", msg)
            log("FATAL", "could not search modules: No such file or directory")
        else:
            log("FATAL", msg)
        return 1
    for prio, msg in result.messages:
        log(prio, msg)
    if result.shown:
        sys.stdout.write("".join(result.shown))
        sys.stdout.flush()
    if graph is not None:
        try:
            _graph(result.outputs, graph, None if every or not operands else operands)
        except LkmError as exc:
            log("FATAL", str(exc))
            return 1
    if dry_run:
        out = sys.stdout.buffer
        for _fname, data in result.outputs:
            out.write(data)
        out.flush()
        return 0
    try:
        write_outputs(result)
    except LkmError as exc:
        log("FATAL", str(exc))
        return 1
    return 0


def _graph(outputs: list[tuple[str, bytes]], path: str, names: list[str] | None) -> None:
    """--graph FILE: modules.dep just computed as a graph (lkm.draw.depgraph.tree_graph)."""
    from lkm.draw.depgraph import DepTables, graph_svg, to_dot, tree_graph
    from lkm.link.output import write_atomic

    files = {os.path.basename(f): data.decode("utf-8", "surrogateescape") for f, data in outputs}
    tables = DepTables(files.get("modules.dep", ""), files.get("modules.alias", ""))
    mods = None
    if names is not None:
        from lkm.modname import path_to_modname

        mods = [path_to_modname(n) for n in names]
    g = tree_graph(tables, mods)
    if path.endswith(".dot"):
        write_atomic(path, to_dot(g).encode("utf-8", "surrogateescape"))
        return
    if len(g.nodes) > 400:
        raise LkmError(f"{len(g.nodes)} modules are too many to draw; write {path[:-4]}.dot for Graphviz")
    write_atomic(path, graph_svg(g).encode("utf-8"))

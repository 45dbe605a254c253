"""``lkm depmod``: kmod's depmod (options, messages and every output file byte for byte)."""

from __future__ import annotations

import os
import sys

from lkm.cli.progress import progress
from lkm.cli.tool import Opt, Tool
from lkm.depmod import DependencyCycle, DepmodOptions, depmod, up_to_date, write_outputs
from lkm.depmod.core import modules_dirname
from lkm.errors import LkmError
from lkm.modname import path_to_modname
from lkm.safeio import read_text

__all__ = ["DEFAULT_LEVEL", "DEPRECATED", "LEVELS", "TOOL", "D", "is_version_number", "json_entries", "run"]


DEPRECATED = {"-u", "-q", "-r", "-m", "--unresolved-error", "--quiet", "--root", "--map"}
# kmod's log levels: messages above the current level are not shown (-v raises it).
LEVELS = {"FATAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5, "INFO": 6, "DEBUG": 7}
DEFAULT_LEVEL = LEVELS["WARNING"]

D = "The following options are useful for people managing distributions"
TOOL = Tool(
    "depmod",
    "write the module dependency database (kmod-compatible)",
    usage=["-[aA] [options] [forced_version]"],
    description='If no arguments (except options) are given, "depmod -a" is assumed\n\n'
    "depmod will output a dependency list suitable for the modprobe utility.",
    kmod=True,
    width=21,
    options=[
        Opt("a", "all", None, "Probe all modules"),
        Opt("A", "quick", None, "Only does the work if there's a new module"),
        Opt("e", "errsyms", None, "Report not supplied symbols"),
        Opt("n", ("show", "dry-run"), None, "Write the dependency file on stdout only"),
        Opt("P", "symbol-prefix", "CHAR", "Architecture symbol prefix", metavar=""),
        Opt("C", "config", "PATH", "Read configuration from PATH"),
        Opt("v", "verbose", None, "Enable verbose mode"),
        Opt("w", "warn", None, "Warn on duplicates"),
        Opt("V", "version", None, "show version"),
        Opt("h", "help", None, "show this help"),
        Opt("b", "basedir", "DIR", "Use an image of a module tree.", group=D),
        Opt("F", "filesyms", "FILE", "Use the file instead of the\ncurrent kernel symbols.", group=D),
        Opt("E", "symvers", "FILE", "Use Module.symvers file to check\nsymbol versions.", group=D),
        Opt("u", "unresolved-error", None, "(deprecated, ignored)", hidden=True),
        Opt("q", "quiet", None, "(deprecated, ignored)", hidden=True),
        Opt("r", "root", None, "(deprecated, ignored)", hidden=True),
        Opt("m", "map", None, "(deprecated, ignored)", hidden=True),
        Opt("", "jobs", "N", "Read modules with N processes (default: every core)", own=True),
        Opt("", "graph", "FILE", "Also draw the dependency graph (.dot or .svg)", own=True),
        Opt("", "no-cache", None, "Read every module again (no modules.lkm-cache)", own=True),
        Opt(
            "",
            "json",
            None,
            "Also print each module's entry as JSON Lines (schema lkm/1;\nwith -n instead of the files)",
            own=True,
        ),
    ],
)


def is_version_number(arg: str) -> bool:
    """sscanf(arg, "%u.%u") == 2: digits, a dot, digits (each %u may have blanks and a sign)."""
    head, dot, tail = arg.partition(".")
    return bool(dot) and _uint(head) and _uint(tail)


def _uint(text: str) -> bool:
    t = text.lstrip(" \t\n\v\f\r")
    t = t[1:] if t[:1] in ("+", "-") else t
    return t[:1].isdigit()


def run(prog: str, args: list[str]) -> int:
    name = prog  # as the user invoked it: "lkm depmod", or "depmod" through a link
    level = DEFAULT_LEVEL

    def log(prio: str, msg: str) -> None:
        if LEVELS.get(prio, 7) <= level:
            sys.stderr.write(f"{name}: {prio}: {msg}\n")

    opts, operands = TOOL.parse(name, args)
    basedir = symvers = system_map = None
    configs: list[str] = []
    quick = dry_run = errsyms = warn = every = False
    prefix = ""
    workers: int | None = None
    use_cache = True
    as_json = False
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
        elif flag == "--no-cache":
            use_cache = False
        elif flag == "--json":
            as_json = True
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
        with progress(f"{name}: reading {dirname}"):
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
    if result.shown and not as_json:
        sys.stdout.write("".join(result.shown))
        sys.stdout.flush()
    if as_json:
        sys.stdout.write(json_entries(result.outputs, result.dirname))
        sys.stdout.flush()
    if graph is not None:
        try:
            _graph(result.outputs, graph, None if every or not operands else operands)
        except LkmError as exc:
            log("FATAL", str(exc))
            return 1
    if dry_run and as_json:
        return 0
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


def json_entries(outputs: list[tuple[str, bytes]], dirname: str | None = None) -> str:
    """One ``"depmod"`` document per module, from the text indexes depmod just made (so the JSON
    says what modules.dep, .alias, .symbols, .softdep, .devname and .builtin say): its path
    (relative to the modules directory), dependencies in modules.dep order, aliases, exported
    symbols, soft dependencies, device node; built-in modules with ``"builtin": true``."""

    files = {os.path.basename(f): data.decode("utf-8", "surrogateescape") for f, data in outputs}
    if "modules.builtin" not in files and dirname is not None:  # an input of depmod's, not an output
        try:
            builtin: str | None = read_text(os.path.join(dirname, "modules.builtin"))
        except OSError:
            builtin = None
        if builtin is not None:
            files["modules.builtin"] = builtin
    entries: dict[str, dict[str, object]] = {}

    def entry(name: str, path: str | None = None, builtin: bool = False) -> dict[str, object]:
        e = entries.get(name)
        if e is None:
            e = entries[name] = {
                "name": name,
                "path": path,
                "builtin": builtin,
                "depends": [],
                "aliases": [],
                "symbols": [],
                "softdep": None,
                "devname": None,
            }
        return e

    for row in files.get("modules.dep", "").splitlines():
        path, colon, deps = row.partition(":")
        if colon:
            entry(path_to_modname(path), path)["depends"] = deps.split()
    for row in files.get("modules.builtin", "").splitlines():
        if row.strip():
            entry(path_to_modname(row.strip()), row.strip(), True)
    for fname, key in (("modules.alias", "aliases"), ("modules.symbols", "symbols")):
        for row in files.get(fname, "").splitlines():
            f = row.split(" ")
            if len(f) == 3 and f[0] == "alias":
                value = f[1][len("symbol:") :] if key == "symbols" and f[1].startswith("symbol:") else f[1]
                got = entry(f[2])[key]
                assert isinstance(got, list)
                got.append(value)
    for row in files.get("modules.softdep", "").splitlines():
        f = row.split()
        if len(f) >= 2 and f[0] == "softdep":
            pre: list[str] = []
            post: list[str] = []
            into = pre
            for w in f[2:]:
                if w in ("pre:", "post:"):
                    into = pre if w == "pre:" else post
                else:
                    into.append(w)
            entry(f[1])["softdep"] = {"pre": pre, "post": post}
    for row in files.get("modules.devname", "").splitlines():
        f = row.split()
        if len(f) == 3 and not row.startswith("#"):
            entry(f[0])["devname"] = {"name": f[1], "node": f[2]}
    from lkm.cli.jsonout import line

    return "".join(line("depmod", **e) for e in entries.values())


def _graph(outputs: list[tuple[str, bytes]], path: str, names: list[str] | None) -> None:
    """--graph FILE: modules.dep just computed as a graph (lkm.draw.depgraph.tree_graph)."""
    from lkm.draw.depgraph import DepTables, graph_svg, to_dot, tree_graph
    from lkm.link.output import write_atomic

    files = {os.path.basename(f): data.decode("utf-8", "surrogateescape") for f, data in outputs}
    tables = DepTables(files.get("modules.dep", ""), files.get("modules.alias", ""))
    mods = None
    if names is not None:
        mods = [path_to_modname(n) for n in names]
    g = tree_graph(tables, mods)
    if path.endswith(".dot"):
        write_atomic(path, to_dot(g).encode("utf-8", "surrogateescape"))
        return
    if len(g.nodes) > 400:
        raise LkmError(f"{len(g.nodes)} modules are too many to draw; write {path[:-4]}.dot for Graphviz")
    write_atomic(path, graph_svg(g).encode("utf-8"))

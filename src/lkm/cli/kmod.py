"""``kmod``: kmod's multi-call program (tools/kmod.c) — ``kmod list``, ``kmod static-nodes``,
``kmod help``, ``kmod --version`` — run as ``lkm kmod ...`` or through a link named ``kmod``.
The compat tools (lsmod, rmmod, insmod, modinfo, modprobe, depmod) are links named after them,
as with kmod itself.  Output, messages and exit status are kmod 30's.  lkm adds ``--json``:
``kmod list --json`` is ``lsmod --json`` (kind ``lsmod``), ``kmod static-nodes --json`` one
``static-node`` document per node (JSON Lines: module, devname, type, major, minor) instead
of the ``--format``'s text; ``kmod help`` stays text.
"""

from __future__ import annotations

import os
import re
import sys

from lkm.cli import lsmod
from lkm.cli.getopt import UsageError, parse
from lkm.cli.jsonout import line as json_line
from lkm.cli.tool import Opt, Tool

COMMANDS = (
    ("help", "Show help message"),
    ("list", "list currently loaded modules"),
    ("static-nodes", "outputs the static-node information installed with the currently running kernel"),
)
COMPAT = ("lsmod", "rmmod", "insmod", "modinfo", "modprobe", "depmod")
# what `kmod --version` prints: the kmod lkm follows (Debian 12's build of kmod 30)
VERSION = "kmod version 30\n+ZSTD +XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL\n"


# for the man page and completion (kmod's own parser below keeps kmod's exact behaviour)
TOOL = Tool(
    "kmod",
    "kmod's multi-call program: list, static-nodes, help (kmod-compatible)",
    usage=[
        "[options] command [command_options]",
        "list [--json]",
        "static-nodes [-f FORMAT] [-o FILE] [--json]",
        "help",
    ],
    kmod=True,
    version_text=VERSION,
    options=[
        Opt(
            "f",
            "format",
            "FORMAT",
            "static-nodes: human (default), tmpfiles or devname",
            complete="human tmpfiles devname",
        ),
        Opt("o", "output", "FILE", "static-nodes: write output to FILE (parent directories made)"),
        Opt(
            "",
            "json",
            None,
            "list, static-nodes: JSON Lines (schema lkm/1, kinds\nlsmod and static-node) instead of text",
            own=True,
        ),
    ],
)


def kmod_help(argv0: str) -> str:
    lines = [
        "kmod - Manage kernel modules: list, load, unload, etc",
        "Usage:",
        f"\t{argv0} [options] command [command_options]",
        "",
        "Options:",
        "\t-V, --version     show version",
        "\t-h, --help        show this help",
        "",
        "Commands:",
        *(f"  {name:<12} {help_}" for name, help_ in COMMANDS),
        "",
        "kmod also handles gracefully if called from following symlinks:",
        *(f"  {name:<12} compat {name} command" for name in COMPAT),
    ]
    return "\n".join(lines) + "\n"


def run(prog: str, args: list[str]) -> int:
    argv0 = prog.rsplit(" ", 1)[-1]
    # getopt "+hV": options only before the command
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            i += 1
            break
        i += 1
    try:
        opts, _ = parse(args[:i], "hV", ["help", "version"])
    except UsageError as exc:
        sys.stderr.write(f"{argv0}: {exc}\n")
        return 1
    for flag, _val in opts:
        if flag in ("-h", "--help"):
            sys.stdout.write(kmod_help(argv0))
            return 0
        sys.stdout.write(VERSION)
        return 0
    rest = args[i:]
    if not rest:
        sys.stderr.write("missing command\n")
        sys.stdout.write(kmod_help(argv0))
        return 1
    cmd, cmd_args = rest[0], rest[1:]
    if cmd == "help":
        sys.stdout.write(kmod_help(cmd))
        return 0
    if cmd == "list":
        return lsmod.run("list", cmd_args)
    if cmd == "static-nodes":
        return static_nodes(cmd_args)
    sys.stderr.write(f"invalid command '{cmd}'\n")
    sys.stdout.write(kmod_help(argv0))
    return 1


# -- static-nodes (tools/static-nodes.c) ------------------------------------------------------

STATIC_NODES_HELP = """Usage:
\tkmod static-nodes [options]

kmod static-nodes outputs the static-node information of the currently running kernel.

Options:
\t-f, --format=FORMAT  choose format to use: see "Formats"
\t-o, --output=FILE    write output to file
\t-h, --help           show this help

Formats:
\thuman        (default) a human readable format. Do not parse.
\ttmpfiles     the tmpfiles.d(5) format used by systemd-tmpfiles.
\tdevname      the modules.devname format.
"""


def format_node(fmt: str, modname: str, devname: str, kind: str, major: int, minor: int) -> str:
    """One modules.devname entry in kmod's ``human``, ``tmpfiles`` or ``devname`` format."""
    if fmt == "devname":
        return f"{modname} {devname} {kind}{major}:{minor}\n"
    if fmt == "tmpfiles":
        d = devname.rfind("/")
        head = f"d /dev/{devname[:d]} 0755 - - -\n" if d >= 0 else ""
        return f"{head}{kind}! /dev/{devname} 0600 - - - {major}:{minor}\n"
    return (
        f"Module: {modname}\n\tDevice node: /dev/{devname}\n"
        f"\t\tType: {'character' if kind == 'c' else 'block'} device\n"
        f"\t\tMajor: {major}\n\t\tMinor: {minor}\n"
    )


def parse_devname_line(line: str) -> tuple[str, str, str, int, int] | None:
    """sscanf("%s %s %c%u:%u"): None unless all five convert and the type is c or b."""
    m = re.match(r"\s*(\S+)\s+(\S+)\s*(\S)\s*(\+?\d+):\s*(\+?\d+)", line)
    if m is None or m.group(3) not in ("c", "b"):
        return None
    return m.group(1), m.group(2), m.group(3), int(m.group(4)) & 0xFFFFFFFF, int(m.group(5)) & 0xFFFFFFFF


def node_document(modname: str, devname: str, kind: str, major: int, minor: int) -> str:
    """One modules.devname entry as a ``static-node`` JSON line (lkm's ``--json``)."""
    return json_line("static-node", module=modname, devname=devname, type=kind, major=major, minor=minor)


def static_nodes(args: list[str]) -> int:
    try:
        opts, _operands = parse(args, "o:f:h", ["output=", "format=", "help", "json"])
    except UsageError as exc:
        sys.stderr.write(f"static-nodes: {exc}\n")
        return 1
    output = "/dev/stdout"
    fmt = "human"
    as_json = False
    for flag, val in opts:
        if flag == "--json":
            as_json = True
        elif flag in ("-o", "--output"):
            output = val
        elif flag in ("-f", "--format"):
            if val not in ("human", "tmpfiles", "devname"):
                sys.stderr.write(f"Unknown format: '{val}'.\n")
                sys.stdout.write(STATIC_NODES_HELP)
                return 1
            fmt = val
        else:
            sys.stdout.write(STATIC_NODES_HELP)
            return 0
    release = os.uname().release
    path = f"/lib/modules/{release}/modules.devname"
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        sys.stderr.write(f"Warning: /lib/modules/{release}/modules.devname not found - ignoring\n")
        return 0
    except OSError as exc:
        sys.stderr.write(f"Error: could not open /lib/modules/{release}/modules.devname - {exc.strerror}\n")
        return 1
    out_text: list[str] = []
    rc = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            continue
        got = parse_devname_line(line)
        if got is None:
            sys.stderr.write(f"Error: invalid devname entry: {line}")
            rc = 1
            continue
        out_text.append(node_document(*got) if as_json else format_node(fmt, *got))
    if output == "/dev/stdout":
        sys.stdout.write("".join(out_text))
        sys.stdout.flush()
        return rc
    parent = os.path.dirname(output)
    try:
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
    except OSError as exc:
        sys.stderr.write(f"Error: could not create parent directory for {output} - {exc.strerror}.\n")
        return 1
    try:
        with open(output, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write("".join(out_text))
    except OSError as exc:
        sys.stderr.write(f"Error: could not create {output} - {exc.strerror}\n")
        return 1
    return rc


__all__ = ["format_node", "kmod_help", "run", "static_nodes"]

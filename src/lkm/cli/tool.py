"""One start-up for every tool: an option table per tool, from which the argument parser
(GNU getopt_long, :mod:`lkm.cli.getopt`), ``--help``, ``--version``, the man page and the bash
and zsh completions are all made — kmod's ``tools/`` over its shared ``opt.c``/``log.c`` is the
model.

Adding a tool is one module in ``lkm/cli/`` and one row in ``TOOLS``
(:mod:`lkm.cli`, which also gathers every table: ``all_tools``)::

    from lkm.cli.tool import Opt, Tool

    TOOL = Tool(
        "why",
        "explain why a module does not load",
        usage=["[options] MODULE"],
        options=[
            Opt("k", "kernel", "FILE", "kernel symbols (System.map, kallsyms, vmlinux...); repeatable"),
            Opt("", "json", None, "one JSON object (schema lkm/1)"),
        ],
    )

    def run(prog: str, args: list[str]) -> int:
        opts, operands = TOOL.parse(prog, args)  # -h/--help, -V/--version, bad options: handled
        ...

``TOOL.parse`` prints the help or version and raises :class:`Exit` (the dispatcher returns
its status); a usage error is one line ``PROG: <getopt's message>`` and exit status 1 (as
kmod), or ``usage_status``.  ``-h``/``-V`` are added unless the table gives those letters
another meaning (then only ``--help``/``--version``).  Options a kmod tool lacks are marked
``own=True`` and listed under "lkm options"; ``group`` names kmod's own sections
("Management Options" ...).  :func:`man_page`, :func:`bash_completion` and
:func:`zsh_completion` read the same tables (``lkm help --man TOOL``, ``lkm help
--completion bash``); ``scripts/gen_surface`` writes them into ``lkm/data`` for installing.
"""

from __future__ import annotations

import sys

from lkm import __version__
from lkm.cli.getopt import UsageError, parse


class Exit(Exception):
    """Raised by :meth:`Tool.parse` once it has answered (help, version, usage error)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Opt:
    """One option: short letter ("" for none), long names (the first is shown, the others are
    aliases), its argument's name (None: takes none), the help text (lines after the first
    are continuation lines)."""

    __slots__ = ("short", "long", "arg", "help", "own", "group", "metavar", "complete", "hidden")

    def __init__(
        self,
        short: str,
        long: str | tuple[str, ...],
        arg: str | None,
        help: str,
        *,
        own: bool = False,
        group: str | None = None,
        metavar: str | None = None,
        complete: str | None = None,
        hidden: bool = False,
    ) -> None:
        self.short = short
        self.long = ((long,) if long else ()) if isinstance(long, str) else long
        self.arg = arg
        self.help = help
        self.own = own
        self.group = group
        # how help shows the argument ("=FILE" by default; " <MSEC>" as kmod's modprobe -w)
        self.metavar = metavar if metavar is not None else (f"={arg}" if arg else "")
        # completion of the argument: "file", "dir", a space-separated word list, or None
        self.complete = complete if complete is not None else ("file" if arg in ("FILE", "PATH", "IMAGE") else
                                                               "dir" if arg == "DIR" else None)  # fmt: skip
        self.hidden = hidden

    def left(self) -> str:
        head = f"-{self.short}, " if self.short else "    "
        return f"{head}--{self.long[0]}{self.metavar}" if self.long else f"-{self.short}{self.metavar}"


# options every model-kernel tool takes (stripped by lkm.cli.backend before parsing)
BACKEND = [
    Opt(
        "",
        "model",
        None,
        "act on the default model kernel ($LKM_STATE or\n$XDG_STATE_HOME/lkm/kernel.db)",
        own=True,
    ),
    Opt("", "state", "FILE", "act on the model kernel kept in FILE (SQLite)", own=True),
]


class Tool:
    """A tool's surface: name, one-line summary, usage lines, option table, description."""

    def __init__(
        self,
        name: str,
        summary: str,
        *,
        usage: list[str],
        options: list[Opt],
        description: str = "",
        epilog: str = "",
        kmod: bool = False,
        width: int = 0,
        usage_status: int = 1,
        version_text: str | None = None,
        section: int = 8,
    ) -> None:
        self.name = name
        self.summary = summary
        self.usage = usage
        self.description = description
        self.epilog = epilog
        self.kmod = kmod
        self.usage_status = usage_status
        self.version_text = version_text
        self.section = section
        shorts = {o.short for o in options if o.short}
        longs = {n for o in options for n in o.long}
        extra = []
        if "version" not in longs:
            extra.append(Opt("V" if "V" not in shorts else "", "version", None, "show version"))
        if "help" not in longs:
            extra.append(Opt("h" if "h" not in shorts else "", "help", None, "show this help"))
        self.options = options + extra
        self.width = width or min(34, max(len(o.left()) for o in self.options) + 2)

    # -- parsing -------------------------------------------------------------------------
    def getopt_spec(self) -> tuple[str, list[str]]:
        short = "".join(o.short + (":" if o.arg else "") for o in self.options if o.short)
        long = [n + ("=" if o.arg else "") for o in self.options for n in o.long]
        return short, long

    def parse(self, prog: str, args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """(options as (flag, value) pairs in command-line order, operands); help, version
        and usage errors answered here (raises :class:`Exit`)."""
        short, long = self.getopt_spec()
        try:
            opts, operands = parse(args, short, long)
        except UsageError as exc:
            sys.stderr.write(f"{prog}: {exc}\n")
            raise Exit(self.usage_status) from None
        help_flags = {"--help"} | ({"-h"} if self._short_of("help") else set())
        version_flags = {"--version"} | ({"-V"} if self._short_of("version") else set())
        for flag, _ in opts:
            if flag in help_flags:
                sys.stdout.write(self.help(prog))
                raise Exit(0)
            if flag in version_flags:
                sys.stdout.write(self.version())
                raise Exit(0)
        return opts, operands

    def _short_of(self, long: str) -> str:
        return next((o.short for o in self.options if long in o.long), "")

    def version(self) -> str:
        if self.version_text is not None:
            return self.version_text
        follows = " (follows kmod 30)" if self.kmod else ""
        return f"lkm {self.name} version {__version__}{follows}\n"

    # -- help ----------------------------------------------------------------------------
    def help(self, prog: str) -> str:
        lines = ["Usage:", *(f"\t{prog} {u}".rstrip() for u in self.usage)]
        if self.description:
            lines += ["", *self.description.format(prog=prog).splitlines()]
        groups: dict[str, list[Opt]] = {}
        for o in self.options:
            if o.hidden:
                continue
            title = "lkm options" if o.own else (o.group or "Options")
            groups.setdefault(title, []).append(o)
        if "lkm options" in groups:  # lkm's own options after the kmod-like sections
            groups["lkm options"] = groups.pop("lkm options")
        first = True
        for title, opts in groups.items():
            if not first or self.description:
                lines.append("")
            first = False
            lines.append(f"{title}:")
            for o in opts:
                text = o.help.splitlines() or [""]
                left = o.left()
                if len(left) + 1 > self.width:
                    lines.append(f"\t{left}")
                    lines += [f"\t{'':<{self.width}}{t}" for t in text]
                else:
                    lines.append(f"\t{left:<{self.width}}{text[0]}")
                    lines += [f"\t{'':<{self.width}}{t}" for t in text[1:]]
        if self.epilog:
            lines += ["", *self.epilog.format(prog=prog).splitlines()]
        return "\n".join(lines) + "\n"


# -- man pages and completion ------------------------------------------------------------------


def _roff(text: str) -> str:
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln if ln[:1] in (".", "'") else ln) for ln in out.splitlines())


def man_page(tool: Tool, date: str = "") -> str:
    """The tool's man page (roff, man(7) macros), from its table."""
    # installed as lkm-TOOL(8) so as never to shadow kmod's own pages
    name, call = f"lkm-{tool.name}", f"lkm {tool.name}"
    out = [
        f'.TH {name.upper()} {tool.section} "{date}" "lkm {__version__}" "lkm"',
        ".SH NAME",
        f"{_roff(name)} \\- {_roff(tool.summary)}",
        ".SH SYNOPSIS",
    ]
    for u in tool.usage:
        out += [".nf", f"\\fB{_roff(call)}\\fR {_roff(u)}", ".fi"]
    out += [".SH DESCRIPTION", _roff(tool.summary[:1].upper() + tool.summary[1:] + ".")]
    if tool.description:
        out += [".PP", _roff(tool.description.format(prog=call))]
    groups: dict[str, list[Opt]] = {}
    for o in tool.options:
        if not o.hidden:
            groups.setdefault("LKM OPTIONS" if o.own else (o.group or "Options").upper(), []).append(o)
    if "LKM OPTIONS" in groups:
        groups["LKM OPTIONS"] = groups.pop("LKM OPTIONS")
    for title, opts in groups.items():
        out.append(f".SH {title if title != 'OPTIONS' else 'OPTIONS'}")
        for o in opts:
            names = ([f"\\fB\\-{o.short}\\fR"] if o.short else []) + [
                f"\\fB\\-\\-{_roff(n)}\\fR" for n in o.long
            ]
            arg = f" \\fI{_roff(o.arg)}\\fR" if o.arg else ""
            out += [".TP", ", ".join(names) + arg, _roff(" ".join(o.help.split()))]
    if tool.epilog:
        out += [".SH NOTES", _roff(tool.epilog.format(prog=call))]
    see = [f"{tool.name}(8)"] if tool.name in KMOD_LINKS else []
    see += [f"lkm-{t}(8)" for t in sorted(KMOD_LINKS) if t != tool.name and tool.kmod and t != "kmod"]
    if see:
        out += [".SH SEE ALSO", ", ".join(f"\\fB{_roff(s.split('(')[0])}\\fR({s.split('(')[1]}" for s in see)]
    return "\n".join(out) + "\n"


# tools also installed under kmod's names (a link named after them)
KMOD_LINKS = ("depmod", "insmod", "kmod", "lsmod", "modinfo", "modprobe", "rmmod")


def _words(tool: Tool) -> list[str]:
    out = []
    for o in tool.options:
        if o.hidden:
            continue
        if o.short:
            out.append(f"-{o.short}")
        out += [f"--{n}" for n in o.long]
    return out


def bash_completion(tools: dict[str, Tool]) -> str:
    """bash: ``lkm TOOL <TAB>`` and each kmod-named link complete options and their files."""
    lines = [
        "# bash completion for lkm (generated from lkm's option tables; do not edit)",
        "_lkm_opts() {",
        '    local tool="$1" cur="$2" prev="$3"',
        '    case "$tool" in',
    ]
    for name, tool in tools.items():
        lines.append(f"    {name})")
        files = [f"-{o.short}" for o in tool.options if o.arg and o.short and o.complete in ("file", "dir")]
        files += [f"--{n}" for o in tool.options if o.arg and o.complete in ("file", "dir") for n in o.long]
        choices = [(o, o.complete) for o in tool.options if o.arg and o.complete not in (None, "file", "dir")]
        for o, words in choices:
            pats = "|".join(([f"-{o.short}"] if o.short else []) + [f"--{n}" for n in o.long])
            reply = f'COMPREPLY=($(compgen -W "{words}" -- "$cur")); return;;'
            lines.append(f'        case "$prev" in {pats}) {reply} esac')
        if files:
            reply = 'COMPREPLY=($(compgen -f -- "$cur")); return;;'
            lines.append(f'        case "$prev" in {"|".join(files)}) {reply} esac')
        lines.append(f'        COMPREPLY=($(compgen -W "{" ".join(_words(tool))}" -- "$cur"))')
        lines.append('        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))')
        lines.append("        ;;")
    lines += [
        "    esac",
        "}",
        "_lkm() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local tool="${COMP_WORDS[0]##*/}"',
        '    if [[ "$tool" == lkm ]]; then',
        "        if [[ $COMP_CWORD -eq 1 ]]; then",
        f'            COMPREPLY=($(compgen -W "{" ".join(tools)} --help --version" -- "$cur")); return',
        "        fi",
        '        tool="${COMP_WORDS[1]}"',
        "    fi",
        '    _lkm_opts "$tool" "$cur" "$prev"',
        "}",
        "complete -F _lkm lkm",
        "# kmod's names, where lkm is installed under them:",
        f"# complete -F _lkm {' '.join(KMOD_LINKS)}",
        "",
    ]
    return "\n".join(lines)


def zsh_completion(tools: dict[str, Tool]) -> str:
    """zsh: ``#compdef lkm`` with one _arguments spec per tool."""

    def q(s: str) -> str:
        return s.replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")

    lines = ["#compdef lkm", "# zsh completion for lkm (generated from lkm's option tables; do not edit)", ""]
    for name, tool in tools.items():
        fn = "_lkm_" + name.replace("-", "_")
        lines.append(f"{fn}() {{")
        lines.append("    _arguments -s \\")
        for o in tool.options:
            if o.hidden:
                continue
            first = q(o.help.splitlines()[0] if o.help else "")
            action = ""
            if o.arg:
                kind = {"file": "_files", "dir": "_files -/"}.get(o.complete or "", "")
                if not kind and o.complete:
                    kind = f"({o.complete})"
                action = f":{q(o.arg.lower())}:{kind}"
            for flag in ([f"-{o.short}"] if o.short else []) + [f"--{n}" for n in o.long]:
                eq = "=" if flag.startswith("--") and o.arg else ""
                lines.append(f"        '{flag}{eq}[{first}]{action}' \\")
        lines.append("        '*:file:_files'")
        lines.append("}")
    lines += [
        "_lkm() {",
        "    if (( CURRENT == 2 )); then",
        "        local -a tools",
        "        tools=(",
        *(f"            '{n}:{q(t.summary)}'" for n, t in tools.items()),
        "        )",
        "        _describe tool tools",
        "        return",
        "    fi",
        "    local tool=${words[2]}",
        "    shift words; (( CURRENT-- ))",
        "    (( $+functions[_lkm_${tool//-/_}] )) && _lkm_${tool//-/_}",
        "}",
        '_lkm "$@"',
        "",
    ]
    return "\n".join(lines)


__all__ = ["BACKEND", "Exit", "Opt", "Tool", "bash_completion", "man_page", "zsh_completion"]

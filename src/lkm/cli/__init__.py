"""Command-line tools: ``lkm TOOL ...`` or, kmod-style, a link named after the tool.

Each tool is a small module with ``run(prog, args) -> exit status`` over the library API and
an option table ``TOOL`` (:mod:`lkm.cli.tool`: the parser, ``--help``, ``--version``, man page
and completion all come from it); the table below maps tool names to those modules and is the
only place that lists them.  The tool's module is imported when it is called (``_dispatch``),
so that a single call loads only the tool it runs: start-up time is measured (bench/run.py).
``prog`` is the name the user invoked ("lkm modinfo", or "modinfo" through a link): every
message starts with it.
"""

from __future__ import annotations

import os
import sys

from lkm import __version__
from lkm.cli.tool import Exit, Tool, bash_completion, man_page, zsh_completion
from lkm.errors import LkmError
from lkm.safeio import os_error

__all__ = ["TOOLS", "all_tools", "describe", "install_data", "main"]

# tool name -> (module, one-line summary)
TOOLS: dict[str, tuple[str, str]] = {
    "modinfo": ("lkm.cli.modinfo", "show information about a kernel module (kmod-compatible)"),
    "link": ("lkm.cli.link", "link a module against a kernel's symbols at kernel addresses"),
    "kallsyms": ("lkm.cli.kallsyms", "a kernel's symbols recovered from its image, as /proc/kallsyms"),
    "insmod": ("lkm.cli.insmod", "insert a module into the running kernel (kmod-compatible)"),
    "rmmod": ("lkm.cli.rmmod", "remove modules from the running kernel (kmod-compatible)"),
    "lsmod": ("lkm.cli.lsmod", "list the modules loaded in the running kernel (kmod-compatible)"),
    "ksyms": ("lkm.cli.ksyms", "exported symbols of a model kernel's modules (modutils 2.4)"),
    "proc": ("lkm.cli.proc", "a model kernel's /proc files: modules, ksyms, kallsyms, vmallocinfo"),
    "model": ("lkm.cli.model", "boot, check and inspect persistent model kernels"),
    "demo": ("lkm.cli.demo", "a guided run of the HOWTO's section 10 on a model kernel"),
    "verify": ("lkm.cli.verify", "check that loaded modules are byte for byte their files (/proc/kcore)"),
    "run": ("lkm.cli.run", "run a module's init (and exit) in an emulated CPU, tracing its kernel calls"),
    "dev": ("lkm.cli.dev", "call an emulated driver's file_operations (open, read, write, ioctl, release)"),
    "depmod": ("lkm.cli.depmod", "write the module dependency database (kmod-compatible)"),
    "modprobe": ("lkm.cli.modprobe", "add or remove modules with their dependencies (kmod-compatible)"),
    "why": ("lkm.cli.why", "why a module is (or would be) loaded, and why it would not be"),
    "ksymoops": ("lkm.cli.ksymoops", "decode kernel oops reports: symbols, source lines, disassembly"),
    "compat": ("lkm.cli.compat", "will modules built for one kernel load into another, and why (kABI)"),
    "firmware": ("lkm.cli.firmware", "firmware that modules and their dependencies need, found or missing"),
    "btf": ("lkm.cli.btf", "would the kernel accept a module's BTF (btf_parse_module's checks)"),
    "sig": ("lkm.cli.sig", "verify module signatures as a kernel does, list an image's keys, sign-file"),
    "faddr2line": ("lkm.cli.faddr2line", "source lines of func+0x12/0x40 (scripts/faddr2line)"),
    "triage": ("lkm.cli.triage", "unique crashes of many console logs: titles, counts, releases, reports"),
    "kmod": ("lkm.cli.kmod", "kmod's multi-call program: list, static-nodes, help (kmod-compatible)"),
}


def all_tools() -> dict[str, Tool]:
    """Every tool's table, in TOOLS order (imports every tool module)."""
    out: dict[str, Tool] = {}
    for name, (modname, summary) in TOOLS.items():
        __import__(modname)
        tool = getattr(sys.modules[modname], "TOOL", None)
        if isinstance(tool, Tool):
            out[name] = tool
        else:  # a tool not converted yet: its name and summary only
            out[name] = Tool(name, summary, usage=["[options]"], options=[])
    return out


def install_data(prefix: str) -> list[str]:
    """Install the generated man pages and completions under ``prefix`` (share/man/man8,
    share/bash-completion/completions, share/zsh/site-functions); the paths written."""
    tools = all_tools()
    files = {f"share/man/man8/lkm-{n}.8": man_page(t) for n, t in tools.items()}
    files["share/bash-completion/completions/lkm"] = bash_completion(tools)
    files["share/zsh/site-functions/_lkm"] = zsh_completion(tools)
    written = []
    for rel, text in files.items():
        path = os.path.join(prefix, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        written.append(path)
    assert set(tools) == set(TOOLS)
    return written


def _usage(out: object = None) -> str:
    lines = [
        "Usage: lkm TOOL [ARGS...]   (or call lkm through a link named TOOL)",
        "       lkm help [TOOL] | --man TOOL | --completion bash|zsh | --install PREFIX",
        "",
        "Tools:",
    ]
    for name, (_mod, summary) in TOOLS.items():
        lines.append(f"  {name:<12}{summary}")
    lines += ["", "Every tool takes --help and --version; `lkm TOOL --help` lists its options."]
    return "\n".join(lines) + "\n"


def _help(args: list[str]) -> int:
    """lkm help [TOOL] | --man TOOL | --completion bash|zsh | --install PREFIX (man pages and
    completions under PREFIX/share): all generated from the option tables."""
    if not args:
        sys.stdout.write(_usage())
        return 0
    if args[0] == "--completion" and len(args) == 2 and args[1] in ("bash", "zsh"):
        tools = all_tools()
        sys.stdout.write(bash_completion(tools) if args[1] == "bash" else zsh_completion(tools))
        return 0
    if args[0] == "--install" and len(args) == 2:
        for path in install_data(args[1]):
            sys.stdout.write(f"{path}\n")
        return 0
    if args[0] == "--man" and len(args) == 2 and args[1] in TOOLS:
        sys.stdout.write(man_page(all_tools()[args[1]]))
        return 0
    if len(args) == 1 and args[0] in TOOLS:
        return _dispatch(args[0], f"lkm {args[0]}", ["--help"])
    sys.stderr.write(f"lkm: ERROR: unknown help topic {' '.join(args)!r}\n{_usage()}")
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    invoked = os.path.basename(argv[0]) if argv else "lkm"
    if invoked in TOOLS:
        return _dispatch(invoked, invoked, argv[1:])
    if len(argv) < 2:
        sys.stderr.write(_usage())  # as kmod with no command: usage on stderr, exit 1
        return 1
    if argv[1] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0
    if argv[1] == "help":
        return _help(argv[2:])
    if argv[1] in ("-V", "--version"):
        sys.stdout.write(f"lkm version {__version__}\n")
        return 0
    tool = argv[1]
    if tool not in TOOLS:
        sys.stderr.write(f"lkm: ERROR: unknown tool '{tool}'\n{_usage()}")
        return 1
    return _dispatch(tool, f"lkm {tool}", argv[2:])


def _dispatch(tool: str, prog: str, args: list[str]) -> int:
    _tolerant_streams()
    modname = TOOLS[tool][0]
    try:
        __import__(modname)  # the one lazy import of the entry path: only the tool called
        mod = sys.modules[modname]
        rc: int = mod.run(prog, args)
    except Exit as done:  # the start-up has answered: --help, --version, a usage error
        return done.status
    except KeyboardInterrupt:
        _quiet_exit()
        return 130
    except BrokenPipeError:
        # Like a C tool killed by SIGPIPE: no traceback, quiet exit.
        _quiet_exit()
        return 141
    except SystemExit:
        raise
    except BaseException as exc:  # the boundary: one line, never a traceback
        return _report(prog, exc)
    return rc


def _tolerant_streams() -> None:
    """Names are bytes (the kernel's and the file system's): a module or file name that is not
    UTF-8 is carried as surrogate escapes and written back as its bytes, whatever the locale."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:  # noqa: SIM105 (contextlib.suppress: importing contextlib costs milliseconds)
                reconfigure(errors="surrogateescape")
            except Exception:
                pass


def _quiet_exit() -> None:
    import contextlib

    with contextlib.suppress(OSError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def describe(exc: BaseException) -> tuple[str, bool]:
    """(one line naming the file and the reason, whether it is an expected failure).  Expected:
    lkm's own errors, the system's (OSError), SQLite's, running out of memory.  Anything else
    is a bug in lkm: reported as an internal error (and counted as one by scripts/fuzz.py)."""
    if isinstance(exc, LkmError):
        return str(exc), True
    if isinstance(exc, OSError):
        return str(os_error(exc)), True
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.Error):
        return f"state database error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", True
    if isinstance(exc, MemoryError):
        return "out of memory", True
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {type(exc).__name__}{': ' + text if text else ''}", False


def _report(prog: str, exc: BaseException) -> int:
    line, expected = describe(exc)
    import contextlib

    if os.environ.get("LKM_TRACEBACK"):  # for lkm's developers: where the line came from
        import traceback

        traceback.print_exception(exc)

    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{prog}: {line}\n")
        sys.stderr.flush()
    return 1 if expected else 70  # EX_SOFTWARE for a bug

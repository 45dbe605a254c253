"""insmod, rmmod and lsmod as modutils 2.4.16 had them, for a 2.4 model kernel.

``lkm insmod|rmmod|lsmod`` hand over to these when the kernel they were given (``--model``,
``--state PATH``, ``$LKM_STATE``) is a 2.4 one; options, messages and exit codes are
modutils'.  The work is done by :mod:`lkm.modutils`.
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.cli.jsonout import line, loaded_module
from lkm.cli.loadjson import Watch, insmod_document, loaded, rmmod_document
from lkm.errors import LkmError
from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.load24 import iter_strings
from lkm.kernel.model.procfs import flags_24
from lkm.kernel.model.struct24 import QM_INFO, QM_MODULES, QM_REFS
from lkm.modutils import insmod as insmod24
from lkm.modutils import rmmod as rmmod24
from lkm.modutils.insmod import InsmodError, InsmodOptions
from lkm.modutils.rmmod import RmmodError, reap

__all__ = [
    "INSMOD_LONG",
    "INSMOD_USAGE",
    "RMMOD_USAGE",
    "VERSION",
    "format_lsmod",
    "insmod",
    "lsmod",
    "persist_dir",
    "rmmod",
]


INSMOD_USAGE = (
    "Usage:\n"
    "insmod [-fkmnpqrsSvVxXyYN] [-e persist_name] [-o module_name] [-O blob_name] [-P prefix] "
    "module [ symbol=value ... ]\n"
)
RMMOD_USAGE = "Usage: rmmod [-aehrsvV] module ...\n"
VERSION = "2.4.16 (lkm model)"
INSMOD_LONG = [
    "force", "autoclean", "map", "noload", "name=", "poll", "quiet", "root", "syslog", "verbose", "version",
    "lock", "prefix=", "noexport", "export", "noksymoops", "ksymoops", "persist=", "help", "kallsyms",
    "blob=", "numeric-only",
]  # fmt: skip


def persist_dir(kernel: ModelKernel) -> str:
    """The model's persistdir (/var/lib/modules/persist on a real 2.4 system)."""
    return os.path.join(os.path.dirname(os.path.abspath(kernel.state.path)), "persist")


def take_json(args: list[str]) -> tuple[bool, list[str]]:
    """lkm's --json (before any "--"), taken out of modutils' own arguments."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != "--json"]
    return len(head) != end, head + args[end:]


def insmod(prog: str, args: list[str], kernel: ModelKernel) -> int:
    err = sys.stderr.write
    as_json, args = take_json(args)
    try:
        opts, operands = parse(args, "fkmno:pqrsSvVxXyYe:O:P:LNh", INSMOD_LONG)
    except UsageError as exc:
        err(f"insmod: {exc}\n{INSMOD_USAGE}")
        return 1
    kw: dict[str, object] = {}
    verbose = False
    for flag, val in opts:
        f = flag.lstrip("-")
        if f in ("h", "help"):
            sys.stdout.write(INSMOD_USAGE)
            return 0
        if f in ("V", "version"):
            sys.stderr.write(f"insmod version {VERSION}\n")
            return 0
        key = {"f": "force", "k": "autoclean", "m": "map", "n": "noload", "p": "probe", "poll": "probe",
               "q": "quiet", "S": "kallsyms", "v": "verbose"}.get(f, f)  # fmt: skip
        if key in ("force", "autoclean", "map", "noload", "probe", "quiet", "kallsyms", "verbose"):
            kw[key] = True
            verbose = verbose or key == "verbose"
        elif f in ("o", "name"):
            kw["name"] = val
        elif f in ("O", "blob"):
            kw["blob"] = val
        elif f in ("P", "prefix"):
            kw["prefix"] = val
        elif f in ("e", "persist"):
            kw["persist"] = val
        elif f in ("x", "noexport", "X", "export"):
            kw["export"] = f in ("X", "export")
        elif f in ("y", "noksymoops", "Y", "ksymoops"):
            kw["ksymoops"] = f in ("Y", "ksymoops")
    if not operands:
        err(INSMOD_USAGE)
        return 1
    path = operands[0]
    if verbose:
        sys.stdout.write(f"Using {path}\n")
    watch = Watch(kernel) if as_json else None
    name = str(kw.get("name") or os.path.basename(path).split(".")[0])

    def failed(exc: LkmError, message: str) -> int:
        err(message + "\n")
        if isinstance(exc, InsmodError) and exc.hint:
            err(f"{exc.hint}\n")
        if as_json:
            sys.stdout.write(insmod_document(kernel, name, path, exc.errno, message, watch, result="failed"))
        return 1

    try:
        res = insmod24.insmod(
            kernel, path, operands[1:], InsmodOptions(**kw), persist_dir=persist_dir(kernel)
        )
    except InsmodError as exc:
        return failed(exc, f"{exc.path or path}: {exc.reason}")
    except LkmError as exc:
        return failed(exc, f"insmod: {exc}")
    for w in res.warnings:
        err(w + "\n")
    if as_json:  # -n (noload): linked, not loaded; the -m map goes into the document
        result = "loaded" if res.loaded else "linked"
        doc = insmod_document(kernel, res.name, path, None, None, watch, res.warnings, result, map=res.map)
        sys.stdout.write(doc)
        return 0
    if res.map is not None:
        sys.stdout.write(res.map)
    if verbose and res.loaded:
        sys.stdout.write(f"Module {res.name} loaded, with warnings\n" if res.warnings else "")
    return 0


def rmmod(prog: str, args: list[str], kernel: ModelKernel) -> int:
    err = sys.stderr.write
    as_json, args = take_json(args)
    try:
        opts, operands = parse(
            args, "aehrsvV", ["all", "persist", "help", "stacks", "syslog", "verbose", "version"]
        )
    except UsageError as exc:
        err(f"rmmod: {exc}\n{RMMOD_USAGE}")
        return 1
    longs = {"--all": "a", "--persist": "e", "--stacks": "r", "--help": "h", "--syslog": "s",
             "--verbose": "v", "--version": "V"}  # fmt: skip
    flags = {longs.get(f, f[1:]) for f, _ in opts}
    if "h" in flags:
        sys.stdout.write(RMMOD_USAGE)
        return 0
    if "V" in flags:
        err(f"rmmod version {VERSION}\n")
        return 0
    if "a" in flags:
        try:
            reap(kernel)
        except KernelError as exc:
            err(f"rmmod: {exc.strerror}\n")
            return 1
        return 0
    if not operands:
        err(RMMOD_USAGE)
        return 1
    failed = 0
    for name in operands:
        watch = Watch(kernel) if as_json else None
        before = loaded(kernel, name) if as_json else {}
        notes: list[str] = []
        problem: tuple[str, int | None, str] | None = None
        try:
            saved = rmmod24.rmmod(kernel, [name], recursive="r" in flags, persist_only="e" in flags)
            notes = [f"Saved persistent data of {name} in {p}" for p in saved]
            if "v" in flags and not as_json:
                sys.stdout.write("".join(n + "\n" for n in notes))
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                problem = ("not-loaded", exc.errno, f"rmmod: module {name} is not loaded")
            elif exc.errno == errno.EBUSY:
                problem = ("in-use", exc.errno, f"rmmod: {name}: Device or resource busy")
            else:
                problem = ("failed", exc.errno, f"rmmod: {name}: {exc.strerror}")
        except RmmodError as exc:
            problem = ("failed", exc.errno, f"rmmod: {exc.reason}")
        if problem is not None:
            failed += 1
            err(problem[2] + "\n")
        if as_json:
            result, code, message = problem or ("removed", None, None)
            if result == "removed" and "e" in flags:
                result = "saved"  # -e: persistent data saved, the module stays
            sys.stdout.write(rmmod_document(kernel, name, name, result, code, message, before, notes, watch))
    return 1 if failed else 0


def format_lsmod(kernel: ModelKernel) -> str:
    """modutils' lsmod: its header with the taint state, one row per module (query_module)."""

    t = kernel.tainted()
    taint = f"Tainted: {'P' if t & 1 else 'G'}{'F' if t & 2 else ' '}" if t else "Not tainted"
    rows = [f"Module                  Size  Used by    {taint}\n"]
    for name in iter_strings(kernel.query_module(None, QM_MODULES).data):
        info = kernel.layout24.info.unpack(kernel.query_module(name, QM_INFO).data)
        refs = list(iter_strings(kernel.query_module(name, QM_REFS).data))
        words = flags_24(info[2]).strip()
        row = f"{name:<20}{info[1]:8d}{info[3]:4d} {words}"
        if refs:
            row += " [" + " ".join(refs) + "]"
        rows.append(row + "\n")
    return "".join(rows)


def lsmod(prog: str, args: list[str], kernel: ModelKernel) -> int:
    as_json, args = take_json(args)
    if args:
        sys.stderr.write("Usage: lsmod\n")
        return 1
    if as_json:  # lkm's: the modules as /proc/modules has them (kind lsmod), as on today's kernels
        sys.stdout.write("".join(line("lsmod", **loaded_module(m)) for m in kernel.modules()))
        return 0
    sys.stdout.write(format_lsmod(kernel))
    return 0

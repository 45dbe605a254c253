"""GNU getopt_long, as kmod's tools parse their arguments: options and operands permuted,
unique prefixes of long options accepted, ``--`` ends options, GNU's error messages.

(The standard library's getopt pulls in gettext and locale: a millisecond of start-up that a
one-module ``lkm modinfo`` call cannot afford.)
"""

from __future__ import annotations

import sys

from lkm import __version__

__all__ = ["UsageError", "help_or_version", "parse"]


class UsageError(Exception):
    pass


def parse(args: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(options as (flag, value) pairs, operands).  ``short`` is getopt's spec ("ab:"), ``long``
    names with a trailing "=" for options taking an argument."""
    takes = {c: short[i + 1 : i + 2] == ":" for i, c in enumerate(short) if c != ":"}
    longs = {n.rstrip("="): n.endswith("=") for n in long}
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a[:1] != "-" or a == "-":  # an operand (the common case: thousands of names)
            operands.append(a)
            continue
        if a == "--":
            operands.extend(args[i:])
            break
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            if name in longs:
                full = name
            else:
                cands = [n for n in longs if n.startswith(name)]
                if not cands:
                    raise UsageError(f"unrecognized option '--{name}'")
                if len(cands) > 1:
                    raise UsageError(
                        f"option '--{name}' is ambiguous; possibilities:"
                        + "".join(f" '--{c}'" for c in cands)
                    )
                full = cands[0]
            if longs[full]:
                if not eq:
                    if i >= len(args):
                        raise UsageError(f"option '--{full}' requires an argument")
                    val = args[i]
                    i += 1
            elif eq:
                raise UsageError(f"option '--{full}' doesn't allow an argument")
            opts.append(("--" + full, val))
        elif a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in takes:
                    raise UsageError(f"invalid option -- '{c}'")
                if takes[c]:
                    if j < len(a):
                        val = a[j:]
                    elif i < len(args):
                        val = args[i]
                        i += 1
                    else:
                        raise UsageError(f"option requires an argument -- '{c}'")
                    opts.append(("-" + c, val))
                    break
                opts.append(("-" + c, ""))
        else:
            operands.append(a)
    return opts, operands


def help_or_version(flag: str, help_text: str) -> bool:
    """kmod's -h/--help and -V/--version: print and return True; False for any other flag."""
    if flag in ("-h", "--help"):
        sys.stdout.write(help_text)
        return True
    if flag in ("-V", "--version"):
        sys.stdout.write(f"lkm version {__version__}\n")
        return True
    return False

"""GNU getopt_long parsing with GNU's error messages, as kmod's tools use it."""

from __future__ import annotations

import getopt as _getopt


class UsageError(Exception):
    pass


def parse(args: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Options (permuted as GNU does) and operands; UsageError carries GNU's message."""
    try:
        return _getopt.gnu_getopt(args, short, long)
    except _getopt.GetoptError as exc:
        opt = exc.opt
        msg = exc.msg
        if "requires argument" in msg:
            if len(opt) == 1:
                text = f"option requires an argument -- '{opt}'"
            else:
                text = f"option '--{opt}' requires an argument"
        elif "not a unique prefix" in msg:
            text = f"option '--{opt}' is ambiguous"
        elif "must not have an argument" in msg:
            text = f"option '--{opt}' doesn't allow an argument"
        elif len(opt) == 1:
            text = f"invalid option -- '{opt}'"
        else:
            text = f"unrecognized option '--{opt}'"
        raise UsageError(text) from None

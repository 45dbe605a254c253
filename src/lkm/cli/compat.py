"""``lkm compat``: will modules built for one kernel load into another, and why not
(:mod:`lkm.trust.compat`).

    lkm compat --kernel TREE [--symvers FILE] [--enforce] [--json] [--all] MODULE|DIR...
    lkm compat --weak-modules --symvers FILE [--json] MODULE|DIR...
    lkm compat diff A B [--json]          (A, B: Module.symvers / symvers-R.gz files)
"""

from __future__ import annotations

import errno
import os
import sys

from lkm.cli.getopt import UsageError, parse
from lkm.cli.jsonout import line
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.trust.compat import (
    check_modules,
    load_symvers,
    load_target,
    module_paths,
    symvers_diff,
    weak_modules,
)

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "compat",
    "will modules built for one kernel load into another, and why not",
    usage=[
        "--kernel TREE [--symvers FILE] [--enforce] [--json] [--all] MODULE|DIR...",
        "--weak-modules (--symvers FILE | --kernel TREE) [--json] MODULE|DIR...",
        "diff A.symvers B.symvers [--json]",
    ],
    description="Exit status: 0 every module loads, 2 some would be refused, 1 an error.",
    options=[
        Opt(
            "", "kernel", "TREE", "the target kernel: a modules tree, image or symbol files", complete="file"
        ),
        Opt("", "symvers", "FILE", "the target's Module.symvers (or symvers-R.gz)", complete="file"),
        Opt("", "enforce", None, "the target enforces module signatures"),
        Opt("", "all", None, "every reason, not only the refusing ones"),
        Opt("", "weak-modules", None, "as RHEL's weak-modules: which modules link into the target"),
        Opt("", "json", None, "one JSON document"),
    ],
)


def run(prog: str, args: list[str]) -> int:
    try:
        if args and args[0] == "diff":
            return _diff(args[1:])
        return _check(prog, args)
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc}\n")
        return 1


def _check(prog: str, args: list[str]) -> int:
    opts, operands = TOOL.parse(prog, args)
    o = dict(opts)
    paths = module_paths(operands)
    if not paths:
        raise UsageError("no modules given")
    as_json = "--json" in o
    if "--weak-modules" in o:
        if "--symvers" in o:
            symvers = load_symvers(o["--symvers"])
        elif "--kernel" in o:
            symvers = list(load_target(o["--kernel"], with_keys=False).exports.values())
        else:
            raise UsageError("--weak-modules needs --symvers FILE or --kernel TREE")
        res = weak_modules(paths, symvers)
        if as_json:
            sys.stdout.write(line("compat-weak", compatible=res.compatible, incompatible=res.incompatible))
        else:
            for p in res.compatible:
                sys.stdout.write(f"compatible\t{p}\n")
            for p, why in sorted(res.incompatible.items()):
                sys.stdout.write(
                    f"incompatible\t{p}\t{why[0]}{f' (+{len(why) - 1} more)' if len(why) > 1 else ''}\n"
                )
        return 0 if not res.incompatible else 2
    if "--kernel" not in o:
        raise UsageError("need --kernel TREE")
    target = load_target(o["--kernel"], symvers=o.get("--symvers"))
    verdicts = check_modules(paths, target, enforce="--enforce" in o)
    if as_json:
        kernel = {"release": target.release, "vermagic": target.vermagic, "source": target.source}
        sys.stdout.write(line("compat", kernel=kernel, modules=[v.as_dict() for v in verdicts]))
    else:
        w = max((len(os.path.basename(v.path)) for v in verdicts), default=6)
        sys.stdout.write(f"{'MODULE':<{w}}  {'VERDICT':<12} REASONS\n")
        for v in verdicts:
            verdict = "loads" if v.loads else errno.errorcode.get(v.errno, str(v.errno))
            if v.loads and v.taints:
                verdict += f" ({v.taints})"
            shown = [r for r in v.reasons if r.errno or "--all" in o]
            first = shown[0].message if shown else ""
            more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
            sys.stdout.write(f"{os.path.basename(v.path):<{w}}  {verdict:<12} {first}{more}\n")
    return 0 if all(v.loads for v in verdicts) else 2


def _diff(args: list[str]) -> int:
    opts, operands = parse(args, "", ["json"])
    if len(operands) != 2:
        raise UsageError("diff needs two Module.symvers files")
    changes = symvers_diff(load_symvers(operands[0]), load_symvers(operands[1]))
    if any(f == "--json" for f, _ in opts):
        sys.stdout.write(
            "".join(
                line("symvers-change", change=c.change, symbol=c.name, old=c.old, new=c.new, module=c.module)
                for c in changes
            )
        )
    else:
        for c in changes:
            sys.stdout.write(f"{c.change}\t{c.name}\t{c.module}\t{c.old}\t{c.new}\n")
    return 0

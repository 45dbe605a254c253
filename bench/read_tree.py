#!/usr/bin/env python3
"""Read the metadata of every module of one corpus tree; the lkm side of benchmark (b).

    python3 bench/read_tree.py [--tree amd64-6.1] [--jobs N]
    python3 bench/read_tree.py [--tree amd64-6.1] --list

Opens every module of the tree with ``ModuleFile.open`` and touches ``.modinfo``,
``.exports`` and ``.needed`` (needed symbols with their __versions CRCs), which is what
``depmod`` has to read, then prints one summary line of counts.  ``--jobs 1`` (default)
reads in this process, one file after the other; ``--jobs N`` (N > 1) spreads the files
over N processes with ``lkm.parallel.map_chunks``; ``--jobs 0`` means every available core.

``--list`` prints, instead, the tree as JSON (root, release, modules_dir and the module
paths), so that bench/run.py learns the file list from the same lkm it measures.

Run it with the interpreter whose lkm is to be measured: it imports lkm from there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from operator import itemgetter

Counts = tuple[int, int, int, int, int, int]
_crc = itemgetter(1)  # NeededSymbol.crc


def read_chunk(paths: Sequence[str]) -> Counts:
    from lkm.module.file import ModuleFile

    modules = info = exports = exports_crc = needed = needed_crc = 0
    for path in paths:
        with ModuleFile.open(path) as mod:
            info += len(mod.modinfo)
            exp = mod.exports
            exports += len(exp)
            exports_crc += len(exp) - [e.crc for e in exp].count(None)
            need = mod.needed
            needed += len(need)
            # The summary's counting is kept to C loops: it checks the reading, it is not part of it.
            needed_crc += len(need) - list(map(_crc, need)).count(None)  # NeededSymbol is a tuple
        modules += 1
    return modules, info, exports, exports_crc, needed, needed_crc


def main(argv: list[str] | None = None) -> int:
    argl = sys.argv[1:] if argv is None else argv
    # The measured call (--dir D [--jobs N]) is parsed by hand: argparse costs milliseconds of
    # start-up that are no part of reading modules.
    if len(argl) in (2, 4) and argl[0] == "--dir" and (len(argl) == 2 or argl[2] == "--jobs"):
        from lkm.moddir import find_modules

        return _read(find_modules(argl[1]), int(argl[3]) if len(argl) == 4 else 1, argl[1])
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="amd64-6.1", help="corpus tree name (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="1: in-process; N>1: N processes; 0: all cores")
    ap.add_argument("--list", action="store_true", help="print the tree and its module paths as JSON")
    ap.add_argument("--dir", help="read this modules directory (lib/modules/<release>) instead of --tree")
    args = ap.parse_args(argv)

    if args.dir and not args.list:
        from lkm.moddir import find_modules

        paths = find_modules(args.dir)
        name = args.dir
        return _read(paths, args.jobs, name)

    import os

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # testing/
    from testing.corpus import find_tree, module_files

    tree = find_tree(args.tree)
    paths = [str(p) for p in module_files(tree)]
    if args.list:
        import json

        json.dump(
            {
                "name": tree.name,
                "root": str(tree.root),
                "release": tree.release,
                "modules_dir": str(tree.modules_dir),
                "vmlinuz": str(tree.vmlinuz) if tree.vmlinuz is not None else None,
                "paths": paths,
            },
            sys.stdout,
        )
        sys.stdout.write("\n")
        return 0

    return _read(paths, args.jobs, tree.name)


def _read(paths: list[str], jobs: int, name: str) -> int:
    if jobs == 1:
        results = [read_chunk(paths)]
        jobs = 1
    else:
        from lkm.parallel import map_chunks, workers_available

        jobs = workers_available() if jobs <= 0 else jobs
        results = list(map_chunks(read_chunk, paths, workers=jobs))
    total = [sum(col) for col in zip(*results, strict=True)]
    modules, info, exports, exports_crc, needed, needed_crc = total
    print(
        f"{name}: {modules} modules, {info} modinfo entries, "
        f"{exports} exports ({exports_crc} with CRC), "
        f"{needed} needed symbols ({needed_crc} with CRC); jobs={jobs}"
    )
    return 0 if modules == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())

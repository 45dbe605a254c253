#!/usr/bin/env python3
"""Benchmark: link every module of a corpus tree at kernel-like addresses with lkm, against GNU
ld doing the same work per module (the same addresses and imports; ld's own string merging is
neutralised as in the oracle test).  Prints lkm's time, ld's time, the ratio (target <= 0.5)
and relocations per second.  Never asserts.

    python3 bench/link_tree.py [--tree amd64-6.1] [--limit N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testing/ (the corpus)

REGIONS_612 = ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data")
PERCPU_BASE = 0x20000  # clear of address 0, where ld puts unallocated sections
BASES = {
    "linux-6.1": {"core": 0xFFFFFFFFC0000000, "init": 0xFFFFFFFFC8000000},
    "linux-6.12": {
        r: 0xFFFFFFFFC0000000 + i * 0x1000000
        for i, r in enumerate(
            ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data")
        )
    },
}
KERNEL_BASE = 0xFFFFFFFF81000000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="amd64-6.1")
    ap.add_argument("--limit", type=int, default=0, help="only the first N modules (0: all)")
    args = ap.parse_args()

    import lzma
    import zlib

    from lkm.link import KernelConfig, link
    from lkm.link.gnu_ld import EMULATIONS, ld_command, prepare_input, run_ld
    from lkm.module import ModuleFile
    from testing.corpus import find_tree, module_files

    tree = find_tree(args.tree)
    rules = "linux-6.12" if "6.12" in tree.name else "linux-6.1"
    config = KernelConfig.from_config_text(Path(str(tree.config)).read_text())
    files = module_files(tree)[: args.limit or None]

    def resolve(name: str) -> int:
        return KERNEL_BASE + (zlib.crc32(name.encode()) & 0xFFFFFF) * 16

    work = Path(tempfile.mkdtemp(prefix="lkm-bench-link-"))
    try:
        sources = []
        for f in files:  # decompress outside the timing: both sides get the plain object
            if f.name.endswith(".xz"):
                p = work / f"{len(sources)}.ko"
                p.write_bytes(lzma.decompress(f.read_bytes()))
                sources.append(p)
            else:
                sources.append(f)

        def link(src: Path):  # type: ignore[no-untyped-def]
            mod = ModuleFile.open(src)
            return mod, link(mod, resolve, rules, config, BASES[rules], percpu_base=PERCPU_BASE)

        # lkm: every module linked in one process, each image dropped when done (as a tool would)
        t0 = time.perf_counter()
        relocs = 0
        for src in sources:
            relocs += link(src)[1].relocations
        lkm_time = time.perf_counter() - t0
        arch = "i386" if tree.arch == "i386" else "x86_64"
        ld_time = 0.0
        for i, src in enumerate(sources):  # ld: the same work, one run per module (timed alone)
            mod, img = link(src)
            d = work / f"ld{i}"
            d.mkdir()
            oracle_in = prepare_input(src, mod, d, EMULATIONS[arch])  # the oracle's own preparation
            cmd = ld_command(oracle_in, mod, img, EMULATIONS[arch], d, percpu_base=PERCPU_BASE)
            t = time.perf_counter()
            run_ld(cmd, src)
            ld_time += time.perf_counter() - t
            shutil.rmtree(d)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = lkm_time / ld_time if ld_time else float("nan")
    verdict = "MET" if ratio <= 0.5 else "NOT MET"
    print(f"{tree.name}: {len(files)} modules, {relocs} relocations")
    print(f"lkm {lkm_time:.2f} s ({relocs / lkm_time:,.0f} relocations/s), GNU ld (one ld run per module) "
          f"{ld_time:.2f} s, ratio {ratio:.2f}, target <= 0.5: {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

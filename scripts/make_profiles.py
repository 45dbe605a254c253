#!/usr/bin/env python3
"""Write the kernel profiles lkm ships (src/lkm/kernel/profiles/*.profile.gz).

linux-6.1-amd64: from the corpus (scripts/fetch_corpus.py), through testing.captures.corpus_profile
(lkm.kernel.model.profile.profile_from_files): every symbol the kernel exports (Module.symvers of the
headers: CRC, GPL-only, namespace) with its address and type letter from the tree's
proc-kallsyms.txt (captured from the kernel booted in QEMU; of two entries of one name, the
global one, as lkm.symbols merges them), the release, the vermagic its modules carry and
sizeof(struct module).

linux-2.4-i386: a 2.4.20 kernel for the 2.4 fixtures (tests/fixtures/24): it exports what
they call plus the usual 2.4 driver API, at addresses of its own in a made-up kernel text,
with CONFIG_MODVERSIONS (Using_Versions; CRCs are the zlib CRC-32 of the name).

Usage: scripts/make_profiles.py [--corpus DIR]     (deterministic; rewrites both files)
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # testing/
sys.path.insert(0, str(ROOT / "src"))

from lkm.kernel.model.profile import PROFILE_DIR, Profile  # noqa: E402
from lkm.symbols.table import KernelSymbol  # noqa: E402
from testing.captures import corpus_profile  # noqa: E402

# What a 2.4.20 i386 kernel exported that drivers like the fixtures use (kernel/ksyms.c).
KERNEL_24_EXPORTS = (
    "printk",
    "kmalloc",
    "kfree",
    "vmalloc",
    "vfree",
    "register_chrdev",
    "unregister_chrdev",
    "register_blkdev",
    "unregister_blkdev",
    "register_filesystem",
    "unregister_filesystem",
    "__generic_copy_to_user",
    "__generic_copy_from_user",
    "jiffies",
    "schedule",
    "panic",
    "sprintf",
    "sscanf",
    "simple_strtoul",
    "memcpy",
    "memset",
    "strcpy",
    "strlen",
    "strncpy",
    "request_irq",
    "free_irq",
    "add_timer",
    "del_timer",
    "init_timer",
    "__wake_up",
    "interruptible_sleep_on",
    "kmem_cache_create",
    "kmem_cache_alloc",
    "kmem_cache_free",
    "get_free_pages",
    "free_pages",
    "inter_module_register",
    "inter_module_get",
)
TEXT_24 = 0xC0105000  # a made-up layout of the kernel's .text and .data
DATA_24 = 0xC0300000


def profile_24() -> Profile:
    fields = {
        "release": "2.4.20",
        "arch": "i386",
        "bits": "32",
        "layout": "linux-2.4",
        "vermagic": "",
        "using_versions": "1",
        "range": "i386-2.4",
        "page_size": "4096",
        "smp": "0",
        "uname": "Linux model 2.4.20 #1 Thu Nov 28 12:00:00 UTC 2002 i686",
    }
    syms = [KernelSymbol("Using_Versions", 1, "A", None, True)]
    text, data = TEXT_24, DATA_24
    for name in sorted(KERNEL_24_EXPORTS):
        is_data = name == "jiffies"
        addr = data if is_data else text
        if is_data:
            data += 4
        else:
            text += 0x40 + (zlib.crc32(name.encode()) & 0x3F0)
        syms.append(
            KernelSymbol(name, addr, "D" if is_data else "T", None, True, False, zlib.crc32(name.encode()))
        )
    return Profile("linux-2.4-i386", fields, syms)


def profile_61(corpus: Path | None) -> Profile:
    if corpus is not None:
        os.environ["LKM_CORPUS"] = str(corpus)
    return corpus_profile("amd64-6.1", "headers-6.1", "linux-6.1-amd64")


def write(profile: Profile) -> Path:
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    out = PROFILE_DIR / f"{profile.name}.profile.gz"
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(profile.to_text().encode(), 9, mtime=0))
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    for p in (profile_24(), profile_61(args.corpus)):
        out = write(p)
        print(f"{out}: {len(p.symbols)} symbols, {out.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixture modules built at test time for the exact kernel a guest boots.

The corpus holds each kernel's extracted ``linux-headers`` (+ ``-common``, ``linux-kbuild``).
Debian's flavour Makefile includes the -common one by its installed absolute path, so the
build runs in a shadow directory: symlinks to the flavour files and a Makefile including the
corpus copy of -common.  One external-module build (``make M=``) of fixtures/src/6x, so modpost
gives importer the CRCs of exporter's symbols.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from testing.corpus import HeadersTree, load_headers

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "fixtures" / "src" / "6x"
MODULES = ("chardev", "params", "exporter", "importer", "kreq", "kreqfs")
# Modules built from another module's directory (kreq.c's variants).
EXTRA = {"kreqself": "kreq", "kreqlong": "kreq"}


def headers_for(release: str) -> HeadersTree | None:
    return next((h for h in load_headers() if h.release == release), None)


def build_fixtures(headers: HeadersTree, out: Path) -> dict[str, Path]:
    """Build the 6.x fixture modules against *headers* into *out*; name -> .ko path."""
    kdir = headers.kbuild_dir
    common = headers.common_dir
    if common is None:
        raise RuntimeError(f"{headers.name}: no -common headers directory")
    shadow = out / "kdir"
    shutil.rmtree(out, ignore_errors=True)
    shadow.mkdir(parents=True)
    for entry in os.listdir(kdir):
        if entry != "Makefile":
            (shadow / entry).symlink_to(kdir / entry)
    (shadow / "Makefile").write_text(f"include {common}/Makefile\n")
    src = out / "src"
    shutil.copytree(SOURCES, src)
    (src / "Kbuild").write_text("".join(f"obj-m += {m}/\n" for m in MODULES))
    r = subprocess.run(
        ["make", "-C", str(shadow), f"M={src}", f"-j{os.cpu_count() or 2}", "modules"],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(
            f"kbuild against {headers.name} failed:\n{r.stderr.decode(errors='replace')[-3000:]}"
        )
    built = {}
    for m in (*MODULES, *EXTRA):
        ko = out / f"{m}.ko"
        shutil.copyfile(src / EXTRA.get(m, m) / f"{m}.ko", ko)
        subprocess.run(["strip", "--strip-debug", str(ko)], check=True)
        built[m] = ko
    return built

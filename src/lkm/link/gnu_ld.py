"""Reproduce a LinkedImage with GNU ld, the independent oracle for lkm's linker.

ld links the same object with every section at the address lkm's layout chose
(``--section-start``) and every import at the address lkm resolved (script assignments), so its
output sections can be compared byte for byte.  Where ld transforms its input on its own, the
oracle's copy of the input is neutralised first (never lkm's): SHF_MERGE cleared so strings are
not merged, the build-id note renamed so ld does not treat it as its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lkm.elf.constants import SHF_ALLOC, SHF_MERGE
from lkm.link.image import LinkedImage
from lkm.module.file import ModuleFile

__all__ = [
    "BUILD_ID_RENAMED",
    "EMULATIONS",
    "KERNEL_REWRITTEN",
    "RENAMED",
    "SPARE_BASE",
    "TOOLS",
    "ld_command",
    "ld_link",
    "ld_section_name",
    "prepare_input",
    "run_ld",
]

EMULATIONS = {"x86_64": "elf_x86_64", "i386": "elf_i386", "arm64": "aarch64linux"}
# (ld, objcopy) for each emulation: the host's for x86, Debian's cross binutils for arm64
TOOLS = {
    "elf_x86_64": ("ld", "objcopy"),
    "elf_i386": ("ld", "objcopy"),
    "aarch64linux": ("aarch64-linux-gnu-ld", "aarch64-linux-gnu-objcopy"),
}
# Sections the kernel itself rewrites before layout (arm64 PLTs): compared separately.
KERNEL_REWRITTEN = frozenset({".plt", ".init.plt", ".text.ftrace_trampoline"})
BUILD_ID_RENAMED = ".note.lkm-build-id"
RENAMED = {".note.gnu.build-id": BUILD_ID_RENAMED}
SPARE_BASE = 0x10000000  # where sections the kernel does not load are put, out of the way


def ld_section_name(name: str) -> str:
    """The name a section has in the oracle's output."""
    return RENAMED.get(name, name)


def ld_link(
    src: Path, mod: ModuleFile, image: LinkedImage, emulation: str, workdir: Path, *, percpu_base: int = 0
) -> Path:
    """Link ``src`` (the file ``mod`` was read from) with ld as lkm linked it; returns the output."""
    args = ld_command(
        prepare_input(src, mod, workdir, emulation), mod, image, emulation, workdir, percpu_base=percpu_base
    )
    return run_ld(args, src)


def prepare_input(src: Path, mod: ModuleFile, workdir: Path, emulation: str = "elf_x86_64") -> Path:
    """The oracle's copy of the input: SHF_MERGE cleared, the build-id note renamed."""
    flags: list[str] = []
    for s in mod.elf.sections:
        if s.flags & SHF_MERGE and s.flags & SHF_ALLOC:
            flags += ["--set-section-flags", f"{s.name}=alloc,load,readonly,data,contents"]
    flags += ["--rename-section", f".note.gnu.build-id={BUILD_ID_RENAMED}"]
    oracle_in = workdir / "in.o"
    subprocess.run([TOOLS[emulation][1], *flags, str(src), str(oracle_in)], check=True, capture_output=True)
    return oracle_in


def ld_command(
    oracle_in: Path,
    mod: ModuleFile,
    image: LinkedImage,
    emulation: str,
    workdir: Path,
    *,
    percpu_base: int = 0,
) -> list[str]:
    """The ld command line (and its script, written to ``workdir``) placing everything as lkm did."""
    script = workdir / "link.ld"
    ld = TOOLS[emulation][0]
    args = [ld, "-m", emulation, "-T", str(script), "--no-relax", "-e", "0", "-o", str(workdir / "out.elf")]
    spare = SPARE_BASE
    for s in mod.elf.sections[1:]:
        if not s.flags & SHF_ALLOC:
            continue
        if s.name == ".data..percpu":
            addr = percpu_base
        elif s.number in image.section_addresses:
            addr = image.section_addresses[s.number]
        else:  # allocated in the file but not by the kernel (.modinfo, __versions)
            addr, spare = spare, spare + 0x1000000
        args.append(f"--section-start={ld_section_name(s.name)}={addr:#x}")
    # Imports as script assignments (quoted: some names are not --defsym expressions).
    script.write_text("".join(f'"{n}" = {v:#x};\n' for n, v in image.resolved.items()) + "SECTIONS { }\n")
    return [*args, str(oracle_in)]


def run_ld(args: list[str], src: Path) -> Path:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ld failed on {src}: {proc.stderr.strip()}")
    return Path(args[args.index("-o") + 1])

"""``lkm kallsyms --from-image IMAGE``: a kernel's symbols, recovered offline from its compressed
image, printed as /proc/kallsyms prints them (a ``nokaslr`` boot's addresses).  With ``--model``
or ``--state PATH``: a model kernel's /proc/kallsyms."""

from __future__ import annotations

import sys

from lkm.arch import by_name as arch_by_name
from lkm.cli.backend import split_backend
from lkm.cli.jsonout import kallsyms_lines, kernel_symbol, line
from lkm.cli.progress import progress
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.kernel.model import ModelKernel
from lkm.safeio import read_bytes, write_file
from lkm.symbols.elfwrite import image_sections, kernel_elf
from lkm.symbols.image import decompress_kernel_image
from lkm.symbols.sources import image_symbols

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.symbols.symbol import KernelSymbol

__all__ = ["TOOL", "run", "write_elf"]


TOOL = Tool(
    "kallsyms",
    "a kernel's symbols recovered from its image, as /proc/kallsyms",
    usage=["--from-image IMAGE [--arch x86_64|i386|arm64] [--elf OUT]", "--model | --state FILE"],
    description="The addresses are a nokaslr boot's.  With a model kernel: its /proc/kallsyms.\n"
    "--elf OUT writes an ELF file (ET_EXEC of the image's architecture) with the kernel's memory\n"
    "as sections at their addresses and every recovered symbol in .symtab, for gdb.",
    options=[
        Opt("", "from-image", "IMAGE", "the kernel image (vmlinuz, Image.gz, bzImage)"),
        Opt(
            "",
            "arch",
            "ARCH",
            "the image's architecture (default: from the image)",
            complete="x86_64 i386 arm64",
        ),
        Opt(
            "",
            "elf",
            "OUT",
            "also write an ELF file of the image with the symbols (for gdb)",
            complete="file",
        ),
        Opt("", "json", None, 'JSON Lines: one "symbol" document a line (schema lkm/1)'),
        *BACKEND,
    ],
)


def run(prog: str, args: list[str]) -> int:
    model, state, args = split_backend(args)
    as_json = "--json" in args
    if model and not [a for a in args if a != "--json"]:  # a model kernel's /proc/kallsyms
        try:
            text = ModelKernel(state).kallsyms()
        except LkmError as exc:
            sys.stderr.write(f"{prog}: ERROR: {exc}\n")
            return 1
        if as_json:
            text = kallsyms_lines(text)
        sys.stdout.write(text)
        return 0
    opts, operands = TOOL.parse(prog, args)
    image = arch = elf_out = None
    for flag, val in opts:
        if flag == "--from-image":
            image = val
        elif flag == "--arch":
            arch = val
        elif flag == "--elf":
            elf_out = val
    if image is None or operands:
        sys.stderr.write(f"{prog}: --from-image IMAGE (or a model kernel) is needed\n")
        return 1

    try:
        try:
            data = read_bytes(image)
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=image) from None
        with progress(f"{prog}: recovering kallsyms from {image}"):
            arch, syms = image_symbols(data, path=image, arch=arch)
        if elf_out is not None:
            write_elf(elf_out, data, arch, syms)
        spec = arch_by_name(arch)
        width = (spec.bits if spec is not None else 64) // 4
        if as_json:
            text = "".join(line("symbol", **kernel_symbol(s)) for s in syms)
        else:
            listed = (s for s in syms if s.type is not None)  # exports kallsyms lacks: JSON only
            text = "".join(f"{s.address or 0:0{width}x} {s.type} {s.name}\n" for s in listed)
        sys.stdout.write(text)
    except LkmError as exc:
        sys.stderr.write(f"{prog}: ERROR: {exc.path or image}: {exc.reason}\n")
        return 1
    return 0


def write_elf(out: str, data: bytes, arch: str, syms: list[KernelSymbol]) -> None:
    """``--elf OUT``: the image's memory and symbols as an ELF file, written whole or not at all
    (a unique O_EXCL temporary beside OUT, fsync, rename)."""
    kernel = decompress_kernel_image(data)
    blob = kernel_elf(arch, image_sections(kernel, syms), syms)
    try:
        write_file(out, blob, mode=0o644)
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot write", path=out) from None

"""``lkm ksyms [-a] [-h] [-m]``: the exported symbols of loaded modules, as modutils' ksyms
prints them (``%0*lx  %-32s  [%s]``); -a adds the kernel's own, -h drops the header, -m adds
each module's address and size.  Over a model kernel (``--model``, ``--state``, ``$LKM_STATE``)."""

from __future__ import annotations

import sys

from lkm.cli.backend import split_backend
from lkm.cli.jsonout import kernel_symbol, line
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.struct24 import versioned_name

__all__ = ["HEADER", "TOOL", "USAGE", "format_ksyms", "json_ksyms", "run"]


HEADER = "Address   Symbol                            Defined by\n"
USAGE = "Usage: ksyms [-ahm]\n"
TOOL = Tool(
    "ksyms",
    "exported symbols of a model kernel's modules (modutils 2.4)",
    usage=["[-ahm]"],
    options=[
        Opt("a", "all", None, "also the kernel's own exported symbols"),
        Opt("h", "noheader", None, "no header line"),
        Opt("m", "", None, "also each module's address and size"),
        Opt("", "json", None, 'JSON Lines: one "symbol" document a line (schema lkm/1)', own=True),
        *BACKEND,
    ],
)


def format_ksyms(
    kernel: object, *, all_symbols: bool = False, header: bool = True, modules: bool = False
) -> str:
    assert isinstance(kernel, ModelKernel)
    w = kernel.bits // 4
    sizes = {m.name: (m.address, m.size) for m in kernel.modules()}
    out = [HEADER] if header else []
    for name, syms in kernel.module_symbols("export"):
        if modules and name in sizes:
            addr, size = sizes[name]
            out.append(f"{addr:0{w}x}  {f'({(size + 1023) // 1024}k)':<32}  [{name}]\n")
        out.extend(f"{s.address:0{w}x}  {s.name:<32}  [{name}]\n" for s in syms)
    if all_symbols:
        versions = kernel.meta.get("using_versions") == "1"
        smp = kernel.meta.get("smp") == "1"
        for s in kernel.kernel_symbols():
            out.append(
                f"{s.address or 0:0{w}x}  {versioned_name(s.name, s.crc if versions else None, smp)}\n"
            )
    return "".join(out)


def json_ksyms(kernel: object, *, all_symbols: bool = False) -> str:
    """The same symbols as JSON Lines ("symbol" documents: exported, the module or null)."""

    assert isinstance(kernel, ModelKernel)
    out: list[str] = []
    for name, syms in kernel.module_symbols("export"):
        out.extend(line("symbol", **kernel_symbol(s, name)) for s in syms)
    if all_symbols:
        out.extend(line("symbol", **kernel_symbol(s)) for s in kernel.kernel_symbols())
    return "".join(out)


def run(prog: str, args: list[str]) -> int:
    _model, state, args = split_backend(args)
    opts, operands = TOOL.parse(prog, args)
    flags = {f for f, _ in opts}
    if operands:
        sys.stderr.write(USAGE)
        return 1
    try:
        if "--json" in flags:
            text = json_ksyms(ModelKernel(state), all_symbols=bool(flags & {"-a", "--all"}))
        else:
            text = format_ksyms(ModelKernel(state), all_symbols=bool(flags & {"-a", "--all"}),
                                header=not flags & {"-h", "--noheader"}, modules="-m" in flags)  # fmt: skip
    except LkmError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    sys.stdout.write(text)
    return 0

"""The linker/loader
=================

Lays a module's sections out as a kernel (or 2.4's insmod) would (:mod:`lkm.link.layout`),
binds its undefined symbols as the kernel binds them (:mod:`lkm.link.resolve`) and relocates
it (:mod:`lkm.link.image`, with each architecture's engine from :mod:`lkm.arch`).

:func:`link` is the one way in: every caller (``lkm link``, the model kernel's load, the
loaded-module verifier, the emulator) goes through it, so layout → resolve → relocate is
assembled once.  2.4 objects linked as modutils' insmod does are :mod:`lkm.link.insmod24`.
"""

from __future__ import annotations

from collections.abc import Callable

from lkm.kernels import KernelConfig, KernelVersion, by_name
from lkm.link.image import LinkedImage, LinkError, link_module
from lkm.link.layout import Layout, layout_module, sequential_bases
from lkm.link.resolve import kernel_resolver
from lkm.module.file import ModuleFile
from lkm.symbols.table import SymbolTable

__all__ = ["KernelConfig", "Layout", "LinkError", "LinkedImage", "link"]

#: Where the regions go: each region's base; an address from which they follow one another
#: (page-aligned, :func:`lkm.link.layout.sequential_bases`); or a function of the layout
#: giving the bases (an allocator, or addresses read back from a running kernel).
Bases = dict[str, int] | int | Callable[[Layout], dict[str, int]]


def link(
    module: ModuleFile,
    symbols: SymbolTable | Callable[[str], int | None],
    version: KernelVersion | str | None = None,
    config: KernelConfig | None = None,
    bases: Bases = 0,
    *,
    layout: Layout | None = None,
    percpu_base: int | Callable[[Layout], int] = 0,
) -> LinkedImage:
    """Link ``module`` as kernel ``version`` (default: the one it is built for) with
    ``config`` would load it at ``bases``.  ``symbols``: the kernel's symbol table (bound as
    the kernel binds, :func:`lkm.link.resolve.kernel_resolver`) or a ``resolve(name)``
    function; ``layout``: one already computed (its rules win over ``version``);
    ``percpu_base``: the module's per-CPU area (or a function of the layout giving it).
    Raises :class:`LinkError` (an :class:`~lkm.errors.InvalidModule`) as the kernel refuses."""
    if layout is None:
        rules = by_name(version) if version is not None else module.version
        layout = layout_module(module.elf, rules, config or KernelConfig())
    if isinstance(bases, int):
        placed, _end = sequential_bases(layout, bases)
    elif isinstance(bases, dict):
        placed = bases
    else:
        placed = bases(layout)
    resolve = kernel_resolver(module, symbols) if isinstance(symbols, SymbolTable) else symbols
    percpu = percpu_base if isinstance(percpu_base, int) else percpu_base(layout)
    return link_module(module, layout, placed, resolve, percpu_base=percpu)

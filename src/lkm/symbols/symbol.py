"""Kernel symbols: one symbol, and the spelling rules of its name.

:class:`KernelSymbol` is what every source of :mod:`lkm.symbols` yields and what
:class:`lkm.symbols.table.SymbolTable` merges.  2.4's /proc/ksyms spells two facts into the
name (modutils' ``GPLONLY_`` prefix and the ``_R<crc>`` version suffix of genksyms, with an
``smp_`` prefix on SMP kernels); :func:`split_versioned_name` and :func:`version_prefix` take
them apart as modutils 2.4's insmod does.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from lkm.record import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import TypeVar

    _T = TypeVar("_T")

__all__ = ["GPLONLY_PREFIX", "KernelSymbol", "paused_gc", "split_versioned_name", "version_prefix"]


@dataclass(slots=True, unsafe_hash=True)
class KernelSymbol(Fields):
    """One kernel symbol.

    ``address`` None: unknown (a source without addresses, or hidden ones); ``type`` the nm /
    kallsyms letter (None if the source has none); ``module`` None for the core kernel, else the
    owner's name as its source gives it (kallsyms: the module name; Module.symvers: the build
    path without ``.ko``); ``exported``/``gpl_only`` as __ksymtab/__ksymtab_gpl (2.4: the
    GPLONLY_ prefix); ``crc`` the symbol version (__kcrctab, Module.symvers, a 2.4 ``_R``
    suffix); ``namespace`` None when there is none.
    """

    name: str
    address: int | None = None
    type: str | None = None
    module: str | None = None
    exported: bool = False
    gpl_only: bool = False
    crc: int | None = None
    namespace: str | None = None


def paused_gc(func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` with the cyclic garbage collector paused: building 150 000 acyclic
    records otherwise spends most of its time in collections that can find nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        return func(*args)
    finally:
        if was:
            gc.enable()


# -- 2.4 versioned names -------------------------------------------------------------------

GPLONLY_PREFIX = "GPLONLY_"
# modutils' set_ncv_prefix: symbols whose version suffix shows the kernel's genksyms prefix.
_WELL_KNOWN_VERSIONED = ("get_module_symbol_R", "inter_module_get_R")
_HEX = frozenset("0123456789abcdefABCDEF")


def version_prefix(names: Iterable[str]) -> str | None:
    """The genksyms prefix of a 2.4 kernel's versioned names ("" or e.g. "smp_"), derived as
    modutils' set_ncv_prefix does: from ``get_module_symbol_R...`` or ``inter_module_get_R...``
    ending in 8 hex digits.  None if no such symbol is there."""
    for name in names:
        for known in _WELL_KNOWN_VERSIONED:
            if name.startswith(known) and len(name) >= len(known) + 8 and _HEX.issuperset(name[-8:]):
                return name[len(known) : -8]
    return None


def split_versioned_name(name: str, prefix: str | None = None) -> tuple[str, int | None]:
    """``printk_R1b7d4074`` -> ("printk", 0x1b7d4074); ``printk_Rsmp_1b7d4074`` with prefix
    "smp_" likewise.  modutils' rule (ncv_symbol_hash): the name ends in ``_R`` + prefix + 8
    characters; here the 8 must also be hex digits (they are the CRC).  With ``prefix`` None,
    both "" and "smp_" are tried (modutils' fallback when no well-known symbol tells, chosen by
    whether ``uname -v`` says SMP).  Names without a suffix come back with crc None."""
    for p in ("", "smp_") if prefix is None else (prefix,):
        cut = 10 + len(p)
        if (
            len(name) > cut
            and name[-cut : -cut + 2] == "_R"
            and name[-8 - len(p) : -8] == p
            and _HEX.issuperset(name[-8:])
        ):
            return name[:-cut], int(name[-8:], 16)
    return name, None

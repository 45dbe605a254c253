"""Running many modules' init routines, one fresh emulated kernel each, and classifying how
each run ended (the corpus survey of scripts/emulate_corpus.py and its CI sample)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from lkm.emulate.arch import ARCHES
from lkm.emulate.kernel import Kernel, SymbolSpace
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import arch_for, load, run_init
from lkm.emulate.state import KernelState
from lkm.errors import LkmError
from lkm.module.file import ModuleFile
from lkm.record import Record

DEFAULT_INSNS = 2_000_000
DEFAULT_SECONDS = 2.0


class ModuleRun(Record):
    """``result``: "returned" (init ran to its return: ``value`` is what it returned) or the
    reason it did not: a fault kind (oops, bug, panic, budget, timeout, kernel-text), "link"
    (the module does not link: unknown symbol...), "error" (the emulator itself failed)."""

    __slots__ = ("path", "name", "result", "value", "detail", "seconds", "calls", "unimplemented")

    def __init__(
        self,
        path: str,
        name: str,
        result: str,
        value: int,
        detail: str,
        seconds: float,
        calls: int,
        unimplemented: tuple[str, ...],
    ) -> None:
        self.path = path
        self.name = name
        self.result = result
        self.value = value
        self.detail = detail
        self.seconds = seconds
        self.calls = calls
        self.unimplemented = unimplemented  # distinct unimplemented kernel functions it called


def run_module(
    path: str,
    symbols: SymbolSpace | None,
    *,
    insn_budget: int = DEFAULT_INSNS,
    time_budget: float = DEFAULT_SECONDS,
) -> ModuleRun:
    """Load ``path`` into a fresh booted kernel and run its init."""
    t0 = time.monotonic()
    name = path.rsplit("/", 1)[-1]
    k: Kernel | None = None
    try:
        mod = ModuleFile.open(path)
        name = mod.name
        arch = arch_for(mod)
        state = KernelState.booted() if ARCHES[arch].amd64_tables else KernelState()
        syms = symbols if symbols is not None and symbols.arch in (None, arch) else None
        k = Kernel(arch, syms, state, insn_budget=insn_budget, time_budget=time_budget)
        em = load(k, mod)
        res = run_init(k, em)
    except EmulationFault as exc:  # a module parameter's own set routine
        return _done(path, name, exc.kind, 0, exc.reason, t0, k)
    except LkmError as exc:
        return _done(path, name, "link", 0, exc.reason, t0, k)
    except Exception as exc:
        return _done(path, name, "error", 0, f"{type(exc).__name__}: {exc}", t0, k)
    if res.fault is not None:
        return _done(path, name, res.fault.kind, 0, res.fault.reason, t0, k)
    return _done(path, name, "returned", res.value, "", t0, k)


def _done(
    path: str, name: str, result: str, value: int, detail: str, t0: float, k: Kernel | None
) -> ModuleRun:
    calls = sum(k.state.calls.values()) if k is not None else 0
    unimpl = tuple(sorted(k.state.unimplemented)) if k is not None else ()
    return ModuleRun(path, name, result, value, detail, time.monotonic() - t0, calls, unimpl)


def run_modules(paths: Sequence[str], symbols: SymbolSpace | None, **budgets: float) -> list[ModuleRun]:
    return [run_module(p, symbols, **budgets) for p in paths]  # type: ignore[arg-type]

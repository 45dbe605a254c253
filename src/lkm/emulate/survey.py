"""Running many modules' init routines, one fresh emulated kernel each, and classifying how
each run ended (the corpus survey of scripts/emulate_corpus.py and its CI sample)."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lkm.emulate.arch import ARCHES
from lkm.emulate.kernel import BaseKernel, SymbolSpace
from lkm.emulate.machine import EmulationFault
from lkm.emulate.module import arch_for, load, run_init
from lkm.emulate.state import KernelState
from lkm.errors import LkmError
from lkm.module.file import ModuleFile
from lkm.record import Fields

__all__ = [
    "DEFAULT_INSNS",
    "DEFAULT_SECONDS",
    "DRIVER_CORE",
    "ModuleRun",
    "SubsystemRow",
    "by_subsystem",
    "dependency_order",
    "driver_core",
    "load_dependencies",
    "module_key",
    "run_module",
    "run_modules",
    "subsystem",
    "tree_modules",
]


DEFAULT_INSNS = 2_000_000
DEFAULT_SECONDS = 2.0


@dataclass(slots=True, unsafe_hash=True)
class ModuleRun(Fields):
    """``result``: "returned" (init ran to its return: ``value`` is what it returned) or the
    reason it did not: a fault kind (oops, bug, panic, budget, timeout, kernel-text), "link"
    (the module does not link: unknown symbol...), "error" (the emulator itself failed)."""

    path: str
    name: str
    result: str
    value: int
    detail: str
    seconds: float
    calls: int
    unimplemented: tuple[str, ...]

    @property
    def clean(self) -> bool:
        """Init called no kernel function lkm does not implement (what strict mode requires)."""
        return not self.unimplemented


def run_module(
    path: str,
    symbols: SymbolSpace | None,
    *,
    insn_budget: int = DEFAULT_INSNS,
    time_budget: float = DEFAULT_SECONDS,
    strict: bool = False,
    deps: Mapping[str, str] | None = None,
) -> ModuleRun:
    """Load ``path`` into a fresh booted kernel and run its init (``strict``: the first call
    to a kernel function lkm does not implement ends the run, as result "unimplemented").
    ``deps`` (module name -> path): the modules its ``depends=`` names are loaded and
    initialised first, as modprobe does (result "dependency" when one is missing or fails)."""
    t0 = time.monotonic()
    name = path.rsplit("/", 1)[-1]
    k: BaseKernel | None = None
    try:
        mod = ModuleFile.open(path)
        name = mod.name
        arch = arch_for(mod)
        state = KernelState.booted() if ARCHES[arch].amd64_tables else KernelState()
        syms = symbols if symbols is not None and symbols.arch in (None, arch) else None
        k = BaseKernel(arch, syms, state, strict=strict, insn_budget=insn_budget, time_budget=time_budget)
        if deps is not None:
            why = load_dependencies(k, mod, deps)
            if why:
                return _done(path, name, "dependency", 0, why, t0, k)
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


def module_key(name: str) -> str:
    """A module name as the kernel compares them ('-' and '_' alike)."""
    return name.replace("-", "_")


def dependency_order(mod: ModuleFile, deps: Mapping[str, str]) -> list[str]:
    """The paths of the modules ``mod`` depends on (its ``depends=``, transitively), each
    after its own dependencies: modprobe's load order."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(m: ModuleFile) -> None:
        for dep in filter(None, (m.get("depends") or "").split(",")):
            key = module_key(dep)
            if key in seen:
                continue
            seen.add(key)
            path = deps.get(key)
            if path is None:
                raise LkmError(f"dependency {dep} is not in the tree")
            visit(ModuleFile.open(path))
            order.append(path)

    visit(mod)
    return order


def load_dependencies(k: BaseKernel, mod: ModuleFile, deps: Mapping[str, str]) -> str:
    """Load and initialise what ``mod`` depends on; "" or why it could not be done.  A fault
    in a dependency's init (strict mode's unimplemented call among them) is raised."""
    for path in dependency_order(mod, deps):
        dep = ModuleFile.open(path)
        if dep.name in k.modules:
            continue
        res = run_init(k, load(k, dep))
        if res.fault is not None:
            raise res.fault
        if res.value < 0:
            return f"dependency {dep.name}: init returned {res.value}"
    return ""


def _done(
    path: str, name: str, result: str, value: int, detail: str, t0: float, k: BaseKernel | None
) -> ModuleRun:
    calls = sum(k.state.calls.values()) if k is not None else 0
    unimpl = tuple(k.state.unimplemented) if k is not None else ()  # in the order first called
    return ModuleRun(path, name, result, value, detail, time.monotonic() - t0, calls, unimpl)


def run_modules(
    paths: Sequence[str],
    symbols: SymbolSpace | None,
    *,
    strict: bool = False,
    deps: Mapping[str, str] | None = None,
    **budgets: float,
) -> list[ModuleRun]:
    return [run_module(p, symbols, strict=strict, deps=deps, **budgets) for p in paths]  # type: ignore[arg-type]


def tree_modules(paths: Sequence[str]) -> dict[str, str]:
    """Module name -> path for a tree's module files (the name is the file's, as Debian's)."""
    out: dict[str, str] = {}
    for p in paths:
        base = p.rsplit("/", 1)[-1]
        out[module_key(base.split(".ko", 1)[0])] = p
    return out


# Kernel functions of the driver core and the buses, devices, interrupts, timers, work and DMA
# (issue 21's item 2, implemented beside this survey): the survey reports the share of inits
# whose only missing calls are these.
DRIVER_CORE = re.compile(
    r"^_*(bus_|driver_|device_|devm_|dev_|put_device|get_device|class_|pci|usb_|platform_|i2c_|spi_|"
    r"virtio|register_virtio|unregister_virtio|request_irq|request_threaded_irq|free_irq|enable_irq|"
    r"disable_irq|irq_|ioremap|iounmap|dma|timer|hrtimer|init_timer|add_timer|del_timer|mod_timer|"
    r"queue_|tasklet|acpi_bus_|acpi_get_devices|acpi_walk_namespace|"
    r"transport_class|anon_transport_class|attribute_container|auxiliary|pnp_|serio|gameport|hid_|"
    r"sdw_|mdio|phy_|serdev|cxl_|coreboot_|mhi_|wmi_|parport_|pcmcia_|comedi_|ieee1394|fw_|"
    r"kthread_|wake_up_process|schedule_|msleep|usleep|udelay)"
)


def driver_core(function: str) -> bool:
    """``function`` belongs to the driver core / buses / devices / IRQs / timers / DMA."""
    return DRIVER_CORE.match(function) is not None


def subsystem(path: str) -> str:
    """The subsystem a corpus module belongs to, from its place in the tree: the two
    directories under ``kernel/`` (drivers/net, sound/pci, fs/nfs, net/netfilter, crypto...)."""
    parts = path.split("/")
    if "kernel" in parts:
        parts = parts[len(parts) - 1 - parts[::-1].index("kernel") + 1 :]
    dirs = parts[:-1]
    if not dirs:
        return "(top)"
    if dirs[0] in ("drivers", "sound", "net", "fs", "arch") and len(dirs) > 1:
        return "/".join(dirs[:2])
    return dirs[0]


@dataclass(frozen=True, slots=True)
class SubsystemRow:
    """One line of the survey's table: modules, inits with no unimplemented call, and the
    most frequent missing functions (modules calling them)."""

    name: str
    modules: int
    clean: int
    missing: list[tuple[str, int]]

    @property
    def share(self) -> float:
        return self.clean / self.modules if self.modules else 1.0


def by_subsystem(runs: Sequence[ModuleRun], top: int = 3) -> list[SubsystemRow]:
    """The survey's table: one row per subsystem, largest first (a module counts once per
    missing function it called)."""
    groups: dict[str, list[ModuleRun]] = defaultdict(list)
    for r in runs:
        groups[subsystem(r.path)].append(r)
    rows = []
    for name, rs in groups.items():
        missing = Counter(u for r in rs for u in r.unimplemented)
        rows.append(SubsystemRow(name, len(rs), sum(r.clean for r in rs), missing.most_common(top)))
    rows.sort(key=lambda r: (-r.modules, r.name))
    return rows

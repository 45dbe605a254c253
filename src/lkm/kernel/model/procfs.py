"""The model kernel's /proc files and the listings built on them, in the formats of the
kernels they model (modutils-2.4.md "Kernel side" and "Tools"; kernel-loader.md §6):

- 2.4 /proc/modules ``"%-20s%8lu%4ld"`` + flags + `` [refs]``; /proc/ksyms
  ``"%0*lx %s\\t[%s]"`` (module symbols, newest module first) then ``"%0*lx %s"`` (kernel);
- 6.x /proc/modules ``"%s %u %i %s %s 0x%px"`` + taints; /proc/kallsyms;
- /proc/vmallocinfo-style areas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lkm.kernel.model.store import Store
from lkm.kernel.model.struct24 import (
    MOD_AUTOCLEAN,
    MOD_DELETED,
    MOD_INITIALIZING,
    MOD_RUNNING,
    MOD_USED_ONCE,
    versioned_name,
)
from lkm.symbols.table import KernelSymbol

if TYPE_CHECKING:
    from lkm.kernel.model import ModelKernel


__all__ = [
    "PROC_FILES",
    "flags_24",
    "proc_kallsyms",
    "proc_ksyms",
    "proc_modules",
    "proc_modules_6",
    "proc_modules_24",
    "vmallocinfo",
]


def flags_24(flags: int) -> str:
    """get_module_list's state words after the use count."""
    if flags & MOD_DELETED:
        return " (deleted)"
    if flags & MOD_RUNNING:
        return (" (autoclean)" if flags & MOD_AUTOCLEAN else "") + (
            "" if flags & MOD_USED_ONCE else " (unused)"
        )
    if flags & MOD_INITIALIZING:
        return " (initializing)"
    return " (uninitialized)"


def _rows_24(k: ModelKernel) -> list[tuple[str, int, int, int, list[str], bool]]:
    """(name, size, flags, usecount, refs newest first, can_unload) per module, newest first."""
    out = []
    calls = k.calls24
    assert calls is not None, "a 2.4 design's /proc/modules"
    with k.state.reading() as db:
        st = Store(db, k.state.path)
        for seq, _flags in st.all_flags():
            r = st.row24(seq)
            can_unload = bool(calls.struct_field(st, seq, "can_unload"))
            out.append((r.name, r.size, r.flags, r.usecount, st.refs_names(seq), can_unload))
    return out


def proc_modules_24(k: ModelKernel) -> str:
    lines = []
    for name, size, flags, usecount, refs, can_unload in _rows_24(k):
        line = f"{name:<20}{size:8d}"
        if flags & MOD_RUNNING:
            line += f"{-1 if can_unload else usecount:4d}"
        line += flags_24(flags)
        if refs:
            line += " [" + " ".join(refs) + "]"
        lines.append(line + "\n")
    return "".join(lines)


def proc_modules_6(k: ModelKernel) -> str:
    w = k.bits // 4
    with k.state.reading() as db:  # print_unload_info: "[permanent]," for an init without exit
        permanent = Store(db, k.state.path).permanent_modules()
    lines = []
    for m in k.modules():
        users = (
            "".join(f"{u}," for u in m.holders or ()) + ("[permanent]," if m.name in permanent else "") or "-"
        )
        taints = f" {m.taints}" if m.taints else ""
        lines.append(f"{m.name} {m.size} {m.refcount} {users} {m.state} 0x{m.address:0{w}x}{taints}\n")
    return "".join(lines)


def proc_modules(k: ModelKernel) -> str:
    return proc_modules_24(k) if k.version.user_space_link else proc_modules_6(k)


def proc_ksyms(k: ModelKernel) -> str:
    """/proc/ksyms: each module's exported symbols (newest module first), then the kernel's
    (versioned names under CONFIG_MODVERSIONS)."""
    w = k.bits // 4
    out: list[str] = []
    for mod, syms in k.module_symbols("export"):
        out.extend(f"{s.address:0{w}x} {s.name}\t[{mod}]\n" for s in syms)
    versions = k.meta.get("using_versions") == "1"
    smp = k.meta.get("smp") == "1"
    for s in k.kernel_symbols():
        out.append(f"{s.address:0{w}x} {versioned_name(s.name, s.crc if versions else None, smp)}\n")
    return "".join(out)


def proc_kallsyms(k: ModelKernel) -> str:
    """The kernel's symbols (the profile's exports, by address) then each module's kept symbols
    (newest first), ``"%px %c %s\\t[%s]"``; 2.4 modules list their exports as kallsyms would."""
    w = k.bits // 4
    out = [f"{s.address:0{w}x} {s.type or 'T'} {s.name}\n" for s in sorted(k.kernel_symbols(), key=_addr)]
    out.append(k.module_kallsyms())
    if k.version.user_space_link:
        for mod, syms in k.module_symbols("export"):
            out.extend(f"{s.address:0{w}x} T {s.name}\t[{mod}]\n" for s in syms)
    return "".join(out)


def _addr(s: KernelSymbol) -> tuple[int, str]:
    return (s.address or 0, s.name)


def vmallocinfo(k: ModelKernel) -> str:
    """One line per area, as /proc/vmallocinfo (``start-end size caller pages=N vmalloc``), kmalloc
    objects listed after with their size class; then the fragmentation of each pool."""
    w = k.bits // 4
    lines = []
    for a in k.areas():
        if a.pool == "vmalloc":
            pages = (a.span - k.page_size) // k.page_size
            lines.append(
                f"0x{a.start:0{w}x}-0x{a.start + a.span:0{w}x} {a.span:7d} "
                f"module_alloc [{a.module} {a.region}]"
                f" pages={pages} vmalloc\n"
            )
        else:
            lines.append(f"0x{a.start:0{w}x}-0x{a.start + a.span:0{w}x} {a.span:7d} kmalloc-{a.span} "
                         f"[{a.module} {a.region}] size={a.size}\n")  # fmt: skip
    for pool, arena in k.arenas.items():
        f = k.fragmentation(pool)
        lines.append(
            f"# {pool} 0x{arena.start:0{w}x}-0x{arena.end:0{w}x}: {f.areas} areas, {f.used} bytes used, "
            f"{f.free} free in {f.holes} holes, largest {f.largest}, fragmentation {f.ratio:.3f}\n"
        )
    return "".join(lines)


PROC_FILES = {
    "modules": proc_modules,
    "ksyms": proc_ksyms,
    "kallsyms": proc_kallsyms,
    "vmallocinfo": vmallocinfo,
}

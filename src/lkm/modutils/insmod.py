"""modutils 2.4's insmod as a library, over a 2.4 model kernel (modutils-2.4.md "insmod flow").

insmod does the linking in user space: it asks the kernel what is loaded (``query_module``:
probe, QM_MODULES, per module QM_INFO and QM_SYMBOLS, the kernel's own QM_SYMBOLS), links
the object against that (:func:`lkm.link.insmod24.plan_module_24`: symbols bound, ``name=value``
arguments written, every section in place, the size known), reserves memory
(``create_module``), relocates at that address and hands the image to ``init_module``; on
failure it deletes the half-made module.  Persistent parameters saved by rmmod are restored with ``-e``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass

from lkm.errors import InvalidModule, LkmError
from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel, procfs
from lkm.kernel.model.load24 import iter_strings
from lkm.kernel.model.struct24 import QM_INFO, QM_MODULES, QM_SYMBOLS, cstring
from lkm.link.insmod24 import (
    NOLOAD_BASE,
    Insmod24Options,
    KernelSymbols24,
    LinkedImage24,
    LoadedModule24,
    _insmod_name,
    gpl_license_24,
    plan_module_24,
)
from lkm.link.output import write_atomic
from lkm.link.output24 import format_load_map
from lkm.module.file import ModuleFile
from lkm.record import Record
from lkm.safeio import read_bytes

__all__ = [
    "HINT_EBUSY",
    "TAINT_FORCED_MODULE",
    "TAINT_PROPRIETARY_MODULE",
    "InsmodError",
    "InsmodOptions",
    "InsmodResult",
    "insmod",
    "kernel_view",
    "persist_path",
    "read_persist",
]


HINT_EBUSY = (
    "Hint: this error can be caused by incorrect module parameters, including invalid IO and IRQ parameters"
)
TAINT_PROPRIETARY_MODULE = 1
TAINT_FORCED_MODULE = 2


class InsmodError(LkmError):
    """insmod refused or failed; ``reason`` is modutils' message, ``hint`` an extra line."""

    def __init__(self, reason: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(reason, path=path)
        self.hint = hint


class InsmodOptions(Record):
    """insmod's switches (modutils 2.4.16): -f -k -m -n -o -O -p -q -r -s -S -v -x/-X -y/-Y -e -P."""

    __slots__ = (
        "force",
        "autoclean",
        "map",
        "noload",
        "name",
        "blob",
        "probe",
        "quiet",
        "kallsyms",
        "export",
        "ksymoops",
        "persist",
        "prefix",
        "verbose",
    )

    def __init__(self, **kw: object) -> None:
        self.force = bool(kw.get("force", False))
        self.autoclean = bool(kw.get("autoclean", False))
        self.map = bool(kw.get("map", False))
        self.noload = bool(kw.get("noload", False))
        self.name: str | None = kw.get("name")  # type: ignore[assignment]
        self.blob: str | None = kw.get("blob")  # type: ignore[assignment]
        self.probe = bool(kw.get("probe", False))
        self.quiet = bool(kw.get("quiet", False))
        self.kallsyms = bool(kw.get("kallsyms", False))
        self.export = bool(kw.get("export", True))
        self.ksymoops = bool(kw.get("ksymoops", True))
        self.persist: str | None = kw.get("persist")  # type: ignore[assignment]
        self.prefix: str | None = kw.get("prefix")  # type: ignore[assignment]
        self.verbose = bool(kw.get("verbose", False))


@dataclass(frozen=True, slots=True)
class InsmodResult:
    """A load: the module's name, address and image, the -m map text, warnings printed."""

    name: str
    base: int
    image: LinkedImage24
    map: str | None
    warnings: list[str]
    persist: str | None
    loaded: bool


def kernel_view(kernel: ModelKernel) -> KernelSymbols24:
    """What insmod learns through query_module: the kernel's symbols and each module's address
    and symbols, newest first."""
    kernel.query_module(None, 0)
    names = list(iter_strings(kernel.query_module(None, QM_MODULES).data))
    mods = []
    for name in names:
        info = kernel.query_module(name, QM_INFO).data
        addr = struct.unpack_from("<I", info)[0]
        mods.append(LoadedModule24(name, addr, _symbols(kernel.query_module(name, QM_SYMBOLS).data)))
    syms = _symbols(kernel.query_module(None, QM_SYMBOLS).data)
    return KernelSymbols24(syms, mods, kernel.release, kernel.meta.get("smp") == "1")


def _symbols(data: bytes) -> list[tuple[str, int]]:
    """A QM_SYMBOLS buffer: {value, name offset} pairs, then the strings."""
    out: list[tuple[str, int]] = []
    if not data:
        return out
    first_name = struct.unpack_from("<I", data, 4)[0]
    for k in range(first_name // 8):
        value, off = struct.unpack_from("<II", data, 8 * k)
        out.append((cstring(data, off), value))
    return out


def persist_path(opt_persist: str, module_path: str, persist_dir: str) -> str:
    """-e FILE (absolute) or -e "" (the persist directory plus the module's file name)."""
    if opt_persist:
        return opt_persist
    return os.path.join(persist_dir, os.path.basename(module_path))


def read_persist(path: str) -> list[str]:
    """name=value lines of a persist file ('#' lines are comments); missing file: none."""
    try:
        lines = read_bytes(path).decode("latin-1").splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#") and "=" in ln]
    except OSError:
        return []


def insmod(
    kernel: ModelKernel,
    path: str,
    args: list[str],
    opt: InsmodOptions | None = None,
    *,
    persist_dir: str = "/var/lib/modules/persist",
) -> InsmodResult:
    """Load the 2.4 object at ``path`` with ``args`` (``name=value``) as modutils' insmod."""
    opt = opt or InsmodOptions()
    try:
        mod = ModuleFile.open(path)
        lock = open(path, "rb")  # noqa: SIM115 - held for the whole load, as insmod's flock
    except (OSError, InvalidModule) as exc:
        raise InsmodError(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc),
                          path=path) from None  # fmt: skip
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent loads of one object queue here
        return _insmod(kernel, path, mod, args, opt, persist_dir)


def _insmod(
    kernel: ModelKernel, path: str, mod: ModuleFile, args: list[str], opt: InsmodOptions, persist_dir: str
) -> InsmodResult:
    view = kernel_view(kernel)
    name = opt.name or _insmod_name(path)
    persist = persist_path(opt.persist, path, persist_dir) if opt.persist is not None else None
    restored = _known(mod, read_persist(persist)) if persist is not None else []
    link_opts = Insmod24Options(
        name=name, autoclean=opt.autoclean, export=opt.export, ksymoops=opt.ksymoops, kallsyms=opt.kallsyms,
        persist=persist, force=opt.force, prefix=opt.prefix, args=(*restored, *args),
    )  # fmt: skip
    try:
        plan = plan_module_24(mod, view, link_opts)
    except InvalidModule as exc:
        raise InsmodError(exc.reason, path=path) from None
    warnings = list(plan.warnings)
    taint = 0
    if not gpl_license_24(plan.obj):
        taint |= TAINT_PROPRIETARY_MODULE
        lic = mod.get("license")
        why = "no license" if lic is None else f"non-GPL license - {lic}"
        warnings.append(f"Warning: loading {path} will taint the kernel: {why}")
    if opt.force and plan.warnings:
        taint |= TAINT_FORCED_MODULE
        warnings.append(f"Warning: loading {path} will taint the kernel: forced load")
    if opt.probe:
        return InsmodResult(name, 0, plan.link(NOLOAD_BASE), None, warnings, persist, False)
    if opt.noload:
        base = NOLOAD_BASE
    else:
        try:
            base = kernel.create_module(name, plan.size)
        except KernelError as exc:
            if exc.errno == errno.EEXIST:
                raise InsmodError(f"a module named {name} already exists", path=path) from None
            if exc.errno == errno.ENOMEM:
                why = f"can't allocate kernel memory for module; needed {plan.size} bytes"
                raise InsmodError(why, path=path) from None
            raise InsmodError(f"create_module: {exc.strerror}", path=path) from None
    try:
        img = plan.link(base)
        if opt.blob is not None:
            write_atomic(opt.blob, img.image)
        if not opt.noload:
            kernel.init_module_24(name, img.image)
    except (KernelError, InvalidModule, OSError) as exc:
        if not opt.noload:
            with contextlib.suppress(KernelError):
                kernel.delete_module_24(name)  # what insmod does when init_module fails
        if isinstance(exc, KernelError):
            hint = HINT_EBUSY if exc.errno == errno.EBUSY else None
            raise InsmodError(f"init_module: {exc.strerror}", path=path, hint=hint) from None
        raise InsmodError(getattr(exc, "reason", None) or str(exc), path=path) from None
    if taint and not opt.noload:
        kernel.add_taint(taint)
    _snapshot(kernel)
    return InsmodResult(
        name, base, img, format_load_map(img) if opt.map else None, warnings, persist, not opt.noload
    )


def _known(mod: ModuleFile, args: list[str]) -> list[str]:
    """Arguments from a persist file are optional: names the module does not have are skipped."""
    defined = {s.name for s in mod.elf.symbols()[1:] if s.name and s.shndx}
    return [
        a for a in args if mod.get("parm_" + a.split("=", 1)[0]) is not None and a.split("=", 1)[0] in defined
    ]


def _snapshot(kernel: ModelKernel) -> None:
    """snap_shot: copies of /proc/ksyms and /proc/modules in the ksymoops directory, if it exists."""
    where = os.path.join(os.path.dirname(kernel.state.path), "ksymoops")
    if not os.path.isdir(where):
        return
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())

    write_atomic(
        os.path.join(where, f"{stamp}.ksyms"), procfs.proc_ksyms(kernel).encode("utf-8", "surrogateescape")
    )
    write_atomic(
        os.path.join(where, f"{stamp}.modules"),
        procfs.proc_modules(kernel).encode("utf-8", "surrogateescape"),
    )

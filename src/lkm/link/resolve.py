"""Symbol resolution as the kernel does it on load (kernel/module/main.c and version.c):
find_symbol's table order with GPL-only exports refused to non-GPL modules, check_version
against the module's ``__versions`` CRCs, namespaces against its ``import_ns`` entries, and the
vermagic comparison.  Errors carry the kernel's wording and errno; warnings are collected."""

from __future__ import annotations

import errno
from collections.abc import Callable

from lkm.errors import InvalidModule
from lkm.module.file import ModuleFile
from lkm.symbols.table import SymbolTable

__all__ = ["GPL_COMPATIBLE", "ResolveError", "check_vermagic", "kernel_resolver", "same_magic"]

# kernel/module/main.c license_is_gpl_compatible
GPL_COMPATIBLE = frozenset(
    {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}
)


class ResolveError(InvalidModule):
    """A symbol the kernel would refuse to bind."""


def same_magic(module_magic: str, kernel_magic: str, has_crcs: bool) -> bool:
    """The kernel's same_magic: with modversions the release (up to the first space) is skipped."""
    if has_crcs:
        module_magic = module_magic[module_magic.find(" ") + 1 :] if " " in module_magic else ""
        kernel_magic = kernel_magic[kernel_magic.find(" ") + 1 :] if " " in kernel_magic else ""
    return module_magic == kernel_magic


def check_vermagic(mod: ModuleFile, kernel_magic: str, *, force: bool = False) -> None:
    """Refuse (ENOEXEC) a module whose vermagic does not match, unless forced."""
    magic = mod.vermagic
    if force or magic is None:
        return
    if not same_magic(magic, kernel_magic, bool(mod.versions)):
        raise ResolveError(f"{mod.name}: version magic '{magic}' should be '{kernel_magic}'", errno.ENOEXEC,
                           path=mod.path)  # fmt: skip


def kernel_resolver(
    mod: ModuleFile,
    table: SymbolTable,
    *,
    force_modversion: bool = False,
    warnings: list[str] | None = None,
) -> Callable[[str], int | None]:
    """A ``resolve(name)`` for :func:`lkm.link.image.link_module` that binds like the kernel:
    returns the address, None when not found (the linker reports "Unknown symbol"), and raises
    :class:`ResolveError` for a CRC disagreement or a namespace the module does not import."""
    gpl_ok = (mod.license or "") in GPL_COMPATIBLE
    crcs: dict[str, int] = {}
    for name, crc in mod.versions:
        crcs.setdefault(name, crc)
    has_versions = bool(mod.versions)
    imported = set(mod.import_ns)
    warned: set[str] = set()

    def resolve(name: str) -> int | None:
        s = table.find_export(name, gpl_ok=gpl_ok)
        if s is None:
            s = table.lookup(name)  # a source without export information (System.map)
            if s is None or s.exported:
                return None  # exported but GPL-only to a non-GPL module: not found
            return s.address
        if s.crc is not None and not force_modversion:
            if not has_versions:
                pass  # no __versions at all: a forced load (taint F), accepted
            elif name not in crcs:
                if name not in warned and warnings is not None:
                    warnings.append(f"{mod.name}: no symbol version for {name}")
                    warned.add(name)
            elif crcs[name] & 0xFFFFFFFF != s.crc & 0xFFFFFFFF:
                code = errno.ENOEXEC if name == "module_layout" else errno.EINVAL
                raise ResolveError(
                    f"{mod.name}: disagrees about version of symbol {name}", code, path=mod.path
                )
        if s.namespace and s.namespace not in imported:
            ns = s.namespace
            why = f"{mod.name}: module uses symbol ({name}) from namespace {ns}, but does not import it."
            raise ResolveError(why, errno.EINVAL, path=mod.path)
        return s.address

    return resolve

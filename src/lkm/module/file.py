"""ModuleFile: one kernel module (``.ko``, compressed ``.ko.*`` or a 2.4 ``.o``) and what it says
about itself.  Everything is computed on first use, so a tool pays only for what it prints."""

from __future__ import annotations

import os

from lkm.compress import decompress, detect
from lkm.elf import ElfFile
from lkm.errors import LkmError
from lkm.kernels import KernelVersion, for_module
from lkm.modname import name_from_file
from lkm.module import modinfo as _mi
from lkm.module.source import read_module
from lkm.record import cached

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from mmap import mmap

    from lkm.module.signature import Signature
    from lkm.module.symbols import Export, NeededSymbol

__all__ = ["THIS_MODULE_SECTION", "ModuleFile"]

THIS_MODULE_SECTION = ".gnu.linkonce.this_module"


class ModuleFile:
    """A module file.  Open with :meth:`open` (path) or :meth:`from_bytes`."""

    def __init__(
        self,
        data: bytes | mmap,
        *,
        path: str | None = None,
        compression: str | None = None,
        file_size: int | None = None,
    ) -> None:
        self.path = path
        self.data = data
        self.compression = compression
        self.file_size = len(data) if file_size is None else file_size
        try:
            self.elf = ElfFile(data, path=path)
        except LkmError as exc:
            exc.path = path
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ModuleFile:
        p = os.fspath(path)
        mb = read_module(p)
        return cls(mb.data, path=p, compression=mb.compression, file_size=mb.file_size)

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | None = None) -> ModuleFile:
        """From file contents in memory; compressed contents are detected and decompressed."""
        comp = detect(data[:8])
        if comp is not None:
            try:
                raw = decompress(data, comp)
            except LkmError as exc:
                exc.path = path
                raise
            return cls(raw, path=path, compression=comp.name, file_size=len(data))
        return cls(data, path=path)

    # -- .modinfo ---------------------------------------------------------------------------

    @cached
    def modinfo(self) -> list[tuple[str, str]]:
        """``.modinfo`` entries as (key, value), in file order, duplicates kept."""
        sec = self.elf.section(".modinfo")
        if sec is None:
            return []
        return _mi.parse_modinfo(self.elf.section_bytes(sec))

    @cached
    def _first_values(self) -> dict[str, str]:
        return dict(reversed(self.modinfo))  # built in C; the first entry of a key wins

    def get(self, key: str) -> str | None:
        """The first value of ``key`` in .modinfo."""
        return self._first_values.get(key)

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.modinfo if k == key]

    @property
    def is_24(self) -> bool:
        """A 2.4-style object: no struct module section, 2.4 .modinfo or export strings."""
        if self.get("vermagic") is not None or self.elf.section(THIS_MODULE_SECTION) is not None:
            return False
        return self.get("kernel_version") is not None or self.elf.section(".kstrtab") is not None

    @property
    def version(self) -> KernelVersion:
        """The kernel design the file is built for: 2.4 objects, else by its vermagic."""
        return for_module(self.is_24, self.vermagic)

    @property
    def name(self) -> str:
        """The module's name: .modinfo ``name=``, else the file name without extensions, '-' as '_'."""
        n = self.get("name")
        if n:
            return n
        return name_from_file(self.path or "")

    @property
    def vermagic(self) -> str | None:
        return self.get("vermagic")

    @property
    def kernel_version(self) -> str | None:
        """2.4: ``kernel_version=`` (UTS_RELEASE the object was built for)."""
        return self.get("kernel_version")

    @property
    def license(self) -> str | None:
        return self.get("license")

    @property
    def depends(self) -> list[str]:
        d = self.get("depends")
        return [x for x in d.split(",") if x] if d else []

    @property
    def aliases(self) -> list[str]:
        return self.get_all("alias")

    @property
    def softdeps(self) -> list[str]:
        return self.get_all("softdep")

    @property
    def import_ns(self) -> list[str]:
        return self.get_all("import_ns")

    @cached
    def parameters(self) -> list[_mi.Parameter]:
        return _mi.parameters(self.modinfo, dialect24=self.version.user_space_link)

    # -- symbols ----------------------------------------------------------------------------

    @cached
    def exports(self) -> list[Export]:
        elf = self.elf
        if elf.section("__ksymtab") is None and elf.section("__ksymtab_gpl") is None:
            return []  # both dialects keep their table in __ksymtab*
        from lkm.module import symbols  # lazy: start-up (modinfo reads no symbol table)

        return symbols.exports24(elf) if self.version.user_space_link else symbols.exports(elf)

    @cached
    def versions(self) -> list[tuple[str, int]]:
        from lkm.module import symbols  # lazy: start-up

        return symbols.versions(self.elf)

    @cached
    def needed(self) -> list[NeededSymbol]:
        from lkm.module import symbols  # lazy: start-up

        return symbols.needed(self.elf)

    # -- notes and signature ----------------------------------------------------------------

    @cached
    def build_id(self) -> bytes | None:
        from lkm.module import notes  # lazy: start-up

        return notes.build_id(self.elf)

    @cached
    def signature(self) -> Signature | None:
        if not _has_sig_trailer(self.data):
            return None
        try:
            from lkm.module import signature  # lazy: start-up (unsigned files never load it)

            return signature.read_signature(self.data)
        except LkmError as exc:
            exc.path = self.path
            raise

    @property
    def module_size(self) -> int:
        """Bytes of the module proper (without the appended signature)."""
        from lkm.module import signature  # lazy: start-up

        return signature.module_size(self.data)

    def check(self, kernel: str | KernelVersion = "6.12", arch: str | None = None) -> None:
        """Raise :class:`~lkm.errors.InvalidModule` (with the kernel's errno) if the kernel
        ``kernel`` (a :mod:`lkm.kernels` record or its name, "6.1", "6.12") would refuse this
        file's ELF image."""
        from lkm.module.validate import check_module  # lazy: lkm.arch's tables cost start-up

        check_module(self.elf, kernel=kernel, arch=arch)

    def close(self) -> None:
        close = getattr(self.data, "close", None)  # an mmap; bytes have nothing to release
        if close is not None:
            close()

    def __enter__(self) -> ModuleFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ModuleFile {self.path or '(memory)'} {self.elf.elfclass}-bit>"


_SIG_MAGIC = b"~Module signature appended~\n"


def _has_sig_trailer(data: bytes | mmap) -> bool:
    # Checked here so unsigned modules never import the signature parser.
    return len(data) >= len(_SIG_MAGIC) and data[len(data) - len(_SIG_MAGIC) :] == _SIG_MAGIC

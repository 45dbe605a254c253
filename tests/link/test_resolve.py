"""Binding as the kernel binds: GPL-only exports refused to non-GPL modules, CRCs checked against
__versions, namespaces against import_ns, vermagic compared without the release under modversions
(kernel-loader.md §3).  The fixtures' sources say what each module exports and imports."""

from __future__ import annotations

import errno

import pytest

from lkm.link.resolve import ResolveError, check_vermagic, kernel_resolver, same_magic
from lkm.module import ModuleFile
from lkm.symbols.table import KernelSymbol, SymbolTable

from support import FIX6

EXPORTER_BASE = 0xFFFFFFFFC0000000


def _table(crc_delta: int = 0, namespace: str | None = "LKM_FIXTURE") -> SymbolTable:
    imp = ModuleFile.open(FIX6 / "importer.ko")
    exp = ModuleFile.open(FIX6 / "exporter.ko")
    mine = {e.name for e in exp.exports}
    core = [KernelSymbol(n.name, 0xFFFFFFFF81000000 + i * 16, "T", None, True, False, n.crc)
            for i, n in enumerate(imp.needed) if n.name not in mine]  # fmt: skip
    table = SymbolTable(core)
    exports = [
        KernelSymbol(e.name, EXPORTER_BASE + i * 16, "T", "exporter", True, e.gpl,
                     (e.crc or 0) + crc_delta, namespace if e.namespace else None)
        for i, e in enumerate(exp.exports)
    ]  # fmt: skip
    table.add_module_exports("exporter", exports)
    return table


def test_importer_binds() -> None:
    imp = ModuleFile.open(FIX6 / "importer.ko")
    resolve = kernel_resolver(imp, _table())
    assert resolve("lkm_fixture_add") is not None and resolve("lkm_fixture_gpl_mul") is not None


def test_crc_disagreement() -> None:
    imp = ModuleFile.open(FIX6 / "importer.ko")
    with pytest.raises(ResolveError, match="disagrees about version of symbol lkm_fixture_add") as ei:
        kernel_resolver(imp, _table(crc_delta=1))("lkm_fixture_add")
    assert ei.value.errno == errno.EINVAL
    assert kernel_resolver(imp, _table(crc_delta=1), force_modversion=True)("lkm_fixture_add") is not None


def test_namespace_not_imported() -> None:
    imp = ModuleFile.open(FIX6 / "importer.ko")
    with pytest.raises(ResolveError, match=r"from namespace OTHER_NS, but does not import it"):
        kernel_resolver(imp, _table(namespace="OTHER_NS"))("lkm_fixture_ns_answer")


def test_gpl_only_refused_to_non_gpl_module() -> None:
    data = (FIX6 / "importer.ko").read_bytes().replace(b"license=GPL\0", b"license=BSD\0")
    imp = ModuleFile.from_bytes(data, path="importer.ko")
    resolve = kernel_resolver(imp, _table())
    assert resolve("lkm_fixture_gpl_mul") is None  # not found: "Unknown symbol" at link time
    assert resolve("lkm_fixture_add") is not None


def test_vermagic() -> None:
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    magic = mod.vermagic
    assert magic is not None
    # modversions: the release part is not compared
    check_vermagic(mod, "9.9.9-other " + magic.split(" ", 1)[1])
    with pytest.raises(ResolveError, match="version magic") as ei:
        check_vermagic(mod, magic.replace("preempt ", ""))
    assert ei.value.errno == errno.ENOEXEC
    check_vermagic(mod, "anything", force=True)
    assert not same_magic("6.1 SMP", "6.2 SMP", has_crcs=False) and same_magic(
        "6.1 SMP", "6.2 SMP", has_crcs=True
    )

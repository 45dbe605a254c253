"""Today's loading on the model kernel (finit_module/init_module with the raw file,
delete_module): the errnos and messages of kernel-loader.md §1, §3 and §7, the state left
unchanged by every failure, references and refcounts, the /proc formats."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import pytest

from lkm.kernel.interface import (
    MODULE_INIT_COMPRESSED_FILE,
    MODULE_INIT_IGNORE_VERMAGIC,
    O_NONBLOCK,
    O_TRUNC,
    KernelError,
)
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.procfs import proc_kallsyms, proc_modules
from lkm.kernel.model.vmalloc import Arena

from support import FIX6, FIX24

EXPORTER, IMPORTER = str(FIX6 / "exporter.ko"), str(FIX6 / "importer.ko")


def errno_of(k: ModelKernel, path: str, params: str = "", flags: int = 0) -> int:
    before = (proc_modules(k), k.areas())
    with pytest.raises(KernelError) as e:
        k.finit_module(path, params, flags)
    assert (proc_modules(k), k.areas()) == before  # the failed call changed nothing
    assert k.check_integrity() == []
    return e.value.errno


def test_exporter_then_importer(k61: ModelKernel) -> None:
    k61.finit_module(EXPORTER)
    k61.finit_module(IMPORTER)
    mods = {m.name: m for m in k61.modules()}
    assert [m.name for m in k61.modules()] == ["importer", "exporter"]  # newest first
    assert mods["exporter"].holders == ("importer",) and mods["exporter"].refcount == 1
    # /proc/modules: "%s %u %i %s %s 0x%px" + taints (kernel-loader.md §6)
    line = re.compile(
        r"^(\w+) (\d+) (\d+) (-|(?:\w+,)+) (Live|Loading|Unloading) 0x([0-9a-f]{16})( \(\w+\))?$"
    )
    rows = [line.match(r) for r in proc_modules(k61).splitlines()]
    assert all(rows) and rows[1][4] == "importer," and rows[0][4] == "-"  # type: ignore[index]
    # every import of the importer bound to the exporter's address for that name
    exports = {s.name: s.address for s in k61.module_symbols()[1][1]}
    kallsyms = {
        ln.split()[2]: int(ln.split()[0], 16) for ln in proc_kallsyms(k61).splitlines() if "[exporter]" in ln
    }
    assert {n: kallsyms[n] for n in exports} == exports
    start = k61.sections("exporter")[".text"]
    assert start == mods["exporter"].address and start % 4096 == 0
    assert k61.check_integrity() == []


def test_delete_module_rules(k61: ModelKernel) -> None:
    k61.finit_module(EXPORTER)
    k61.finit_module(IMPORTER)
    cases = [("exporter", O_NONBLOCK, errno.EWOULDBLOCK), ("exporter", O_TRUNC, errno.EWOULDBLOCK),
             ("nosuch", O_NONBLOCK, errno.ENOENT)]  # fmt: skip
    for name, flags, err in cases:
        with pytest.raises(KernelError) as e:
            k61.delete_module(name, flags)
        assert e.value.errno == err
    with k61.state.transaction() as db:  # someone holds a reference (try_module_get)
        db.execute("UPDATE modules SET usecount=1 WHERE name='importer'")
    with pytest.raises(KernelError) as e:
        k61.delete_module("importer")
    assert e.value.errno == errno.EWOULDBLOCK
    k61.delete_module("importer", O_NONBLOCK | O_TRUNC)  # forced unload ignores the refcount
    k61.delete_module("exporter")
    assert k61.modules() == [] and k61.areas() == [] and k61.check_integrity() == []
    calls = [(c.module, c.address) for c in k61.executor.calls]  # type: ignore[attr-defined]
    assert [m for m, _ in calls] == ["exporter", "importer", "importer", "exporter"]  # init, init, exit, exit


def test_refusals(k61: ModelKernel, tmp_path: Path) -> None:
    assert errno_of(k61, IMPORTER) == errno.ENOENT  # Unknown symbol (exporter not loaded)
    k61.finit_module(EXPORTER)
    assert errno_of(k61, EXPORTER) == errno.EEXIST
    assert errno_of(k61, str(FIX24 / "hello24.o")) == errno.ENOEXEC  # wrong machine, no this_module
    corrupt = tmp_path / "corrupt.ko"
    corrupt.write_bytes(Path(EXPORTER).read_bytes()[:200])
    assert errno_of(k61, str(corrupt)) == errno.ENOEXEC
    empty = tmp_path / "empty.ko"
    empty.write_bytes(b"")
    assert errno_of(k61, str(empty)) == errno.EINVAL
    assert errno_of(k61, str(tmp_path / "missing.ko")) == errno.EBADF
    assert errno_of(k61, IMPORTER, flags=8) == errno.EINVAL
    assert errno_of(k61, str(FIX6 / "chardev.ko.xz"), flags=MODULE_INIT_COMPRESSED_FILE) == errno.EOPNOTSUPP


def test_vermagic(k61: ModelKernel, tmp_path: Path) -> None:
    data = Path(str(FIX6 / "chardev.ko")).read_bytes()
    magic = b"6.1.0-56-amd64 SMP preempt mod_unload modversions "
    assert magic in data
    other = tmp_path / "chardev.ko"
    other.write_bytes(data.replace(magic, b"6.1.0-56-amd64 SMP preempt mod_unload".ljust(len(magic))))
    assert errno_of(k61, str(other)) == errno.ENOEXEC
    k61.finit_module(str(other), "", MODULE_INIT_IGNORE_VERMAGIC)
    assert [m.name for m in k61.modules()] == ["chardev"]


def test_parameters(k61: ModelKernel) -> None:
    params = str(FIX6 / "params.ko")
    assert errno_of(k61, params, "intval=notanumber") == errno.EINVAL
    assert errno_of(k61, params, "byteval=256") == errno.EINVAL
    k61.finit_module(params, 'intval=7 unknown_thing=1 name="two words" enable')
    assert k61.parameters("params") == {"intval": "7", "name": "two words", "enable": ""}


def test_init_failure_and_no_memory(k61: ModelKernel) -> None:
    k61.executor.results["exporter"] = -errno.ENODEV  # type: ignore[attr-defined]
    assert errno_of(k61, EXPORTER) == errno.ENODEV
    k61.executor.results.clear()  # type: ignore[attr-defined]
    v = k61.arenas["vmalloc"]
    k61.arenas["vmalloc"] = Arena("vmalloc", v.start, v.start + 4 * 4096, 4096, 4096)
    assert errno_of(k61, EXPORTER) == errno.ENOMEM


def test_kmalloc_first_policy(tmp_path: Path) -> None:
    """2.4 i386 modules may live in kmalloc memory; x86_64 modules may not: their 32-bit
    sign-extended relocations only reach the top 2 GiB, which is why x86_64 has a module area."""
    from lkm.modutils.insmod import insmod

    k24 = ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", policy="kmalloc-first")
    insmod(k24, str(FIX24 / "fat24.o"), [])
    (area,) = k24.areas()
    assert area.pool == "kmalloc" and area.span == 2048 and area.start % 2048 == 0  # 1128 bytes: size-2048
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db", policy="kmalloc-first", kmalloc_max=1 << 17)
    assert errno_of(k, EXPORTER) == errno.ENOEXEC  # overflow in relocation type 11 (R_X86_64_32S)


def test_model_is_a_kernel_for_the_kmod_tools(k61: ModelKernel, tmp_path: Path) -> None:
    from lkm.kernel.load import check_removable, insert_module, remove_module

    shutil.copy(EXPORTER, tmp_path / "exporter.ko")
    insert_module(k61, str(tmp_path / "exporter.ko"))
    insert_module(k61, IMPORTER)
    with pytest.raises(KernelError):
        check_removable(k61, "exporter")
    remove_module(k61, "importer")
    remove_module(k61, "exporter")
    assert k61.initstate("exporter") is None


def test_init_without_exit_cannot_be_unloaded_unless_forced(k61: ModelKernel) -> None:
    k61.finit_module(EXPORTER)
    with k61.state.transaction() as db:  # as a module with module_init but no module_exit
        db.execute("UPDATE modules SET info = json_set(info, '$.exit', 0) WHERE name='exporter'")
    with pytest.raises(KernelError) as e:
        k61.delete_module("exporter")
    assert e.value.errno == errno.EBUSY
    assert proc_modules(k61).split()[3] == "[permanent],"
    k61.delete_module("exporter", O_NONBLOCK | O_TRUNC)
    assert k61.modules() == []

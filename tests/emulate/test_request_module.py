"""request_module in the model kernel: a module's init (run by the emulator) asks for a module
by alias, and lkm's modprobe loads it (and what it needs) from an lkm-depmod'ed modules
directory, nested inside the outer load.  Fixtures: kreq.ko asks for "fs-lkmreqfs", the alias
kreqfs.ko declares; kreqfs needs exporter.ko and itself asks for "fs-lkmnothing" (no such
module); kreqself.ko asks for itself (a deadlock in the real kernel); kreqlong.ko for a 56-byte name."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from support import FIX6

PROFILE = "linux-6.1-amd64"
MODULES = ("exporter", "importer", "kreq", "kreqself", "kreqlong", "kreqfs")


@pytest.fixture
def model(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 6.1 model kernel running module code, with a depmod'ed modules root."""
    from lkm.cli.depmod import run as depmod
    from lkm.emulate.executor import for_profile
    from lkm.kernel.model import ModelKernel

    ex = for_profile(PROFILE)
    k = ModelKernel.boot(PROFILE, tmp_path / "k.db", executor=ex, modules_root=str(tmp_path / "root"))
    extra = tmp_path / "root" / "lib" / "modules" / k.release / "extra"
    extra.mkdir(parents=True)
    for m in MODULES:
        shutil.copy(FIX6 / f"{m}.ko", extra)
    assert depmod("depmod", ["-q", "-b", str(tmp_path / "root"), k.release]) == 0
    return k, ex, extra


def _log(ex: object) -> list[str]:
    return ex.kernel.state.dmesg()  # type: ignore[attr-defined, no-any-return]


def test_init_requests_alias_modprobe_loads_it_with_its_dependency(model) -> None:  # type: ignore[no-untyped-def]
    k, ex, extra = model
    k.finit_module(str(extra / "kreq.ko"))
    assert ex.faults == []
    # The order the real kernel runs them: kreq's init blocks in request_module while modprobe
    # loads exporter then kreqfs (whose own request finds nothing: modprobe exit 1 -> 256).
    assert _log(ex) == [
        "exporter: loaded",
        "kreqfs: loaded, 2+3=5, request_module(fs-lkmnothing) = 256",
        "kreq: request_module(fs-lkmreqfs) = 0",
    ]
    mods = {m.name: m for m in k.modules()}
    assert [m.name for m in k.modules()] == ["kreqfs", "exporter", "kreq"]  # /proc/modules: newest first
    assert mods["exporter"].holders == ("kreqfs",) and mods["exporter"].refcount == 1
    assert mods["kreqfs"].holders == () and mods["kreq"].holders == ()  # a request takes no reference
    assert all(m.state == "Live" for m in mods.values())
    assert k.check_integrity() == []
    assert [(r.name, r.argv[1:], r.result, r.depth) for r in k.requests] == [
        ("fs-lkmreqfs", ["-q", "--", "fs-lkmreqfs"], 0, 0),
        ("fs-lkmnothing", ["-q", "--", "fs-lkmnothing"], 256, 1),
    ]
    # kreqlong's init lands where kreq's freed init was: its own code must run, not kreq's.
    k.finit_module(str(extra / "kreqlong.ko"))
    assert _log(ex)[-1].startswith("kreqlong: ")
    k.delete_module("kreqlong")
    # The state is on disk: another open of it sees the same modules, all unloadable in order.
    from lkm.kernel.model import ModelKernel

    again = ModelKernel(k.state.path)
    assert [m.name for m in again.modules()] == ["kreqfs", "exporter", "kreq"]
    for name in ("kreqfs", "exporter", "kreq"):
        k.delete_module(name)
    assert k.modules() == [] and k.check_integrity() == []


def test_self_request_is_the_kernels_deadlock(model) -> None:  # type: ignore[no-untyped-def]
    from lkm.kernel.interface import KernelError

    k, _ex, extra = model
    # modprobe does not count a coming module as loaded (libkmod's module_is_inkernel), so it
    # inserts kreqself again; 6.1's add_unformed_module waits for the first load to finish,
    # which waits for modprobe: a real 6.1 guest hangs here (tests/vm/guest/guest_kreq.py).
    with pytest.raises(KernelError) as info:
        k.finit_module(str(extra / "kreqself.ko"))
    assert info.value.errno == errno.EDEADLK
    assert [(r.name, r.depth) for r in k.requests] == [("kreqself", 0)]
    assert k.kmod_running == 0 and k.modules() == [] and k.check_integrity() == []
    k.finit_module(str(extra / "kreq.ko"))  # the kernel goes on working
    assert [m.name for m in k.modules()] == ["kreqfs", "exporter", "kreq"] and k.check_integrity() == []


def test_name_too_long(model) -> None:  # type: ignore[no-untyped-def]
    k, ex, extra = model
    k.finit_module(str(extra / "kreqlong.ko"))
    name = "fs-lkmreq-a-name-of-fifty-six-characters-is-too-long-xyz"
    assert len(name) == 56  # MODULE_NAME_LEN on x86_64 is 64 - sizeof(long) = 56, NUL included
    assert _log(ex) == [f"kreqlong: request_module({name}) = {-errno.ENAMETOOLONG}"]
    assert k.requests == []  # refused before modprobe or the trace event
    assert k.request_module(name[:55]) == 256  # 55 bytes fit: modprobe runs, finds nothing


def test_empty_modprobe_path(model) -> None:  # type: ignore[no-untyped-def]
    k, ex, extra = model
    k.set_modprobe_path("\n")  # `echo > /proc/sys/kernel/modprobe`
    assert k.modprobe_path == ""
    k.finit_module(str(extra / "kreq.ko"))
    assert _log(ex) == [f"kreq: request_module(fs-lkmreqfs) = {-errno.ENOENT}"]
    assert [m.name for m in k.modules()] == ["kreq"]


def test_concurrency_limit_ends_a_nested_request_with_etime(model) -> None:  # type: ignore[no-untyped-def]
    k, ex, extra = model
    k.kmod_concurrent_max = 1  # kreq's request holds the only slot while kreqfs asks again
    k.finit_module(str(extra / "kreq.ko"))
    assert _log(ex) == [
        "exporter: loaded",
        f"kreqfs: loaded, 2+3=5, request_module(fs-lkmnothing) = {-errno.ETIME}",
        "kreq: request_module(fs-lkmreqfs) = 0",
    ]
    assert k.kmsg[-1] == (
        "request_module: modprobe fs-lkmnothing cannot be processed, kmod busy with 1 threads for more "
        "than 5 seconds now"
    )
    assert k.kmod_running == 0 and k.check_integrity() == []


def test_failed_outer_init_keeps_the_module_it_requested(tmp_path: Path, model) -> None:  # type: ignore[no-untyped-def]
    from lkm.kernel.interface import KernelError

    k, ex, extra = model

    class Failing:
        """kreq's init as the emulator runs it, then -ENODEV (a driver that found no device)."""

        def call(self, image, address, args=()):  # type: ignore[no-untyped-def]
            ret = ex.call(image, address, args)
            return -errno.ENODEV if image.name == "kreq" else ret

    k.executor = Failing()
    with pytest.raises(KernelError) as info:
        k.finit_module(str(extra / "kreq.ko"))
    assert info.value.errno == errno.ENODEV
    # do_init_module frees kreq; kreqfs and exporter, loaded by its request, stay.
    assert [m.name for m in k.modules()] == ["kreqfs", "exporter"] and k.check_integrity() == []


def test_failed_nested_load_leaves_the_outer_load_intact(model) -> None:  # type: ignore[no-untyped-def]
    k, ex, extra = model
    (extra / "kreqfs.ko").write_bytes(b"\x7fELF garbage")  # modprobe finds it; the kernel refuses it
    k.finit_module(str(extra / "kreq.ko"))
    assert _log(ex)[-1] == "kreq: request_module(fs-lkmreqfs) = 256"
    # exporter (kreqfs's dependency, inserted first) stays, as it would on a real system.
    assert [m.name for m in k.modules()] == ["exporter", "kreq"] and k.check_integrity() == []


def test_standalone_emulation_has_no_modprobe() -> None:
    from lkm.emulate.session import Session

    s = Session(None)
    s.insmod(str(FIX6 / "kreq.ko"))
    assert s.k.state.dmesg()[-1] == f"kreq: request_module(fs-lkmreqfs) = {-errno.ENOENT}"


def test_cli_request_module_and_settings(model, capsys) -> None:  # type: ignore[no-untyped-def]
    from lkm.cli.model import run

    k, _ex, _extra = model
    state = k.state.path
    assert run("lkm model", ["request-module", "fs-lkmreqfs", "--state", state]) == 0
    assert capsys.readouterr().out == "0\n"
    assert run("lkm model", ["request-module", "fs-lkmnothing", "--state", state]) == 0
    assert capsys.readouterr().out == "256\n"
    assert run("lkm model", ["set", "modprobe=", "--state", state]) == 0
    assert run("lkm model", ["request-module", "fs-lkmnothing", "--state", state]) == 0
    assert capsys.readouterr().out == f"{-errno.ENOENT}\n"
    assert run("lkm model", ["set", "bogus=1", "--state", state]) == 1
    from lkm.kernel.model import ModelKernel

    assert {m.name for m in ModelKernel(state).modules()} == {"kreqfs", "exporter"}


def test_24_request_module_runs_modutils_argv_and_returns_0(tmp_path: Path) -> None:
    from lkm.kernel.model import ModelKernel

    k = ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", modules_root=str(tmp_path))
    # 2.4's kmod.c: no length check, modprobe's status ignored (0), the -s -k argv.
    assert k.request_module("x" * 100) == 0
    assert k.requests[0].argv == ["/sbin/modprobe", "-s", "-k", "--", "x" * 100]
    k.kmod_concurrent_max = 0
    assert k.request_module("char-major-10-1") == -errno.ENOMEM
    assert k.kmsg == ["kmod: runaway modprobe loop assumed and stopped"]

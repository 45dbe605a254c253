"""The driver core's generic lists and QEMU's ACPI answers (lkm.emulate.base.drvcore, acpi):
the kcore fixture (fixtures/src/6x/kcore) in emulation against the real 6.1 amd64 kernel
booted in QEMU (tests/emulate/data/kcore-6.1-amd64.json, made by scripts/guest_kcore.py),
and corpus modules whose inits need these calls running with every call implemented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import FIX6, guest_kallsyms, require

DATA = Path(__file__).parent / "data" / "kcore-6.1-amd64.json"
# The kernel lines the emulator prints beside the fixture's own (the real log also holds the
# WARN backtraces sysfs's duplicate-name complaint comes with, which it does not).
KERNEL_LINES = ("Error: Driver ", "sysfs: cannot create duplicate filename", "kobject_add_internal failed")


def _real(step: str) -> list[str]:
    doc = json.loads(DATA.read_text())
    log = next(s["dmesg"] for s in doc["steps"] if s["step"] == step)
    return [x for x in log if x.startswith(("kcore: ", *KERNEL_LINES)) and "taint" not in x]


def _emulated() -> tuple[list[str], list[str]]:
    from lkm.emulate.session import Session

    s = Session(None, strict=True)
    s.base_dir = str(FIX6)
    res, out = s.insmod("kcore.ko")
    assert res.ok, (res, out.log)
    gone = s.rmmod("kcore")
    assert gone.fault is None, gone.fault

    def keep(log: list[str]) -> list[str]:
        return [x for x in log if x.startswith(("kcore: ", *KERNEL_LINES)) and "taint" not in x]

    return keep(out.log), keep(gone.log)


def test_init_log_equals_the_real_kernels() -> None:
    """Drivers on a bus (order, start, early stop, driver_find, -EBUSY for a name taken),
    a class (-EEXIST for a name taken, its files, interface add_dev for devices made before
    and after, find/for_each), transport classes and containers, QEMU's ACPI answers, EFI
    variables on a SeaBIOS machine, bin2hex and an inet_hashinfo's listening hash and ehash
    locks (the real kernel's lock count: a page of locks per node), GPIO lookups finding
    nothing, no DMA channel, an async function, an Ethernet address set, a notifier chain called."""
    init, _exit = _emulated()
    assert init == _real("insmod")


def test_exit_log_equals_the_real_kernels() -> None:
    """remove_dev for the devices leaving the class, containers unregistered."""
    _init, exit_ = _emulated()
    assert exit_ == _real("rmmod")


def test_the_real_kernel_logged_the_calls() -> None:
    """The reference itself: the fixture ran to the end of its init and exit in the guest."""
    assert _real("insmod")[-1] == "kcore: blocking_notifier_call_chain=1"
    assert _real("rmmod")[-1] == "kcore: exit"


# -- corpus modules: each needs one of these calls at init (the strict survey's top ones) -------
CLEAN = {
    "hid_generic": "bus_for_each_drv (hid.ko's __hid_register_driver)",
    "scsi_transport_sas": "transport_class_register, attribute_container_register",
    "sg": "class_interface_register",
    "drm": "class_create_file_ns (drm_sysfs_init)",
    "mlx5_ib": "__auxiliary_driver_register",
    "vxlan": "__rtnl_register_many",
    "mpls_router": "rtnl_af_register",
}


@pytest.mark.vm  # the tree's kallsyms come from its guest capture
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_corpus_init_runs_with_every_call_implemented(corpus_trees, name: str) -> None:  # type: ignore[no-untyped-def]
    from lkm.emulate.survey import run_module, tree_modules
    from testing.captures import tree_symbols
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    guest_kallsyms(tree)
    deps = tree_modules(sorted(str(p) for p in module_files(tree)))
    run = run_module(deps[name], tree_symbols(tree), strict=True, deps=deps)
    assert (run.result, run.value, run.unimplemented) == ("returned", 0, ()), (CLEAN[name], run.detail)


@pytest.mark.vm  # the tree's kallsyms come from its guest capture
def test_a_driver_for_a_device_qemu_has_is_not_modelled(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """button.ko's ACPI driver names LNXPWRBN, the fixed power button QEMU's PC has: binding
    it would call add() on an acpi_device the emulator does not model, so the call counts as
    unimplemented (strict mode stops there) rather than pretending no device is there."""
    from lkm.emulate.survey import run_module, tree_modules
    from testing.captures import tree_symbols
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    guest_kallsyms(tree)
    deps = tree_modules(sorted(str(p) for p in module_files(tree)))
    run = run_module(deps["button"], tree_symbols(tree), strict=True, deps=deps)
    assert (run.result, run.unimplemented) == ("unimplemented", ("acpi_bus_register_driver",))

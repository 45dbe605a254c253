"""Every kernel call real, or said so: an unimplemented call is a warning naming the function
and its call site (the return address, as the kernel's %pS prints it), --strict stops at it;
the base kernel's registries answer as the kernel's source says (fixtures/src/6x/kcalls)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from support import FIX6, guest_kallsyms, require, run


def _lkm(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "LKM_EMULATE_KALLSYMS": ""}  # synthetic symbols: no corpus needed
    p = run([sys.executable, "-m", "lkm", *args], env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _call_sites(ko: Path, callee: str) -> list[str]:
    """Where init_module's calls to ``callee`` return to, from the ELF itself: the call's
    rel32 relocation is the last 4 bytes of a 5-byte e8 call, so the return address is the
    relocation's offset + 4, printed as symbol+offset/size [module]."""
    from lkm.module.file import ModuleFile

    mod = ModuleFile.open(str(ko))
    e = mod.elf
    text = e.section(".init.text")
    assert text is not None
    syms = e.symbols()
    init = next(s for s in syms if s.name == "init_module")
    body = e.section_bytes(text)
    sites = []
    for rel in (r for sec in e.relocation_sections_for(text) for r in e.relocations(sec)):
        if syms[rel.sym].name == callee and body[rel.offset - 1] == 0xE8:
            sites.append(f"init_module+{rel.offset + 4 - init.value:#x}/{init.size:#x} [{mod.name}]")
    return sites


def test_unimplemented_call_is_a_warning_with_its_call_site() -> None:
    # importer without exporter: its calls to exporter's functions have no implementation
    rc, out, err = _lkm("run", str(FIX6 / "importer.ko"))
    assert rc == 0, err
    lines = err.splitlines()
    names = ["lkm_fixture_add", "lkm_fixture_gpl_mul", "lkm_fixture_ns_answer"]
    want = [
        f"lkm run: warning: unimplemented kernel function {n} called from {site} (returned 0)"
        for n in names
        for site in _call_sites(FIX6 / "importer.ko", n)
    ]
    assert len(want) == 3 and lines == want
    assert all(f"## {w.removeprefix('lkm run: ')}" in out.splitlines() for w in want)  # the report too


def test_unimplemented_calls_in_json() -> None:
    rc, out, _err = _lkm("run", str(FIX6 / "importer.ko"), "--json")
    assert rc == 0
    doc = json.loads(out)
    site = _call_sites(FIX6 / "importer.ko", "lkm_fixture_add")[0]
    assert (
        doc["warnings"][0]
        == f"warning: unimplemented kernel function lkm_fixture_add called from {site} (returned 0)"
    )
    missing = [c for c in doc["calls"] if not c["implemented"]]
    assert [c["site"] for c in missing][:1] == [site]


def test_strict_stops_at_the_first_unimplemented_call() -> None:
    rc, out, err = _lkm("run", "--strict", str(FIX6 / "importer.ko"))
    assert rc == 1
    site = _call_sites(FIX6 / "importer.ko", "lkm_fixture_add")[0]
    assert err.splitlines() == [
        f"lkm run: strict: stopped at unimplemented kernel function lkm_fixture_add called from {site}"
    ]
    assert "importer: sum=" not in out  # init did not go on past the call
    assert "did not return: unimplemented" in out


def test_a_module_calling_only_implemented_functions_has_no_warning() -> None:
    rc, _out, err = _lkm("run", "--strict", "--exit", str(FIX6 / "kcalls.ko"))
    assert rc == 0 and err == "", err


def _kcalls_log() -> list[str]:
    from lkm.emulate.session import Session

    s = Session(None, strict=True)
    s.base_dir = str(FIX6)
    res, out = s.insmod("kcalls.ko")
    assert res.ok, (res, out.log)
    exit_out = s.rmmod("kcalls")
    assert exit_out.fault is None
    return [x for x in out.log + exit_out.log if x.startswith("kcalls: ") and "taint" not in x]


def test_registries_answer_as_the_kernel_does() -> None:
    """Expected values from the 6.1 sources: firmware_loader/main.c (-ENOENT, *fw = NULL),
    kernel/notifier.c (a block already on the chain: -EEXIST; not on it: -ENOENT),
    crypto/algapi.c (a driver name taken: -EEXIST; crypto_has_alg finds what is
    registered), net/netlink/genetlink.c (ids from GENL_START_ALLOC = 19; a name taken:
    -EEXIST; unregistering an unknown family: -ENOENT), fs/proc/generic.c (a name taken:
    NULL), drivers/firmware/dmi_scan.c with QEMU's SMBIOS strings, lib/idr.c (lowest free
    id, -ENOSPC when the range is full)."""
    assert _kcalls_log() == [
        "kcalls: request_firmware=-2 fw=NULL",
        "kcalls: register_reboot_notifier=0 again=-17",
        "kcalls: unregister_reboot_notifier=0 again=-2",
        "kcalls: crypto_register_shash=0 again=-17 has=1",
        "kcalls: genl_register_family=0 id_from_19=1 again=-17",
        "kcalls: proc_mkdir=set again=NULL",
        "kcalls: dmi qemu=1 dell=0 cpu=none",
        "kcalls: idr_alloc=1,2,-28 find=1",
        "kcalls: ida_alloc_range=5,6,-28",
        "kcalls: after unregister has=0",
        "kcalls: genl_unregister_family=0 again=-2",
    ]


def test_registrations_are_recorded_and_forgotten() -> None:
    from lkm.emulate.session import Session

    s = Session(None)
    s.base_dir = str(FIX6)
    s.insmod("kcalls.ko")
    st = s.k.state
    kinds = {(r.kind, r.name) for r in st.registrations if r.module == "kcalls"}
    assert {("crypto-alg", "lkmtest-generic"), ("genl", "lkm_kcalls"), ("proc", "lkm_kcalls")} <= kinds
    assert not any(r.kind == "notifier" for r in st.registrations)  # unregistered again in init
    s.rmmod("kcalls")
    left = {r.kind for r in st.registrations if r.module == "kcalls"}
    assert not left & {"crypto-alg", "genl", "proc"}, left


def test_every_function_is_registered_once() -> None:
    """The registry is explicit: a name implemented in two subsystem files is an import error."""
    import lkm.emulate.base  # noqa: F401
    from lkm.emulate.kernel import FUNCTIONS, kfunc

    assert "request_firmware" in FUNCTIONS and FUNCTIONS["request_firmware"].fn.__module__.endswith(
        "firmware"
    )
    with pytest.raises(ValueError, match="implemented twice"):
        kfunc("request_firmware")(lambda k, c: 0)
    assert FUNCTIONS["request_firmware"].fn.__module__ == "lkm.emulate.base.firmware"


@pytest.mark.corpus
@pytest.mark.vm  # the tree's kallsyms is a guest capture (made on first use)
def test_corpus_sample_strict_share(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """A fixed sample of the amd64-6.1 tree in strict mode, dependencies loaded first: the
    share of inits with no unimplemented call (a regression floor under the survey's
    scripts/emulate_calls.py numbers)."""
    from lkm.emulate.survey import run_modules, tree_modules
    from testing.captures import tree_symbols
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    guest_kallsyms(tree)
    symbols = tree_symbols(tree)
    require(symbols is not None, "amd64-6.1: neither proc-kallsyms.txt nor vmlinuz")
    paths = sorted(str(p) for p in module_files(tree))
    sample = paths[:: len(paths) // 40][:40]
    runs = run_modules(sample, symbols, strict=True, deps=tree_modules(paths))
    assert all(r.result in ("returned", "unimplemented", "oops", "dependency") for r in runs)
    assert all(r.result != "unimplemented" or r.unimplemented for r in runs)
    share = sum(r.clean for r in runs) / len(runs)
    assert share >= 0.4, [(r.name, r.unimplemented[:1]) for r in runs if not r.clean]


def test_survey_table_groups_by_the_tree_directories() -> None:
    from lkm.emulate.survey import ModuleRun, by_subsystem, driver_core, subsystem

    root = "/c/amd64-6.1/lib/modules/6.1.0-57-amd64/kernel"
    assert subsystem(f"{root}/drivers/net/ethernet/intel/e1000/e1000.ko") == "drivers/net"
    assert subsystem(f"{root}/sound/pci/hda/snd-hda-intel.ko") == "sound/pci"
    assert subsystem(f"{root}/crypto/xts.ko") == "crypto"
    assert subsystem(f"{root}/fs/nls/nls_cp437.ko") == "fs/nls"
    runs = [
        ModuleRun(f"{root}/fs/nls/a.ko", "a", "returned", 0, "", 0.1, 3, ()),
        ModuleRun(f"{root}/fs/nls/b.ko", "b", "unimplemented", 0, "", 0.1, 3, ("x_register",)),
        ModuleRun(f"{root}/crypto/c.ko", "c", "returned", 0, "", 0.1, 3, ()),
    ]
    rows = {r.name: r for r in by_subsystem(runs)}
    nls = rows["fs/nls"]
    assert (nls.modules, nls.clean, nls.missing) == (2, 1, [("x_register", 1)])
    assert rows["crypto"].share == 1.0
    assert driver_core("bus_register") and driver_core("__pci_register_driver")
    assert not driver_core("crc32_le")

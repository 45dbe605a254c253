"""The model kernel's log (``lkm model dmesg``): what load_module prints, worded by the
kernel's own format strings (kernel/module/main.c and signing.c of 6.1, as printk formats
them), each taint message only the first time the kernel gets that taint, kept across
processes and kept when the load then fails; the order of the lines is the kernel's (a 6.1
guest prints the out-of-tree line before the unverified signature's)."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.kernel.executor import RecordingExecutor
from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel

from support import FIX6, require

# The kernel's format strings (the trailing "\n" of each printk dropped).
SIG_UNVERIFIED = "%s: module verification failed: signature and/or required key missing - tainting kernel"
OUT_OF_TREE = "%s: loading out-of-tree module taints kernel."
UNKNOWN_PARAM = "%s: unknown parameter '%s' ignored"
SUSPICIOUS_INIT = "%s: '%s'->init suspiciously returned %d, it should follow 0/-E convention"
LOADING_ANYWAY = "%s: loading module anyway..."
UNKNOWN_SYMBOL = "%s: Unknown symbol %s (err %d)"  # simplify_symbols' pr_warn
PARAMS, EXPORTER = str(FIX6 / "params.ko"), str(FIX6 / "exporter.ko")
IMPORTER = str(FIX6 / "importer.ko")
TAINT_OOT_MODULE = 1 << 12  # include/linux/panic.h


@pytest.fixture
def k(tmp_path: Path) -> ModelKernel:
    return ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db", executor=RecordingExecutor({"params": 1}))


def test_load_warnings_go_to_the_kernel_log(k: ModelKernel, tmp_path: Path) -> None:
    assert k.dmesg() == []
    k.finit_module(PARAMS, "bogus=1 level=3")
    k.finit_module(EXPORTER)  # taints already set: nothing more about them
    want = [
        OUT_OF_TREE % "params",
        UNKNOWN_PARAM % ("params", "bogus"),
        SUSPICIOUS_INIT % ("do_init_module", "params", 1),
        LOADING_ANYWAY % "do_init_module",
    ]
    if k.tainted() & (1 << 13):  # the profile's kernel checks signatures: the unsigned module
        want.insert(1, SIG_UNVERIFIED % "params")  # after the out-of-tree line, as a guest prints
    assert k.dmesg() == want
    assert k.tainted() & (1 << 12)  # TAINT_OOT_MODULE
    # the log is the state's: another process (here: another open) reads the same
    assert ModelKernel(k.state.path, readonly=True).dmesg() == want


def test_a_refused_load_keeps_what_it_printed(k: ModelKernel) -> None:
    with pytest.raises(KernelError) as e:
        k.finit_module(PARAMS, "bogus=1 level=notanumber")
    assert e.value.errno == errno.EINVAL
    assert UNKNOWN_PARAM % ("params", "bogus") in k.dmesg()
    assert k.modules() == []


def test_lkm_model_dmesg(k: ModelKernel, capsys: pytest.CaptureFixture[str]) -> None:
    from lkm.cli import model

    k.finit_module(PARAMS, "bogus=1")
    assert model.run("lkm model", ["dmesg", "--state", k.state.path]) == 0
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in k.dmesg())


def _nm(path: str, *flags: str) -> list[str]:
    out = subprocess.run(["nm", *flags, path], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


@pytest.mark.oracle
def test_unknown_symbols_are_logged_and_the_taint_stays(k: ModelKernel) -> None:
    """An importer loaded before its exporter: the kernel prints one line per symbol it cannot
    bind (the exporter's, as GNU nm reads both files) and fails with ENOENT; the global taint
    the load set stays (add_taint is never undone), so the next load does not announce it."""
    require(shutil.which("nm"), "GNU nm (binutils)")
    exported = {n[len("__ksymtab_") :] for n in _nm(EXPORTER) if n.startswith("__ksymtab_")}
    missing = sorted(n for n in _nm(IMPORTER, "-u") if n in exported)
    assert missing  # the fixture imports from the exporter
    with pytest.raises(KernelError) as e:
        k.finit_module(IMPORTER)
    assert e.value.errno == errno.ENOENT
    log = k.dmesg()
    assert sorted(line for line in log if "Unknown symbol" in line) == [
        UNKNOWN_SYMBOL % ("importer", name, -errno.ENOENT) for name in missing
    ]
    assert log[0] == OUT_OF_TREE % "importer"
    assert k.tainted() & TAINT_OOT_MODULE
    assert k.modules() == []
    k.finit_module(EXPORTER)  # out of tree too: the kernel is already tainted O, no second line
    assert [line for line in k.dmesg() if "out-of-tree" in line] == [OUT_OF_TREE % "importer"]


def test_an_unknown_symbol_is_reported_before_a_bad_parameter(k: ModelKernel) -> None:
    """load_module parses the arguments after relocation: a module with both an unknown symbol
    and a bad parameter value fails with ENOENT, and prints nothing about the parameter."""
    with pytest.raises(KernelError) as e:
        k.finit_module(IMPORTER, "bogus=1")
    assert e.value.errno == errno.ENOENT
    assert not any("unknown parameter" in line for line in k.dmesg())

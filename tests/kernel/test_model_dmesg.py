"""The model kernel's log (``lkm model dmesg``): what load_module prints, worded by the
kernel's own format strings (kernel/module/main.c and signing.c of 6.1, as printk formats
them), each taint message only the first time the kernel gets that taint, kept across
processes and kept when the load then fails."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lkm.kernel.executor import RecordingExecutor
from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel

from support import FIX6

# The kernel's format strings (the trailing "\n" of each printk dropped).
SIG_UNVERIFIED = "%s: module verification failed: signature and/or required key missing - tainting kernel"
OUT_OF_TREE = "%s: loading out-of-tree module taints kernel."
UNKNOWN_PARAM = "%s: unknown parameter '%s' ignored"
SUSPICIOUS_INIT = "%s: '%s'->init suspiciously returned %d, it should follow 0/-E convention"
LOADING_ANYWAY = "%s: loading module anyway..."
PARAMS, EXPORTER = str(FIX6 / "params.ko"), str(FIX6 / "exporter.ko")


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
        want.insert(0, SIG_UNVERIFIED % "params")
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

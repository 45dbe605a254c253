"""The fixture modules in emulation against the real 6.1 amd64 kernel booted in QEMU: the
kernel log of every step (insmod with several parameter sets, failing parameters, the char
device read and written, exporter/importer, rmmod) and what the device read back.
Reference: tests/emulate/data/dmesg-6.1-amd64.json, made by scripts/emulate_dmesg.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import FIX6, corpus_symbols, require

DATA = Path(__file__).parent / "data" / "dmesg-6.1-amd64.json"
# Lines from the booting kernel's own subsystems that land in the log between steps.
NOISE = ("tsc: ", "clocksource: ", "random: ")


def _steps() -> list[dict[str, object]]:
    return json.loads(DATA.read_text())["steps"]  # type: ignore[no-any-return]


def _fixture_steps() -> list[dict[str, object]]:
    """The steps on the fixture modules (before the tree's own modules and the /proc dumps)."""
    return [s for s in _steps() if not any("{tree}" in x or x.startswith("cat") for x in s["emulate"])]  # type: ignore[attr-defined]


def _session(symbols: str):  # type: ignore[no-untyped-def]
    from lkm.emulate.session import Session

    s = Session(corpus_symbols() if symbols == "kallsyms" else None)
    s.base_dir = str(FIX6)
    return s


def _replay(session, steps, tree: str = ""):  # type: ignore[no-untyped-def]
    """Every step's emulated kernel log (and /proc output) next to the real one."""
    mismatches = []
    for i, step in enumerate(steps):
        real = [x for x in step["dmesg"] if not x.startswith(NOISE)]
        got: list[str] = []
        output: list[str] = []
        for line in step["emulate"]:
            out = session.execute(line.replace("{tree}", tree))
            assert out is not None and out.fault is None, (line, out and out.fault)
            got += out.log
            if line.startswith("cat "):
                output += out.output.splitlines()
        if got != real or (output and output != step["output"]):
            mismatches.append((i, step["guest"], real, got, step["output"], output))
    return mismatches


@pytest.mark.parametrize(
    "symbols", ["synthetic", pytest.param("kallsyms", marks=[pytest.mark.corpus, pytest.mark.vm])]
)
def test_fixture_steps_print_what_the_real_kernel_prints(symbols: str) -> None:
    steps = _fixture_steps()
    assert len(steps) == 17
    assert not _replay(_session(symbols), steps)


@pytest.mark.vm
def test_corpus_modules_and_proc_tables_match_the_real_kernel(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """After the fixture steps: four of the tree's own modules (signed with the kernel's key,
    so no taint line), then /proc/devices, /proc/misc and /proc/filesystems in full."""
    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    assert not _replay(_session("kallsyms"), _steps(), str(tree.modules_dir / "kernel"))


def test_char_device_reads_what_the_driver_defines() -> None:
    session = _session("synthetic")
    steps = _fixture_steps()
    major = None
    for step in steps:
        reads: list[str] = []
        for line in step["emulate"]:  # type: ignore[attr-defined]
            out = session.execute(line)
            assert out is not None
            if line.startswith("dev read"):
                reads += out.output.splitlines()
            if line == "insmod chardev.ko":
                major = next(int(x.split()[0]) for x in session.proc("/proc/devices").splitlines()
                             if x.endswith(" lkmchar"))  # fmt: skip
        if reads:
            real = step["output"]
            assert real[0] == f"major {major}"  # type: ignore[index]
            assert reads == real[1:]  # type: ignore[index]
            return
    pytest.fail("no step reads the char device")


def test_insmod_error_values_match_busybox() -> None:
    import errno

    session = _session("synthetic")
    for step in _fixture_steps():
        for line in step["emulate"]:  # type: ignore[attr-defined]
            out = session.execute(line)
            assert out is not None
            for msg in step["output"]:  # type: ignore[attr-defined]
                if msg.startswith("insmod: can't insert"):
                    assert out.value < 0
                    assert msg.endswith(os.strerror(-out.value)), (msg, errno.errorcode[-out.value])

"""Fault runs on small scales (scripts/model_faults.py does the full 4 x 500 and 200-insmod
runs): concurrent processes on one state, and a loader SIGKILLed at random moments, each
followed by the integrity check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import ROOT

SCRIPT = str(ROOT / "scripts" / "model_faults.py")


@pytest.mark.parametrize("kernel", ["6.1", "2.4"])
def test_concurrent_processes(kernel: str) -> None:
    args = ["concurrent", "--kernel", kernel, "--procs", "4", "--ops", "60"]
    r = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed workers, 0 integrity problems" in r.stdout


@pytest.mark.parametrize("kernel", ["6.1", "2.4"])
def test_killed_loader_leaves_a_consistent_state(kernel: str) -> None:
    r = subprocess.run([sys.executable, SCRIPT, "kill", "--kernel", kernel, "--insmods", "30", "--seed", "7"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SIGKILLs at random moments, 0 integrity problems" in r.stdout

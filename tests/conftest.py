"""Shared test helpers.

Tests that need something outside the repository (the real-module corpus, Debian's kmod)
skip when it is missing on a developer's machine, and FAIL under CI=true, where .ci/run has
installed everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIX6 = FIXTURES / "6x"
FIX24 = FIXTURES / "24"
IN_CI = os.environ.get("CI", "").lower() == "true"

# CI explores the same hypothesis examples every run (a landing is never blocked by a newly
# drawn case); developers' runs draw new ones and keep failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    settings.load_profile("ci")


def require(condition: object, why: str) -> None:
    """Skip (developer) or fail (CI) when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {why}")
    pytest.skip(why)


def kmod_modinfo() -> str:
    # Called by its bare name so that its messages carry the same program name as a user sees.
    require(shutil.which("modinfo"), "Debian's kmod (modinfo) is not on PATH: apt-get install kmod")
    return "modinfo"


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def lkm_cmd() -> list[str]:
    """How to run the CLI as a user would, from this checkout."""
    exe = shutil.which("lkm")
    return [exe] if exe else ["python3", "-m", "lkm"]


@pytest.fixture(scope="session")
def corpus_trees():  # type: ignore[no-untyped-def]
    from lkm.corpus import load_trees

    try:
        trees = load_trees()
    except Exception as exc:
        trees = []
        reason = str(exc)
    else:
        reason = "no trees in manifest"
    require(trees, f"real-module corpus missing ({reason}): run scripts/fetch_corpus.py")
    return trees


def fixture_modules() -> list[Path]:
    return sorted(p for p in FIX6.iterdir() if ".ko" in p.name)


@pytest.fixture
def k24(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh 2.4.20 i386 model kernel (lkm.kernel.model) with a recording executor."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.model import ModelKernel

    return ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", executor=RecordingExecutor())


@pytest.fixture
def k61(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh Debian 6.1 amd64 model kernel with a recording executor."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.model import ModelKernel

    return ModelKernel.boot("linux-6.1-amd64", tmp_path / "k61.db", executor=RecordingExecutor())


OOPS_GUEST_TIMEOUT = 900  # seconds per boot, enforced by scripts/guest_oops.py


def oops_capture(tree: str) -> Path:
    """The guest capture of scripts/guest_oops.py for ``tree`` (reports, /proc/kallsyms,
    /proc/modules, sections, pcsym's %pS answers); the guest is booted first if there is none."""
    from lkm.corpus import corpus_dir

    d = corpus_dir() / "oops" / tree
    if not (d / "pcsym.txt").is_file():
        try:
            r = run(
                [sys.executable, str(ROOT / "scripts" / "guest_oops.py"), "--tree", tree,
                 "--timeout", str(OOPS_GUEST_TIMEOUT)],
                timeout=2 * OOPS_GUEST_TIMEOUT + 300,
            )  # fmt: skip
            why = r.stderr.decode(errors="replace")[-2000:]
        except subprocess.TimeoutExpired:
            why = "guest_oops.py timed out"
        require((d / "pcsym.txt").is_file(), f"{tree}: no guest oops capture: {why}")
    return d

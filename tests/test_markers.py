"""The marker check of tests/conftest.py: a test that reads the corpus, starts a guest or runs
kmod/binutils without its marker fails, with its marker it passes (so that
``pytest -m "not corpus and not vm"`` needs neither)."""

from __future__ import annotations

import pytest

from support import ROOT

INNER = """
import subprocess, sys
from pathlib import Path

import pytest

CORPUS = Path(__import__("os").environ["LKM_CORPUS"])


def test_reads_corpus_unmarked():
    (CORPUS / "manifest.json").read_text()


@pytest.mark.corpus
def test_reads_corpus_marked():
    (CORPUS / "manifest.json").read_text()


@pytest.mark.corpus
def test_reads_capture_without_vm():
    (CORPUS / "amd64-6.1" / "proc-kallsyms.txt").read_text()


def test_runs_kmod_unmarked():
    subprocess.run(["modinfo", "--version"], capture_output=True, check=False)


@pytest.mark.oracle
def test_runs_kmod_marked():
    subprocess.run(["modinfo", "--version"], capture_output=True, check=False)


def test_plain(tmp_path):
    (tmp_path / "x").write_text("x")
"""


def test_markers_are_checked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = pytester.path / "corpus"
    (corpus / "amd64-6.1").mkdir(parents=True)
    (corpus / "manifest.json").write_text("{}")
    (corpus / "amd64-6.1" / "proc-kallsyms.txt").write_text("")
    monkeypatch.setenv("LKM_CORPUS", str(corpus))
    monkeypatch.delenv("LKM_GUEST", raising=False)
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("PATH", "/nonexistent")  # modinfo need not exist: the attempt is what counts
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", f"pythonpath={ROOT / 'src'} {ROOT} {ROOT / 'tests'}"
    )
    out = result.stdout.str()
    failed = {line.split("::")[1].split(" ")[0] for line in out.splitlines() if line.startswith("ERROR ")}
    unmarked = {"test_reads_corpus_unmarked", "test_reads_capture_without_vm", "test_runs_kmod_unmarked"}
    assert failed == unmarked, out
    assert "@pytest.mark.vm missing" in out and "@pytest.mark.oracle missing: runs modinfo" in out

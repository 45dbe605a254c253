"""How lkm is started: `lkm TOOL`, `python -m lkm TOOL`, and kmod-style links named after a tool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from support import FIX6, lkm_cmd, run


def test_python_m_and_console_script_agree() -> None:
    a = run([sys.executable, "-m", "lkm", "modinfo", str(FIX6 / "chardev.ko")])
    b = run([*lkm_cmd(), "modinfo", str(FIX6 / "chardev.ko")])
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.startswith(b"filename:")


@pytest.mark.oracle
def test_link_named_modinfo_acts_as_modinfo(tmp_path: Path) -> None:
    # A wrapper script whose argv[0] is ".../modinfo", as with kmod's symlinks.
    link = tmp_path / "modinfo"
    link.write_text(f"#!{sys.executable}\nimport sys\nfrom lkm.cli import main\nsys.exit(main())\n")
    link.chmod(0o755)
    out = run([str(link), "-F", "license", str(FIX6 / "chardev.ko")])
    assert out.returncode == 0 and out.stdout == b"GPL\n"
    err = run([str(link), "-z"])
    assert err.returncode == 1 and err.stderr == b"modinfo: invalid option -- 'z'\n"


def test_unknown_tool_and_usage() -> None:
    out = run([*lkm_cmd(), "frobnicate"])
    assert out.returncode == 1 and b"unknown tool 'frobnicate'" in out.stderr
    assert b"Traceback" not in out.stderr
    usage = run([*lkm_cmd(), "--help"])
    assert usage.returncode == 0 and b"modinfo" in usage.stdout


def test_broken_pipe_is_quiet() -> None:
    files = [str(p) for p in sorted(FIX6.glob("*.ko"))] * 20
    r, w = os.pipe()
    os.close(r)  # reader gone before the writer starts
    import subprocess

    proc = subprocess.run([*lkm_cmd(), "modinfo", *files], stdout=w, stderr=subprocess.PIPE, check=False)
    os.close(w)
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("args", (["modinfo", str(FIX6 / "chardev.ko")], ["lsmod"], ["--version"]))
def test_small_calls_import_little(args: list[str]) -> None:
    """The lkm script and the small tools import none of the standard library's slow
    modules (issue 18: start-up within 1.5x of a bare interpreter): pip's console-script
    wrapper imported re; contextlib, collections and importlib came with lkm's own imports."""
    from support import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = run([sys.executable, "-X", "importtime", str(ROOT / "bin" / "lkm"), *args], env=env)
    names = {
        line.rpartition("|")[2].strip()
        for line in p.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "lkm.cli" in names
    assert not names & {"re", "contextlib", "collections", "importlib", "typing", "enum"}, sorted(names)

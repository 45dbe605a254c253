"""The import structure of src/lkm (issue 14): no import cycle between files but the emulator's
registry of base-kernel functions, none between packages, and every import left inside a
function has a reason in scripts/import_graph.py's allowed list (start-up measured, an
optional extra, an ImportError guard, a PEP 562 facade).

The oracle is Python's own parse of every file (ast) and Tarjan's strongly connected
components; the check is the script's ``--check``, run here so that a new cycle or an
unexplained in-function import fails the quick loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT


def test_no_cycles_and_no_unexplained_inner_imports() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--check", str(ROOT / "src" / "lkm")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "import cycles between packages: 0" in p.stdout
    assert "(0 not allowed)" in p.stdout


def test_check_catches_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "lkm"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from lkm.a import y\n")
    (pkg / "a" / "y.py").write_text("def f() -> None:\n    from lkm.a import x\n")
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--check", str(pkg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 1
    assert "2 files: lkm.a.x lkm.a.y" in p.stdout
    assert "NOT ALLOWED lkm/a/y.py:2 lkm.a.x" in p.stdout

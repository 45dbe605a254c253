"""Boot the corpus's Debian amd64 kernels under QEMU TCG and run tests/vm/guest/guest_*.py inside them.

Per kernel: the fixture modules are built against that kernel's headers (kbuild), the guest
boots (testing/vm.py), runs pytest over tests/vm/guest with the checkout's Python and writes a
JUnit report to the share; this test fails with the guest's failures.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import require

pytestmark = [pytest.mark.corpus, pytest.mark.vm]

TREES = ("amd64-6.1", "amd64-6.12")


def _failures(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    out = []
    for case in root.iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            msg = (bad.get("message") or "").splitlines()[:3]
            out.append(f"{case.get('name')}: {' | '.join(msg)}")
    return out


@pytest.mark.parametrize("tree_name", TREES)
@pytest.mark.oracle  # builds and strips fixtures with the host's binutils, runs kmod in the guest
def test_guest_suite(tree_name: str, tmp_path: Path) -> None:
    from testing.corpus import find_tree, load_trees
    from testing.kbuild import build_fixtures, headers_for
    from testing.vm import run_in_guest

    require(shutil.which("qemu-system-x86_64"), "qemu-system-x86_64 missing: apt-get install qemu-system-x86")
    require(shutil.which("make") and shutil.which("gcc-12"), "kbuild needs make and gcc-12")
    require(any(t.name == tree_name for t in load_trees()), f"corpus tree {tree_name} missing")
    tree = find_tree(tree_name)
    headers = headers_for(tree.release)
    require(headers is not None, f"corpus headers for {tree.release} missing")
    assert headers is not None
    build_fixtures(headers, tmp_path / "fixtures")
    script = (
        f"python -m pytest -q -p no:cacheprovider -o console_output_style=classic "
        f"-o python_files=guest_*.py --junitxml={tmp_path}/junit.xml tests/vm/guest"
    )
    rc, out = run_in_guest(tree, tmp_path, script)
    junit = tmp_path / "junit.xml"
    assert junit.exists(), f"{tree_name}: no JUnit report from the guest (rc {rc}):\n{out[-3000:]}"
    failures = _failures(junit)
    assert rc == 0 and not failures, f"{tree_name}: guest tests failed:\n" + "\n".join(failures) + out[-4000:]

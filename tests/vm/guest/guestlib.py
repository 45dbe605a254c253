"""Helpers for the tests that run inside a VM guest (tests/vm/harness.py boots it).

kmod's tools and lkm's are both called by their tool names (lkm through links named insmod,
rmmod, lsmod), so their messages carry the same program name and can be compared byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lkm.corpus import CorpusTree, find_tree, module_files
from lkm.kernel.load import module_name

TOOLS = ("insmod", "rmmod", "lsmod")
LKM_BIN = Path("/tmp/lkm-bin")


def in_guest() -> str:
    name = os.environ.get("LKM_GUEST")
    if not name:
        pytest.skip("runs only inside a VM guest (tests/vm/test_vm.py boots one)")
    return name


def tree() -> CorpusTree:
    return find_tree(in_guest())


def share() -> Path:
    return Path(os.environ["LKM_GUEST_SHARE"])


def fixture(name: str) -> Path:
    return share() / "fixtures" / f"{name}.ko"


def corpus_module(name: str, t: CorpusTree | None = None) -> Path:
    t = t or tree()
    for p in module_files(t):
        if module_name(str(p)) == name:
            return p
    raise LookupError(f"{name} not in {t.name}")


def _lkm_bin() -> Path:
    entry = LKM_BIN / "lkm"
    if not entry.exists():
        LKM_BIN.mkdir(parents=True, exist_ok=True)
        entry.write_text(f"#!{sys.executable}\nimport sys\nfrom lkm.cli import main\nsys.exit(main())\n")
        entry.chmod(0o755)
        for tool in TOOLS:
            (LKM_BIN / tool).symlink_to(entry)
    return LKM_BIN


class Result:
    def __init__(self, r: subprocess.CompletedProcess[bytes]) -> None:
        self.rc = r.returncode
        self.out = r.stdout.decode(errors="replace")
        self.err = r.stderr.decode(errors="replace")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (self.rc, self.out, self.err) == (other.rc, other.out, other.err)

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def kmod(tool: str, *args: str) -> Result:
    exe = shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    assert exe, f"kmod's {tool} missing in the guest"
    return Result(subprocess.run([exe, *args], capture_output=True, check=False))


def lkm(tool: str, *args: str) -> Result:
    return Result(subprocess.run([str(_lkm_bin() / tool), *args], capture_output=True, check=False))


def loaded() -> list[str]:
    with open("/proc/modules") as f:
        return [line.split(" ", 1)[0] for line in f]


def unload_new(before: list[str]) -> None:
    """Remove every module loaded since *before* (newest first, repeating for dependencies)."""
    for _ in range(5):
        extra = [m for m in loaded() if m not in before]
        if not extra:
            return
        for m in extra:
            subprocess.run(["/usr/sbin/rmmod", m], capture_output=True, check=False)

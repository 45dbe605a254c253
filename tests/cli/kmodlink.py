"""Run lkm as a user runs a kmod tool: through a link named after the tool (argv[0] multi-call),
so that messages carry the same program name as kmod's and can be compared byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from support import ROOT

_DIR = Path(tempfile.mkdtemp(prefix="lkm-links-"))


def tool_link(name: str) -> str:
    """An executable named ``name`` that starts lkm's multi-call entry point from this checkout."""
    path = _DIR / name
    if not path.exists():
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT / 'src')!r})\n"
            "from lkm.cli import main\nsys.exit(main())\n"
        )
        path.chmod(0o755)
    return str(path)


def run_link(name: str, args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", **kw.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [tool_link(name), *args], capture_output=True, check=False, env=env, **kw
    )


def can_unshare() -> bool:
    """Root with a private mount namespace: the parity tests bind fake /proc and /sys files."""
    if os.geteuid() != 0:
        return False
    p = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return p.returncode == 0

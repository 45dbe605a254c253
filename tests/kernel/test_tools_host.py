"""The module tools' behaviour that needs no kernel, against Debian's kmod on this machine;
and the insert decisions (finit vs init, compression, force) over a recording kernel.
The real-kernel comparisons are in tests/vm."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lkm.kernel import MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS, KernelError
from lkm.kernel.load import insert_module
from lkm.kernel.strip import strip_for_force

from support import FIX6, require, run

CASES = [
    ("insmod", []),
    ("insmod", ["-x"]),
    ("insmod", ["--bogus"]),
    ("insmod", ["/nonexistent/x.ko"]),
    ("insmod", ["-"]),
    ("rmmod", []),
    ("rmmod", ["-x"]),
    ("lsmod", ["extra"]),
    ("lsmod", ["-h"]),
]


@pytest.fixture(scope="module")
def tool_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bin")
    entry = d / "lkm-entry"
    entry.write_text(f"#!{sys.executable}\nimport sys\nfrom lkm.cli import main\nsys.exit(main())\n")
    entry.chmod(0o755)
    for t in ("insmod", "rmmod", "lsmod"):
        (d / t).symlink_to(entry)
    return d


@pytest.mark.oracle
@pytest.mark.parametrize(("tool", "args"), CASES)
def test_usage_messages_as_kmod(tool: str, args: list[str], tool_links: Path) -> None:
    # Both called by bare name through PATH: getopt's messages name argv[0].
    kmod_tool = shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    require(kmod_tool, f"Debian's kmod ({tool}) missing: apt-get install kmod")
    assert kmod_tool
    theirs = run([tool, *args], env=dict(os.environ, PATH=str(Path(kmod_tool).parent), LC_ALL="C"))
    ours = run([tool, *args], env=dict(os.environ, PATH=str(tool_links), LC_ALL="C"))
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


class Recorder:
    """A kernel that records the load calls and answers with a given errno."""

    release = "6.12.0"
    machine = "x86_64"

    def __init__(self, compression: str | None = None, finit_errno: int = 0) -> None:
        self.compression = compression
        self.finit_errno = finit_errno
        self.calls: list[tuple[str, int, bytes]] = []

    def module_compression(self) -> str | None:
        return self.compression

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        self.calls.append(("finit_module", flags, params.encode()))
        if self.finit_errno:
            raise KernelError("finit_module", self.finit_errno)

    def init_module(self, image: bytes, params: str = "") -> None:
        self.calls.append(("init_module", len(image), image[:4]))


def test_plain_file_goes_to_finit() -> None:
    k = Recorder()
    insert_module(k, str(FIX6 / "chardev.ko"), "a=1")  # type: ignore[arg-type]
    assert k.calls == [("finit_module", 0, b"a=1")]


def test_compressed_in_kernel_when_it_matches() -> None:
    k = Recorder(compression="xz")
    insert_module(k, str(FIX6 / "chardev.ko.xz"))  # type: ignore[arg-type]
    assert k.calls == [("finit_module", MODULE_INIT_COMPRESSED_FILE, b"")]


@pytest.mark.parametrize("suffix", ["xz", "zst", "gz"])
def test_compressed_decompressed_here_otherwise(suffix: str) -> None:
    k = Recorder(compression="zstd" if suffix != "zst" else "xz")
    insert_module(k, str(FIX6 / f"chardev.ko.{suffix}"))  # type: ignore[arg-type]
    size = (FIX6 / "chardev.ko").stat().st_size
    assert k.calls == [("init_module", size, b"\x7fELF")]


def test_enosys_falls_back_to_init_module() -> None:
    k = Recorder(finit_errno=errno.ENOSYS)
    insert_module(k, str(FIX6 / "chardev.ko"))  # type: ignore[arg-type]
    assert [c[0] for c in k.calls] == ["finit_module", "init_module"]


def test_force_flags() -> None:
    k = Recorder()
    insert_module(k, str(FIX6 / "chardev.ko"), force=True)  # type: ignore[arg-type]
    assert k.calls[0][1] & MODULE_INIT_IGNORE_MODVERSIONS


@pytest.mark.oracle
def test_strip_for_force_as_binutils_and_kmod_see_it(tmp_path: Path) -> None:
    require(shutil.which("readelf"), "binutils readelf missing")
    require(shutil.which("modinfo", path="/usr/sbin:/sbin:/usr/bin"), "kmod missing")
    out = tmp_path / "importer.ko"
    out.write_bytes(strip_for_force((FIX6 / "importer.ko").read_bytes()))
    secs = subprocess.run(["readelf", "-SW", str(out)], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in secs.splitlines() if " __versions " in ln)
    assert " A " not in line and "A" not in line.split()[-4]
    modinfo = shutil.which("modinfo", path="/usr/sbin:/sbin:/usr/bin")
    assert modinfo
    r = subprocess.run([modinfo, "-F", "vermagic", str(out)], capture_output=True, text=True, check=False)
    assert r.stdout == "" and r.returncode == 0

"""Module debug files fetched by build id from a real debuginfod server (elfutils' debuginfod,
Debian package ``debuginfod``) serving a directory of the guest modules' debug files, while
the module files given to lkm ksymoops have no DWARF."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from support import lkm_cmd, oops_capture, require, run

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.oracle
@pytest.mark.corpus
@pytest.mark.vm
def test_debuginfod_fetches_module_debug_info(tmp_path: Path) -> None:
    require(shutil.which("debuginfod"), "elfutils debuginfod missing: apt-get install debuginfod")
    require(shutil.which("objcopy") and shutil.which("readelf"), "binutils objcopy/readelf missing")
    cap = oops_capture("amd64-6.1")
    require((cap / "modules" / "oopsmod.ko").is_file(), "no amd64-6.1 oops capture")
    served = tmp_path / "served"
    stripped = tmp_path / "modules"
    served.mkdir()
    stripped.mkdir()
    for ko in (cap / "modules").glob("*.ko"):
        shutil.copy(ko, served / ko.name)
        subprocess.run(["objcopy", "--strip-debug", str(ko), str(stripped / ko.name)], check=True)
    port = _free_port()
    server = subprocess.Popen(
        ["debuginfod", "-F", str(served), "-p", str(port), "-d", str(tmp_path / "db.sqlite"), "-t", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # oopsmod.ko's NT_GNU_BUILD_ID as binutils reads it (the capture builds the module on this
        # machine, so the id is this build's, not a constant)
        notes = subprocess.run(["readelf", "-n", str(cap / "modules" / "oopsmod.ko")], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        bid = notes.split("Build ID:", 1)[1].split()[0]
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):  # until the server has scanned the directory
            try:
                with urllib.request.urlopen(f"{url}/buildid/{bid}/debuginfo", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("debuginfod never served the module")
        env = {**os.environ, "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache"), "DEBUGINFOD_URLS": ""}
        args = ["-k", str(cap / "proc-kallsyms.txt"), "-l", str(cap / "proc-modules.txt"), "-s",
                str(cap / "sections.txt"), "-o", str(stripped), str(DATA / "vm-6.1-gpf.txt")]  # fmt: skip
        without = run([*lkm_cmd(), "ksymoops", *args], env=env)
        assert b"oopsmod.c:" not in without.stdout
        got = run([*lkm_cmd(), "ksymoops", "--debuginfod", url, *args], env=env)
        assert got.returncode == 0, got.stderr
        assert b"oopsmod_write (" in got.stdout and b"oopsmod.c:78)" in got.stdout
        assert (tmp_path / "cache" / bid / "debuginfo").is_file()
    finally:
        server.terminate()
        server.wait(timeout=10)

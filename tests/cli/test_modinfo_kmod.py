"""lkm modinfo against Debian's kmod modinfo, byte for byte (stdout and exit status)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import FIX6, kmod_modinfo, lkm_cmd, run

# Debian's kmod 30 is built without zlib, so it cannot read .ko.gz: those are compared after
# decompressing (see test_gzip_same_as_plain), everything else directly.
KMOD_READABLE = [p for p in sorted(FIX6.iterdir()) if ".ko" in p.name and not p.name.endswith(".gz")]
OPTION_SETS = [
    [],
    ["-0"],
    ["-a"],
    ["-d"],
    ["-l"],
    ["-p"],
    ["-n"],
    ["-p", "-0"],
    ["-F", "parm"],
    ["-F", "parmtype"],
    ["-F", "alias"],
    ["-F", "vermagic"],
    ["-F", "depends"],
    ["-F", "signature"],
    ["-F", "sig_key"],
    ["-F", "signer"],
    ["-F", "sig_hashalgo"],
    ["-F", "sig_id"],
    ["-F", "nonexistent"],
    ["--field=name", "--null"],
]


def compare(args: list[str], cwd: Path | None = None) -> None:
    ours = run([*lkm_cmd(), "modinfo", *args], cwd=cwd)
    theirs = run([kmod_modinfo(), *args], cwd=cwd)
    assert ours.stdout == theirs.stdout, f"stdout differs for modinfo {' '.join(args)}"
    assert ours.returncode == theirs.returncode


@pytest.mark.oracle
@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: " ".join(o) or "default")
def test_fixtures_match_kmod(opts: list[str]) -> None:
    compare([*opts, *(str(p) for p in KMOD_READABLE)])


@pytest.mark.oracle
def test_relative_path_is_made_absolute_like_kmod() -> None:
    compare(["chardev.ko", "./params.ko"], cwd=FIX6)


@pytest.mark.oracle
@pytest.mark.parametrize(
    "args",
    [[], ["/nonexistent/x.ko"], ["-m", "chardev"], ["-z", "x.ko"], ["--field"], ["--bogus"], ["-h"]],
    ids=repr,
)
def test_usage_errors_match_kmod(args: list[str]) -> None:
    ours = run([*lkm_cmd(), "modinfo", *args])
    theirs = run([kmod_modinfo(), *args])
    assert ours.returncode == theirs.returncode
    strip = len(b"lkm ")
    assert ours.stderr[strip:] == theirs.stderr
    if args != ["-h"]:  # our help lists two extra options
        assert ours.stdout == theirs.stdout


@pytest.mark.oracle
def test_gzip_same_as_plain(tmp_path: Path) -> None:
    """.ko.gz (kmod 30 on Debian lacks zlib) reads exactly like its decompressed twin."""
    import gzip

    plain = tmp_path / "chardev.ko"
    plain.write_bytes(gzip.decompress((FIX6 / "chardev.ko.gz").read_bytes()))
    gz = tmp_path / "chardev.ko.gz"
    shutil.copy(FIX6 / "chardev.ko.gz", gz)
    ours = run([*lkm_cmd(), "modinfo", str(gz)]).stdout
    theirs = run([kmod_modinfo(), str(plain)]).stdout
    assert ours.replace(b"chardev.ko.gz", b"chardev.ko") == theirs

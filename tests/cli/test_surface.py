"""One product surface: every tool's --help/--version from its option table, the man pages and
completions generated from the same tables (shipped in lkm/data and current), errors named
after the tool as invoked, and every tool's JSON valid against the published schema lkm/1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kmodlink import tool_link

from lkm.cli import TOOLS, all_tools
from lkm.cli.tool import Tool

from support import FIX6, ROOT, require

DATA = ROOT / "src" / "lkm" / "data"
OOPS = ROOT / "tests" / "data" / "oops"


def lkm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lkm", *args], capture_output=True, text=True, check=False, env=e
    )


@pytest.mark.parametrize("name", list(TOOLS))
def test_help_and_version_from_the_table(name: str) -> None:
    tool = all_tools()[name]
    assert isinstance(tool, Tool) and tool.name == name
    h = lkm(name, "--help")
    assert h.returncode == 0 and h.stderr == "" and "Usage:\n" in h.stdout
    if name == "kmod":  # kmod's own help text, byte for byte (test_kmod_parity)
        return
    assert h.stdout.startswith("Usage:\n")
    for o in tool.options:
        if not o.hidden:
            assert (f"--{o.long[0]}" if o.long else f"-{o.short}") in h.stdout
    v = lkm(name, "--version")
    assert v.returncode == 0 and v.stdout.strip() and v.stderr == ""


@pytest.mark.parametrize(
    "name", [n for n in TOOLS if n not in ("kmod", "proc", "demo")]
)  # those three: own usage lines
def test_usage_errors_are_named_as_invoked(name: str) -> None:
    p = lkm(name, "--no-such-option")
    assert p.returncode in (1, 2)
    assert p.stderr.startswith(f"lkm {name}: unrecognized option '--no-such-option'\n")
    assert "Traceback" not in p.stderr


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["modprobe", "modinfo", "depmod", "rmmod"])
def test_kmod_help_is_contained(name: str) -> None:
    """Every line of kmod's own help is in lkm's (lkm adds its options after them)."""
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    require(exe, f"Debian's kmod ({name}) missing")
    theirs = subprocess.run([name, "--help"], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin"}).stdout  # fmt: skip
    ours = subprocess.run([tool_link(name), "--help"], capture_output=True, text=True, check=False).stdout
    assert ours.startswith(theirs.rstrip("\n"))


def test_bare_lkm_is_a_usage_error() -> None:
    p = lkm()
    assert p.returncode == 1 and p.stdout == "" and p.stderr.startswith("Usage: lkm TOOL")
    h = lkm("--help")
    assert h.returncode == 0 and h.stdout.startswith("Usage: lkm TOOL")


def test_no_tool_prints_its_docstring() -> None:
    for name in TOOLS:
        out = lkm(name, "--help").stdout
        assert "``" not in out and ":mod:" not in out and ":func:" not in out, name


# -- man pages and completion ------------------------------------------------------------------


def test_shipped_files_are_current() -> None:
    import importlib.machinery

    gen = importlib.machinery.SourceFileLoader(
        "gen_surface", str(ROOT / "scripts" / "gen_surface")
    ).load_module()
    for rel, text in gen.generated().items():
        assert (DATA / rel).read_text() == text, f"{rel} is stale: run scripts/gen_surface"
    assert sorted(p.name for p in (DATA / "man").iterdir()) == sorted(f"lkm-{n}.8" for n in TOOLS)


@pytest.mark.parametrize("name", list(TOOLS))
def test_man_page_renders_cleanly(name: str) -> None:
    require(shutil.which("groff"), "groff missing (apt-get install groff-base)")
    page = DATA / "man" / f"lkm-{name}.8"
    p = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0 and p.stderr == ""
    text = re.sub(".\b", "", p.stdout)
    for o in all_tools()[name].options:
        if not o.hidden and o.long:
            assert f"--{o.long[0]}" in text


def test_install_data(tmp_path: Path) -> None:
    p = lkm("help", "--install", str(tmp_path))
    assert p.returncode == 0
    assert (tmp_path / "share/man/man8/lkm-modprobe.8").read_text() == (
        DATA / "man/lkm-modprobe.8"
    ).read_text()
    assert (tmp_path / "share/bash-completion/completions/lkm").is_file()
    assert (tmp_path / "share/zsh/site-functions/_lkm").is_file()


def _bash_complete(words: list[str]) -> list[str]:
    script = (
        f"source {DATA / 'completion/lkm.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_lkm; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return p.stdout.split()


def test_bash_completion() -> None:
    require(shutil.which("bash"), "bash missing")
    assert set(_bash_complete(["lkm", "mod"])) == {"modinfo", "model", "modprobe"}
    got = _bash_complete(["lkm", "modprobe", "--show-"])
    assert set(got) == {"--show-depends", "--show-config", "--show-modversions", "--show-exports"}
    assert set(_bash_complete(["lkm", "ksymoops", "--format", ""])) == {
        "ksymoops",
        "decode-stacktrace",
        "json",
    }
    assert "--remove-holders" in _bash_complete(["modprobe", "--remove-h"])  # a link named modprobe


def test_zsh_completion_parses() -> None:
    require(shutil.which("zsh"), "zsh missing (apt-get install zsh)")
    p = subprocess.run(
        ["zsh", "-n", str(DATA / "completion/_lkm")], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr


# -- one JSON --------------------------------------------------------------------------------


def _docs(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _valid(validator: Any, docs: list[dict[str, Any]], kind: str) -> None:
    assert docs
    for d in docs:
        errors = sorted(validator.iter_errors(d), key=str)
        assert not errors, errors[0]
        assert d["schema"] == "lkm/1" and d["kind"] == kind


def test_json_modinfo(validator: Any) -> None:
    paths = [str(p) for p in sorted(FIX6.glob("*.ko*"))]
    _valid(validator, _docs(lkm("modinfo", "--json", "--exports", "--imports", *paths).stdout), "modinfo")
    fld = _docs(lkm("modinfo", "--json", "-F", "alias", *paths).stdout)
    _valid(validator, fld, "modinfo-field")
    kmod = lkm("modinfo", "-F", "alias", str(FIX6 / "chardev.ko")).stdout.splitlines()
    assert next(d for d in fld if d["filename"].endswith("/chardev.ko"))["values"] == kmod


def test_json_model_kernel_tools(validator: Any, tmp_path: Path) -> None:
    state = str(tmp_path / "k.db")
    assert lkm("model", "boot", "linux-6.1-amd64", "--state", state).returncode == 0
    for m in ("exporter.ko", "importer.ko"):
        assert lkm("insmod", "--state", state, str(FIX6 / m)).returncode == 0
    docs = _docs(lkm("lsmod", "--state", state, "--json").stdout)
    _valid(validator, docs, "lsmod")
    assert {d["name"] for d in docs} == {"exporter", "importer"}
    assert all(int(d["address"], 16) >= 0xFFFFFFFFC0000000 for d in docs)
    _valid(validator, _docs(lkm("model", "info", "--state", state, "--json").stdout), "model-info")


def test_json_emulator(validator: Any, tmp_path: Path) -> None:
    env = {"LKM_EMULATE_KALLSYMS": ""}
    session = str(tmp_path / "s.json")
    run = lkm("run", str(FIX6 / "chardev.ko"), "--json", "--session", session, env=env)
    assert run.returncode == 0, run.stderr
    _valid(validator, _docs(run.stdout), "run")
    dev = lkm("dev", "--session", session, "--json", "open", "lkmchar", env=env)
    _valid(validator, _docs(dev.stdout), "dev")


def test_json_ksymoops(validator: Any) -> None:
    for report in sorted(OOPS.glob("*.txt"))[:6]:
        p = lkm("ksymoops", "--format", "json", "-K", "-L", str(report))
        doc = json.loads(p.stdout)
        _valid(validator, [doc], "ksymoops")


def test_modprobe_on_a_model_uses_its_release_and_modules_root(tmp_path: Path) -> None:
    """`lkm modprobe --state S` resolves in the model's modules root and release (as `lkm model
    request-module` does), not the host's /lib/modules/$(uname -r)."""
    from support import make_tree

    state, root = str(tmp_path / "k.db"), tmp_path / "root"
    release = "6.1.0-56-amd64"
    d = make_tree(root, {"kernel/exporter.ko": (FIX6 / "exporter.ko").read_bytes()}, release=release)
    assert lkm("depmod", "-b", str(root), release).returncode == 0
    boot = lkm("model", "boot", "linux-6.1-amd64", "--state", state, "--modules-root", str(root))
    assert boot.returncode == 0, boot.stderr
    p = lkm("modprobe", "--state", state, "-D", "exporter")
    assert (p.returncode, p.stdout) == (0, f"insmod {d}/kernel/exporter.ko \n"), p.stderr
    p = lkm("modprobe", "--state", state, "exporter")
    assert p.returncode == 0, p.stderr
    assert [d["name"] for d in _docs(lkm("lsmod", "--state", state, "--json").stdout)] == ["exporter"]

"""modprobe's loading and removal through the Kernel interface, on a recording kernel: the
files inserted are exactly the insmod lines kmod's --show-depends prints, in that order, and
the already-loaded, --first-time and removal rules hold."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from lkm.kernel.interface import KernelError, LoadedModule
from lkm.moddir import ModulesDir
from lkm.modprobe import Resolver, load_config
from lkm.modprobe.actions import Flags, KernelState, probe, remove

from support import CONF, MODS, RELEASE, kmod_tool, make_tree


class RecordingKernel:
    """A Kernel that keeps a list of loaded modules and the calls made."""

    release = RELEASE
    machine = "x86_64"

    def __init__(self) -> None:
        self.loaded: dict[str, LoadedModule] = {}
        self.calls: list[tuple[str, str, str]] = []

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        name = Path(path).name.split(".")[0].replace("-", "_")
        if name in self.loaded:
            raise KernelError("finit_module", errno.EEXIST)
        self.calls.append(("insmod", path, params))
        self.loaded[name] = LoadedModule(name, 4096, 0, ())

    def init_module(self, image: bytes, params: str = "") -> None:
        raise KernelError("init_module", errno.ENOSYS)

    def delete_module(self, name: str, flags: int = 0) -> None:
        if name not in self.loaded:
            raise KernelError("delete_module", errno.ENOENT)
        self.calls.append(("rmmod", name, ""))
        del self.loaded[name]

    def modules(self) -> list[LoadedModule]:
        return list(self.loaded.values())

    def module_compression(self) -> str | None:
        return None

    def is_builtin(self, name: str) -> bool:
        return False


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    make_tree(tmp_path, MODS)
    subprocess.run([kmod_tool("depmod"), "-b", str(tmp_path), RELEASE], check=True, capture_output=True)
    (tmp_path / "c.conf").write_bytes(CONF)
    return tmp_path


def _resolver(tree: Path) -> Resolver:
    d = f"{tree}/lib/modules/{RELEASE}"
    return Resolver(ModulesDir(d), load_config(d, [str(tree / "c.conf")], cmdline=None))


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["a", "d-e", "dev:ax", "my-alias", "symbol:a_fn"])
def test_load_order_is_show_depends(tree: Path, name: str) -> None:
    shown = subprocess.run(
        [
            kmod_tool("modprobe"),
            "-d",
            str(tree),
            "-S",
            RELEASE,
            "-C",
            str(tree / "c.conf"),
            "--show-depends",
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = _resolver(tree)
    kernel = RecordingKernel()
    out: list[tuple[str, str]] = []
    for m in res.lookup(name):
        assert probe(res, KernelState(kernel, res), m, "", Flags(), lambda k, t: out.append((k, t))) == 0
    # options differ from /proc/cmdline-free config only where kmod adds them; paths must agree
    expected = [line.split(" ")[1] for line in shown.splitlines() if line.startswith("insmod ")]
    assert [p for _k, p, _o in kernel.calls] == expected
    assert out == []


@pytest.mark.oracle
def test_already_loaded_and_first_time(tree: Path) -> None:
    res = _resolver(tree)
    kernel = RecordingKernel()
    state = KernelState(kernel, res)
    emitted: list[tuple[str, str]] = []
    (a,) = res.lookup("a")
    assert probe(res, state, a, "", Flags(), lambda k, t: emitted.append((k, t))) == 0
    n = len(kernel.calls)
    assert probe(res, state, a, "", Flags(), lambda k, t: emitted.append((k, t))) == 0
    assert len(kernel.calls) == n
    assert (
        probe(res, state, a, "", Flags(first_time=True), lambda k, t: emitted.append((k, t))) == -errno.EEXIST
    )


@pytest.mark.oracle
def test_remove_with_dependencies(tree: Path) -> None:
    res = _resolver(tree)
    kernel = RecordingKernel()
    state = KernelState(kernel, res)
    (a,) = res.lookup("a")
    probe(res, state, a, "", Flags(), lambda k, t: None)
    shown: list[str] = []
    assert remove(res, state, a, Flags(show=True), lambda k, t: shown.append(t)) == 0
    assert "a" not in kernel.loaded and "b" not in kernel.loaded  # b became unused
    assert shown[0] == "rmmod a\n"

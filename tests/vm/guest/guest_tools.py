"""lkm insmod / rmmod / lsmod against kmod's, on a real kernel (runs inside the VM guest)."""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest
from guestlib import (
    clean,  # noqa: F401  (autouse: each test unloads what it loaded)
    corpus_module,
    fixture,
    kmod,
    lkm,
    loaded,
    tree,
)

from lkm.kernel import MODULE_INIT_COMPRESSED_FILE
from lkm.kernel.live import LiveKernel
from lkm.kernel.load import insert_module


def test_lsmod_identical_to_kmod() -> None:
    assert lkm("lsmod") == kmod("lsmod")


def test_fat_msdos_vfat_load_and_rmmod_order() -> None:
    for m in ("fat", "msdos", "vfat"):
        r = lkm("insmod", str(corpus_module(m)))
        assert (r.rc, r.err) == (0, ""), m
    assert {"fat", "msdos", "vfat"} <= set(loaded())
    assert lkm("lsmod") == kmod("lsmod")
    # fat is used by msdos and vfat: both tools refuse, in the same words.
    ours, theirs = lkm("rmmod", "fat"), kmod("rmmod", "fat")
    assert ours == theirs and ours.rc == 1 and "in use" in ours.err
    assert lkm("rmmod", "vfat", "msdos", "fat").rc == 0
    assert not {"fat", "msdos", "vfat"} & set(loaded())


def test_exporter_importer() -> None:
    assert lkm("insmod", str(fixture("exporter"))).rc == 0
    assert lkm("insmod", str(fixture("importer"))).rc == 0
    assert lkm("lsmod") == kmod("lsmod")
    ours, theirs = lkm("rmmod", "exporter"), kmod("rmmod", "exporter")
    assert ours == theirs and ours.rc == 1
    assert lkm("rmmod", "importer").rc == 0
    assert lkm("rmmod", str(fixture("exporter"))).rc == 0  # by path, as kmod allows
    assert lkm("rmmod", "exporter") == kmod("rmmod", "exporter")  # not loaded any more


PARAMS = ["intval=-5", "name=hello", 'label="two words"', "ints=1,2,3", "enable=1", "mask=0xff", "byteval=7"]


def _params_after(tool: object) -> dict[str, str]:
    r = tool("insmod", str(fixture("params")), *PARAMS)  # type: ignore[operator]
    assert r.rc == 0, r
    values = LiveKernel().parameters("params")
    assert kmod("rmmod", "params").rc == 0
    return values


def test_parameters_as_kmod_sets_them() -> None:
    ours = _params_after(lkm)
    assert ours == _params_after(kmod)
    assert ours["intval"] == "-5" and ours["label"] == "two words" and ours["ints"] == "1,2,3"
    d = "/sys/module/params/parameters"
    assert not os.path.exists(d)


def test_parameters_visible_in_sysfs() -> None:
    assert lkm("insmod", str(fixture("params")), *PARAMS).rc == 0
    d = Path("/sys/module/params/parameters")
    assert (d / "name").read_text() == "hello\n"
    assert (d / "byteval").read_text() == "7\n"
    assert (d / "enable").read_text() == "Y\n"


def _xz_copy(src: Path, dest: Path) -> Path:
    # The options of the kernel's scripts/Makefile.modinst.
    filters = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]
    dest.write_bytes(lzma.compress(src.read_bytes(), check=lzma.CHECK_CRC32, filters=filters))
    return dest


class Spy(LiveKernel):
    """The live kernel, recording the calls made and optionally hiding in-kernel decompression."""

    def __init__(self, hide_compression: bool) -> None:
        super().__init__()
        self.hide = hide_compression
        self.calls: list[tuple[str, int]] = []

    def module_compression(self) -> str | None:
        return None if self.hide else super().module_compression()

    def finit_module(self, path: str, params: str = "", flags: int = 0) -> None:
        self.calls.append(("finit_module", flags))
        super().finit_module(path, params, flags)

    def init_module(self, image: bytes, params: str = "") -> None:
        self.calls.append(("init_module", 0))
        super().init_module(image, params)


@pytest.mark.parametrize("hide", [False, True], ids=["in-kernel", "user-space"])
def test_xz_module(hide: bool, tmp_path: Path) -> None:
    xz = _xz_copy(fixture("params"), tmp_path / "params.ko.xz")
    spy = Spy(hide)
    in_kernel = spy.module_compression() == "xz"
    if tree().name.endswith("6.12") and not hide:
        assert in_kernel, "Debian's 6.12 decompresses xz modules itself"
    insert_module(spy, str(xz), "intval=3")
    expect = ("finit_module", MODULE_INIT_COMPRESSED_FILE) if in_kernel else ("init_module", 0)
    assert spy.calls == [expect]
    assert spy.parameters("params")["intval"] == "3"


def test_corpus_xz_through_cli() -> None:
    path = corpus_module("fat")
    assert lkm("insmod", str(path)).rc == 0
    assert "fat" in loaded()


def _same_failure(*args: str, setup: tuple[str, ...] = ()) -> None:
    for m in setup:
        assert kmod("insmod", m).rc == 0
    theirs = kmod("insmod", *args)
    ours = lkm("insmod", *args)
    if theirs.rc == 0:  # both must have loaded it; unload between the two runs
        name = os.path.basename(args[0]).split(".")[0]
        kmod("rmmod", name)
        ours = lkm("insmod", *args)
    assert ours == theirs


def _corrupt(src: Path, dest: Path, how: str) -> Path:
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = bytearray(b"\x7fELF" + bytes(range(256)) * 4)
    elif how == "bad-crc":
        at = data.find(b"lkm_fixture_add\0") - 8  # the CRC in front of the name (64-bit)
        data[at] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


def test_error_missing_file() -> None:
    _same_failure("/nonexistent/x.ko")


def test_error_missing_filename() -> None:
    assert lkm("insmod") == kmod("insmod")
    assert lkm("rmmod") == kmod("rmmod")


def test_error_wrong_arch() -> None:
    from testing.corpus import find_tree

    _same_failure(str(corpus_module("fat", find_tree("arm64-6.1"))))


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_error_corrupt(how: str, tmp_path: Path) -> None:
    _same_failure(str(_corrupt(fixture("chardev"), tmp_path / "chardev.ko", how)))


def test_error_corrupt_xz(tmp_path: Path) -> None:
    xz = _xz_copy(fixture("chardev"), tmp_path / "chardev.ko.xz")
    bad = tmp_path / "bad" / "chardev.ko.xz"
    bad.parent.mkdir()
    bad.write_bytes(xz.read_bytes()[:200])
    _same_failure(str(bad))


def test_error_unknown_symbol() -> None:
    _same_failure(str(fixture("importer")))


def test_error_wrong_symbol_version(tmp_path: Path) -> None:
    bad = _corrupt(fixture("importer"), tmp_path / "importer.ko", "bad-crc")
    _same_failure(str(bad), setup=(str(fixture("exporter")),))


def test_error_already_loaded() -> None:
    _same_failure(str(fixture("chardev")), setup=(str(fixture("chardev")),))


def test_error_bad_parameter() -> None:
    _same_failure(str(fixture("params")), "intval=abc")


def test_unknown_parameter_is_only_warned() -> None:
    _same_failure(str(fixture("params")), "nosuch=1")


def test_rmmod_not_loaded_and_builtin() -> None:
    assert lkm("rmmod", "nosuchmod") == kmod("rmmod", "nosuchmod")
    builtin = next(d for d in os.listdir("/sys/module") if not os.path.exists(f"/sys/module/{d}/initstate"))
    assert lkm("rmmod", builtin) == kmod("rmmod", builtin)


def test_insmod_force_loads_bad_crc(tmp_path: Path) -> None:
    assert kmod("insmod", str(fixture("exporter"))).rc == 0
    bad = _corrupt(fixture("importer"), tmp_path / "importer.ko", "bad-crc")
    assert lkm("insmod", "-f", str(bad)).rc == 0
    assert "importer" in loaded()

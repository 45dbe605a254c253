"""modutils 2.4's insmod/rmmod/lsmod/ksyms over the 2.4 model kernel: the HOWTO's msdos/fat
case, arguments per .modinfo types with modutils' messages, ksymoops symbols, persistent
data, and the tools' output formats (modutils-2.4.md "Tools", "ksymoops symbols")."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from lkm.cli import main
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.procfs import proc_ksyms, proc_modules
from lkm.module.file import ModuleFile
from lkm.modutils.insmod import InsmodError, InsmodOptions, insmod
from lkm.modutils.rmmod import RmmodError, rmmod

from support import FIX24

FAT, MSDOS, HELLO = str(FIX24 / "fat24.o"), str(FIX24 / "msdos24.o"), str(FIX24 / "hello24.o")


def lkm(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["lkm", *argv])
    return rc, out.getvalue(), err.getvalue()


def symbol_value(k: ModelKernel, module: str, path: str, name: str) -> int:
    """A module variable's address from the -m map's logic: section start (_S symbol) + offset."""
    mod = ModuleFile.open(path)
    sym = next(s for s in mod.elf.symbols() if s.name == name)
    sec = mod.elf.sections[sym.shndx].name
    exports = {s.name: s.address for m, syms in k.module_symbols() if m == module for s in syms}
    start = next(a for n, a in exports.items() if n.startswith(f"__insmod_{module}_S{sec}_L"))
    return (start or 0) + sym.value


def test_msdos_links_against_fat(k24: ModelKernel) -> None:
    insmod(k24, FAT, [])
    r = insmod(k24, MSDOS, [])
    fat = {s.name: s.address for m, syms in k24.module_symbols() if m == "fat24" for s in syms}
    for name in ("fat24_read_super", "fat24_date_unix2dos", "fat24_cache_size"):
        assert r.image.resolved[name] == fat[name]
    assert r.image.resolved["printk"] == next(s.address for s in k24.kernel_symbols() if s.name == "printk")
    assert proc_modules(k24).splitlines()[1].endswith(" [msdos24]")
    # /proc/ksyms: "%0*lx %s\t[%s]" for modules, "%0*lx %s" for the kernel
    for line in proc_ksyms(k24).splitlines():
        assert re.fullmatch(r"[0-9a-f]{8} \S+(\t\[\w+\])?", line), line
    ksymoops = [n for n in fat if n.startswith("__insmod_fat24_")]
    o = next(n for n in ksymoops if "_O" in n)
    assert re.fullmatch(r"__insmod_fat24_O" + re.escape(os.path.realpath(FAT)) + r"_M[0-9A-F]{8}_V132116", o)
    assert {n.rsplit("_L", 1)[0] for n in ksymoops if "_S" in n} == {
        f"__insmod_fat24_S{s}" for s in (".text", ".rodata", ".data", ".bss")
    }
    assert k24.check_integrity() == []


def test_no_ksymoops_symbols_with_y(k24: ModelKernel) -> None:
    insmod(k24, FAT, [], InsmodOptions(ksymoops=False))
    assert not [s for _m, syms in k24.module_symbols() for s in syms if s.name.startswith("__insmod_")]


def test_unresolved_symbol_and_duplicate_name(k24: ModelKernel) -> None:
    with pytest.raises(InsmodError, match="unresolved symbol fat24_"):
        insmod(k24, MSDOS, [])
    insmod(k24, FAT, [])
    with pytest.raises(InsmodError, match="a module named fat24 already exists"):
        insmod(k24, FAT, [])
    assert [m.name for m in k24.modules()] == ["fat24"] and k24.areas()[0].module == "fat24"


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch=1"], "invalid parameter parm_nosuch"),
        (["count=3"], "symbol for parameter count not found"),  # optimised away by gcc
        (["codepage=1,2"], "too many values for codepage (max 1)"),
        (['iocharset="unterminated'], "improperly terminated string argument for iocharset"),
    ],
)
def test_argument_errors(k24: ModelKernel, args: list[str], message: str) -> None:
    insmod(k24, FAT, [])
    path = HELLO if args[0].startswith("count") else MSDOS
    with pytest.raises(InsmodError) as e:
        insmod(k24, path, args)
    assert e.value.reason == message
    assert [m.name for m in k24.modules()] == ["fat24"]


def test_arguments_written_into_the_image(k24: ModelKernel) -> None:
    insmod(k24, FAT, [])
    insmod(k24, MSDOS, ["codepage=cp850", 'iocharset="utf\\0628"'])
    assert k24.read_memory(symbol_value(k24, "msdos24", MSDOS, "codepage"), 6) == b"cp850\0"  # c<N>: in place
    assert k24.read_memory(symbol_value(k24, "msdos24", MSDOS, "iocharset"), 6) == b"utf28\0"  # \062 is '2'
    with pytest.raises(InsmodError, match="string too long for codepage"):
        insmod(k24, MSDOS, ["codepage=" + "x" * 40], InsmodOptions(name="msdos_b"))


def test_persistent_data_round_trip(k24: ModelKernel, tmp_path: Path) -> None:
    obj = tmp_path / "hello24.o"
    shutil.copy(HELLO, obj)
    insmod(k24, str(obj), ["sticky=42"], InsmodOptions(persist=""), persist_dir=str(tmp_path / "persist"))
    (saved,) = rmmod(k24, ["hello24"])
    text = Path(saved).read_text().splitlines()
    assert text[0].startswith("#% Kernel Linux") and re.fullmatch(r"#% Data saved .* GMT", text[1])
    assert text[2:] == ["sticky=42"]
    Path(saved).write_text("\n".join([*text[:2], "# keep me", "gone=1", "sticky=42"]) + "\n")
    insmod(k24, str(obj), [], InsmodOptions(persist=""), persist_dir=str(tmp_path / "persist"))
    assert struct.unpack("<i", k24.read_memory(symbol_value(k24, "hello24", str(obj), "sticky"), 4))[0] == 42
    os.utime(obj, (1, 1))  # the object changed since load
    with pytest.raises(RmmodError, match="Object for module hello24 has changed since load"):
        rmmod(k24, ["hello24"])
    assert [m.name for m in k24.modules()] == ["hello24"]
    os.utime(obj, None)


def test_rmmod_refuses_a_module_in_use_and_r_removes_the_stack(k24: ModelKernel) -> None:
    insmod(k24, FAT, [])
    insmod(k24, MSDOS, [])
    rc, _out, err = lkm("rmmod", "--state", k24.state.path, "fat24")
    assert (rc, err) == (1, "rmmod: fat24: Device or resource busy\n")
    rc, _out, err = lkm("rmmod", "--state", k24.state.path, "nosuch")
    assert (rc, err) == (1, "rmmod: module nosuch is not loaded\n")
    assert lkm("rmmod", "--state", k24.state.path, "-r", "msdos24")[0] == 0
    assert k24.modules() == []


def test_lsmod_and_ksyms_formats(k24: ModelKernel) -> None:
    insmod(k24, FAT, [], InsmodOptions(autoclean=True))
    insmod(k24, MSDOS, [])
    _rc, out, _ = lkm("lsmod", "--state", k24.state.path)
    assert out.splitlines() == [
        "Module                  Size  Used by    Not tainted",
        f"{'msdos24':<20}{k24.module('msdos24').size:8d}   0 (unused)",  # type: ignore[union-attr]
        f"{'fat24':<20}{k24.module('fat24').size:8d}   0 (autoclean) [msdos24]",  # type: ignore[union-attr]
    ]
    _rc, out, _ = lkm("ksyms", "--state", k24.state.path, "-h")
    assert all(re.fullmatch(r"[0-9a-f]{8}  .{32,}  \[\w+\]", ln) for ln in out.splitlines())
    _rc, out, _ = lkm("ksyms", "--state", k24.state.path, "-a")
    assert out.startswith("Address   Symbol") and "printk_R" in out


def test_insmod_cli_map_noload_probe(k24: ModelKernel, tmp_path: Path) -> None:
    st = ["--state", k24.state.path]
    rc, out, err = lkm("insmod", *st, "-n", "-m", FAT)
    assert rc == 0 and out.startswith("Sections:       Size      Address   Align\n.this ")
    assert "12340000" in out and k24.modules() == []  # -n: linked at 0x12340000, not loaded
    assert lkm("insmod", *st, "-p", FAT)[0] == 0 and k24.modules() == []
    blob = tmp_path / "fat24.blob"
    assert lkm("insmod", *st, "-O", str(blob), FAT)[0] == 0
    base = k24.module("fat24").address  # type: ignore[union-attr]
    assert blob.read_bytes() == k24.read_memory(base, blob.stat().st_size)
    rc, _out, err = lkm("insmod", *st, MSDOS, "bogus=1")
    assert (rc, err) == (1, f"{MSDOS}: invalid parameter parm_bogus\n")

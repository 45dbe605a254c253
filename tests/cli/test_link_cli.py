"""``lkm link``: a module linked against a kernel symbol file, outputs written whole or not at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lkm.module import ModuleFile

from support import FIX6, lkm_cmd, run


def _symbols(tmp_path: Path, drop: str | None = None) -> Path:
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    names = sorted({n.name for n in mod.needed} - {drop})
    p = tmp_path / "kallsyms"
    p.write_text("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    return p


@pytest.mark.oracle
def test_link_writes_elf_blobs_and_kallsyms(tmp_path: Path) -> None:
    ks = _symbols(tmp_path)
    out = tmp_path / "chardev.elf"
    base = [*lkm_cmd(), "link", str(FIX6 / "chardev.ko"), "--kernel", str(ks), "--base", "0xffffffffc0000000"]
    proc = run([*base, "-o", str(out), "--blob", str(tmp_path / "blob"), "--kallsyms", str(tmp_path / "ks")])
    assert proc.returncode == 0, proc.stderr
    syms = subprocess.run(["nm", str(out)], capture_output=True, text=True, check=True).stdout
    assert "ffffffff81000000 A" in syms or " A " in syms  # imports are absolute
    assert (tmp_path / "blob.core").stat().st_size % 4096 == 0
    assert "\t[chardev]" in (tmp_path / "ks").read_text()


def test_missing_symbol_is_one_line_and_no_output(tmp_path: Path) -> None:
    ks = _symbols(tmp_path, drop="__register_chrdev")
    out = tmp_path / "x.elf"
    base = [*lkm_cmd(), "link", str(FIX6 / "chardev.ko"), "--kernel", str(ks), "--base", "0xffffffffc0000000"]
    proc = run([*base, "-o", str(out)])
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    assert (
        len(lines) == 1
        and "Unknown symbol __register_chrdev" in lines[0]
        and lines[0].startswith("lkm link: ERROR:")
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [ks]


def test_usage_errors(tmp_path: Path) -> None:
    assert run([*lkm_cmd(), "link"]).returncode == 1
    proc = run([*lkm_cmd(), "link", str(FIX6 / "chardev.ko"), "--kernel", str(tmp_path / "nope")])
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.corpus
def test_link_against_a_real_kernel_image(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """Offline, with nothing but the distribution's files: the kernel image gives every import's
    address and CRC, and every CRC the module was built against matches it."""
    from lkm.symbols.table import SymbolTable
    from testing.corpus import module_files

    tree = next(t for t in corpus_trees if t.name == "amd64-6.1")
    fat = next(p for p in module_files(tree) if p.name == "fat.ko")
    table = SymbolTable.from_files(tree.vmlinuz)
    mod = ModuleFile.open(fat)
    for n in mod.needed:
        s = table.find_export(n.name, gpl_ok=True)
        assert s is not None and s.address is not None, n.name
        assert n.crc is None or s.crc == n.crc, n.name
    cmd = [*lkm_cmd(), "link", str(fat), "--kernel", str(tree.vmlinuz), "--config", str(tree.config)]
    proc = run([*cmd, "--base", "0xffffffffc0000000"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"fat: ") and b"imports resolved" in proc.stdout


def _kallsyms_file(path: Path, names: set[str]) -> Path:
    path.write_text(
        "".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(sorted(names)))
    )
    return path


def _nm(path: Path) -> dict[str, int]:
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True).stdout
    return {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 3}


@pytest.mark.oracle
def test_with_module_resolves_imports(tmp_path: Path) -> None:
    """The HOWTO's msdos -> fat: importer links against exporter already in the address space;
    its calls land on exporter's linked functions (nm of both outputs is the oracle)."""
    imp = ModuleFile.open(FIX6 / "importer.ko")
    exp_names = {e.name for e in ModuleFile.open(FIX6 / "exporter.ko").exports}
    kernel = ({n.name for n in imp.needed} - exp_names) | {"__fentry__", "_printk", "__x86_return_thunk"}
    common = ["--kernel", str(_kallsyms_file(tmp_path / "kallsyms", kernel)), "--base", "0xffffffffc0000000"]
    out_imp, out_exp = tmp_path / "imp.elf", tmp_path / "exp.elf"
    with_exp = ["--with", str(FIX6 / "exporter.ko")]
    p1 = run([*lkm_cmd(), "link", str(FIX6 / "importer.ko"), *common, *with_exp, "-o", str(out_imp)])
    assert p1.returncode == 0, p1.stderr
    p2 = run([*lkm_cmd(), "link", str(FIX6 / "exporter.ko"), *common, "-o", str(out_exp)])
    assert p2.returncode == 0, p2.stderr
    exp_syms, imp_syms = _nm(out_exp), _nm(out_imp)
    for name in exp_names:
        assert imp_syms[name] == exp_syms[name], name  # the import is exporter's address


def test_with_module_refuses_missing_namespace(tmp_path: Path) -> None:
    data = (FIX6 / "importer.ko").read_bytes().replace(b"import_ns=LKM_FIXTURE", b"import_ns=LKM_FIXTUR_")
    bad = tmp_path / "importer.ko"
    bad.write_bytes(data)
    ks = _kallsyms_file(tmp_path / "kallsyms", {n.name for n in ModuleFile.open(bad).needed})
    cmd = [*lkm_cmd(), "link", str(bad), "--kernel", str(ks), "--base", "0xffffffffc0000000"]
    proc = run([*cmd, "--with", str(FIX6 / "exporter.ko")])
    assert proc.returncode == 1 and b"from namespace LKM_FIXTURE, but does not import it" in proc.stderr

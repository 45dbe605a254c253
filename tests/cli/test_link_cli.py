"""``lkm link``: a module linked against a kernel symbol file, outputs written whole or not at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lkm.module import ModuleFile

from conftest import FIX6, lkm_cmd, run


def _symbols(tmp_path: Path, drop: str | None = None) -> Path:
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    names = sorted({n.name for n in mod.needed} - {drop})
    p = tmp_path / "kallsyms"
    p.write_text("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    return p


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
    from lkm.corpus import module_files
    from lkm.symbols.table import SymbolTable

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

"""The kernel's ELF acceptance checks (lkm.module.validate) on real modules, which the real
kernels accept, and on damaged copies, which they refuse with ENOEXEC."""

from __future__ import annotations

import errno
import struct
import sys

import pytest

from lkm.elf.constants import SHF_EXECINSTR, SHF_WRITE
from lkm.errors import InvalidModule
from lkm.module import ModuleFile
from lkm.module.validate import check_module

from support import FIX6

GOOD = (FIX6 / "chardev.ko").read_bytes()


def _shdr_offset(data: bytes, index: int) -> int:
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    return e_shoff + 64 * index


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _section_index(name: str) -> int:
    sec = ModuleFile.from_bytes(GOOD).elf.section(name)
    assert sec is not None
    return sec.number


def _refused(data: bytes, kernel: str, needle: str) -> None:
    with pytest.raises(InvalidModule) as ei:
        check_module(ModuleFile.from_bytes(data, path="x.ko").elf, kernel=kernel)
    assert ei.value.errno == errno.ENOEXEC
    assert needle in ei.value.reason


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_fixtures_accepted(kernel: str) -> None:
    for p in sorted(FIX6.glob("*.ko*")):
        check_module(ModuleFile.open(p).elf, kernel=kernel)


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_not_relocatable(kernel: str) -> None:
    _refused(_patched(GOOD, 16, "<H", 2), kernel, "not a relocatable object")


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_wrong_machine(kernel: str) -> None:
    with pytest.raises(InvalidModule, match="wrong machine"):
        check_module(ModuleFile.from_bytes(GOOD).elf, kernel=kernel, arch="arm64")


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_no_this_module(kernel: str) -> None:
    # Point the section's name at another name: the object has no .gnu.linkonce.this_module.
    i = _section_index(".gnu.linkonce.this_module")
    other = ModuleFile.from_bytes(GOOD).elf.section(".modinfo")
    assert other is not None
    data = _patched(GOOD, _shdr_offset(GOOD, i), "<I", other.name_offset + 1)  # "modinfo"
    _refused(data, kernel, "no module found")


def test_two_modinfo_refused_by_612_only() -> None:
    i = _section_index(".note.Linux")
    modinfo = ModuleFile.from_bytes(GOOD).elf.section(".modinfo")
    assert modinfo is not None
    data = _patched(GOOD, _shdr_offset(GOOD, i), "<I", modinfo.name_offset)
    check_module(ModuleFile.from_bytes(data).elf, kernel="6.1")
    _refused(data, "6.12", "multiple .modinfo")


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_writable_text_refused(kernel: str) -> None:
    i = _section_index(".text")
    off = _shdr_offset(GOOD, i) + 8
    flags = struct.unpack_from("<Q", GOOD, off)[0]
    _refused(_patched(GOOD, off, "<Q", flags | SHF_WRITE | SHF_EXECINSTR), kernel, "writable and executable")


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_section_past_end(kernel: str) -> None:
    i = _section_index(".text")
    _refused(_patched(GOOD, _shdr_offset(GOOD, i) + 0x20, "<Q", 1 << 40), kernel, "past end")


@pytest.mark.corpus
def test_corpus_modules_pass_their_kernels_checks(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """Debian's kernels load these modules, so the checks must accept every one; for 6.12 the
    struct module size is the one every module of the tree agrees on."""
    from testing.corpus import module_files

    kernels = {"amd64-6.1": "6.1", "amd64-6.12": "6.12", "arm64-6.1": "6.1", "i386-6.1": "6.1"}
    total = 0
    for tree in corpus_trees:
        kernel = kernels[tree.name]
        sizes: set[int] = set()
        for p in module_files(tree):
            with ModuleFile.open(p) as m:
                check_module(m.elf, kernel=kernel)
                this = m.elf.section(".gnu.linkonce.this_module")
                assert this is not None
                sizes.add(this.size)
                total += 1
        assert len(sizes) == 1, f"{tree.name}: struct module sizes {sizes}"
    print(f"{total} corpus modules accepted", file=sys.stderr)

"""The architecture records (lkm.arch): a new architecture is one record, registered once, and
the ELF checks and the linker find it by the file's e_machine."""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest

from lkm import arch
from lkm.arch import Arch
from lkm.errors import InvalidModule
from lkm.link import link
from lkm.module.file import ModuleFile

from support import FIX6

E_MACHINE_AT = 18  # Elf64_Ehdr.e_machine (after e_ident[16] and e_type)
DUMMY_MACHINE = 0x7E57  # no real architecture's number

# A hypothetical architecture that relocates exactly as x86_64 does under another e_machine.
DUMMY = Arch(
    "dummy64",
    frozenset({DUMMY_MACHINE}),
    64,
    "dummy64",
    ("dummy",),
    arch.X86_64.relocations,
    arch.X86_64.apply_relocations,
    None,
    dict(arch.X86_64.abs_relocs),
    None,
    True,
    True,
    "PC",
    True,
)


@pytest.fixture
def dummy() -> Iterator[Arch]:
    arch.register(DUMMY)
    try:
        yield DUMMY
    finally:
        arch.ARCHES.pop(DUMMY.name, None)


def _as_dummy(data: bytes) -> bytes:
    (machine,) = struct.unpack_from("<H", data, E_MACHINE_AT)
    assert machine == 62  # EM_X86_64: the fixture is an x86_64 module
    return data[:E_MACHINE_AT] + struct.pack("<H", DUMMY_MACHINE) + data[E_MACHINE_AT + 2 :]


def _resolve(name: str) -> int:
    return 0xFFFFFFFF81000000 + 0x10 * (sum(name.encode()) % 0x1000)


def test_unknown_machine_is_refused() -> None:
    mod = ModuleFile.from_bytes(_as_dummy((FIX6 / "chardev.ko").read_bytes()))
    with pytest.raises(InvalidModule) as exc:
        mod.check("6.1")
    assert exc.value.errno == errno.ENOEXEC  # elf_check_arch fails: -ENOEXEC


def test_registered_arch_is_found_and_links(dummy: Arch) -> None:
    assert arch.for_machine(DUMMY_MACHINE) is dummy
    assert arch.by_name("dummy") is dummy
    data = (FIX6 / "chardev.ko").read_bytes()
    mod = ModuleFile.from_bytes(_as_dummy(data))
    mod.check("6.1")  # elf_check_arch now accepts it
    # Oracle: the same module as x86_64 (whose links match GNU ld's, tests/link) — the dummy's
    # engine and tables are x86_64's, so every section must come out byte for byte the same.
    ref = link(ModuleFile.from_bytes(data), _resolve, "6.1", bases=0xFFFFFFFFC0000000)
    img = link(mod, _resolve, "6.1", bases=0xFFFFFFFFC0000000)
    assert img.section_addresses == ref.section_addresses
    assert {n: img.section_bytes(n) for n in img.layout.placements} == {
        n: ref.section_bytes(n) for n in ref.layout.placements
    }

"""The kernel-version records (lkm.kernels): a new version is one record, registered once, and
every rule user (layout, release lookup) finds it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lkm import kernels
from lkm.kernels import KernelVersion, LayoutRules
from lkm.link.layout import KernelConfig, layout_module
from lkm.module.file import ModuleFile

from support import FIX6

# A hypothetical kernel whose loader puts each pass in one region with no padding inside it.
DUMMY = KernelVersion(
    "linux-9.9",
    "9.9",
    (9, 9),
    False,
    LayoutRules("linux-9.9", ("all",) * 5, ("init",) * 5, frozenset(), frozenset(), ("all", "init")),
    kernels.LINUX_6_12.validity,
    "area",
    kernels.LINUX_6_12.kmod,
)


@pytest.fixture
def dummy() -> Iterator[KernelVersion]:
    kernels.register(DUMMY)
    try:
        yield DUMMY
    finally:
        kernels.unregister(DUMMY.name)


def test_registered_version_lays_out(dummy: KernelVersion) -> None:
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    lay = layout_module(mod.elf, "linux-9.9", KernelConfig())
    # Oracle: 6.1's rules without STRICT_MODULE_RWX pad nothing inside core and init either,
    # so every section must sit at the same offset, "core" renamed "all".
    ref = layout_module(mod.elf, "linux-6.1", KernelConfig(strict_module_rwx=False))
    assert lay.rules == "linux-9.9"
    assert {n: ({"core": "all"}.get(p.region, p.region), p.offset) for n, p in ref.placements.items()} == {
        n: (p.region, p.offset) for n, p in lay.placements.items()
    }
    assert lay.sizes == {"all": ref.sizes["core"], "init": ref.sizes["init"]}


def test_registered_version_is_found_by_release(dummy: KernelVersion) -> None:
    assert kernels.for_release("9.9.1-1-amd64") is dummy
    assert kernels.for_release("10.0") is dummy
    assert kernels.for_release("6.8.0") is kernels.LINUX_6_12
    assert kernels.by_name("9.9") is dummy


def test_releases_without_a_registered_version() -> None:
    assert kernels.for_release("9.9.1") is kernels.LINUX_6_12
    assert kernels.for_release("6.3.13") is kernels.LINUX_6_1
    assert kernels.for_release("2.6.32") is kernels.LINUX_6_1  # 2.5.48's in-kernel loader
    assert kernels.for_release("2.4.20") is kernels.LINUX_2_4
    assert kernels.for_release("not-a-release") is kernels.LINUX_6_12
    with pytest.raises(ValueError):
        kernels.by_name("linux-9.9")

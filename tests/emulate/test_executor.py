"""The executor protocol the model kernel calls: memory linked elsewhere (no import list),
kernel functions recognised by address."""

from __future__ import annotations

import pytest

from support import FIX6


@pytest.mark.corpus
@pytest.mark.vm
def test_init_and_exit_of_memory_linked_by_someone_else() -> None:
    from lkm.emulate.executor import EmulatingExecutor
    from lkm.link.image import link_module
    from lkm.link.layout import KernelConfig, layout_module, sequential_bases
    from lkm.module.file import ModuleFile

    from support import corpus_symbols

    symbols = corpus_symbols()
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    lay = layout_module(mod.elf, "linux-6.1", KernelConfig())
    bases, _ = sequential_bases(lay, 0xFFFFFFFFC0100000)

    def resolve(name: str) -> int | None:
        s = symbols.table.lookup(name)
        return None if s is None else s.address

    img = link_module(mod, lay, bases, resolve)
    memory = {bases[r]: bytes(b) for r, b in img.regions.items()}
    values = {s.name: img.symbol_values[s.number] for s in mod.elf.symbols() if s.name and s.shndx}

    class Image:
        name = "chardev"

        def __init__(self) -> None:
            self.memory = memory
            self.symbols: dict[str, int] = {}

    ex = EmulatingExecutor("x86_64", symbols)
    r = ex.call(Image(), values["init_module"])
    assert r == 0, [f.reason for f in ex.faults]
    assert ex.kernel.state.dmesg() == ["lkmchar: I was assigned major number 254."]  # empty tables
    ex.call(Image(), values["cleanup_module"])  # void: its result is whatever rax held
    assert ex.kernel.state.dmesg()[-1] == "lkmchar: unregistered major 254"
    assert ex.faults == []

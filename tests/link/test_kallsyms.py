"""Module kallsyms lines by the kernel's rules: kept symbols only, elf_type letters, upper case
only for non-GPL exports (kernel-loader.md §6).  Expectations come from the fixtures' sources."""

from __future__ import annotations

from lkm.link.image import link_module
from lkm.link.kallsyms import format_module_kallsyms as format_proc_kallsyms
from lkm.link.kallsyms import module_kallsyms, module_kallsyms_lines
from lkm.link.layout import KernelConfig, layout_module
from lkm.module import ModuleFile

from support import FIX6

BASES = {"text": 0xFFFFFFFFC0000000, "rodata": 0xFFFFFFFFC0010000, "ro_after_init": 0xFFFFFFFFC0020000,
         "data": 0xFFFFFFFFC0030000, "init_text": 0xFFFFFFFFC0040000, "init_rodata": 0xFFFFFFFFC0050000,
         "init_data": 0xFFFFFFFFC0060000}  # fmt: skip


def _syms(name: str, kallsyms_all: bool) -> dict[str, str]:
    mod = ModuleFile.open(FIX6 / name)
    lay = layout_module(mod.elf, "linux-6.12", KernelConfig(kallsyms_all=kallsyms_all))
    img = link_module(mod, lay, BASES, lambda n: 0xFFFFFFFF81000000)
    return {s.name: s.type for s in module_kallsyms(mod, img)}


def test_export_case_rule() -> None:
    syms = _syms("exporter.ko", kallsyms_all=False)
    # EXPORT_SYMBOL functions: upper case; EXPORT_SYMBOL_GPL: lower case (only __ksymtab counts)
    assert syms["lkm_fixture_add"] == "T"
    assert syms["lkm_fixture_ns_answer"] == "T"
    assert syms["lkm_fixture_gpl_mul"] == "t"


def test_only_text_without_kallsyms_all() -> None:
    syms = _syms("params.ko", kallsyms_all=False)
    assert set(syms.values()) <= {"t", "T"}
    everything = _syms("params.ko", kallsyms_all=True)
    assert set(syms) < set(everything)
    assert {"d", "b", "r"} & set(everything.values())
    assert not any(name.startswith("__UNIQUE_ID") and t == "t" for name, t in everything.items())


def test_init_symbols_are_not_kept() -> None:
    mod = ModuleFile.open(FIX6 / "chardev.ko")
    init_text = mod.elf.section(".init.text")
    assert init_text is not None
    init_names = {s.name for s in mod.elf.symbols() if s.shndx == init_text.number and s.name}
    assert init_names and not init_names & set(_syms("chardev.ko", kallsyms_all=True))


def test_line_format() -> None:
    mod = ModuleFile.open(FIX6 / "exporter.ko")
    lay = layout_module(mod.elf, "linux-6.12", KernelConfig())
    img = link_module(mod, lay, BASES, lambda n: 0xFFFFFFFF81000000)
    lines = format_proc_kallsyms("exporter", module_kallsyms(mod, img)).splitlines()
    assert lines and all(len(line.split(" ", 2)[0]) == 16 and line.endswith("\t[exporter]") for line in lines)


def test_lines_in_one_pass_equal_the_symbols_formatted() -> None:
    # module_kallsyms_lines (what the model stores per module) is the formatted module_kallsyms
    for name in ("exporter.ko", "params.ko", "chardev.ko"):
        mod = ModuleFile.open(FIX6 / name)
        for kallsyms_all in (False, True):
            lay = layout_module(mod.elf, "linux-6.12", KernelConfig(kallsyms_all=kallsyms_all))
            img = link_module(mod, lay, BASES, lambda n: 0xFFFFFFFF81000000)
            want = format_proc_kallsyms(mod.name, module_kallsyms(mod, img), mod.elf.elfclass)
            assert want and module_kallsyms_lines(mod, img) == want

"""SymbolTable: merging sources by name, the kernel's find_symbol order with GPL refusal,
namespaces, modules linked later, and address lookups.

The expectations are written out here from the kernel's rules (kernel/module/main.c
find_symbol: kernel __ksymtab, kernel __ksymtab_gpl only for GPL-compatible users, then the
module list, most recently loaded first, each module's syms then gpl_syms), and address
lookups are checked against a brute-force search.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.errors import LkmError
from lkm.module.symbols import Export
from lkm.symbols.sources import parse_kallsyms, parse_module_symvers, parse_system_map
from lkm.symbols.table import KernelSymbol, SymbolTable

SYSTEM_MAP = """\
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000200 T printk
ffffffff81000300 T gpl_only_fn
ffffffff81000400 t dual
ffffffff81000500 T dual
ffffffff81000600 T ns_fn
ffffffff81000700 t helper
ffffffff82000000 D jiffies
"""

SYMVERS = """\
0x11111111\tprintk\tvmlinux\tEXPORT_SYMBOL\t
0x22222222\tgpl_only_fn\tvmlinux\tEXPORT_SYMBOL_GPL\t
0x33333333\tdual\tvmlinux\tEXPORT_SYMBOL\t
0x44444444\tns_fn\tvmlinux\tEXPORT_SYMBOL_GPL\tMY_NS
0x55555555\tjiffies\tvmlinux\tEXPORT_SYMBOL\t
0x66666666\tmod_fn\tdrivers/foo/foo\tEXPORT_SYMBOL\t
"""


def _core() -> SymbolTable:
    return SymbolTable(
        parse_system_map(SYSTEM_MAP), [s for s in parse_module_symvers(SYMVERS) if not s.module]
    )


def _astuple(s: KernelSymbol | None) -> tuple[object, ...] | None:
    return None if s is None else s.astuple()


# -- merging ---------------------------------------------------------------------------------


def test_merge_addresses_with_export_data() -> None:
    t = _core()
    assert _astuple(t.lookup("printk")) == (
        "printk", 0xFFFFFFFF81000200, "T", None, True, False, 0x11111111, None,
    )  # fmt: skip
    assert _astuple(t.lookup("ns_fn")) == (
        "ns_fn",
        0xFFFFFFFF81000600,
        "T",
        None,
        True,
        True,
        0x44444444,
        "MY_NS",
    )
    assert _astuple(t.lookup("_stext")) == ("_stext", 0xFFFFFFFF81000000, "T", None, False, False, None, None)
    # A local and a global of one name: the export is the global one.
    assert _astuple(t.lookup("dual")) == (
        "dual",
        0xFFFFFFFF81000500,
        "T",
        None,
        True,
        False,
        0x33333333,
        None,
    )
    # Two locals: the first is canonical; both stay entries of the table.
    assert t.lookup("helper") is not None and t.lookup("helper").address == 0xFFFFFFFF81000100  # type: ignore[union-attr]
    assert [s.address for s in t if s.name == "helper"] == [0xFFFFFFFF81000100, 0xFFFFFFFF81000700]
    assert len(t) == 9
    assert t.lookup("mod_fn") is None and t.lookup("nope") is None


def test_merge_order_first_source_wins() -> None:
    """A running kernel's kallsyms first (KASLR-shifted), System.map second: the addresses are
    the running kernel's; names only the System.map has are added with its addresses."""
    kallsyms = "ffffffff9a000200 T printk\nffffffff9a000000 T _stext\n"
    t = SymbolTable(parse_kallsyms(kallsyms), parse_system_map(SYSTEM_MAP), parse_module_symvers(SYMVERS))
    assert t.lookup("printk").address == 0xFFFFFFFF9A000200  # type: ignore[union-attr]
    assert t.lookup("printk").crc == 0x11111111  # type: ignore[union-attr]
    assert t.lookup("jiffies").address == 0xFFFFFFFF82000000  # type: ignore[union-attr]
    assert [s.name for s in t][:3] == ["printk", "_stext", "helper"]
    # The later source's further entries of a known name are not added.
    assert len(t) == 2 + 7 + 1  # kallsyms 2, System.map's 7 other entries, the module row
    # Reversed: System.map's addresses.
    t2 = SymbolTable(parse_system_map(SYSTEM_MAP), parse_kallsyms(kallsyms))
    assert t2.lookup("printk").address == 0xFFFFFFFF81000200  # type: ignore[union-attr]


def test_merge_export_fields() -> None:
    """exported/gpl_only from the first source exporting; crc and namespace from the first
    that has them (a vmlinux read without __kcrctab, then Module.symvers)."""
    vml = [KernelSymbol("f", 0x1000, None, None, True, True, None, None)]
    sv = [KernelSymbol("f", None, None, None, True, False, 0xABC, "NS")]
    t = SymbolTable(vml, sv)
    assert _astuple(t.lookup("f")) == ("f", 0x1000, None, None, True, True, 0xABC, "NS")
    t = SymbolTable([KernelSymbol("f", 0x1000, "T")], sv)
    assert _astuple(t.lookup("f")) == ("f", 0x1000, "T", None, True, False, 0xABC, "NS")


def test_hidden_addresses() -> None:
    """Unprivileged /proc/kallsyms (all zeros) brings names and modules, no addresses."""
    hidden = "0000000000000000 T printk\n0000000000000000 t helper\n0000000000000000 T m_fn\t[m]\n"
    t = SymbolTable(parse_kallsyms(hidden))
    assert t.addresses_hidden
    assert t.lookup("printk").address is None  # type: ignore[union-attr]
    assert t.by_address(0) is None and t.by_address(1 << 63) is None
    t.add(parse_system_map(SYSTEM_MAP))
    assert t.lookup("printk").address == 0xFFFFFFFF81000200  # type: ignore[union-attr]
    assert t.by_address(0xFFFFFFFF81000250).name == "printk"  # type: ignore[union-attr]
    assert t.lookup("m_fn", module="m").exported  # type: ignore[union-attr]
    assert not SymbolTable(parse_system_map(SYSTEM_MAP)).addresses_hidden
    assert not SymbolTable([KernelSymbol("only", 0)]).addresses_hidden  # one zero is an address


# -- find_export -----------------------------------------------------------------------------


def test_find_export_kernel_and_gpl() -> None:
    t = _core()
    assert t.find_export("printk", gpl_ok=False).crc == 0x11111111  # type: ignore[union-attr]
    assert t.find_export("gpl_only_fn", gpl_ok=False) is None
    assert t.find_export("gpl_only_fn", gpl_ok=True).crc == 0x22222222  # type: ignore[union-attr]
    assert t.find_export("ns_fn", gpl_ok=True).namespace == "MY_NS"  # type: ignore[union-attr]
    assert t.find_export("_stext", gpl_ok=True) is None  # in System.map, not exported
    assert t.find_export("helper", gpl_ok=True) is None


def test_find_export_modules_order() -> None:
    t = _core()
    t.add_module_exports(
        "older",
        [Export("dup", False, 1, None, "dup"), Export("older_gpl", True, 2, "NS_A", "older_gpl_impl")],
        {"dup": 0xC0000010, "older_gpl_impl": 0xC0000020},
    )
    t.add_module_exports(
        "newer",
        [Export("dup", True, 3, None, "dup"), Export("printk", False, 4, None, "printk")],
        {"dup": 0xC1000010, "printk": 0xC1000020},
    )
    assert t.modules() == ["older", "newer"]
    # Kernel first: a module's printk never shadows the kernel's.
    assert t.find_export("printk", gpl_ok=True).module is None  # type: ignore[union-attr]
    # Modules newest first, syms then gpl_syms: newer's GPL dup for a GPL module ...
    assert _astuple(t.find_export("dup", gpl_ok=True)) == (
        "dup",
        0xC1000010,
        None,
        "newer",
        True,
        True,
        3,
        None,
    )
    # ... and older's plain dup for a proprietary one.
    assert _astuple(t.find_export("dup", gpl_ok=False)) == (
        "dup",
        0xC0000010,
        None,
        "older",
        True,
        False,
        1,
        None,
    )
    # The address is the pointed-at symbol's; the namespace is kept.
    assert _astuple(t.find_export("older_gpl", gpl_ok=True)) == (
        "older_gpl", 0xC0000020, None, "older", True, True, 2, "NS_A",
    )  # fmt: skip
    assert t.find_export("older_gpl", gpl_ok=False) is None
    # exports(): the search order.
    order = [(s.module, s.name) for s in t.exports()]
    assert order == [
        (None, "dual"), (None, "jiffies"), (None, "printk"), (None, "gpl_only_fn"), (None, "ns_fn"),
        ("newer", "printk"), ("newer", "dup"),
        ("older", "dup"), ("older", "older_gpl"),
    ]  # fmt: skip
    # Unloading newer uncovers older's dup for GPL users too.
    assert t.remove_module("newer") and not t.remove_module("newer")
    assert t.find_export("dup", gpl_ok=True).module == "older"  # type: ignore[union-attr]


def test_kernel_gpl_before_module_plain() -> None:
    """The kernel's __ksymtab_gpl is searched before any module, but only for GPL users."""
    t = _core()
    t.add_module_exports("m", [Export("gpl_only_fn", False, 9, None, None)])
    assert t.find_export("gpl_only_fn", gpl_ok=True).module is None  # type: ignore[union-attr]
    assert t.find_export("gpl_only_fn", gpl_ok=False).module == "m"  # type: ignore[union-attr]
    assert t.find_export("gpl_only_fn", gpl_ok=False).address is None  # type: ignore[union-attr]


def test_reject_duplicates() -> None:
    t = _core()
    with pytest.raises(LkmError, match=r"^a: exports duplicate symbol gpl_only_fn \(owned by kernel\)$"):
        t.add_module_exports(
            "a",
            [Export("new_fn", False, None, None, None), Export("gpl_only_fn", False, 0, None, None)],
            reject_duplicates=True,
        )
    assert t.modules() == []  # nothing added
    t.add_module_exports("a", [Export("new_fn", False, None, None, None)], reject_duplicates=True)
    with pytest.raises(LkmError, match=r"^b: exports duplicate symbol new_fn \(owned by a\)$"):
        t.add_module_exports("b", [Export("new_fn", True, None, None, None)], reject_duplicates=True)
    # Re-adding a module's own exports is not a duplicate.
    t.add_module_exports(
        "a", [Export("new_fn", False, 5, None, None)], {"new_fn": 0x10}, reject_duplicates=True
    )
    assert _astuple(t.find_export("new_fn", gpl_ok=False)) == (
        "new_fn",
        0x10,
        None,
        "a",
        True,
        False,
        5,
        None,
    )


def test_kernel_symbols_as_module_exports() -> None:
    t = SymbolTable()
    t.add_module_exports("m", [KernelSymbol("x", None, "T", None, False, True, 7, "N")], {"x": 0x99})
    assert _astuple(t.find_export("x", gpl_ok=True)) == ("x", 0x99, "T", "m", True, True, 7, "N")


# -- files and modules from sources ----------------------------------------------------------


def test_from_files(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "ffffffff81000200 T printk\n"
        "ffffffffc0200000 T new_fn\t[newest]\n"
        "ffffffffc0200010 t new_local\t[newest]\n"
        "ffffffffc0100000 T dup\t[oldest]\n"
        "ffffffffc0200020 T dup\t[newest]\n"
    )
    symvers = tmp_path / "Module.symvers"
    symvers.write_text(SYMVERS)
    t = SymbolTable.from_files(kallsyms, symvers)
    assert t.modules() == ["oldest", "newest"]  # /proc/kallsyms lists the newest first
    assert t.find_export("dup", gpl_ok=False).module == "newest"  # type: ignore[union-attr]
    assert t.find_export("new_local", gpl_ok=True) is None
    assert t.find_export("mod_fn", gpl_ok=True) is None  # built module, not loaded
    assert t.lookup("printk").crc == 0x11111111  # type: ignore[union-attr]
    t2 = SymbolTable.from_files(symvers, symvers_modules=True)
    assert t2.find_export("mod_fn", gpl_ok=False).module == "drivers/foo/foo"  # type: ignore[union-attr]
    assert t2.lookup("mod_fn", module="drivers/foo/foo").crc == 0x66666666  # type: ignore[union-attr]


def test_len_iter_repr() -> None:
    t = SymbolTable()
    assert len(t) == 0 and list(t) == [] and t.exports() == [] and t.by_address(5) is None
    t.add(parse_kallsyms("0000000000001000 T a\n0000000000002000 t b\t[m]\n"))
    t.add_module_exports("n", [Export("c", False, None, None, None)])
    assert len(t) == 3 and [(s.name, s.module) for s in t] == [("a", None), ("b", "m"), ("c", "n")]
    assert "1 core symbols, 2 modules" in repr(t)


# -- by_address ------------------------------------------------------------------------------


def test_by_address() -> None:
    t = SymbolTable(parse_system_map(SYSTEM_MAP))
    t.add_module_exports("m", [Export("mod_fn", False, None, None, None)], {"mod_fn": 0xFFFFFFFFC0000000})
    assert t.by_address(0xFFFFFFFF80FFFFFF) is None
    assert t.by_address(0xFFFFFFFF81000000).name == "_stext"  # type: ignore[union-attr]
    assert t.by_address(0xFFFFFFFF810002FF).name == "printk"  # type: ignore[union-attr]
    assert t.by_address(0xFFFFFFFF81000750).address == 0xFFFFFFFF81000700  # type: ignore[union-attr]
    assert t.by_address(0xFFFFFFFFC0000123).module == "m"  # type: ignore[union-attr]
    assert t.by_address((1 << 64) - 1).name == "mod_fn"  # type: ignore[union-attr]


def test_by_address_aliases_first_in_source_order() -> None:
    t = SymbolTable(parse_kallsyms("0000000000001000 T b_second\n0000000000001000 T a_first\n"))
    t.add(parse_kallsyms("0000000000000fff T a\n0000000000001000 T z\n0000000000001000 t m\t[m]\n"))
    assert t.by_address(0x1000).name == "b_second"  # type: ignore[union-attr]
    assert t.by_address(0x1001).name == "b_second"  # type: ignore[union-attr]
    assert t.by_address(0xFFF).name == "a"  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    addrs=st.lists(st.one_of(st.none(), st.integers(0, 64)), min_size=0, max_size=30),
    probes=st.lists(st.integers(-1, 70), min_size=1, max_size=10),
)
def test_by_address_brute_force(addrs: list[int | None], probes: list[int]) -> None:
    syms = [KernelSymbol(f"s{i}", a, "T") for i, a in enumerate(addrs)]
    t = SymbolTable(syms)
    if t.addresses_hidden:
        return
    for p in probes:
        below = [s for s in syms if s.address is not None and s.address <= p]
        want = None
        if below:
            top = max(s.address for s in below)  # type: ignore[type-var]
            want = next(s for s in syms if s.address == top)
        assert t.by_address(p) is want or _astuple(t.by_address(p)) == _astuple(want)


# -- a distribution-sized table --------------------------------------------------------------


def test_large_table_speed() -> None:
    """150 000 kallsyms lines into a table, looked up; times printed, not asserted."""
    lines = []
    for i in range(120_000):
        lines.append(
            f"{0xFFFFFFFF81000000 + 16 * i:016x} {'Tt'[i % 2]} {'dup' if i % 1000 == 1 else f'k{i}'}"
        )
    for i in range(30_000):
        lines.append(f"{0xFFFFFFFFC0000000 + 16 * i:016x} T m{i}\t[mod{i // 300}]")
    text = "\n".join(lines) + "\n"
    t0 = time.perf_counter()
    syms = parse_kallsyms(text)
    t1 = time.perf_counter()
    table = SymbolTable()
    table.add(syms, newest_first=True)
    t2 = time.perf_counter()
    hit = table.by_address(0xFFFFFFFF81000000 + 16 * 5000 + 3)
    t3 = time.perf_counter()
    print(
        f"150000 lines: parse {1000 * (t1 - t0):.1f} ms, table {1000 * (t2 - t1):.1f} ms, "
        f"first by_address (sort) {1000 * (t3 - t2):.1f} ms",
        file=sys.stderr,
    )
    assert len(table) == 150_000 and len(table.modules()) == 100
    assert table.modules()[0] == "mod99" and table.modules()[-1] == "mod0"
    assert hit is not None and hit.name == "k5000"
    assert table.lookup("dup").address == 0xFFFFFFFF81000000 + 16 * 1  # type: ignore[union-attr]
    assert table.find_export("m29999", gpl_ok=False).module == "mod99"  # type: ignore[union-attr]

"""The symbol sources of lkm.symbols: System.map, /proc/kallsyms, 2.4 /proc/ksyms, Module.symvers
and a vmlinux's export tables.

Oracles, none of them lkm: text files written here from known tuples; Debian's Module.symvers
against the exports read from each module's own .ko (lkm.module, an independent path: tables and
relocations of the binary, not text); small vmlinux images assembled and linked here by gcc/ld,
their expectations from the assembly source and their addresses from binutils' nm; the real
vmlinux inside the corpus's bzImages against Module.symvers (amd64) and against the CRCs the
i386 modules were built with (__versions).
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path

import pytest

from lkm.errors import LkmError
from lkm.symbols.sources import (
    addresses_hidden,
    detect_format,
    format_kallsyms,
    load,
    parse_kallsyms,
    parse_ksyms,
    parse_module_symvers,
    parse_system_map,
    split_versioned_name,
    version_prefix,
)
from lkm.symbols.table import KernelSymbol
from lkm.symbols.vmlinux import parse_vmlinux

from support import FIX6, require

# -- System.map ------------------------------------------------------------------------------

SYSTEM_MAP = [
    (0x0000000000000000, "D", "__per_cpu_start"),
    (0xFFFFFFFF81000000, "T", "_stext"),
    (0xFFFFFFFF81000000, "T", "startup_64"),
    (0xFFFFFFFF81001230, "t", "init_once"),
    (0xFFFFFFFF81001240, "T", "printk"),
    (0xFFFFFFFF82000000, "R", "__start___ksymtab"),
    (0xFFFFFFFF83000000, "b", "init_once"),
    (0xFFFFFFFF83000010, "B", "__bss_stop"),
]


def _map_text(rows: list[tuple[int, str, str]]) -> str:
    return "".join(f"{a:016x} {t} {n}\n" for a, t, n in rows)


def test_system_map() -> None:
    syms = parse_system_map(_map_text(SYSTEM_MAP))
    assert [(s.address, s.type, s.name) for s in syms] == SYSTEM_MAP
    assert all(s.module is None and not s.exported and s.crc is None for s in syms)
    # bytes, no final newline, an empty line, upper-case hex: the same symbols
    text = _map_text(SYSTEM_MAP).upper().replace(" D __PER_CPU_START", " D __per_cpu_start")
    assert parse_system_map(text.encode()[:-1]) == parse_system_map(text)
    assert len(parse_system_map("\n" + _map_text(SYSTEM_MAP[:2]) + "\n")) == 2
    assert parse_system_map("") == []


@pytest.mark.parametrize(
    ("lines", "bad_line"),
    [
        (["ffffffff81000000 T _stext", "ffffffff81000010 printk"], 2),  # no type letter
        (["ffffffff81000000 T _stext", "ffffffff81000010 TT printk"], 2),  # two-letter type
        (["zzzz T x"], 1),  # not hex
        (["ffffffff81000000 T _stext", "", "ffffffff81000000  T double_space"], 3),
        (["ffffffff81000000 T _stext", "ffffffff81000000 T two words"], 2),
        (["ffffffff81000000 T _stext", "ffffffff81000000 T name\t[mod]"], 2),  # module column
        (["ffffffff81000000 T _stext ", "x"], 1),  # trailing blank
        (["ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package"], 1),
    ],
)
def test_system_map_malformed(lines: list[str], bad_line: int) -> None:
    with pytest.raises(LkmError) as info:
        parse_system_map("\n".join(lines) + "\n", path="/boot/System.map-x")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("/boot/System.map-x: System.map line ")
    assert f" line {bad_line}: " in msg, msg


@pytest.mark.corpus
def test_corpus_system_map_is_debians_placeholder(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """Debian's linux-image packages ship a one-line System.map saying where the real one is:
    it is refused with a one-line error that quotes it, not read as a symbol."""
    tree = next((t for t in corpus_trees if t.system_map is not None and t.system_map.exists()), None)
    require(tree, "no corpus tree with a System.map")
    assert tree is not None and tree.system_map is not None
    data = tree.system_map.read_bytes()
    require(data.count(b"\n") <= 1, "this System.map is a real one")
    with pytest.raises(LkmError, match=r"System\.map line 1: malformed line .*dbg package") as info:
        load(tree.system_map)
    assert str(tree.system_map) in str(info.value)


# -- /proc/kallsyms --------------------------------------------------------------------------

KALLSYMS = [
    (0xFFFFFFFF81000000, "T", "_stext", None),
    (0xFFFFFFFF81000000, "T", "startup_64", None),
    (0xFFFFFFFF81001240, "t", "init_once", None),
    (0xFFFFFFFF81001250, "T", "init_once", None),
    (0xFFFFFFFFC0A01000, "t", "newer_init", "newer"),
    (0xFFFFFFFFC0A01010, "T", "newer_export", "newer"),
    (0xFFFFFFFFC0A01020, "d", "newer_data", "newer"),
    (0xFFFFFFFFC0900000, "T", "older_export", "older"),
    (0xFFFFFFFFC0900010, "t", "older_gpl_export_looks_local", "older"),
    (0xFFFFFFFFC0000000, "t", "bpf_prog_6deef7357e7b4530", "bpf"),
]


def _kallsyms_text(rows: list[tuple[int, str, str, str | None]], width: int = 16) -> str:
    return "".join(f"{a:0{width}x} {t} {n}" + (f"\t[{m}]" if m else "") + "\n" for a, t, n, m in rows)


def test_kallsyms() -> None:
    syms = parse_kallsyms(_kallsyms_text(KALLSYMS))
    assert [(s.address, s.type, s.name, s.module) for s in syms] == KALLSYMS
    # Module symbols: upper case = exported through the module's non-GPL __ksymtab.
    assert [s.name for s in syms if s.exported] == ["newer_export", "older_export"]
    assert not any(s.gpl_only or s.crc is not None or s.namespace for s in syms)
    assert not addresses_hidden(syms)


def test_kallsyms_core_lines_after_module_lines() -> None:
    rows = [*KALLSYMS[4:6], *KALLSYMS[:4], *KALLSYMS[6:]]
    syms = parse_kallsyms(_kallsyms_text(rows))
    assert [(s.address, s.type, s.name, s.module) for s in syms] == rows


def test_kallsyms_unprivileged_zero_addresses() -> None:
    rows = [(0, t, n, m) for _a, t, n, m in KALLSYMS]
    syms = parse_kallsyms(_kallsyms_text(rows))
    assert [(s.address, s.type, s.name, s.module) for s in syms] == rows  # kept as read
    assert addresses_hidden(syms)


@pytest.mark.parametrize(
    ("lines", "bad_line"),
    [
        (["ffffffff81000000 T a", "ffffffffc0000000 t b\t[mod"], 2),
        (["ffffffff81000000 T a", "ffffffffc0000000 t b\t[]"], 2),
        (["ffffffff81000000 T a", "ffffffffc0000000 t b [mod]"], 2),
        (["ffffffff81000000 T a", "ffffffffc0000000 t b\t[mod]", "ffffffffc0000000 t c\t[m d]"], 3),
        (["ffffffff81000000 T a", "ffffffff81000000 T b", "ffffffff81000000\tT c"], 3),
    ],
)
def test_kallsyms_malformed(lines: list[str], bad_line: int) -> None:
    with pytest.raises(LkmError) as info:
        parse_kallsyms("\n".join(lines) + "\n", path="k.txt")
    msg = str(info.value)
    assert msg.startswith(f"k.txt: kallsyms line {bad_line}: malformed line"), msg
    assert "\n" not in msg


def test_format_kallsyms_round_trip() -> None:
    text = _kallsyms_text(KALLSYMS)
    syms = parse_kallsyms(text)
    assert format_kallsyms(syms) == text
    rows32 = [(0xC1000000 + i, t, n, m) for i, (_a, t, n, m) in enumerate(KALLSYMS)]
    text32 = _kallsyms_text(rows32, width=8)
    assert format_kallsyms(parse_kallsyms(text32), bits=32) == text32
    assert format_kallsyms([KernelSymbol("x")]) == "0000000000000000 ? x\n"
    with pytest.raises(LkmError):
        format_kallsyms([], bits=16)


def test_kallsyms_parse_speed() -> None:
    """A distribution kernel's /proc/kallsyms has ~150 000 lines: generated here (core lines
    with duplicated local names, then modules), parsed and counted.  The time is printed, not
    asserted (speed is checked by benchmarks)."""
    rows = []
    addr = 0xFFFFFFFF81000000
    for i in range(120_000):
        addr += 16 + i % 97
        rows.append(f"{addr:016x} {'TtDdRrBb'[i % 8]} {'init_once' if i % 50 == 0 else f'sym_{i}'}")
    for m in range(200):
        for j in range(150):
            addr += 32
            rows.append(f"{addr:016x} {'tT'[j % 2]} mod{m}_fn{j}\t[mod{m}]")
    data = ("\n".join(rows) + "\n").encode()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        syms = parse_kallsyms(data)
        best = min(best, time.perf_counter() - t0)
    print(f"parse_kallsyms: {len(rows)} lines in {best * 1000:.1f} ms", file=sys.stderr)
    assert len(syms) == 150_000
    assert syms[-1].module == "mod199" and syms[-1].name == "mod199_fn149" and syms[-1].exported
    a, t, n = rows[50].split(" ")
    assert (
        (syms[50].address, syms[50].type, syms[50].name)
        == (int(a, 16), t, n)
        == (int(a, 16), "D", "init_once")
    )


# -- 2.4 /proc/ksyms -------------------------------------------------------------------------


def test_ksyms_versioned_smp() -> None:
    """An SMP 2.4 kernel with modversions: the prefix comes from inter_module_get_R<prefix><crc>."""
    text = (
        "c0119bd0 inter_module_get_Rsmp_1b7e2f1c\n"
        "c0114370 printk_Rsmp_1b7d4074\n"
        "c01b8e60 GPLONLY_usb_register_Rsmp_aa22bb33\n"
        "c0120000 plain_name\n"
        "c0120010 looks_R12345678\n"  # no smp_ after _R: not this kernel's suffix
        "d0812000 ext2_fs_sym_Rsmp_0badc0de\t[ext2]\n"
        "d0812010 GPLONLY_snd_card_new_Rsmp_cafef00d\t[snd]\n"
    )
    syms = parse_ksyms(text, path="/proc/ksyms")
    got = [(s.address, s.name, s.module, s.gpl_only, s.crc) for s in syms]
    assert got == [
        (0xC0119BD0, "inter_module_get", None, False, 0x1B7E2F1C),
        (0xC0114370, "printk", None, False, 0x1B7D4074),
        (0xC01B8E60, "usb_register", None, True, 0xAA22BB33),
        (0xC0120000, "plain_name", None, False, None),
        (0xC0120010, "looks_R12345678", None, False, None),
        (0xD0812000, "ext2_fs_sym", "ext2", False, 0x0BADC0DE),
        (0xD0812010, "snd_card_new", "snd", True, 0xCAFEF00D),
    ]
    assert all(s.exported and s.type is None and s.namespace is None for s in syms)


def test_ksyms_versioned_up_and_unversioned() -> None:
    up = "c0119bd0 get_module_symbol_R8a3e2f1c\nc0114370 printk_R1b7d4074\nc0114380 printk_Rsmp_1b7d4074\n"
    assert [(s.name, s.crc) for s in parse_ksyms(up)] == [
        ("get_module_symbol", 0x8A3E2F1C),
        ("printk", 0x1B7D4074),
        ("printk_Rsmp_1b7d4074", None),  # prefix "" (from get_module_symbol_R...): not a suffix
    ]
    plain = "c0114370 printk\nc0114380 GPLONLY_x\n"
    assert [(s.name, s.crc, s.gpl_only) for s in parse_ksyms(plain)] == [
        ("printk", None, False),
        ("x", None, True),
    ]
    # No well-known symbol: "" and "smp_" both recognised, as modutils falls back on uname.
    guess = parse_ksyms("c1 a_R0000abcd\nc2 b_Rsmp_0000abcd\nc3 c_Rxyz_12345678\n")
    assert [(s.name, s.crc) for s in guess] == [
        ("a", 0xABCD),
        ("b", 0xABCD),
        ("c_Rxyz_12345678", None),
    ]
    # An explicit prefix wins.
    assert [(s.name, s.crc) for s in parse_ksyms("c1 a_Rbig_0000abcd\n", prefix="big_")] == [("a", 0xABCD)]


def test_version_helpers() -> None:
    assert version_prefix(["x", "inter_module_get_Rsmp_1b7e2f1c"]) == "smp_"
    assert version_prefix(["get_module_symbol_R8a3e2f1c"]) == ""
    assert version_prefix(["inter_module_get"]) is None
    assert version_prefix(["inter_module_get_Rsmp_zzzzzzzz"]) is None
    assert split_versioned_name("printk_R1B7D4074") == ("printk", 0x1B7D4074)
    assert split_versioned_name("printk_R1b7d407") == ("printk_R1b7d407", None)
    assert split_versioned_name("_R1b7d4074") == ("_R1b7d4074", None)  # nothing before the suffix


@pytest.mark.parametrize(
    ("text", "bad_line"),
    [
        ("c0114370 printk\nc0114370 T printk\n", 2),  # System.map-style line
        ("c0114370 printk\nc0114370\n", 2),
        ("c0114370 printk\tmod\n", 1),
        ("0xc0114370 printk\n", 1),
    ],
)
def test_ksyms_malformed(text: str, bad_line: int) -> None:
    with pytest.raises(LkmError, match=rf"^ksyms: ksyms line {bad_line}: malformed line"):
        parse_ksyms(text, path="ksyms")


# -- Module.symvers --------------------------------------------------------------------------


def test_module_symvers_layouts() -> None:
    new = (
        "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n"
        "0x039823de\tinit_uts_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t\n"
        "0x12345678\tcxl_probe\tdrivers/cxl/cxl_core\tEXPORT_SYMBOL_GPL\tCXL\n"
        "0x00000000\tfuture\tvmlinux\tEXPORT_SYMBOL_GPL_FUTURE\t\n"
    )
    rows = [(s.crc, s.name, s.module, s.gpl_only, s.namespace) for s in parse_module_symvers(new)]
    assert rows == [
        (0x4C9D28B0, "phys_base", None, False, None),
        (0x039823DE, "init_uts_ns", None, True, None),
        (0x12345678, "cxl_probe", "drivers/cxl/cxl_core", True, "CXL"),
        (0, "future", None, False, None),
    ]
    old54 = "0x12345678\tcxl_probe\tCXL\tdrivers/cxl/cxl_core\tEXPORT_SYMBOL_GPL\n"
    assert [(s.name, s.module, s.gpl_only, s.namespace) for s in parse_module_symvers(old54)] == [
        ("cxl_probe", "drivers/cxl/cxl_core", True, "CXL")
    ]
    four = (
        "0xdeadbeef\tprintk\tvmlinux\tEXPORT_SYMBOL\n"
        "0x1\tusb_x\tdrivers/usb/core/usbcore\tEXPORT_UNUSED_SYMBOL_GPL"  # no final newline
    )
    assert [(s.crc, s.name, s.module, s.gpl_only) for s in parse_module_symvers(four)] == [
        (0xDEADBEEF, "printk", None, False),
        (1, "usb_x", "drivers/usb/core/usbcore", True),
    ]
    three = "0x00000000\tprintk\tvmlinux\n"
    got3 = [(s.name, s.gpl_only, s.exported) for s in parse_module_symvers(three)]
    assert got3 == [("printk", False, True)]
    assert all(s.address is None and s.type is None for s in parse_module_symvers(new + old54 + three))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t", "CRC '4c9d28b0' is not 0x<hex>"),
        ("0xzz\tphys_base\tvmlinux\tEXPORT_SYMBOL\t", "CRC '0xzz' is not 0x<hex>"),
        ("0x1\tphys_base\tvmlinux\tEXPORT_SYMBOL_WEIRD", "unknown export type 'EXPORT_SYMBOL_WEIRD'"),
        ("0x1\tphys_base\tvmlinux\tEXPORT_SYMBOL_WEIRD\t", "no EXPORT_\\* column"),
        ("0x1 phys_base vmlinux EXPORT_SYMBOL", "1 tab-separated columns"),
        ("0x1\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\textra", "6 tab-separated columns"),
        ("0x1\t\tvmlinux\tEXPORT_SYMBOL\t", "empty symbol or module column"),
    ],
)
def test_module_symvers_malformed(line: str, reason: str) -> None:
    text = "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n\n" + line + "\n"
    with pytest.raises(LkmError, match=rf"^M\.symvers: Module\.symvers line 3: {reason}") as info:
        parse_module_symvers(text, path="M.symvers")
    assert "\n" not in str(info.value)


def _symvers_pairs(corpus_trees, tree_name: str, headers_name: str):  # type: ignore[no-untyped-def]
    from testing.corpus import load_headers

    tree = next((t for t in corpus_trees if t.name == tree_name), None)
    require(tree, f"corpus tree {tree_name} missing")
    headers = next((h for h in load_headers() if h.name == headers_name), None)
    require(headers is not None and headers.module_symvers.exists(), f"{headers_name} Module.symvers missing")
    assert tree is not None and headers is not None
    require(headers.release == tree.release, f"{headers_name} is {headers.release}, tree is {tree.release}")
    return tree, headers


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("tree_name", "headers_name"), [("amd64-6.1", "headers-6.1"), ("amd64-6.12", "headers-6.12")]
)
def test_corpus_module_symvers_against_ko_exports(corpus_trees, tree_name: str, headers_name: str) -> None:  # type: ignore[no-untyped-def]
    """Every row of Debian's Module.symvers is read (one symbol a line), and every module row is
    exactly what the module's own .ko exports (name, CRC, GPL-only, namespace)."""
    from lkm.module import ModuleFile
    from testing.corpus import module_files

    tree, headers = _symvers_pairs(corpus_trees, tree_name, headers_name)
    data = headers.module_symvers.read_bytes()
    syms = load(headers.module_symvers)
    assert len(syms) == data.count(b"\n") > 20000
    assert all(s.exported and s.crc is not None for s in syms)
    by_module: dict[str | None, set[tuple[str, int | None, bool, str | None]]] = defaultdict(set)
    for s in syms:
        by_module[s.module].add((s.name, s.crc, s.gpl_only, s.namespace))
    assert len(by_module[None]) > 10000  # vmlinux rows
    kernel_dir = tree.modules_dir / "kernel"
    files = {}
    for path in module_files(tree):
        rel = str(path.relative_to(kernel_dir))
        files[rel[: rel.index(".ko")]] = path
    bad = []
    modules = 0
    for module, rows in by_module.items():
        if module is None:
            continue
        assert module in files, f"{module}: in Module.symvers, no .ko in {tree.name}"
        with ModuleFile.open(files[module]) as m:
            ours = {(e.name, e.crc, e.gpl, e.namespace) for e in m.exports}
        modules += 1
        if ours != rows:
            bad.append(f"{module}: only .ko {sorted(ours - rows)[:3]} only symvers {sorted(rows - ours)[:3]}")
    print(f"{headers_name}: {len(syms)} rows, {modules} modules checked against their .ko", file=sys.stderr)
    assert modules > 500
    assert not bad, bad[:5]


# -- detect_format / load ----------------------------------------------------------------------


def test_detect_and_load(tmp_path: Path) -> None:
    files = {
        "System.map-6.1.0": (_map_text(SYSTEM_MAP), "system.map"),
        "kallsyms": (_kallsyms_text(KALLSYMS[:4]), "kallsyms"),  # core only: told by its name
        "syms.txt": (_kallsyms_text(KALLSYMS), "kallsyms"),  # module lines
        "core.txt": (_kallsyms_text(KALLSYMS[:4]), "system.map"),
        "ksyms": ("c0114370 printk_R1b7d4074\nd0812000 x\t[m]\n", "ksyms"),
        "Module.symvers": ("0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n", "module.symvers"),
    }
    for name, (text, fmt) in files.items():
        p = tmp_path / name
        p.write_text(text)
        assert detect_format(p.read_bytes(), path=p) == fmt, name
        assert load(p) == {
            "system.map": parse_system_map,
            "kallsyms": parse_kallsyms,
            "ksyms": parse_ksyms,
            "module.symvers": parse_module_symvers,
        }[fmt](text)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(LkmError, match="empty file"):
        load(tmp_path / "empty")
    (tmp_path / "junk").write_text("hello world, this is not a symbol file\n")
    with pytest.raises(LkmError, match="unrecognised symbol file format"):
        load(tmp_path / "junk")
    with pytest.raises(LkmError, match=r"^.*missing: No such file"):
        load(tmp_path / "missing")
    # A format given overrides sniffing; a wrong one fails on the first line.
    with pytest.raises(LkmError, match=r"Module\.symvers line 1"):
        load(tmp_path / "ksyms", format="module.symvers")


# -- vmlinux: assembled here -------------------------------------------------------------------

# (name, kind, section, crc, namespace); namespace None: namespace field 0 ("none" in 6.x),
# "" an empty string (what 6.1's EXPORT_SYMBOL emits), else a namespace.
VMLINUX_EXPORTS = [
    ("vprintk", "func", "__ksymtab", 0x11111111, ""),
    ("printk", "func", "__ksymtab", 0x22222222, ""),  # "printk" shares "vprintk"'s bytes
    ("jiffies", "data", "__ksymtab", 0x33333333, None),
    ("usb_register_driver", "func", "__ksymtab_gpl", 0x44444444, "USB_STORAGE"),
    ("gpl_var", "data", "__ksymtab_gpl", 0x55555555, ""),
    ("cxl_probe", "func", "__ksymtab_gpl", 0x66666666, "CXL"),
]


def _tools() -> None:
    require(shutil.which("gcc") and shutil.which("ld") and shutil.which("nm"), "gcc, ld and nm are needed")


def _vmlinux_asm(prel: bool) -> str:
    out = ["\t.text"]
    for name, kind, *_ in VMLINUX_EXPORTS:
        if kind == "func":
            out += [f"\t.globl {name}", f"{name}:", "\tnop", "\tret"]
    out.append("\t.data")
    for name, kind, *_ in VMLINUX_EXPORTS:
        if kind == "data":
            out += [f"\t.globl {name}", f"{name}:", "\t.quad 0"]
    out.append('\t.section __ksymtab_strings,"aMS",@progbits,1')
    for name, *_r, ns in VMLINUX_EXPORTS:
        out += [f"__kstrtab_{name}:", f'\t.asciz "{name}"']
        if ns is not None:
            out += [f"__kstrtabns_{name}:", f'\t.asciz "{ns}"']
    for section in ("__ksymtab", "__ksymtab_gpl"):
        out += [f'\t.section {section},"a"', f"\t.balign {4 if prel else 8}"]
        for name, _kind, sec, _crc, ns in VMLINUX_EXPORTS:
            if sec != section:
                continue
            fields = [name, f"__kstrtab_{name}", f"__kstrtabns_{name}" if ns is not None else None]
            for f in fields:
                if prel:
                    out.append(f"\t.long {f} - ." if f else "\t.long 0")
                else:
                    out.append(f"\t.quad {f or 0}")
        out += [f'\t.section {section.replace("ksymtab", "kcrctab")},"a"', "\t.balign 4"]
        out += [f"\t.long {crc:#x}" for _n, _k, sec, crc, _ns in VMLINUX_EXPORTS if sec == section]
    return "\n".join(out) + "\n"


def _link(tmp_path: Path, asm: str, *, m32: bool = False) -> tuple[bytes, dict[str, int]]:
    """gcc -c, then ld to a static ET_EXEC; the file and nm's addresses."""
    src, obj, exe = tmp_path / "vmlinux.s", tmp_path / "vmlinux.o", tmp_path / "vmlinux"
    src.write_text(asm)
    cc = ["gcc", "-c", *(["-m32"] if m32 else []), str(src), "-o", str(obj)]
    ld = ["ld", "-static", *(["-m", "elf_i386"] if m32 else []), "-e", "0", "-o", str(exe), str(obj)]
    for cmd in (cc, ld):
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        require(r.returncode == 0, f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    nm = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in nm.splitlines()]
    addrs = {r[2]: int(r[0], 16) for r in rows if len(r) == 3}
    return exe.read_bytes(), addrs


@pytest.mark.oracle
@pytest.mark.parametrize("prel", [True, False], ids=["prel32", "absolute64"])
def test_vmlinux_assembled(tmp_path: Path, prel: bool) -> None:
    _tools()
    data, nm = _link(tmp_path, _vmlinux_asm(prel))
    got = parse_vmlinux(data, path="vmlinux")
    want = [
        KernelSymbol(name, nm[name], None, None, True, sec == "__ksymtab_gpl", crc, ns or None)
        for name, _k, sec, crc, ns in VMLINUX_EXPORTS
    ]
    assert got == want
    assert nm["__kstrtab_printk"] == nm["__kstrtab_vprintk"] + 1  # ld merged the tails


@pytest.mark.oracle
def test_vmlinux_24_style(tmp_path: Path) -> None:
    """A 2.4 i386 kernel: __ksymtab {value, name} absolute pointers, names in .kstrtab,
    GPLONLY_ prefixes and modversions suffixes in the names, no __kcrctab."""
    _tools()
    table = [
        ("printk", "printk_R1b7d4074", False, 0x1B7D4074),
        ("inter_module_get", "inter_module_get_R1b7e2f1c", False, 0x1B7E2F1C),
        ("usb_register", "GPLONLY_usb_register_Raa22bb33", True, 0xAA22BB33),
    ]
    asm = ["\t.text"]
    for name, *_ in table:
        asm += [f"\t.globl {name}", f"{name}:", "\tret"]
    asm.append('\t.section .kstrtab,"a"')
    for name, string, *_ in table:
        asm += [f"__kstrtab_{name}:", f'\t.asciz "{string}"']
    asm += ['\t.section __ksymtab,"a"', "\t.balign 4"]
    for name, *_ in table:
        asm += [f"\t.long {name}", f"\t.long __kstrtab_{name}"]
    data, nm = _link(tmp_path, "\n".join(asm) + "\n", m32=True)
    got = parse_vmlinux(data)
    assert got == [KernelSymbol(n, nm[n], None, None, True, gpl, crc, None) for n, _s, gpl, crc in table]


def test_vmlinux_refuses_a_module_and_garbage(tmp_path: Path) -> None:
    ko = next(p for p in sorted(FIX6.iterdir()) if p.name.endswith(".ko"))
    with pytest.raises(LkmError, match="not a linked kernel"):
        parse_vmlinux(ko.read_bytes(), path=str(ko))
    with pytest.raises(LkmError, match="bad magic"):
        parse_vmlinux(b"not an ELF file at all", path="x")


@pytest.mark.oracle
def test_vmlinux_names_outside_strings(tmp_path: Path) -> None:
    """A table whose name fields point nowhere under any layout: one-line error."""
    _tools()
    asm = (
        "\t.text\n\t.globl f\nf:\tret\n"
        '\t.section __ksymtab_strings,"aMS",@progbits,1\ns:\t.asciz "f"\n'
        '\t.section __ksymtab,"a"\n\t.long f - .\n\t.long f - .\n\t.long 0\n'
    )
    data, _nm = _link(tmp_path, asm)
    with pytest.raises(LkmError, match=r"^vml: cannot decode __ksymtab: .* land in __ksymtab_strings$"):
        parse_vmlinux(data, path="vml")


# -- vmlinux: the real kernels inside the corpus's bzImages --------------------------------------


def _bzimage_vmlinux(path: Path) -> bytes:
    """The ELF vmlinux that an x86 bzImage carries compressed (boot protocol >= 2.08:
    payload_offset/payload_length in the setup header), decompressed here by the standard
    library (or zstandard): independent of lkm."""
    data = path.read_bytes()
    require(data[0x202:0x206] == b"HdrS", f"{path.name} is not an x86 bzImage")
    setup_sects = data[0x1F1] or 4
    (version,) = struct.unpack_from("<H", data, 0x206)
    require(version >= 0x208, f"{path.name}: boot protocol {version:#x} has no payload fields")
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[(setup_sects + 1) * 512 + offset :][:length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        out = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        out = zlib.decompressobj(31).decompress(payload)
    else:
        require(False, f"{path.name}: payload compression {payload[:4].hex()} not handled by this test")
    require(out[:4] == b"\x7fELF", f"{path.name}: payload is not an ELF vmlinux")
    return out


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("tree_name", "headers_name"), [("amd64-6.1", "headers-6.1"), ("amd64-6.12", "headers-6.12")]
)
def test_corpus_vmlinux_exports_match_module_symvers(corpus_trees, tree_name: str, headers_name: str) -> None:  # type: ignore[no-untyped-def]
    tree, headers = _symvers_pairs(corpus_trees, tree_name, headers_name)
    require(tree.vmlinuz is not None and tree.vmlinuz.exists(), f"{tree_name} has no vmlinuz")
    vmlinux = _bzimage_vmlinux(tree.vmlinuz)
    t0 = time.perf_counter()
    ours = parse_vmlinux(vmlinux, path=f"{tree.vmlinuz}:vmlinux")
    took = time.perf_counter() - t0
    # The oracle: vmlinux rows of Module.symvers, split here by hand.
    want = set()
    for line in headers.module_symvers.read_text().splitlines():
        crc, name, module, kind, ns = line.split("\t")
        if module == "vmlinux":
            want.add((name, int(crc, 16), kind == "EXPORT_SYMBOL_GPL", ns or None))
    got = {(s.name, s.crc, s.gpl_only, s.namespace) for s in ours}
    print(f"{tree_name}: {len(ours)} vmlinux exports in {took * 1000:.1f} ms", file=sys.stderr)
    assert len(got) == len(ours) > 10000
    assert got == want, (sorted(got - want)[:5], sorted(want - got)[:5])
    # Each table sorted by name (the kernel bsearches them); addresses in the kernel's range.
    for gpl in (False, True):
        names = [s.name for s in ours if s.gpl_only is gpl]
        assert names == sorted(names)
    assert sum(0xFFFFFFFF80000000 <= s.address < 1 << 64 for s in ours if s.address) > 0.9 * len(ours)


@pytest.mark.corpus
def test_corpus_vmlinux_i386_crcs_match_modules(corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """32-bit PREL32: the i386 kernel's export CRCs equal those its modules were built against
    (their __versions), for every needed symbol the kernel exports."""
    from lkm.module import ModuleFile
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "i386-6.1"), None)
    have = tree is not None and tree.vmlinuz is not None and tree.vmlinuz.exists()
    require(have, "i386-6.1 vmlinuz missing")
    assert tree is not None and tree.vmlinuz is not None
    ours = parse_vmlinux(_bzimage_vmlinux(tree.vmlinuz))
    crc = {s.name: s.crc for s in ours}
    assert len(crc) == len(ours) > 8000
    assert all(s.address is not None and 0xC0000000 <= s.address < 1 << 32 for s in ours if s.address)
    checked = 0
    bad = []
    for path in module_files(tree):
        with ModuleFile.open(path) as m:
            for n in m.needed:
                if n.crc is not None and n.name in crc:
                    checked += 1
                    if crc[n.name] != n.crc:
                        bad.append((path.name, n.name, n.crc, crc[n.name]))
    print(f"i386-6.1: {len(ours)} exports, {checked} module CRCs checked", file=sys.stderr)
    assert checked > 50000
    assert not bad, bad[:5]

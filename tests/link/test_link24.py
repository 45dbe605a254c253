"""2.4 insmod linking checked against expectations derived here, independently of lkm's linker:
the object is read with pyelftools, every relocation recomputed from its own bytes and symbols
(REL: word + S, - P when pc-relative), the load order from the spec's priority rule, struct
module from the 2.4 field list, the ksymoops names from modutils' formats.  Addresses of the
object's sections are taken from the -m map, whose order and packing are checked first."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from lkm.link.insmod24 import KernelSymbols24, link_module_24
from lkm.link.output24 import format_load_map
from lkm.module import ModuleFile

from support import FIX24, KSYMS24, LINK24_BASE, LINK24_MTIME, insmod24_options

KERNEL = {line.split()[1]: int(line.split()[0], 16) for line in KSYMS24.splitlines()}
PC_RELATIVE = {"R_386_PC32", "R_386_PLT32"}
# 2.4.20 include/linux/module.h struct module, all 4-byte fields on i386
MODULE_FIELDS = [
    "size_of_struct", "next", "name", "size", "usecount", "flags", "nsyms", "ndeps", "syms", "deps", "refs",
    "init", "cleanup", "ex_table_start", "ex_table_end", "persist_start", "persist_end", "can_unload",
    "runsize", "kallsyms_start", "kallsyms_end", "archdata_start", "archdata_end", "kernel_data",
]  # fmt: skip


def link(path: Path, ksyms: str = KSYMS24, base: int = LINK24_BASE, **kw: object):  # type: ignore[no-untyped-def]
    mod = ModuleFile.open(path)
    return link_module_24(mod, KernelSymbols24.from_ksyms(ksyms), base, insmod24_options(path, **kw))


def parse_map(text: str) -> tuple[list[tuple[str, int, int, int]], list[tuple[int, str, str]]]:
    head, _, tail = text.partition("\nSymbols:\n")
    lines = head.splitlines()
    assert lines[0] == "Sections:       Size      Address   Align"
    secs = []
    for line in lines[1:]:
        if not line:
            continue
        name, size, addr, align = line[:15].rstrip(), line[16:24], line[26:34], line[36:]
        assert line[15] == " " and align.startswith("2**")
        secs.append((name, int(size, 16), int(addr, 16), 1 << int(align[3:])))
    syms = [(int(v, 16), t, n) for v, t, n in (line.split(" ", 2) for line in tail.splitlines())]
    return secs, syms


def prio(name: str, flags: int, nobits: bool) -> int:
    """The spec's load order priority (modutils-2.4.md)."""
    p = 0 if (len(name) == 10 and name.startswith(".") and name[5:] == ".init") else 64
    p |= 32 if flags & 2 else 0
    p |= 16 if flags & 4 else 0
    p |= 0 if flags & 1 else 8
    p |= 0 if nobits else 4
    p |= 2 if name == ".got" else 0
    return p


def elf_of(path: Path) -> ELFFile:
    return ELFFile(io.BytesIO(path.read_bytes()))


def expected_words(path: Path, addr: dict[str, int], sym_value: dict[str, int]) -> dict[int, int]:
    """address -> expected 32-bit word, for every relocation of an allocated section."""
    e = elf_of(path)
    symtab = e.get_section_by_name(".symtab")
    out = {}
    for rs in e.iter_sections():
        if not isinstance(rs, RelocationSection):
            continue
        target = e.get_section(rs["sh_info"])
        if not target["sh_flags"] & 2 or target.name not in addr:
            continue
        data = target.data()
        for r in rs.iter_relocations():
            y = symtab.get_symbol(r["r_info_sym"])
            if y["st_shndx"] == "SHN_UNDEF":
                s = sym_value[y.name]
            elif y["st_info"]["type"] == "STT_SECTION":
                s = addr[e.get_section(y["st_shndx"]).name]
            elif y["st_shndx"] == "SHN_COMMON":
                s = sym_value[y.name]
            else:
                s = addr[e.get_section(y["st_shndx"]).name] + y["st_value"]
            off = r["r_offset"]
            p = addr[target.name] + off
            a = struct.unpack_from("<I", data, off)[0]
            kind = {1: "R_386_32", 2: "R_386_PC32", 4: "R_386_PLT32"}[r["r_info_type"]]
            out[p] = (a + s - (p if kind in PC_RELATIVE else 0)) & 0xFFFFFFFF
    return out


FIXTURES = ["hello24.o", "chardev24.o", "fat24.o", "common24.o"]


@pytest.mark.parametrize("name", FIXTURES)
def test_layout_follows_the_load_order_rule(name: str) -> None:
    path = FIX24 / name
    img = link(path)
    secs, _ = parse_map(format_load_map(img))
    assert secs[0][0] == ".this" and secs[0][2] == LINK24_BASE and secs[0][1] == 96
    e = elf_of(path)
    original = [s for s in e.iter_sections() if s["sh_flags"] & 2 and s.name != ".modinfo"]
    created = [n for n, *_ in secs if n not in {s.name for s in original}]
    assert created[0] == ".this" and "__archdata" in created
    # Stable by descending priority: the object's sections in file order, then the sections
    # insmod created (with their own flags: .kstrtab/__ksymtab/__archdata read-only data).
    order = [(s.name, prio(s.name, s["sh_flags"], s["sh_type"] == "SHT_NOBITS")) for s in original]
    order += [(n, prio(n, 2, False)) for n in created[1:]]
    want = [".this"] + [n for n, _ in sorted(order, key=lambda t: -t[1])]
    assert [n for n, *_ in secs] == want
    end = LINK24_BASE
    for _name, size, addr, align in secs:  # packed: each at the end of the previous, aligned
        assert addr == (end + align - 1) // align * align
        end = addr + size
    assert end - LINK24_BASE == img.size == len(img.image)
    sizes = {s.name: s["sh_size"] for s in original}
    for n, size, *_ in secs:
        if n in sizes and n not in ("__ksymtab", ".kstrtab", ".bss"):
            assert size == sizes[n], n


@pytest.mark.parametrize("name", FIXTURES)
def test_relocations_and_struct_module(name: str) -> None:
    path = FIX24 / name
    img = link(path, autoclean=True)
    secs, syms = parse_map(format_load_map(img))
    addr = {n: a for n, _, a, _ in secs}
    blob = img.image
    values = dict(KERNEL)
    for v, _t, n in syms:
        values.setdefault(n, v)
    words = expected_words(path, addr, values)
    assert words
    for p, want in words.items():
        assert struct.unpack_from("<I", blob, p - LINK24_BASE)[0] == want, hex(p)
    m = dict(zip(MODULE_FIELDS, struct.unpack_from("<24I", blob, 0), strict=True))
    assert m["size_of_struct"] == 96 and m["size"] == len(blob) and m["flags"] == 4
    stem = name[:-2]
    assert blob[m["name"] - LINK24_BASE :].split(b"\0")[0] == stem.encode()
    e = elf_of(path)
    text = {y.name: y for y in e.get_section_by_name(".symtab").iter_symbols()}
    for field, sym in (("init", "init_module"), ("cleanup", "cleanup_module")):
        assert m[field] == addr[".text"] + text[sym]["st_value"]
    ksymtab = next(s for s in secs if s[0] == "__ksymtab")
    assert m["syms"] == ksymtab[2] and m["nsyms"] * 8 == ksymtab[1]
    entries = {}
    for k in range(m["nsyms"]):
        value, name_at = struct.unpack_from("<II", blob, m["syms"] - LINK24_BASE + 8 * k)
        entries[blob[name_at - LINK24_BASE :].split(b"\0")[0].decode()] = value
    path_o = f"/lib/modules/2.4.20/misc/{name}"
    assert entries[f"__insmod_{stem}_O{path_o}_M{LINK24_MTIME:08X}_V{2 << 16 | 4 << 8 | 20}"] == LINK24_BASE
    for sec in (".text", ".rodata", ".data", ".bss"):
        size = next((s[1] for s in secs if s[0] == sec), 0)
        key = f"__insmod_{stem}_S{sec}_L{size}"
        assert (key in entries) == bool(size), key
        if size:
            assert entries[key] == addr[sec]
    if name == "fat24.o":  # its own __ksymtab first, then the ksymoops entries
        assert entries["GPLONLY_fat24_dir_empty"] == addr[".text"] + text["fat24_dir_empty"]["st_value"]
        assert entries["fat24_cache_size"] == addr[".data"] + text["fat24_cache_size"]["st_value"]
    if name == "common24.o":  # no __ksymtab: every global exported (insmod -X)
        assert {"common24_counter", "common24_buffer", "common24_total"} <= set(entries)
        assert "init_module" not in entries and "printk" not in entries


def test_map_symbols_are_the_objects() -> None:
    path = FIX24 / "chardev24.o"
    img = link(path)
    secs, syms = parse_map(format_load_map(img))
    addr = {n: a for n, _, a, _ in secs}
    assert [v for v, _, _ in syms] == sorted(v for v, _, _ in syms)
    lines = {(v, t, n) for v, t, n in syms}
    e = elf_of(path)
    for y in e.get_section_by_name(".symtab").iter_symbols():
        if not y.name or y["st_shndx"] in ("SHN_UNDEF", "SHN_ABS"):
            continue
        sec = e.get_section(y["st_shndx"])
        if sec.name == ".modinfo":
            assert not any(n == y.name for _, _, n in syms)
            continue
        flags = sec["sh_flags"]
        letter = "T" if flags & 4 else "D" if flags & 1 else "R"  # .bss is PROGBITS by then
        local = y["st_info"]["bind"] == "STB_LOCAL" or y.name in ("init_module", "cleanup_module")
        assert (addr[sec.name] + y["st_value"], letter.lower() if local else letter, y.name) in lines
    assert (LINK24_BASE, "d", "__this_module") in lines


def test_commons_smallest_first_into_bss() -> None:
    path = FIX24 / "common24.o"
    img = link(path)
    secs, syms = parse_map(format_load_map(img))
    bss = next(s for s in secs if s[0] == ".bss")
    # .bss is empty in the object: counter (4 bytes, align 4) at 0, buffer (256, align 32) at 32
    assert bss[1] == 32 + 256 and bss[3] == 32
    val = {n: v for v, _, n in syms}
    assert val["common24_counter"] == bss[2] and val["common24_buffer"] == bss[2] + 32


def test_msdos_uses_fat_exports() -> None:
    fat = link(FIX24 / "fat24.o")
    fat_base = LINK24_BASE
    # fat24 as the kernel lists it: its __ksymtab read from the blob
    m = struct.unpack_from("<24I", fat.image, 0)
    nsyms, syms_at = m[6], m[8]
    fat_syms = []
    for k in range(nsyms):
        value, name_at = struct.unpack_from("<II", fat.image, syms_at - fat_base + 8 * k)
        fat_syms.append((fat.image[name_at - fat_base :].split(b"\0")[0].decode(), value))
    ksyms = "".join(f"{v:08x} {n}\t[fat24]\n" for n, v in fat_syms) + KSYMS24
    msdos_base = 0xC8810000
    img = link(FIX24 / "msdos24.o", ksyms, msdos_base)
    secs, syms = parse_map(format_load_map(img))
    addr = {n: a for n, _, a, _ in secs}
    values = dict(KERNEL) | dict(fat_syms)
    for v, _t, n in syms:
        values.setdefault(n, v)
    for p, want in expected_words(FIX24 / "msdos24.o", addr, values).items():
        assert struct.unpack_from("<I", img.image, p - msdos_base)[0] == want, hex(p)
    m2 = dict(zip(MODULE_FIELDS, struct.unpack_from("<24I", img.image, 0), strict=True))
    assert m2["ndeps"] == 1 and m2["deps"] == addr[".kmodtab"]
    dep, ref, nxt = struct.unpack_from("<III", img.image, addr[".kmodtab"] - msdos_base)
    assert (dep, ref, nxt) == (fat_base, msdos_base, 0)  # module_ref: fat24's struct module, ours
    assert img.deps == ["fat24"]


def patched(tmp_path: Path, name: str, old: bytes, new: bytes) -> Path:
    data = (FIX24 / name).read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    out = tmp_path / name
    out.write_bytes(data.replace(old, new))
    return out


def test_gplonly_only_for_gpl(tmp_path: Path) -> None:
    ksyms = KSYMS24.replace("c0118000 printk", "c0118000 GPLONLY_printk")
    img = link(FIX24 / "hello24.o", ksyms)
    assert img.resolved["printk"] == 0xC0118000
    bsd = patched(tmp_path, "hello24.o", b"license=GPL\0", b"license=BSD\0")
    from lkm.link.image import LinkError

    with pytest.raises(LinkError, match="unresolved symbol printk"):
        link(bsd, ksyms)


@pytest.mark.parametrize(
    ("ksyms_printk", "extra", "ok"),
    [
        ("printk_R1b7d4074", "00000001 Using_Versions\n", True),
        ("printk_Rsmp_1b7d4074", "00000001 Using_Versions\nc0100000 get_module_symbol_Rsmp_0badf00d\n", True),
        ("printk_R1b7d4074", "", False),  # neither side versioned: names compared exactly
    ],
)
def test_versioned_kernel_names(ksyms_printk: str, extra: str, ok: bool) -> None:
    from lkm.link.image import LinkError

    ksyms = extra + KSYMS24.replace("c0118000 printk", f"c0118000 {ksyms_printk}")
    if not ok:
        with pytest.raises(LinkError, match="unresolved symbol printk"):
            link(FIX24 / "hello24.o", ksyms)
        return
    img = link(FIX24 / "hello24.o", ksyms)
    assert img.resolved["printk"] == 0xC0118000
    words = expected_words(FIX24 / "hello24.o", {n: a for n, a, *_ in img.sections}, dict(KERNEL))
    for p, want in words.items():
        assert struct.unpack_from("<I", img.image, p - LINK24_BASE)[0] == want


def test_no_export_and_no_ksymoops() -> None:
    img = link(FIX24 / "common24.o", export=False, ksymoops=False)
    assert img.exports == [] and img.module["nsyms"] == 0
    names = {n for n, *_ in img.sections}
    assert "__ksymtab" not in names


def test_plan_then_link_as_create_module_does() -> None:
    """The model kernel's order: size first (create_module), then relocation at its address."""
    from lkm.link.insmod24 import plan_module_24

    path = FIX24 / "chardev24.o"
    plan = plan_module_24(ModuleFile.open(path), KernelSymbols24.from_ksyms(KSYMS24), insmod24_options(path))
    size = plan.size
    img = plan.link(0xD0000000)
    assert img.size == size == len(img.image) and img.module["size"] == size
    assert img.base == 0xD0000000 and img.sections[0][:2] == (".this", 0xD0000000)
    with pytest.raises(ValueError):
        plan.link(0xD0001000)
    from lkm.link.image import LinkError

    loaded = KernelSymbols24.from_ksyms(KSYMS24 + "d0000000 __insmod_chardev24_O/x_M0_V1\t[chardev24]\n")
    with pytest.raises(LinkError, match="a module named chardev24 already exists"):
        plan_module_24(ModuleFile.open(path), loaded, insmod24_options(path))


def test_map_lines_exact() -> None:
    img = link(FIX24 / "hello24.o")
    text = format_load_map(img)
    head = "Sections:       Size      Address   Align\n.this           00000060  c8800000  2**2\n"
    assert text.startswith(head)
    assert "\n\nSymbols:\n" in text and f"\n{LINK24_BASE:08x} d __this_module\n" in text
    assert "\n00000000 a hello24.c\n" in text  # the file symbol: absolute, local


def test_persist_symbol() -> None:
    from lkm.link.image import LinkError

    img = link(FIX24 / "hello24.o", persist="/var/lib/modules/persist/hello24")
    assert ("__insmod_hello24_P/var/lib/modules/persist/hello24", LINK24_BASE) in img.exports
    with pytest.raises(LinkError, match="Persistent filenames must be absolute"):
        link(FIX24 / "hello24.o", persist="persist/hello24")
    # fat24 has no persistent parameter: no _P symbol
    assert not any("_P" in n for n, _ in link(FIX24 / "fat24.o", persist="/p/fat24").exports)


def _elf_hash(name: bytes) -> int:
    """The System V ABI's ELF hash."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def test_export_all_in_hash_table_order() -> None:
    """Without __ksymtab insmod exports every global of a loaded section walking its 521-bucket
    ELF-hash table: bucket by bucket, the most recently added name first (the object's symbols
    in table order, then __this_module, then the ksymoops symbols)."""
    path = FIX24 / "common24.o"
    img = link(path)
    e = elf_of(path)
    symtab = e.get_section_by_name(".symtab")
    added = []
    exported = []
    for y in list(symtab.iter_symbols())[1:]:
        name = y.name or e.get_section(y["st_shndx"]).name
        added.append(name)
        hidden = name in ("init_module", "cleanup_module", "kernel_version")
        loaded = y["st_shndx"] == "SHN_COMMON" or (
            isinstance(y["st_shndx"], int) and e.get_section(y["st_shndx"])["sh_flags"] & 2
            and e.get_section(y["st_shndx"]).name != ".modinfo"
        )
        if y["st_info"]["bind"] != "STB_LOCAL" and not hidden and loaded:
            exported.append(name)
    secs = {n: s for n, _, s, _ in img.sections}
    ksymoops = [f"__insmod_common24_O/lib/modules/2.4.20/misc/common24.o_M{LINK24_MTIME:08X}_V{0x020414}"]
    for sec in (".text", ".rodata", ".data", ".bss"):
        if secs.get(sec):
            ksymoops.append(f"__insmod_common24_S{sec}_L{secs[sec]}")
    added += ["__this_module", *ksymoops]
    exported += ksymoops
    order = {n: i for i, n in enumerate(added)}
    want = sorted(exported, key=lambda n: (_elf_hash(n.encode()) % 521, -order[n]))
    assert [n for n, _ in img.exports] == want

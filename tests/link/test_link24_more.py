"""2.4 linking: the i386 GOT types insmod handled (on an object assembled here with GNU as),
the __kallsyms section, GNU ld as an oracle for the fixtures' bytes, and the CLI's errors."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from lkm.link.gnu_ld import ld_link, ld_section_name
from lkm.link.image import LinkError
from lkm.link.insmod24 import KernelSymbols24, link_module_24
from lkm.module import ModuleFile

from support import FIX24, lkm_cmd, require, run
from support import KSYMS24 as KSYMS
from support import LINK24_BASE as BASE
from support import insmod24_options as opts

# Each entry a word at offset 4*i of .text: (relocation type, symbol, word in the object).
# GLOB_DAT, JMP_SLOT and RELATIVE cannot be written with gas's .reloc for a relocatable
# object: they are assembled as R_386_32 and their type byte patched afterwards.
ENTRIES = [
    (4, "ext_func", 0xFFFFFFFC),  # PLT32
    (3, "ext_data", 0),  # GOT32: slot 0
    (3, "ext_func", 8),  # GOT32: slot 4
    (3, "ext_data", 0),  # GOT32 again: same slot
    (9, "local_data", 0),  # GOTOFF
    (10, "local_data", 2),  # GOTPC
    (6, "ext_data", 0x55),  # GLOB_DAT
    (7, "ext_func", 0x66),  # JMP_SLOT
    (8, "local_data", 0x10),  # RELATIVE
]
AS_NAMES = {4: "R_386_PLT32", 3: "R_386_GOT32", 9: "R_386_GOTOFF", 10: "R_386_GOTPC"}
EXT = {"ext_func": 0xC0123450, "ext_data": 0xC0200010}


def got_object(tmp_path: Path) -> Path:
    require(shutil.which("as"), "GNU as (binutils) missing")
    body = "".join(
        f"\t.reloc ., {AS_NAMES.get(t, 'R_386_32')}, {s}\n\t.long {w:#x}\n" for t, s, w in ENTRIES
    )
    src = (
        "\t.text\n\t.globl init_module\ninit_module:\n" + body + "\tret\n"
        "\t.data\n\t.globl local_data\nlocal_data: .long 7\n"
        '\t.section .modinfo,"a"\n\t.string "kernel_version=2.4.20"\n\t.string "license=GPL"\n'
    )
    (tmp_path / "got24.s").write_text(src)
    obj = tmp_path / "got24.o"
    subprocess.run(["as", "--32", "-o", str(obj), str(tmp_path / "got24.s")], check=True)
    data = bytearray(obj.read_bytes())
    e = ELFFile(io.BytesIO(bytes(data)))
    rel = e.get_section_by_name(".rel.text")
    for k, r in enumerate(rel.iter_relocations()):
        want = ENTRIES[r["r_offset"] // 4][0]
        if r["r_info_type"] != want:
            data[rel["sh_offset"] + 8 * k + 4] = want  # r_info's low byte is the type
    obj.write_bytes(bytes(data))
    return obj


def test_got_types(tmp_path: Path) -> None:
    path = got_object(tmp_path)
    ksyms = "".join(f"{v:08x} {n}\n" for n, v in EXT.items())
    img = link_module_24(ModuleFile.open(path), KernelSymbols24.from_ksyms(ksyms), BASE, opts(path))
    addr = {n: a for n, a, *_ in img.sections}
    size = {n: s for n, _, s, _ in img.sections}
    got, text, data = addr[".got"], addr[".text"], addr[".data"]
    assert size[".got"] == 8  # one slot per symbol named by GOT32, in order of first use
    slot = {"ext_data": 0, "ext_func": 4}
    value = dict(EXT, local_data=data)

    def word(a: int) -> int:
        return int(struct.unpack_from("<I", img.image, a - BASE)[0])

    assert word(got) == EXT["ext_data"] and word(got + 4) == EXT["ext_func"]
    for i, (t, s, w) in enumerate(ENTRIES):
        p = text + 4 * i
        if t == 4:
            want = w + value[s] - p  # PLT32
        elif t == 3:
            want = w + slot[s]  # GOT32: the slot's offset
        elif t == 9:
            want = w + value[s] - got  # GOTOFF
        elif t == 10:
            want = w + got - p  # GOTPC
        elif t in (6, 7):
            want = value[s]  # GLOB_DAT, JMP_SLOT
        else:
            want = w + BASE  # RELATIVE
        assert word(p) == want & 0xFFFFFFFF, (i, t)


def test_unknown_relocation_type_refused(tmp_path: Path) -> None:
    path = got_object(tmp_path)
    data = bytearray(path.read_bytes())
    e = ELFFile(io.BytesIO(bytes(data)))
    rel = e.get_section_by_name(".rel.text")
    data[rel["sh_offset"] + 4] = 43  # R_386_GOT32X: after 2.4's time
    path.write_bytes(bytes(data))
    ksyms = "".join(f"{v:08x} {n}\n" for n, v in EXT.items())
    with pytest.raises(LinkError, match=r"\.text\+0x0: Unhandled relocation of type 43"):
        link_module_24(ModuleFile.open(path), KernelSymbols24.from_ksyms(ksyms), BASE, opts(path))


def test_kallsyms_section() -> None:
    path = FIX24 / "chardev24.o"
    img = link_module_24(
        ModuleFile.open(path), KernelSymbols24.from_ksyms(KSYMS), BASE, opts(path, kallsyms=True)
    )
    m = struct.unpack_from("<24I", img.image, 0)
    start, end = m[19], m[20]
    addr = {n: a for n, a, *_ in img.sections}
    assert start == addr["__kallsyms"] and end > start
    k = img.image[start - BASE : end - BASE]
    hdr = struct.unpack_from("<iIiIiiIiIII", k)
    size, total, nsec, sec_off, sec_size, nsym, sym_off, sym_size, str_off, lo, hi = hdr
    assert (size, sec_off, sec_size, sym_size) == (44, 44, 16, 12) and total == len(k)
    assert sym_off == 44 + 16 * nsec and str_off == sym_off + 12 * nsym

    def string(off: int) -> str:
        return k[str_off + off :].split(b"\0")[0].decode()

    secs = [struct.unpack_from("<IIII", k, sec_off + 16 * i) for i in range(nsec)]
    names = [string(s[2]) for s in secs]
    assert set(names) == set(addr)  # every allocated section, .modinfo not
    assert all(s[0] == addr[string(s[2])] for s in secs)
    assert lo == min(s[0] for s in secs) and hi == max(s[0] + s[1] for s in secs)
    syms = [struct.unpack_from("<III", k, sym_off + 12 * i) for i in range(nsym)]
    listed = [(a, string(n)) for _, a, n in syms]
    assert listed == sorted(listed)
    got = {n: a for a, n in listed}
    assert not any(n.startswith("__insmod_") for n in got)
    assert got["device_open"] == next(s.value for s in img.map_symbols if s.name == "device_open")


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["hello24.o", "chardev24.o", "fat24.o", "common24.o", "msdos24.o"])
def test_gnu_ld_places_the_same_bytes(name: str, tmp_path: Path) -> None:
    """ld -m elf_i386 links the object with each section at insmod's address and each import at
    the value insmod bound: the object's sections must be byte-identical (commons: ld's
    ascending-alignment order matches insmod's ascending size for common24)."""
    require(shutil.which("ld") and shutil.which("objcopy"), "binutils missing")
    from lkm.link.output24 import as_linked_image

    path = FIX24 / name
    mod = ModuleFile.open(path)
    kernel = KernelSymbols24.from_ksyms(KSYMS)
    if name == "msdos24.o":  # fat24 loaded first: its exports bind msdos24's imports
        fat = link_module_24(ModuleFile.open(FIX24 / "fat24.o"), kernel, 0xC8700000, opts(FIX24 / "fat24.o"))
        kernel.modules.insert(0, fat.as_loaded())
    img = link_module_24(mod, kernel, BASE, opts(path))
    if name == "msdos24.o":
        assert img.resolved["fat24_read_super"] == dict(fat.exports)["fat24_read_super"]
    linked = as_linked_image(mod, img)
    out = ld_link(path, mod, linked, "elf_i386", tmp_path)
    with out.open("rb") as f:
        e = ELFFile(f)
        compared = 0
        for n, a in img.section_addresses.items():
            s = mod.elf.sections[n]
            if not s.size:
                continue  # ld drops empty sections
            t = e.get_section_by_name(ld_section_name(s.name))
            assert t is not None and t["sh_addr"] == a, s.name
            if t["sh_type"] == "SHT_NOBITS":
                continue
            assert t.data() == linked.section_bytes(n)[: t["sh_size"]], s.name
            compared += 1
        assert compared >= 3


def test_cli_writes_map_blob_and_elf(tmp_path: Path) -> None:
    ksyms = tmp_path / "ksyms"
    ksyms.write_text(KSYMS)
    out = tmp_path / "msdos.elf"
    cmd = [*lkm_cmd(), "link", str(FIX24 / "msdos24.o"), "--kernel", str(ksyms),
           "--with", str(FIX24 / "fat24.o"), "--base", "0xc8800000", "--map", str(tmp_path / "m.map"),
           "--blob", str(tmp_path / "m.blob"), "-o", str(out),
           "--ksyms", str(tmp_path / "m.ksyms")]  # fmt: skip
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    blob = (tmp_path / "m.blob").read_bytes()
    assert struct.unpack_from("<I", blob, 12)[0] == len(blob)  # struct module's size
    assert (tmp_path / "m.map").read_text().startswith("Sections:")
    assert "\t[msdos24]\n" in (tmp_path / "m.ksyms").read_text()
    assert ELFFile(io.BytesIO(out.read_bytes()))["e_machine"] == "EM_386"


@pytest.mark.parametrize(
    ("ksyms", "patch", "message"),
    [
        (KSYMS.replace("c0118000 printk\n", ""), None, "unresolved symbol printk"),
        (KSYMS.replace("printk", "GPLONLY_printk"), (b"license=GPL\0", b"license=BSD\0"), "printk"),
        (KSYMS, (b"kernel_version=2.4.20", b"kernel_version=2.4.99"), "version mismatch"),
    ],
)
def test_cli_errors_one_line_no_output(
    tmp_path: Path, ksyms: str, patch: tuple[bytes, bytes] | None, message: str
) -> None:
    src = tmp_path / "hello24.o"
    data = (FIX24 / "hello24.o").read_bytes()
    src.write_bytes(data.replace(*patch) if patch else data)
    kfile = tmp_path / "ksyms"
    kfile.write_text(ksyms)
    out = tmp_path / "out"
    r = run([*lkm_cmd(), "link", str(src), "--kernel", str(kfile), "--vermagic", "2.4.20", "--blob", str(out),
             "--map", str(tmp_path / "map")])  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1 and message in err and str(src) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello24.o", "ksyms"]


def test_kallsyms_reader_agrees() -> None:
    from lkm.link import kallsyms24

    path = FIX24 / "fat24.o"
    ks = "c0100000 __start___kallsyms\nc0110000 __stop___kallsyms\n" + KSYMS  # the kernel has kallsyms
    img = link_module_24(ModuleFile.open(path), KernelSymbols24.from_ksyms(ks), BASE, opts(path))
    start, end = struct.unpack_from("<24I", img.image, 0)[19:21]
    assert start and end > start
    sections, symbols = kallsyms24.parse(img.image[start - BASE : end - BASE])
    assert [(n, a, s) for n, a, s, _ in sections] == sorted(
        [(n, a, s) for n, a, s, _ in img.sections], key=lambda t: [x[0] for x in sections].index(t[0])
    )
    mapped = {(m.value, m.name) for m in img.map_symbols}
    assert {(s.address, s.name) for s in symbols} <= mapped
    assert any(s.name == "fat24_read_super" and s.section == ".text" for s in symbols)


def test_module_arguments(tmp_path: Path) -> None:
    """insmod's symbol=value: an 's' parameter becomes a pointer to a copy of the string, 'h'
    array values are stored as shorts (strtoul base 0), 'c<N>' strings are copied in place."""
    require(shutil.which("as"), "GNU as (binutils) missing")
    src = (
        "\t.text\n\t.globl init_module\ninit_module: ret\n"
        "\t.data\n\t.globl name\nname: .long 0\n\t.globl arr\narr: .short 9, 9, 9\n"
        "\t.globl label\nlabel: .ascii \"abcdefgh\"\n"
        '\t.section .modinfo,"a"\n\t.string "kernel_version=2.4.20"\n\t.string "parm_name=s"\n'
        '\t.string "parm_arr=2-3h"\n\t.string "parm_label=c8"\n'
    )
    (tmp_path / "p.s").write_text(src)
    path = tmp_path / "param24.o"
    subprocess.run(["as", "--32", "-o", str(path), str(tmp_path / "p.s")], check=True)
    args = ('name="hi\\tthere\\101"', "arr=1, 0x10", "label=xyz")
    img = link_module_24(
        ModuleFile.open(path), KernelSymbols24.from_ksyms(KSYMS), BASE, opts(path, args=args)
    )
    val = {m.name: m.value for m in img.map_symbols}

    def at(addr: int, n: int) -> bytes:
        return img.image[addr - BASE : addr - BASE + n]

    pointer = struct.unpack("<I", at(val["name"], 4))[0]
    assert img.image[pointer - BASE :].split(b"\0")[0] == b"hi\tthereA"
    assert struct.unpack("<3h", at(val["arr"], 6)) == (1, 16, 9)
    assert at(val["label"], 8) == b"xyz\0efgh"  # strcpy: the rest of the slot stays
    for bad, message in (
        (("arr=1",), "too few values for arr (min 2)"),
        (("arr=1,2,3,4",), "too many values for arr (max 3)"),
        (("label=abcdefg",), "string too long for label (max 7)"),
        (("nosuch=1",), "invalid parameter parm_nosuch"),
        (("arr=1;2",), "invalid argument syntax for arr: ';'"),
        (('name="open',), "improperly terminated string argument for name"),
    ):
        kernel = KernelSymbols24.from_ksyms(KSYMS)
        with pytest.raises(LinkError, match=re.escape(message)):
            link_module_24(ModuleFile.open(path), kernel, BASE, opts(path, args=bad))

"""ModuleFile on the project's fixtures, against independent oracles: kmod (modprobe
--show-exports / --show-modversions), binutils (readelf, objdump) and asn1crypto's full
PKCS#7 object model."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from lkm.module import ModuleFile

from support import FIX6, FIX24, require


def _kmod_pairs(option: str, path: str) -> list[tuple[int, str]]:
    require(shutil.which("modprobe"), "kmod's modprobe missing")
    # kmod exits 1 with nothing on stdout when the list is empty (a module exporting nothing).
    proc = subprocess.run(["modprobe", option, path], capture_output=True, text=True)
    out = proc.stdout
    assert proc.returncode == 0 or out == ""
    return [(int(c, 16), n) for c, n in (line.split("\t") for line in out.splitlines())]


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["exporter.ko", "importer.ko", "params.ko", "chardev.ko", "chardev.ko.xz"])
def test_exports_and_versions_match_kmod(name: str) -> None:
    path = str(FIX6 / name)
    m = ModuleFile.open(path)
    assert sorted((e.crc, e.name) for e in m.exports) == sorted(_kmod_pairs("--show-exports", path))
    assert [(c, n) for n, c in m.versions] == _kmod_pairs("--show-modversions", path)


def test_namespaced_export_and_import() -> None:
    exp = {e.name: e for e in ModuleFile.open(FIX6 / "exporter.ko").exports}
    imp = ModuleFile.open(FIX6 / "importer.ko")
    ns = {e.namespace for e in exp.values()} - {None}
    assert ns == set(imp.import_ns)  # the one namespace the importer declares
    assert [e.gpl for e in exp.values()].count(True) == 1
    # Every symbol the importer takes from the exporter carries the exporter's CRC.
    needed = {n.name: n.crc for n in imp.needed}
    assert all(needed[name] == e.crc for name, e in exp.items())
    assert imp.depends == ["exporter"]


@pytest.mark.oracle
def test_build_id_matches_readelf() -> None:
    require(shutil.which("readelf"), "binutils missing")
    for path in sorted(FIX6.glob("*.ko")):
        out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True).stdout
        m = re.search(r"Build ID: ([0-9a-f]+)", out)
        got = ModuleFile.open(path).build_id
        assert (got.hex() if got else None) == (m.group(1) if m else None), path.name


@pytest.mark.parametrize("name", ["chardev-signed.ko", "chardev-signed-sha512.ko", "chardev-signed.ko.xz"])
def test_signature_against_asn1crypto(name: str) -> None:
    from asn1crypto import cms

    m = ModuleFile.open(FIX6 / name)
    sig = m.signature
    assert sig is not None and sig.id_type == "PKCS#7"
    info = cms.ContentInfo.load(sig.raw)
    si = info["content"]["signer_infos"][0]
    ias = si["sid"].chosen
    assert sig.signer.decode() == ias["issuer"].native["common_name"]
    serial = ias["serial_number"].native
    assert int.from_bytes(sig.key_id, "big") == serial
    assert sig.hash_algo == si["digest_algorithm"]["algorithm"].native
    assert sig.signature == si["signature"].native
    # The signed module minus its signature is the unsigned module.
    plain = ModuleFile.open(FIX6 / "chardev.ko")
    assert bytes(m.data[: m.module_size]) == bytes(plain.data)


def test_unsigned_has_no_signature() -> None:
    assert ModuleFile.open(FIX6 / "chardev.ko").signature is None


@pytest.mark.parametrize("ext", ["ko.xz", "ko.zst", "ko.gz"])
def test_compressed_reads_like_plain(ext: str) -> None:
    plain = ModuleFile.open(FIX6 / "chardev.ko")
    comp = ModuleFile.open(FIX6 / f"chardev.{ext}")
    assert comp.compression == {"ko.xz": "xz", "ko.zst": "zstd", "ko.gz": "gzip"}[ext]
    assert bytes(comp.data) == bytes(plain.data)
    assert comp.modinfo == plain.modinfo and comp.needed == plain.needed


@pytest.mark.oracle
def test_24_exports_match_binutils() -> None:
    """2.4 exports: __ksymtab {value, name} pairs, names from .kstrtab (objdump/readelf)."""
    require(shutil.which("objdump"), "binutils missing")
    path = FIX24 / "fat24.o"
    relocs = subprocess.run(
        ["objdump", "-r", "-j", "__ksymtab", str(path)], capture_output=True, text=True
    ).stdout
    values = re.findall(r"^([0-9a-f]{8}) R_386_32\s+(\S+)$", relocs, re.M)
    value_syms = [sym for off, sym in values if int(off, 16) % 8 == 0]
    strings = subprocess.run(["readelf", "-p", ".kstrtab", str(path)], capture_output=True, text=True).stdout
    names = re.findall(r"^\s+\[\s*[0-9a-f]+\]\s+(\S+)$", strings, re.M)
    m = ModuleFile.open(path)
    assert m.is_24
    assert [e.symbol for e in m.exports] == value_syms
    assert [("GPLONLY_" if e.gpl else "") + e.name for e in m.exports] == names


def test_24_user_needs_the_exports() -> None:
    fat = {e.name for e in ModuleFile.open(FIX24 / "fat24.o").exports}
    msdos = ModuleFile.open(FIX24 / "msdos24.o")
    assert {n.name for n in msdos.needed} & fat == {
        "fat24_date_unix2dos",
        "fat24_cache_size",
        "fat24_read_super",
    }
    assert msdos.kernel_version == "2.4.20"


def test_24_common_symbol() -> None:
    from lkm.elf.constants import SHN_COMMON

    m = ModuleFile.open(FIX24 / "common24.o")
    assert any(s.shndx == SHN_COMMON for s in m.elf.symbols())

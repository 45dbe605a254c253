"""Module BTF verdicts (btf_parse_module's checks) against bpftool's.

bpftool (libbpf) loads split BTF with its own, more lenient sanity checks (the trust spec §4:
neither predicts the other), so the oracle comparison is: every corpus module accepted by both
over its own vmlinux BTF, and both refusing the corruptions libbpf also checks (header, section
layout, string section, kind).  The kernel-only checks (version/flags, info bits, name offsets,
identifier syntax) are asserted against the kernel rules, with the exact verifier line.
"""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lkm.module.file import ModuleFile
from lkm.module.source import read_module
from lkm.trust.btf import ENOTSUPP, HDR, BaseBtf, base_from_file, check_module_btf, module_btf

from support import require, tree_image, tree_modules


@pytest.fixture(scope="module")
def vmlinux(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lkm.symbols.image import decompress_kernel_image

    out = {}
    d = tmp_path_factory.mktemp("vmlinux")
    for tree in ("amd64-6.1", "amd64-6.12"):
        p = d / tree
        p.write_bytes(decompress_kernel_image(tree_image(tree).read_bytes()))
        out[tree] = p
    return out


def bpftool() -> str:
    path = shutil.which("bpftool") or shutil.which("bpftool", path="/usr/sbin:/sbin")
    require(path, "bpftool not installed (Debian package bpftool)")
    assert path is not None
    return path


def bpftool_ok(base: Path, module: Path) -> bool:
    r = subprocess.run([bpftool(), "-B", str(base), "btf", "dump", "file", str(module)], capture_output=True)
    return r.returncode == 0


def corrupt(data: bytes, case: str) -> bytes:
    m = ModuleFile.from_bytes(data)
    sec = m.elf.section(".BTF")
    assert sec is not None
    off = sec.offset
    btf = data[off : off + sec.size]
    _magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = HDR.unpack_from(btf, 0)
    t0 = hdr_len + type_off
    info = struct.unpack_from("<I", btf, t0 + 4)[0]
    edits = {
        "magic": (0, "<H", 0xEB9E),
        "hdr_len": (4, "<I", 32),
        "type_len": (12, "<I", type_len + 4),
        "str_len": (20, "<I", str_len - 1),
        "str_off": (16, "<I", str_off + 1),
        "kind0": (t0 + 4, "<I", info & 0xE0FFFFFF),
        "kind31": (t0 + 4, "<I", info | 0x1F000000),
        "str_end": (hdr_len + str_off + str_len - 1, "<B", 0x41),
        "version": (2, "<B", 2),
        "flags": (3, "<B", 1),
        "info_bits": (t0 + 4, "<I", info | 0x00100000),
        "name_off": (t0, "<I", 0x7FFFFF),
    }
    rel, fmt, val = edits[case]
    d = bytearray(data)
    struct.pack_into(fmt, d, off + rel, val)
    return bytes(d)


BOTH = ["magic", "hdr_len", "type_len", "str_len", "str_off", "kind0", "kind31", "str_end"]
KERNEL_ONLY = {
    "version": (ENOTSUPP, "Unsupported version"),
    "flags": (ENOTSUPP, "Unsupported flags"),
    "info_bits": (errno.EINVAL, "Invalid btf_info:"),
    "name_off": (errno.EINVAL, "Invalid name_offset:8388607"),
}


def verdict(data: bytes, base: BaseBtf, kernel: str) -> tuple[int, str]:
    raw = module_btf(data)
    assert raw is not None
    v = check_module_btf(raw, base, kernel=kernel)
    return v.errno, v.message


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("tree,kernel", [("amd64-6.1", "6.1"), ("amd64-6.12", "6.12")])
def test_corpus_modules_and_corruptions_vs_bpftool(
    tree: str, kernel: str, vmlinux: dict[str, Path], tmp_path: Path
) -> None:
    base_path = vmlinux[tree]
    base = base_from_file(base_path.read_bytes())
    mods = tree_modules(tree)[::60]
    assert len(mods) >= 60
    checked = 0
    for i, m in enumerate(mods):
        data = bytes(read_module(str(m)).data)
        if module_btf(data) is None:
            continue
        plain = tmp_path / "m.ko"
        plain.write_bytes(data)
        assert verdict(data, base, kernel) == (0, ""), m
        assert bpftool_ok(base_path, plain), m
        checked += 1
        if i % 6 == 0:  # corrupted copies of every sixth module
            for case in BOTH:
                bad = corrupt(data, case)
                plain.write_bytes(bad)
                err, _msg = verdict(bad, base, kernel)
                assert err != 0 and not bpftool_ok(base_path, plain), (m, case)
            for case, (want_err, want_msg) in KERNEL_ONLY.items():
                err, msg = verdict(corrupt(data, case), base, kernel)
                assert err == want_err and want_msg in msg, (m, case, err, msg)
    assert checked >= 60


@pytest.mark.corpus
def test_wrong_base_is_refused(vmlinux: dict[str, Path]) -> None:
    """A 6.12 module's BTF over 6.1's vmlinux BTF: its string offsets run past the strings
    (the kernel's "Invalid name_offset"), as a module built for another kernel would show."""
    base61 = base_from_file(vmlinux["amd64-6.1"].read_bytes())
    for m in tree_modules("amd64-6.12")[::400]:
        data = bytes(read_module(str(m)).data)
        if module_btf(data) is None:
            continue
        err, msg = verdict(data, base61, "6.1")
        assert err == errno.EINVAL and "name_offset" in msg, (m, msg)


def test_identifier_and_type_tag_rules() -> None:
    """Hand-made split BTF over a tiny base: names must be C identifiers (dots allowed), typedef
    chains must end, type tags come first."""

    def blob(types: bytes, strings: bytes) -> bytes:
        return HDR.pack(0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings

    def t(name: int, kind: int, vlen: int, st: int) -> bytes:
        return struct.pack("<III", name, (kind << 24) | vlen, st)

    base = BaseBtf(2, b"\0int\0", bytes([0, 1]))  # void + one INT
    strings = b"ok_name\0bad-name\0.dot\0"
    s0 = len(base.strings)
    ok = blob(t(s0, 8, 0, 1), strings)  # typedef ok_name -> int
    assert check_module_btf(ok, base).ok
    bad = blob(t(s0 + 8, 8, 0, 1), strings)  # typedef bad-name
    v = check_module_btf(bad, base)
    assert (v.errno, v.message) == (errno.EINVAL, "[2] Invalid name")
    assert check_module_btf(blob(t(s0 + 17, 8, 0, 1), strings), base).ok  # ".dot"
    loop = blob(t(s0, 8, 0, 3) + t(s0, 8, 0, 2), strings)  # typedef 2 -> 3 -> 2
    assert check_module_btf(loop, base).errno == errno.ELOOP
    dangling = blob(t(s0, 8, 0, 9), strings)
    assert check_module_btf(dangling, base).errno == errno.EINVAL
    tag_after_const = blob(t(0, 10, 0, 3) + t(s0, 18, 0, 1), strings)  # const -> type_tag
    v = check_module_btf(tag_after_const, base)
    assert (v.errno, v.message) == (errno.EINVAL, "Type tags don't precede modifiers")

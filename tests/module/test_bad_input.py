"""`lkm modinfo` on damaged files: one error line, exit status 1, never a traceback.

Each bad file is written into tmp_path and given to the CLI as a user would (a subprocess):

* alone: exit 1, stdout empty, stderr exactly one line ``lkm modinfo: ERROR: <path>: <reason>``;
* followed by a good fixture: exit 1, the same one error line, and stdout byte-identical to
  ``lkm modinfo <good fixture>`` alone (one bad file does not stop or disturb the others);
* with ``-F filename``: exit 0 and the path printed, as kmod does (kmod's modinfo prints the
  path for ``-F filename`` without opening the file).

A directory whose name ends in .ko is not a regular file, so (like kmod) it is taken as a
module name and is not found.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from support import FIX6, FIX24, lkm_cmd, run

GOOD = FIX6 / "chardev.ko"
KO = GOOD.read_bytes()
SIGNED = (FIX6 / "chardev-signed.ko").read_bytes()
SIG_MAGIC = b"~Module signature appended~\n"


# -- building bad files (independently of lkm: plain struct over the ELF64 LE fixture) ----------


def _ehdr(data: bytes) -> tuple[int, int, int, int]:
    """e_shoff, e_shentsize, e_shnum, e_shstrndx of an ELF64 little-endian file."""
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    return shoff, shentsize, shnum, shstrndx


def _section_header_at(data: bytes, name: bytes) -> int:
    """File offset of the section header of the section called ``name``."""
    shoff, shentsize, shnum, shstrndx = _ehdr(data)
    str_off, _str_size = struct.unpack_from("<QQ", data, shoff + shstrndx * shentsize + 24)
    for i in range(shnum):
        hdr = shoff + i * shentsize
        (sh_name,) = struct.unpack_from("<I", data, hdr)
        start = str_off + sh_name
        if data[start : data.index(b"\0", start)] == name:
            return hdr
    raise AssertionError(f"no section {name!r}")


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, *values)
    return bytes(buf)


def _set_byte(data: bytes, offset: int, value: int) -> bytes:
    buf = bytearray(data)
    buf[offset] = value
    return bytes(buf)


def _damage_middle(data: bytes) -> bytes:
    buf = bytearray(data)
    mid = len(buf) // 2
    buf[mid : mid + 16] = b"\xff" * 16
    return bytes(buf)


def _flip_middle(data: bytes) -> bytes:
    buf = bytearray(data)
    buf[len(buf) // 2] ^= 0x01
    return bytes(buf)


def _sig_fields(data: bytes) -> tuple[int, int]:
    """(offset of struct module_signature, sig_len) of a signed module."""
    assert data.endswith(SIG_MAGIC)
    at = len(data) - len(SIG_MAGIC) - 12
    (sig_len,) = struct.unpack_from(">I", data, at + 8)
    return at, sig_len


def _sig_len(value: int) -> bytes:
    at, _ = _sig_fields(SIGNED)
    return _patch(SIGNED, at + 8, ">I", value)


def _garble_pkcs7(start: int, length: int, fill: bytes) -> bytes:
    at, sig_len = _sig_fields(SIGNED)
    p = at - sig_len + start  # signer and key id are empty for PKCS#7: the blob ends at `at`
    buf = bytearray(SIGNED)
    buf[p : p + length] = (fill * length)[:length]
    return bytes(buf)


def _modinfo_past_end(how: str) -> bytes:
    hdr = _section_header_at(KO, b".modinfo")
    off, size = struct.unpack_from("<QQ", KO, hdr + 24)
    if how == "size":
        return _patch(KO, hdr + 32, "<Q", len(KO) - off + 1)
    if how == "offset":
        return _patch(KO, hdr + 24, "<Q", len(KO) - size + 1)
    return _patch(KO, hdr + 24, "<QQ", 0xFFFFFFFFFFFFFF00, 0x200)


def _compressed(name: str) -> bytes:
    return (FIX6 / name).read_bytes()


SHOFF, SHENTSIZE, SHNUM, SHSTRNDX = _ehdr(KO)
# The truncation cases assume the section header table ends the file.
assert len(KO) == SHOFF + SHENTSIZE * SHNUM, "fixture layout changed"

# file name in tmp_path -> contents
CASES: dict[str, Callable[[], bytes]] = {
    # Truncated .ko: inside e_ident, inside the ELF header, inside the data, inside the section
    # header table (which ends the file).
    **{f"trunc-{n}.ko": (lambda n=n: KO[:n]) for n in (1, 4, 10, 16, 40, 63, 64, 1000)},
    "trunc-half.ko": lambda: KO[: len(KO) // 2],
    "trunc-shtab.ko": lambda: KO[: SHOFF + SHENTSIZE * (SHNUM // 2)],
    "trunc-last-byte.ko": lambda: KO[:-1],
    # Not ELF at all.
    "text.ko": lambda: b"this is not a kernel module\n" * 40,
    "magic-only.ko": lambda: b"\x7fELF",
    "zeros.ko": lambda: bytes(4096),
    # ELF identification.
    "class3.ko": lambda: _set_byte(KO, 4, 3),
    "class0.ko": lambda: _set_byte(KO, 4, 0),
    "data0.ko": lambda: _set_byte(KO, 5, 0),
    # Section header table.
    "shoff-past-end.ko": lambda: _patch(KO, 0x28, "<Q", len(KO) + 64),
    "shoff-at-end.ko": lambda: _patch(KO, 0x28, "<Q", len(KO)),
    "shoff-huge.ko": lambda: _patch(KO, 0x28, "<Q", 0xFFFFFFFFFFFFFFFF),
    "shnum-ffff.ko": lambda: _patch(KO, 0x3C, "<H", 0xFFFF),
    "shnum-plus-one.ko": lambda: _patch(KO, 0x3C, "<H", SHNUM + 1),
    "shentsize-0.ko": lambda: _patch(KO, 0x3A, "<H", 0),
    "shentsize-65.ko": lambda: _patch(KO, 0x3A, "<H", 65),
    "shstrndx-0.ko": lambda: _patch(KO, 0x3E, "<H", 0),
    "shstrndx-ffff.ko": lambda: _patch(KO, 0x3E, "<H", 0xFFFF),
    # .modinfo section whose bytes are not (all) in the file.
    "modinfo-size-past-end.ko": lambda: _modinfo_past_end("size"),
    "modinfo-offset-past-end.ko": lambda: _modinfo_past_end("offset"),
    "modinfo-offset-huge.ko": lambda: _modinfo_past_end("huge"),
    # Corrupt or truncated compressed streams (all three carry a checksum).
    **{
        f"{what}-chardev.ko.{ext}": (lambda f=f, ext=ext: f(_compressed(f"chardev.ko.{ext}")))
        for ext in ("xz", "zst", "gz")
        for what, f in (
            ("damaged", _damage_middle),
            ("flipped", _flip_middle),
            ("trunc-half", lambda d: d[: len(d) // 2]),
            ("trunc-16", lambda d: d[:-16]),
            ("header-only", lambda d: d[:12]),
        )
    },
    "trunc-last-byte-chardev.ko.xz": lambda: _compressed("chardev.ko.xz")[:-1],
    "trunc-last-byte-chardev.ko.gz": lambda: _compressed("chardev.ko.gz")[:-1],
    "magic-only.ko.xz": lambda: b"\xfd7zXZ\x00",
    "magic-only.ko.zst": lambda: b"\x28\xb5\x2f\xfd",
    "magic-only.ko.gz": lambda: b"\x1f\x8b",
    # Empty.
    "empty.ko": lambda: b"",
}

# Damaged signature trailers: the magic is there, what precedes it is not a valid signature.
# NB: Debian's kmod 30 prints such a module's other fields and exits 0 (it skips a signature it
# cannot parse); lkm reports the damage.  These cases pin lkm's behaviour.
SIGNATURE_CASES: dict[str, Callable[[], bytes]] = {
    "sig-len-huge.ko": lambda: _sig_len(0xFFFFFFFF),
    "sig-len-file-size.ko": lambda: _sig_len(len(SIGNED)),
    "sig-len-zero.ko": lambda: _sig_len(0),
    "sig-id-type-9.ko": lambda: _set_byte(SIGNED, _sig_fields(SIGNED)[0] + 2, 9),
    "sig-magic-appended.ko": lambda: KO + SIG_MAGIC,  # struct module_signature all zero
    "sig-pkcs7-head-ff.ko": lambda: _garble_pkcs7(0, 16, b"\xff"),
    "sig-pkcs7-head-zero.ko": lambda: _garble_pkcs7(0, 16, b"\x00"),
    "sig-pkcs7-middle-zero.ko": lambda: _garble_pkcs7(100, 40, b"\x00"),
    "sig-pkcs7-not-der.ko": lambda: _garble_pkcs7(0, _sig_fields(SIGNED)[1], b"garbage!"),
}

ALL_CASES = {**CASES, **SIGNATURE_CASES}


def _modinfo(*args: str | Path) -> tuple[int, bytes, bytes]:
    p = run([*lkm_cmd(), "modinfo", *map(str, args)])
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def good_output() -> bytes:
    rc, out, err = _modinfo(GOOD)
    assert rc == 0 and err == b"" and out.startswith(b"filename:       " + bytes(GOOD) + b"\n")
    return out


def _one_error_line(err: bytes, message: str) -> None:
    text = err.decode("utf-8", "surrogateescape")
    assert "Traceback" not in text, text
    lines = text.split("\n")
    assert len(lines) == 2 and lines[1] == "", f"expected exactly one line on stderr, got {text!r}"
    assert re.fullmatch(message, lines[0]), f"{lines[0]!r} does not match {message!r}"


def _write(tmp_path: Path, name: str, build: Callable[[], bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(build())
    return path


def test_cases_are_really_bad() -> None:
    """The builders change what they mean to change (guards the test, not lkm)."""
    for name, build in ALL_CASES.items():
        data = build()
        assert data != KO and data != SIGNED, name
    assert _sig_fields(SIGNED)[1] > 100
    assert SIGNED[: len(KO)] == KO  # the signature is appended to the unsigned fixture


@pytest.mark.parametrize("name", list(ALL_CASES))
def test_bad_file_is_one_error_line(tmp_path: Path, good_output: bytes, name: str) -> None:
    path = _write(tmp_path, name, ALL_CASES[name])
    expected = rf"lkm modinfo: ERROR: {re.escape(str(path))}: .+"

    rc, out, err = _modinfo(path)
    assert rc == 1, (out, err)
    assert out == b"" and b"Traceback" not in out
    _one_error_line(err, expected)

    # A bad file does not disturb the good one after it.
    rc, out, err2 = _modinfo(path, GOOD)
    assert rc == 1
    assert out == good_output
    _one_error_line(err2, expected)
    assert err2 == err

    # ... nor the one before it.
    rc, out, err3 = _modinfo(GOOD, path)
    assert rc == 1
    assert out == good_output
    assert err3 == err


@pytest.mark.parametrize("name", ["trunc-40.ko", "shoff-huge.ko", "damaged-chardev.ko.xz", "sig-len-huge.ko",
                                  "empty.ko"])  # fmt: skip
def test_field_filename_does_not_open_the_file(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, ALL_CASES[name])
    rc, out, err = _modinfo("-F", "filename", path)
    assert (rc, out, err) == (0, f"{path}\n".encode(), b"")
    rc, out, err = _modinfo("-F", "filename", path, GOOD)
    assert (rc, out, err) == (0, f"{path}\n{GOOD}\n".encode(), b"")
    rc, out, err = _modinfo("-n", "-0", path)
    assert (rc, out, err) == (0, f"{path}\0".encode(), b"")


def test_all_bad_files_at_once(tmp_path: Path, good_output: bytes) -> None:
    """Every bad file and the good one in one run: one error line per bad file, in order."""
    paths = [_write(tmp_path, name, build) for name, build in ALL_CASES.items()]
    rc, out, err = _modinfo(*paths, GOOD)
    assert rc == 1
    assert out == good_output
    text = err.decode("utf-8", "surrogateescape")
    assert "Traceback" not in text
    lines = text.split("\n")
    assert lines[-1] == ""
    assert len(lines) - 1 == len(paths), text
    for line, path in zip(lines[:-1], paths, strict=True):
        assert re.fullmatch(rf"lkm modinfo: ERROR: {re.escape(str(path))}: .+", line), line


def test_directory_named_like_a_module(tmp_path: Path, good_output: bytes) -> None:
    d = tmp_path / "x.ko"
    d.mkdir()
    rc, out, err = _modinfo(d)
    assert (rc, out) == (1, b"")
    _one_error_line(err, re.escape(f"lkm modinfo: ERROR: Module {d} not found."))
    rc, out, err2 = _modinfo(d, GOOD)
    assert (rc, out, err2) == (1, good_output, err)
    # -F filename does not make it a file.
    rc, out, err3 = _modinfo("-F", "filename", d)
    assert (rc, out, err3) == (1, b"", err)


# -- .modinfo text the parameter parser must survive --------------------------------------------


def _with_modinfo(data: bytes, entries: list[tuple[str, str]]) -> bytes:
    """``data`` (ELF32 or ELF64, little-endian) with its .modinfo replaced by ``entries``,
    appended at the end of the file and the section header pointed there."""
    if data[4] == 2:
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        off_fmt, off_at = "<QQ", 24
    else:
        (shoff,) = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
        off_fmt, off_at = "<II", 16
    str_off = struct.unpack_from(off_fmt, data, shoff + shstrndx * shentsize + off_at)[0]
    blob = b"".join(f"{k}={v}".encode() + b"\0" for k, v in entries)
    for i in range(shnum):
        hdr = shoff + i * shentsize
        (sh_name,) = struct.unpack_from("<I", data, hdr)
        start = str_off + sh_name
        if data[start : data.index(b"\0", start)] == b".modinfo":
            buf = bytearray(data)
            struct.pack_into(off_fmt, buf, hdr + off_at, len(data), len(blob))
            return bytes(buf) + blob
    raise AssertionError("no .modinfo")


ODD_SPECS = {
    "superscript-min": "\u00b2i",  # '²'.isdigit() is True, int('²') raises
    "superscript-max": "1-\u00b2i",
    "superscript-size": "c\u00b2",
    "long-number": "1" * 4301 + "i",  # beyond Python's int() digit limit
}


@pytest.mark.parametrize("seed", ["chardev.ko", "fat24.o"])
@pytest.mark.parametrize("spec", list(ODD_SPECS))
def test_odd_parm_spec_is_not_a_crash(tmp_path: Path, seed: str, spec: str) -> None:
    """A ``parm_<name>=`` value is text from the file: whatever it says, modinfo prints the module
    (kmod prints it as a plain field; modutils describes an unparsable spec) and never crashes."""

    src = FIX6 / seed if seed.endswith(".ko") else FIX24 / seed
    path = tmp_path / seed
    path.write_bytes(_with_modinfo(src.read_bytes(), [("license", "GPL"), ("parm_level", ODD_SPECS[spec])]))
    rc, out, err = _modinfo(path)
    assert b"Traceback" not in err, err.decode(errors="replace")[-600:]
    assert (rc, err) == (0, b"")
    assert out.startswith(f"filename:       {path}\n".encode())

"""lkm.emulate's vsnprintf against C's snprintf (glibc through ctypes) for the conversions
both implement alike: flags, width, precision, length qualifiers, d i u x X o c s %.
Known kernel differences are asserted from lib/vsprintf.c's rules, not from our output."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.emulate.vsprintf import Formatter, number, split_level

libc = ctypes.CDLL(ctypes.util.find_library("c"))


class _Mem:
    def __init__(self, strings: dict[int, bytes]) -> None:
        self.strings = strings

    def read(self, addr: int, size: int) -> bytes:
        return self.strings[addr][:size]

    def read_cstr(self, addr: int, limit: int = 1 << 16) -> bytes | None:
        return self.strings.get(addr, b"")[:limit]

    def is_mapped(self, addr: int, size: int = 1) -> bool:
        return addr in self.strings


class _Args:
    def __init__(self, values: list[int]) -> None:
        self.values = list(values)

    def next(self) -> int:
        return self.values.pop(0) & (2**64 - 1)

    def next64(self) -> int:
        return self.next()


def _c_snprintf(fmt: bytes, *args: object) -> bytes:
    buf = ctypes.create_string_buffer(512)
    libc.snprintf(buf, 512, fmt, *args)
    return buf.value


flags = st.text(alphabet="-+ 0", max_size=3)
widths = st.one_of(st.just(""), st.integers(0, 20).map(str))
precs = st.one_of(st.just(""), st.integers(0, 12).map(lambda p: f".{p}"))


@settings(max_examples=400, deadline=None)
@given(flags, widths, precs, st.sampled_from(["d", "i", "u", "x", "X", "o"]),
       st.sampled_from(["", "l", "ll", "h", "hh", "z"]), st.integers(-(2**63), 2**63 - 1))  # fmt: skip
def test_integers_match_c(fl: str, width: str, prec: str, conv: str, qual: str, value: int) -> None:
    fmt = f"%{fl}{width}{prec}{qual}{conv}".encode()
    if prec and "0" in fl:
        # C ignores 0 with a precision for integers; the kernel keeps ZEROPAD (number()).
        return
    bits = {"": 32, "h": 16, "hh": 8}.get(qual, 64)
    if prec == ".0" and value % (1 << bits) == 0:
        return  # C prints no digit; number() always prints at least one
    if conv in "xXo" and value < 0 and not qual.startswith("l") and qual != "z":
        value &= 0xFFFFFFFF
    got = Formatter(_Mem({}), 8, lambda a, o: None).format(fmt, _Args([value]))
    want = _c_snprintf(fmt, ctypes.c_longlong(value))
    assert got == want, fmt


@settings(max_examples=200, deadline=None)
@given(flags, widths, precs, st.binary(max_size=30).map(lambda b: b.replace(b"\0", b"a")))
def test_strings_match_c(fl: str, width: str, prec: str, text: bytes) -> None:
    fmt = f"%{fl.replace('0', '')}{width}{prec}s|%c".encode()
    got = Formatter(_Mem({0x1000: text}), 8, lambda a, o: None).format(fmt, _Args([0x1000, 65]))
    assert got == _c_snprintf(fmt, ctypes.c_char_p(text), ctypes.c_int(65))


def test_kernel_differences_from_c() -> None:
    f = Formatter(_Mem({}), 8, lambda a, o: None)
    assert f.format(b"%#x", _Args([0])) == b"0x0"  # number(): SPECIAL always prefixes
    assert f.format(b"%s", _Args([0])) == b"(null)"
    assert f.format(b"%s", _Args([8])) == b"(efault)"
    assert f.format(b"%.0d", _Args([0])) == b"0"
    assert number(5, 10, 6, 3, 16) == b"000005"  # ZEROPAD with a precision still pads with zeros


@pytest.mark.parametrize(("fmt", "data", "want"), [
    (b"%pI4", bytes([192, 168, 1, 20]), b"192.168.1.20"),
    (b"%pi4", bytes([10, 0, 0, 1]), b"010.000.000.001"),
    (b"%pM", bytes.fromhex("001122aabbcc"), b"00:11:22:aa:bb:cc"),
    (b"%pMF", bytes.fromhex("001122aabbcc"), b"00-11-22-aa-bb-cc"),
    (b"%pm", bytes.fromhex("001122aabbcc"), b"001122aabbcc"),
    (b"%pI6c", bytes.fromhex("20010db8000000000000000000000001"), b"2001:db8::1"),
    (b"%pUb", bytes(range(16)), b"00010203-0405-0607-0809-0a0b0c0d0e0f"),
    (b"%pUl", bytes(range(16)), b"03020100-0504-0706-0809-0a0b0c0d0e0f"),
])  # fmt: skip
def test_pointer_extensions(fmt: bytes, data: bytes, want: bytes) -> None:
    # Expected strings are the formats documented in Documentation/core-api/printk-formats.rst.
    f = Formatter(_Mem({0x2000: data}), 8, lambda a, o: None)
    assert f.format(fmt, _Args([0x2000])) == want


def test_hex_buffer_with_width_and_separators() -> None:
    f = Formatter(_Mem({0x2000: b"\x01\xab\xff"}), 8, lambda a, o: None)
    assert f.format(b"%*ph", _Args([3, 0x2000])) == b"01 ab ff"
    assert f.format(b"%*phC", _Args([3, 0x2000])) == b"01:ab:ff"
    assert f.format(b"%*phN", _Args([2, 0x2000])) == b"01ab"


def test_log_levels() -> None:
    assert split_level(b"\x016hello") == (6, False, b"hello")
    assert split_level(b"\x01chello") == (4, True, b"hello")
    assert split_level(b"plain") == (4, False, b"plain")
    assert split_level(b"<3>old", angle=True) == (3, False, b"old")


def test_find_bit_family_against_python() -> None:
    """lib/find_bit.c semantics (the result is ``size`` when no bit is found)."""
    from lkm.emulate.base.strings import _next_set

    assert _next_set(0b10110, 5, 0) == 1
    assert _next_set(0b10110, 5, 3) == 4
    assert _next_set(0b10110, 5, 5) == 5
    assert _next_set(0, 64, 0) == 64

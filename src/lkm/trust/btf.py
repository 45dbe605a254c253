"""Module BTF as the kernel checks it when a module comes up (kernel/bpf/btf.c btf_parse_module).

A module's ``.BTF`` section is split BTF over the running vmlinux's: its type ids start at the
base's type count (void included) and its string offsets at the base's string-section size.
:func:`check_module_btf` runs btf_parse_hdr (header, section layout), btf_parse_str_sec,
btf_check_all_metas (every type's record: info bits, kind, name offset, the kind's own checks,
C-identifier names) and btf_check_type_tags (modifier chains) and returns the kernel's verdict:
0, or the errno with the verifier's log line.  Facts: the trust spec §4; 6.1 and 6.12 differ only
in DATASEC names here (6.12's ``.BTF.base`` distilled-base relocation is not modelled).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass

from lkm.elf.file import ElfFile
from lkm.errors import LkmError
from lkm.module.file import ModuleFile
from lkm.symbols.image import decompress_kernel_image

__all__ = [
    "BTF_INFO_MASK",
    "BTF_INT_MASK",
    "BTF_MAGIC",
    "BTF_MAX_NAME_OFFSET",
    "BTF_MAX_TYPE",
    "ENOTSUPP",
    "HDR",
    "KIND_MAX",
    "KSYM_NAME_LEN",
    "MODIFIERS",
    "BaseBtf",
    "BtfVerdict",
    "base_btf",
    "base_from_file",
    "check_module_btf",
    "module_btf",
]

BTF_MAGIC = 0xEB9F
HDR = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
BTF_MAX_NAME_OFFSET = 0xFFFFFF
BTF_MAX_TYPE = 0xFFFFF
BTF_INFO_MASK = 0x9F00FFFF
BTF_INT_MASK = 0x0FFFFFFF
ENOTSUPP = 524  # the kernel-internal errno userspace shows as "Unknown error 524"
KSYM_NAME_LEN = 512

(UNKN, INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO,
 VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(20)  # fmt: skip
KIND_MAX = ENUM64
MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})
# bytes after the 12-byte struct btf_type: fixed, or per vlen entry
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_VLEN = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}


@dataclass(frozen=True, slots=True)
class BtfVerdict:
    """``errno`` 0 (accepted) or the error btf_parse_module returns; ``message`` the verifier's
    line (``BPF: ...`` in dmesg) and ``type_id`` the type it concerns (0: header/strings)."""

    errno: int
    message: str
    type_id: int = 0
    types: int = 0

    @property
    def ok(self) -> bool:
        return self.errno == 0


class BaseBtf:
    """What a split BTF needs of its base: the type count (void included), each type's kind and
    the string section."""

    __slots__ = ("nr_types", "str_len", "strings", "kinds")

    def __init__(self, nr_types: int, strings: bytes, kinds: bytes) -> None:
        self.nr_types = nr_types
        self.str_len = len(strings)
        self.strings = strings
        self.kinds = kinds


class _Fail(Exception):
    def __init__(self, err: int, message: str, type_id: int = 0) -> None:
        super().__init__(message)
        self.err = err
        self.message = message
        self.type_id = type_id


def _type_size(data: bytes, pos: int, end: int) -> int:
    info = int.from_bytes(data[pos + 4 : pos + 8], "little")
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    return 12 + _FIXED.get(kind, 0) + vlen * _PER_VLEN.get(kind, 0)


def base_btf(raw: bytes) -> BaseBtf:
    """A vmlinux BTF blob (/sys/kernel/btf/vmlinux or vmlinux's ``.BTF``) as a base."""
    if len(raw) < HDR.size:
        raise LkmError("base BTF too short for a header")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = HDR.unpack_from(raw, 0)
    if magic != BTF_MAGIC or version != 1:
        raise LkmError("base is not little-endian BTF version 1")
    pos = hdr_len + type_off
    end = pos + type_len
    if end > len(raw) or hdr_len + str_off + str_len > len(raw):
        raise LkmError("base BTF sections run past the data")
    kinds = bytearray([UNKN])  # void
    while pos < end:
        if pos + 12 > end:
            raise LkmError("base BTF: truncated type")
        kinds.append(raw[pos + 7] & 0x1F)
        pos += _type_size(raw, pos, end)
    return BaseBtf(len(kinds), raw[hdr_len + str_off : hdr_len + str_off + str_len], bytes(kinds))


def base_from_file(data: bytes) -> BaseBtf:
    """A base from raw BTF, an ELF vmlinux (its ``.BTF``) or a compressed kernel image."""
    if data[:2] == b"\x9f\xeb":
        return base_btf(data)

    if data[:4] != b"\x7fELF":
        data = decompress_kernel_image(data)
    elf = ElfFile(data)
    sec = elf.section(".BTF")
    if sec is None:
        raise LkmError("the kernel has no .BTF section (no CONFIG_DEBUG_INFO_BTF)")
    return base_btf(elf.section_bytes(sec))


def module_btf(data: bytes) -> bytes | None:
    """The first ``.BTF`` section of a (decompressed) module, None if it has none."""
    mod = ModuleFile.from_bytes(data)
    sec = mod.elf.section(".BTF")
    return None if sec is None else mod.elf.section_bytes(sec)


def check_module_btf(btf: bytes, base: BaseBtf, *, kernel: str = "6.1") -> BtfVerdict:
    """btf_parse_module's verdict on a module's split BTF over ``base``."""
    try:
        n = _Parser(btf, base, kernel).run()
    except _Fail as f:
        return BtfVerdict(f.err, f.message, f.type_id)
    return BtfVerdict(0, "", 0, n)


class _Meta:
    """One struct btf_type being checked: its id, offset, kind, vlen, kind_flag, name offset,
    size_or_type and the bytes left after it."""

    __slots__ = ("tid", "pos", "kind", "vlen", "kflag", "name_off", "st", "left")

    def __init__(
        self, tid: int, pos: int, kind: int, vlen: int, kflag: int, name_off: int, st: int, left: int
    ) -> None:
        self.tid = tid
        self.pos = pos
        self.kind = kind
        self.vlen = vlen
        self.kflag = kflag
        self.name_off = name_off
        self.st = st
        self.left = left

    def fail(self, msg: str, err: int = errno.EINVAL) -> _Fail:
        return _Fail(err, f"[{self.tid}] {msg}", self.tid)

    def need(self, n: int) -> None:
        if self.left < n:
            raise self.fail(f"meta_left:{self.left} meta_needed:{n}")


class _Parser:
    def __init__(self, data: bytes, base: BaseBtf, kernel: str) -> None:
        self.d = data
        self.base = base
        self.kernel = kernel
        self.types: list[tuple[int, int, int]] = []  # (offset, kind, type)

    # -- header and strings ---------------------------------------------------------------
    def run(self) -> int:
        d = self.d
        size = len(d)
        if size < 8:
            raise _Fail(errno.EINVAL, "hdr_len not found")
        hdr_len = struct.unpack_from("<I", d, 4)[0]
        if size < hdr_len:
            raise _Fail(errno.EINVAL, "btf_header not found")
        if hdr_len > HDR.size and any(d[HDR.size : hdr_len]):
            raise _Fail(errno.E2BIG, "Unsupported btf_header")
        raw = d[: min(hdr_len, HDR.size)].ljust(HDR.size, b"\0")
        magic, version, flags, _hl, type_off, type_len, str_off, str_len = HDR.unpack(raw)
        if magic != BTF_MAGIC:
            raise _Fail(errno.EINVAL, "Invalid magic")
        if version != 1:
            raise _Fail(ENOTSUPP, "Unsupported version")
        if flags:
            raise _Fail(ENOTSUPP, "Unsupported flags")
        expected = size - hdr_len
        total = 0
        for off, ln in sorted([(type_off, type_len), (str_off, str_len)]):
            if expected < off:
                raise _Fail(errno.EINVAL, "Invalid section offset")
            if total < off:
                raise _Fail(errno.EINVAL, "Unsupported section found")
            if total > off:
                raise _Fail(errno.EINVAL, "Section overlap found")
            if expected - total < ln:
                raise _Fail(errno.EINVAL, "Total section length too long")
            total += ln
        if expected != total:
            raise _Fail(errno.EINVAL, "Unsupported section found")
        self.hdr_len, self.type_off, self.type_len = hdr_len, type_off, type_len
        self.str_start = hdr_len + str_off
        self.str_len = int(str_len)
        if self.str_start + str_len != size:
            raise _Fail(errno.EINVAL, "String section is not at the end")
        if str_len and (str_len - 1 > BTF_MAX_NAME_OFFSET or d[size - 1] != 0):
            raise _Fail(errno.EINVAL, "Invalid string section")
        self.check_all_metas()
        self.check_type_tags()
        return len(self.types)

    def name_offset_valid(self, off: int) -> bool:
        if off > BTF_MAX_NAME_OFFSET:
            return False
        if off < self.base.str_len:
            return True
        return off - self.base.str_len < self.str_len

    def name(self, off: int) -> bytes:
        """The string at a (valid) offset, in the base's strings or the module's own."""
        if off < self.base.str_len:
            b = self.base.strings
            q = b.find(b"\0", off)
            return b[off : q if q >= 0 else len(b)]
        p = self.str_start + off - self.base.str_len
        q = self.d.find(b"\0", p, self.str_start + self.str_len)
        return self.d[p : q if q >= 0 else self.str_start + self.str_len]

    def valid_name(self, off: int, section: bool = False) -> bool:
        s = self.name(off)
        if section and self.kernel == "6.12":
            return bool(s) and all(0x20 <= c < 0x7F for c in s[:KSYM_NAME_LEN]) and len(s) < KSYM_NAME_LEN
        if not s or len(s) >= KSYM_NAME_LEN:
            return False
        first = s[0]
        if not (chr(first).isascii() and (chr(first).isalpha() or first in b"_.")):
            return False
        return all(chr(c).isascii() and (chr(c).isalnum() or c in b"_.") for c in s[1:])

    # -- types ----------------------------------------------------------------------------
    def check_all_metas(self) -> None:
        d = self.d
        pos = self.hdr_len + self.type_off
        end = pos + self.type_len
        tid = self.base.nr_types
        while pos < end:
            left = end - pos
            if left < 12:
                raise _Fail(errno.EINVAL, f"[{tid}] meta_left:{left} meta_needed:12", tid)
            name_off, info, size_or_type = struct.unpack_from("<III", d, pos)
            if info & ~BTF_INFO_MASK:
                raise _Fail(errno.EINVAL, f"[{tid}] Invalid btf_info:{info:x}", tid)
            kind = (info >> 24) & 0x1F
            if kind > KIND_MAX or kind == UNKN:
                raise _Fail(errno.EINVAL, f"[{tid}] Invalid kind:{kind}", tid)
            if not self.name_offset_valid(name_off):
                raise _Fail(errno.EINVAL, f"[{tid}] Invalid name_offset:{name_off}", tid)
            extra = self.check_kind(tid, pos, kind, info, name_off, size_or_type, left - 12)
            self.types.append((pos, kind, size_or_type))
            pos += 12 + extra
            tid += 1

    def check_kind(self, tid: int, pos: int, kind: int, info: int, name_off: int, st: int, left: int) -> int:
        """The kind's check_meta (btf_kind_operations): the bytes it takes after struct btf_type."""
        m = _Meta(tid, pos, kind, info & 0xFFFF, info >> 31, name_off, st, left)
        check = _CHECK_META.get(kind)
        if check is None:
            raise m.fail(f"Invalid kind:{kind}")
        return check(self, m)

    def int_meta(self, m: _Meta) -> int:
        """btf_int_check_meta."""
        m.need(4)
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        data = struct.unpack_from("<I", self.d, m.pos + 12)[0]
        if data & ~BTF_INT_MASK:
            raise m.fail(f"Invalid int_data:{data:x}")
        bits = (data & 0xFF) + ((data >> 16) & 0xFF)
        if bits > 128:
            raise m.fail("nr_bits exceeds 128")
        if (bits + 7) // 8 > m.st:
            raise m.fail("nr_bits exceeds type_size")
        enc = (data >> 24) & 0xF
        if enc not in (0, 1, 2, 4):
            raise m.fail("Unsupported encoding", ENOTSUPP)
        return 4

    def ref_meta(self, m: _Meta) -> int:
        """btf_ref_type_check_meta."""
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        if m.st > BTF_MAX_TYPE:
            raise m.fail("Invalid type_id")
        if m.kind == TYPEDEF:
            if not m.name_off or not self.valid_name(m.name_off):
                raise m.fail("Invalid name")
        elif m.kind == TYPE_TAG:
            if not self.name(m.name_off):
                raise m.fail("Invalid name")
        elif m.name_off:
            raise m.fail("Invalid name")
        return 0

    def fwd_meta(self, m: _Meta) -> int:
        """btf_fwd_check_meta."""
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.st:
            raise m.fail("type != 0")
        if not m.name_off or not self.valid_name(m.name_off):
            raise m.fail("Invalid name")
        return 0

    def array_meta(self, m: _Meta) -> int:
        """btf_array_check_meta."""
        m.need(12)
        if m.name_off:
            raise m.fail("Invalid name")
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        if m.st:
            raise m.fail("size != 0")
        elem, index, _nelems = struct.unpack_from("<III", self.d, m.pos + 12)
        if not elem or elem > BTF_MAX_TYPE:
            raise m.fail("Invalid elem")
        if not index or index > BTF_MAX_TYPE:
            raise m.fail("Invalid index")
        return 12

    def struct_meta(self, m: _Meta) -> int:
        """btf_struct_check_meta."""
        n = m.vlen * 12
        m.need(n)
        if m.name_off and not self.valid_name(m.name_off):
            raise m.fail("Invalid name")
        last = 0
        for i in range(m.vlen):
            m_name, m_type, m_off = struct.unpack_from("<III", self.d, m.pos + 12 + 12 * i)
            if not self.name_offset_valid(m_name):
                raise m.fail(f"Invalid member name_offset:{m_name}")
            if m_name and not self.valid_name(m_name):
                raise m.fail("Invalid member name")
            if not m_type or m_type > BTF_MAX_TYPE:
                raise m.fail("Invalid type_id")
            off = m_off & 0xFFFFFF if m.kflag else m_off
            if m.kind == UNION and off:
                raise m.fail("Invalid member bits_offset")
            if last > off:
                raise m.fail("Invalid member bits_offset")
            if (off + 7) // 8 > m.st:
                raise m.fail("Member bits_offset exceeds its struct size")
            last = off
        return n

    def enum_meta(self, m: _Meta) -> int:
        """btf_enum_check_meta, btf_enum64_check_meta."""
        width = 8 if m.kind == ENUM else 12
        n = m.vlen * width
        m.need(n)
        if m.st > 8 or m.st == 0 or m.st & (m.st - 1):
            raise m.fail("Unexpected size")
        if m.name_off and not self.valid_name(m.name_off):
            raise m.fail("Invalid name")
        for i in range(m.vlen):
            e_name = struct.unpack_from("<I", self.d, m.pos + 12 + width * i)[0]
            if not self.name_offset_valid(e_name):
                raise m.fail(f"Invalid name_offset:{e_name}")
            if not e_name or not self.valid_name(e_name):
                raise m.fail("Invalid name")
        return n

    def func_proto_meta(self, m: _Meta) -> int:
        """btf_func_proto_check_meta."""
        n = m.vlen * 8
        m.need(n)
        if m.name_off:
            raise m.fail("Invalid name")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        return n

    def func_meta(self, m: _Meta) -> int:
        """btf_func_check_meta."""
        if not m.name_off or not self.valid_name(m.name_off):
            raise m.fail("Invalid name")
        if m.vlen > 2:
            raise m.fail("Invalid func linkage")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        return 0

    def var_meta(self, m: _Meta) -> int:
        """btf_var_check_meta."""
        m.need(4)
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        if not m.name_off or not self.valid_name(m.name_off):
            raise m.fail("Invalid name")
        if not m.st or m.st > BTF_MAX_TYPE:
            raise m.fail("Invalid type_id")
        linkage = struct.unpack_from("<I", self.d, m.pos + 12)[0]
        if linkage not in (0, 1):
            raise m.fail("Linkage not supported")
        return 4

    def datasec_meta(self, m: _Meta) -> int:
        """btf_datasec_check_meta."""
        n = m.vlen * 12
        m.need(n)
        if not m.st:
            raise m.fail("size == 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        if not m.name_off or not self.valid_name(m.name_off, section=True):
            raise m.fail("Invalid name")
        last_end = total = 0
        for i in range(m.vlen):
            v_type, v_off, v_size = struct.unpack_from("<III", self.d, m.pos + 12 + 12 * i)
            if not v_type or v_type > BTF_MAX_TYPE:
                raise m.fail("Invalid type_id")
            if v_off < last_end or v_off >= m.st:
                raise m.fail("Invalid offset")
            if not v_size or v_size > m.st:
                raise m.fail("Invalid size")
            last_end = v_off + v_size
            if last_end > m.st:
                raise m.fail("Invalid offset+size")
            total += v_size
        if m.st < total:
            raise m.fail("Invalid btf_info size")
        return n

    def float_meta(self, m: _Meta) -> int:
        """btf_float_check_meta."""
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        if m.st not in (2, 4, 8, 12, 16):
            raise m.fail("Invalid type_size")
        return 0

    def decl_tag_meta(self, m: _Meta) -> int:
        """btf_decl_tag_check_meta."""
        m.need(4)
        if not self.name(m.name_off):
            raise m.fail("Invalid value")
        if m.vlen:
            raise m.fail("vlen != 0")
        if m.kflag:
            raise m.fail("Invalid btf_info kind_flag")
        idx = struct.unpack_from("<i", self.d, m.pos + 12)[0]
        if idx < -1:
            raise m.fail("Invalid component_idx")
        return 4

    def check_type_tags(self) -> None:
        start = self.base.nr_types
        good = start - 1
        n = start + len(self.types)
        for i in range(start, n):
            _pos, kind, ref = self.types[i - start]
            if kind not in MODIFIERS:
                continue
            in_tags = kind == TYPE_TAG
            cur = i
            limit = 32
            while kind in MODIFIERS:
                if not limit:
                    raise _Fail(errno.ELOOP, "Max chain length or cycle detected", i)
                limit -= 1
                if kind == TYPE_TAG:
                    if not in_tags:
                        raise _Fail(errno.EINVAL, "Type tags don't precede modifiers", i)
                elif in_tags:
                    in_tags = False
                if cur <= good:
                    break
                cur = ref
                if cur >= n:
                    raise _Fail(errno.EINVAL, f"[{i}] type id {cur} out of range", i)
                if cur < start:
                    kind, ref = self.base.kinds[cur], 0  # a base type: the next round stops at it
                else:
                    _pos, kind, ref = self.types[cur - start]
            good = i


_CHECK_META: dict[int, Callable[[_Parser, _Meta], int]] = {
    INT: _Parser.int_meta,
    PTR: _Parser.ref_meta,
    TYPEDEF: _Parser.ref_meta,
    VOLATILE: _Parser.ref_meta,
    CONST: _Parser.ref_meta,
    RESTRICT: _Parser.ref_meta,
    TYPE_TAG: _Parser.ref_meta,
    FWD: _Parser.fwd_meta,
    ARRAY: _Parser.array_meta,
    STRUCT: _Parser.struct_meta,
    UNION: _Parser.struct_meta,
    ENUM: _Parser.enum_meta,
    ENUM64: _Parser.enum_meta,
    FUNC_PROTO: _Parser.func_proto_meta,
    FUNC: _Parser.func_meta,
    VAR: _Parser.var_meta,
    DATASEC: _Parser.datasec_meta,
    FLOAT: _Parser.float_meta,
    DECL_TAG: _Parser.decl_tag_meta,
}

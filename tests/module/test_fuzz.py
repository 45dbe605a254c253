"""Fuzzing the module reader: damaged modules must fail with an LkmError, never anything else.

Each example damages a fixture module (bytes flipped or overwritten -- more often in the ELF
header, the section header table and the last 600 bytes, where an appended signature lives --,
truncated, or with bytes inserted), opens it with :meth:`ModuleFile.from_bytes` and touches
everything a tool may ask of a module.  Anything but an :class:`~lkm.errors.LkmError` escaping
is a bug (the CLI turns only LkmError into a one-line message; anything else is a traceback).
Examples are derandomized and the example database is off, so CI runs the same inputs each time.
"""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lkm.errors import InvalidModule, LkmError
from lkm.module.file import ModuleFile
from lkm.module.info import info_entries
from lkm.module.report import module_report
from lkm.module.validate import check_module

from support import FIX6, FIX24

SEED_FILES = {
    "chardev.ko": FIX6 / "chardev.ko",
    "params.ko": FIX6 / "params.ko",
    "exporter.ko": FIX6 / "exporter.ko",
    "chardev-signed.ko": FIX6 / "chardev-signed.ko",
    "chardev.ko.xz": FIX6 / "chardev.ko.xz",
    "chardev.ko.zst": FIX6 / "chardev.ko.zst",
    "chardev.ko.gz": FIX6 / "chardev.ko.gz",
    "fat24.o": FIX24 / "fat24.o",
}
SEEDS: dict[str, bytes] = {name: p.read_bytes() for name, p in SEED_FILES.items()}
PLAIN = [n for n in SEEDS if not n.endswith((".xz", ".zst", ".gz"))]
COMPRESSED = [n for n in SEEDS if n not in PLAIN]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.data_too_large,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

PROPERTIES = (
    "modinfo", "parameters", "exports", "needed", "versions", "build_id", "signature", "name",
    "vermagic", "is_24", "module_size",
)  # fmt: skip


def _lkm_error(exc: LkmError) -> None:
    """What the CLI relies on: a non-empty one-line reason (and an errno for InvalidModule)."""
    assert exc.reason and "\n" not in exc.reason, repr(exc.reason)
    if isinstance(exc, InvalidModule):
        assert isinstance(exc.errno, int) and exc.errno > 0


def _guard(fn: Callable[[], object]) -> None:
    try:
        fn()
    except LkmError as exc:
        _lkm_error(exc)


def exercise(data: bytes) -> None:
    """Open ``data`` and ask for everything; only LkmError may escape (and is swallowed)."""
    try:
        m = ModuleFile.from_bytes(data, path="fuzz.ko")
    except LkmError as exc:
        _lkm_error(exc)
        return
    for prop in PROPERTIES:
        _guard(lambda prop=prop: getattr(m, prop))  # type: ignore[misc]
    _guard(lambda: info_entries(m))
    _guard(lambda: module_report(m, exports=True, imports=True))
    for k in ("6.1", "6.12"):
        _guard(lambda k=k: check_module(m.elf, kernel=k))  # type: ignore[misc]


# -- where the interesting bytes are ------------------------------------------------------------


def _elf_regions(data: bytes) -> dict[str, tuple[int, int]]:
    """[start, end) of the ELF header, the section header table and the last 600 bytes."""
    n = len(data)
    regions = {"anywhere": (0, n), "tail": (max(0, n - 600), n), "header": (0, min(n, 64))}
    if n >= 64 and data[:4] == b"\x7fELF" and data[4] in (1, 2):
        if data[4] == 2:
            regions["header"] = (0, 64)
            (shoff,) = struct.unpack_from("<Q", data, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        else:
            regions["header"] = (0, 52)
            (shoff,) = struct.unpack_from("<I", data, 0x20)
            shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
        end = min(n, shoff + shentsize * shnum)
        if shoff < end:
            regions["shtab"] = (shoff, end)
    return regions


INTERESTING = [
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\x7f", b"\x00\x80",
    b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
    b"\x01\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00\x00\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x80", b"\x00\x10\x00\x00",
]  # fmt: skip
REGION_WEIGHTS = ["header", "header", "shtab", "shtab", "tail", "tail", "anywhere"]


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-8 random mutations, biased toward the interesting regions."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not buf:
            break
        regions = _elf_regions(bytes(buf))
        region = draw(st.sampled_from(REGION_WEIGHTS))
        lo, hi = regions.get(region, regions["anywhere"])
        hi = min(hi, len(buf))
        if lo >= hi:
            lo, hi = 0, len(buf)
        pos = draw(st.integers(lo, hi - 1))
        op = draw(st.sampled_from(["flip", "flip", "byte", "word", "word", "truncate", "insert", "delete"]))
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            buf[pos] = draw(st.integers(0, 255))
        elif op == "word":
            w = draw(st.sampled_from(INTERESTING))
            buf[pos : pos + len(w)] = w[: len(buf) - pos]
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        else:
            del buf[pos : pos + draw(st.integers(1, 64))]
    return bytes(buf)


def _recompress(raw: bytes, kind: str) -> bytes:
    if kind == "xz":
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if kind == "gz":
        return gzip.compress(raw, mtime=0)
    import zstandard

    return zstandard.ZstdCompressor().compress(raw)


def _decompress(data: bytes, kind: str) -> bytes:
    if kind == "xz":
        return lzma.decompress(data)
    if kind == "gz":
        return gzip.decompress(data)
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data)


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(list(SEEDS)))
    data = SEEDS[name]
    if name in COMPRESSED and draw(st.booleans()):
        # A valid stream of a damaged module: the reader must get past decompression.
        kind = name.rsplit(".", 1)[1]
        return _recompress(draw(damaged(_decompress(data, kind))), kind)
    return draw(damaged(data))


# -- the tests ----------------------------------------------------------------------------------


def test_seeds_are_readable() -> None:
    """The undamaged seeds open and go through everything (so the fuzzing starts from sense)."""
    for name, data in SEEDS.items():
        m = ModuleFile.from_bytes(data, path=name)
        for prop in PROPERTIES:
            getattr(m, prop)
        info_entries(m)
        module_report(m, exports=True, imports=True)
    assert ModuleFile.from_bytes(SEEDS["chardev-signed.ko"]).signature is not None
    assert ModuleFile.from_bytes(SEEDS["fat24.o"]).is_24


@FUZZ
@given(mutated_seed())
def test_mutated_fixtures(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.binary(max_size=4096).map(lambda b: b"\x7fELF" + b),
        st.binary(max_size=4096).map(lambda b: b"\x7fELF\x02\x01\x01" + b),
        st.binary(max_size=4096).map(lambda b: b"\x7fELF\x01\x01\x01" + b),
        st.binary(max_size=4096).map(lambda b: b"\xfd7zXZ\x00" + b),
        st.binary(max_size=4096).map(lambda b: b"\x28\xb5\x2f\xfd" + b),
        st.binary(max_size=4096).map(lambda b: b"\x1f\x8b" + b),
    )
)
def test_random_bytes(data: bytes) -> None:
    exercise(data)


# ELF header fields: (offset, struct format) per class.
HEADER_FIELDS = {
    64: {"e_shoff": (0x28, "Q"), "e_shentsize": (0x3A, "H"), "e_shnum": (0x3C, "H"),
         "e_shstrndx": (0x3E, "H")},
    32: {"e_shoff": (0x20, "I"), "e_shentsize": (0x2E, "H"), "e_shnum": (0x30, "H"),
         "e_shstrndx": (0x32, "H")},
}  # fmt: skip
HEADER_SEEDS = ["chardev.ko", "chardev-signed.ko", "params.ko", "fat24.o"]


def _extremes(fmt: str, data_len: int) -> st.SearchStrategy[int]:
    top = (1 << (8 * struct.calcsize(fmt))) - 1
    fixed = sorted({0, 1, 2, top, top - 1, top >> 1, (top >> 1) + 1, 0xFFFF & top, 0xFF00 & top,
                    0xFFF1 & top, 64 & top, min(top, data_len), min(top, data_len - 1),
                    min(top, data_len + 1), min(top, data_len - 64)})  # fmt: skip
    return st.one_of(st.sampled_from(fixed), st.integers(0, top))


@st.composite
def header_mutated(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(HEADER_SEEDS))
    buf = bytearray(SEEDS[name])
    fields = HEADER_FIELDS[64 if buf[4] == 2 else 32]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4, unique=True))
    for f in chosen:
        off, fmt = fields[f]
        struct.pack_into("<" + fmt, buf, off, draw(_extremes(fmt, len(buf))))
    if draw(st.booleans()):  # sometimes also the class / byte order / type / machine
        which = draw(st.sampled_from([4, 5, 16, 18]))
        buf[which] = draw(st.sampled_from([0, 1, 2, 3, 0xFF]))
    if draw(st.booleans()):
        del buf[draw(st.integers(0, len(buf))) :]
    return bytes(buf)


@FUZZ
@given(header_mutated())
def test_extreme_elf_header_fields(data: bytes) -> None:
    exercise(data)


# Section header fields: (offset in the header, struct format) per class.
SECTION_FIELDS = {
    64: {"sh_name": (0, "I"), "sh_type": (4, "I"), "sh_flags": (8, "Q"), "sh_offset": (24, "Q"),
         "sh_size": (32, "Q"), "sh_link": (40, "I"), "sh_info": (44, "I"), "sh_entsize": (56, "Q")},
    32: {"sh_name": (0, "I"), "sh_type": (4, "I"), "sh_flags": (8, "I"), "sh_offset": (16, "I"),
         "sh_size": (20, "I"), "sh_link": (24, "I"), "sh_info": (28, "I"), "sh_entsize": (36, "I")},
}  # fmt: skip
SECTION_SEEDS = ["chardev.ko", "chardev-signed.ko", "params.ko", "exporter.ko", "fat24.o"]


@st.composite
def section_header_mutated(draw: st.DrawFn) -> bytes:
    """One to three section headers with a field set to an extreme or random value."""
    name = draw(st.sampled_from(SECTION_SEEDS))
    buf = bytearray(SEEDS[name])
    cls = 64 if buf[4] == 2 else 32
    hf = HEADER_FIELDS[cls]
    shoff = struct.unpack_from("<" + hf["e_shoff"][1], buf, hf["e_shoff"][0])[0]
    shentsize = struct.unpack_from("<H", buf, hf["e_shentsize"][0])[0]
    shnum = struct.unpack_from("<H", buf, hf["e_shnum"][0])[0]
    fields = SECTION_FIELDS[cls]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, shnum - 1))
        f = draw(st.sampled_from(sorted(fields)))
        off, fmt = fields[f]
        if f == "sh_type":
            value = draw(st.one_of(st.sampled_from([0, 1, 2, 3, 4, 7, 8, 9, 11, 0x70000000]),
                                   st.integers(0, 0xFFFFFFFF)))  # fmt: skip
        elif f in ("sh_link", "sh_info"):
            value = draw(st.one_of(st.integers(0, shnum + 1), _extremes(fmt, len(buf))))
        else:
            value = draw(_extremes(fmt, len(buf)))
        struct.pack_into("<" + fmt, buf, shoff + i * shentsize + off, value)
    return bytes(buf)


@FUZZ
@given(section_header_mutated())
def test_extreme_section_header_fields(data: bytes) -> None:
    exercise(data)


# .modinfo replaced by arbitrary entries: appended at the end of the file, its section header
# pointed there, so the rest of the layout stays valid.
MODINFO_KEYS = [
    "parm", "parmtype", "parm_level", "parm_desc_level", "name", "vermagic", "kernel_version",
    "depends", "alias", "softdep", "import_ns", "license", "description",
]  # fmt: skip
MODINFO_SEEDS = ["params.ko", "chardev.ko", "fat24.o"]


def _modinfo_header(data: bytes) -> tuple[int, str]:
    """File offset of the .modinfo section header and the class's offset/size format."""
    from io import BytesIO

    from elftools.elf.elffile import ELFFile

    elf = ELFFile(BytesIO(data))
    for i, sec in enumerate(elf.iter_sections()):
        if sec.name == ".modinfo":
            hdr = elf["e_shoff"] + i * elf["e_shentsize"]
            return (hdr + 24, "<QQ") if elf.elfclass == 64 else (hdr + 16, "<II")
    raise AssertionError("seed without .modinfo")


MODINFO_HEADERS = {name: _modinfo_header(SEEDS[name]) for name in MODINFO_SEEDS}

# Text that looks numeric to str.isdigit() or is plain ASCII spec syntax, as 2.4 parm_ values.
SPEC_CHARS = st.one_of(
    st.sampled_from("0123456789-bhilscp"),
    st.characters(categories=["Nd", "No"]),
)


def with_modinfo(seed: str, entries: list[tuple[str, str]]) -> bytes:
    """Seed ``seed`` whose .modinfo is ``entries``, appended at the end of the file."""
    buf = bytearray(SEEDS[seed])
    blob = b"".join(f"{k}={v}".encode("utf-8", "surrogatepass") + b"\0" for k, v in entries)
    at, fmt = MODINFO_HEADERS[seed]
    struct.pack_into(fmt, buf, at, len(buf), len(blob))
    return bytes(buf + blob)


KEY = st.one_of(st.sampled_from(MODINFO_KEYS), st.text(max_size=12))
SPEC24 = st.one_of(
    st.from_regex(r"\A[0-9]{0,3}(-[0-9]{0,3})?[bhilscx]?[0-9]{0,3}p?\Z"),  # 2.4 parm_ specs
    st.text(alphabet=SPEC_CHARS, max_size=12),
    st.integers(1, 6000).map(lambda n: "1" * n + "i"),  # long numbers
)
ENTRY = st.one_of(
    st.tuples(KEY, st.text(max_size=40)),  # anything
    st.tuples(st.sampled_from(["parm_level", "parm_mask"]), SPEC24),  # 2.4 parameters
    st.tuples(st.sampled_from(["parm", "parmtype"]), st.text(max_size=20).map(lambda t: "level:" + t)),
)


@FUZZ
@given(st.sampled_from(MODINFO_SEEDS), st.lists(ENTRY, max_size=12))
def test_rewritten_modinfo(seed: str, entries: list[tuple[str, str]]) -> None:
    data = with_modinfo(seed, entries)
    if all(k and "=" not in k and "\0" not in k + v and not any(0xD800 <= ord(c) < 0xE000 for c in k + v)
           for k, v in entries):  # fmt: skip
        # Well-formed entries must read back exactly as written.
        assert ModuleFile.from_bytes(data, path="fuzz.ko").modinfo == entries
    exercise(data)

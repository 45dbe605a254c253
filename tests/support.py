"""Helpers shared by the tests (imported as ``support``; pytest puts tests/ on the path).

Tests that need something outside the repository (the real-module corpus, Debian's kmod,
binutils, QEMU) call :func:`require`: it skips on a developer's machine and FAILS under
CI=true, where ./scripts/test has set everything up.  Also here: the fixture paths, the CLI as
a user runs it, the oops captures of the corpus guests, and scratch module trees with the
x86_64 module generator for the depmod/modprobe tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIX6 = FIXTURES / "6x"
FIX24 = FIXTURES / "24"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: object, why: str) -> None:
    """Skip (developer) or fail (CI) when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {why}")
    pytest.skip(why)


def kmod_modinfo() -> str:
    # Called by its bare name so that its messages carry the same program name as a user sees.
    require(shutil.which("modinfo"), "Debian's kmod (modinfo) is not on PATH: apt-get install kmod")
    return "modinfo"


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def lkm_cmd() -> list[str]:
    """How to run the CLI as a user would, from this checkout."""
    exe = shutil.which("lkm")
    return [exe] if exe else [sys.executable, "-m", "lkm"]


def fixture_modules() -> list[Path]:
    return sorted(p for p in FIX6.iterdir() if ".ko" in p.name)


def _capture(make, *args):  # type: ignore[no-untyped-def]
    from testing.captures import CaptureError
    from testing.corpus import CorpusError

    try:
        return make(*args)
    except (CaptureError, CorpusError, OSError, KeyError) as exc:
        require(False, str(exc))
        raise


def oops_capture(tree: str) -> Path:
    """scripts/guest_oops.py's capture for ``tree`` (testing.captures.oops_capture: made on
    first use, and again for a new kernel build)."""
    from testing.captures import oops_capture as make

    return _capture(make, tree)  # type: ignore[no-any-return]


def replay_capture(driver: str) -> Path:
    """scripts/guest_replay.py's QEMU recording of ``driver`` on the amd64 6.1 tree
    (testing.captures.replay_capture: made on first use, and again for a new kernel build)."""
    from testing.captures import replay_capture as make

    return _capture(make, driver)  # type: ignore[no-any-return]


def guest_kallsyms(tree: object) -> Path:
    """The corpus tree's guest /proc/kallsyms (nokaslr), captured on first use."""
    from testing.captures import guest_kallsyms as make

    return _capture(make, tree)  # type: ignore[no-any-return]


def corpus_symbols(arch: str = "x86_64"):  # type: ignore[no-untyped-def]
    """The emulator's symbol space from the corpus 6.1 kernel of *arch* (its guest kallsyms)."""
    from testing.captures import corpus_symbols as make

    return _capture(make, arch)


def corpus_profile(addresses: str = "guest"):  # type: ignore[no-untyped-def]
    """The model profile of the corpus's own amd64 6.1 build (testing.captures.corpus_profile;
    addresses from the guest's /proc/kallsyms or, ``"image"``, from its vmlinuz)."""
    from testing.captures import corpus_profile as make

    return _capture(lambda: make(addresses=addresses))


# --------------------------------------------------------------------------------------
# Scratch module trees and the kmod oracle (depmod/modprobe tests)

RELEASE = "6.1.0-syn"


def kmod_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    require(path, f"Debian's kmod ({name}) is not installed: apt-get install kmod")
    assert path is not None
    return path


def make_tree(root: Path, modules: dict[str, bytes], release: str = RELEASE, **files: bytes) -> Path:
    """root/lib/modules/RELEASE with ``modules`` (relative path -> bytes) and extra files
    (modules_order=..., modules_builtin=...; underscores become dots)."""
    d = root / "lib" / "modules" / release
    for rel, data in modules.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name.replace("_", ".")).write_bytes(data)
    return d


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def outputs(d: Path) -> dict[str, bytes]:
    """depmod's files in ``d`` (not lkm's own modules.lkm-cache, which kmod does not write)."""
    return {
        p: (d / p).read_bytes()
        for p in sorted(os.listdir(d))
        if p.startswith("modules.") and p != "modules.lkm-cache"
    }


# --------------------------------------------------------------------------------------
# Minimal x86_64 module objects for depmod/modprobe tests, written from scratch.
#
# A generated .ko carries what depmod and modprobe read: .modinfo, exports the way a kbuild
# module has them (__ksymtab entries with PC32 relocations, __kcrctab against absolute __crc_*
# symbols, names in __ksymtab_strings), undefined symbols for what it needs (weak ones
# optional) and __versions CRCs.  Enough for kmod's depmod and for lkm's reader alike.

R_X86_64_32 = 10
R_X86_64_PC32 = 2
SHN_ABS = 0xFFF1


def make_module(
    name: str,
    exports: dict[str, int] | None = None,
    needs: dict[str, int] | None = None,
    weak: tuple[str, ...] = (),
    modinfo: list[str] | None = None,
) -> bytes:
    exports = exports or {}
    needs = needs or {}
    info = [f"name={name}", "vermagic=6.1.0 SMP mod_unload modversions ", *(modinfo or [])]
    strtab = bytearray(b"\0")

    def sname(s: str) -> int:
        off = len(strtab)
        strtab.extend(s.encode() + b"\0")
        return off

    kstr = bytearray()
    kstr_off: dict[str, int] = {}
    for e in exports:
        kstr_off[e] = len(kstr)
        kstr.extend(e.encode() + b"\0")
    text = b"\xc3" * max(1, len(exports))  # one `ret` per exported function
    # section indices
    names = [
        "",
        ".text",
        ".modinfo",
        "__ksymtab_strings",
        "__ksymtab",
        ".rela__ksymtab",
        "__kcrctab",
        ".rela__kcrctab",
        "__versions",
        ".symtab",
        ".strtab",
        ".shstrtab",
    ]
    idx = {n: i for i, n in enumerate(names)}
    # symbols: locals first (null, __kstrtab_*), then globals
    syms: list[tuple[int, int, int, int, int]] = [(0, 0, 0, 0, 0)]  # name, info, shndx, value, size
    kstrtab_sym: dict[str, int] = {}
    for e in exports:
        kstrtab_sym[e] = len(syms)
        syms.append((sname("__kstrtab_" + e), 0x01, idx["__ksymtab_strings"], kstr_off[e], len(e) + 1))
    first_global = len(syms)
    func_sym: dict[str, int] = {}
    crc_sym: dict[str, int] = {}
    for i, (e, crc) in enumerate(exports.items()):
        func_sym[e] = len(syms)
        syms.append((sname(e), 0x12, idx[".text"], i, 1))
        crc_sym[e] = len(syms)
        syms.append((sname("__crc_" + e), 0x10, SHN_ABS, crc, 0))
    for n in needs:
        syms.append((sname(n), (0x20 if n in weak else 0x10), 0, 0, 0))
    symtab = b"".join(struct.pack("<IBBHQQ", n, i, 0, sh, v, sz) for n, i, sh, v, sz in syms)
    ksymtab = b"\0" * (12 * len(exports))
    rela_k = b""
    kcrctab = b"\0" * (4 * len(exports))
    rela_c = b""
    for i, e in enumerate(exports):
        rela_k += struct.pack("<QQq", 12 * i, (func_sym[e] << 32) | R_X86_64_PC32, 0)
        rela_k += struct.pack("<QQq", 12 * i + 4, (kstrtab_sym[e] << 32) | R_X86_64_PC32, 0)
        rela_c += struct.pack("<QQq", 4 * i, (crc_sym[e] << 32) | R_X86_64_32, 0)
    versions = b"".join(struct.pack("<Q56s", crc, n.encode()) for n, crc in needs.items())
    modinfo_b = b"".join(s.encode() + b"\0" for s in info)
    shstrtab = bytearray(b"\0")
    sh_name = []
    for n in names:
        if n:
            sh_name.append(len(shstrtab))
            shstrtab.extend(n.encode() + b"\0")
        else:
            sh_name.append(0)
    bodies = {
        ".text": text,
        ".modinfo": modinfo_b,
        "__ksymtab_strings": bytes(kstr),
        "__ksymtab": ksymtab,
        ".rela__ksymtab": rela_k,
        "__kcrctab": kcrctab,
        ".rela__kcrctab": rela_c,
        "__versions": versions,
        ".symtab": symtab,
        ".strtab": bytes(strtab),
        ".shstrtab": bytes(shstrtab),
    }
    out = bytearray(64)
    offsets = {}
    for n in names[1:]:
        while len(out) % 8:
            out.append(0)
        offsets[n] = len(out)
        out += bodies[n]
    while len(out) % 8:
        out.append(0)
    shoff = len(out)
    # type, flags, link, info, align, entsize
    meta = {
        ".text": (1, 6, 0, 0, 16, 0),
        ".modinfo": (1, 2, 0, 0, 1, 0),
        "__ksymtab_strings": (1, 0x32, 0, 0, 1, 1),
        "__ksymtab": (1, 2, 0, 0, 4, 0),
        ".rela__ksymtab": (4, 0x40, idx[".symtab"], idx["__ksymtab"], 8, 24),
        "__kcrctab": (1, 2, 0, 0, 4, 0),
        ".rela__kcrctab": (4, 0x40, idx[".symtab"], idx["__kcrctab"], 8, 24),
        "__versions": (1, 2, 0, 0, 32, 0),
        ".symtab": (2, 0, idx[".strtab"], first_global, 8, 24),
        ".strtab": (3, 0, 0, 0, 1, 0),
        ".shstrtab": (3, 0, 0, 0, 1, 0),
    }
    out += b"\0" * 64
    for i, n in enumerate(names[1:], 1):
        t, fl, link, inf, al, es = meta[n]
        out += struct.pack("<IIQQQQIIQQ", sh_name[i], t, fl, 0, offsets[n], len(bodies[n]), link, inf, al, es)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    out[:64] = ident + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(names), idx[".shstrtab"]
    )
    return bytes(out)


# A small tree covering every modprobe.d directive (test_modprobe_kmod, test_modprobe_load).
MODS = {
    "kernel/a.ko": make_module(
        "a", exports={"a_fn": 1}, needs={"b_fn": 1}, modinfo=["alias=dev:a*", "softdep=pre: c"]
    ),
    "kernel/b.ko": make_module("b", exports={"b_fn": 1}, modinfo=["alias=dev:b?", "alias=dev:[bB]x"]),
    "kernel/c.ko": make_module("c", modinfo=["alias=dev:c*"]),
    "kernel/d-e.ko": make_module("d_e", needs={"a_fn": 1}, modinfo=["alias=dev:de"]),
    "kernel/f.ko": make_module("f", modinfo=["alias=dev:f"]),
    "kernel/g.ko": make_module("g"),
}
CONF = b"""# every directive
alias my-alias d-e
alias wild* f
options a opt1=1 opt2="x y"
options a\topt3
options d_e de=1
install g /bin/true $CMDLINE_OPTS
remove g /bin/false
softdep f pre: g post: c
softdep f pre: b
blacklist f
bogus directive
"""


# --------------------------------------------------------------------------------------
# 2.4 insmod links (tests/link/test_link24*.py): a kernel's /proc/ksyms, where the module goes,
# and insmod's options as modutils would set them for a module in /lib/modules/2.4.20/misc.

LINK24_BASE = 0xC8800000
LINK24_MTIME = 0x3E5A1B2C
KSYMS24 = """\
c0118000 printk
c0130000 kmalloc
c0130100 kfree
c0140000 register_chrdev
c0140100 unregister_chrdev
c0150000 __generic_copy_to_user
c0160000 register_filesystem
c0160100 unregister_filesystem
"""


def insmod24_options(path: Path, **kw: object):  # type: ignore[no-untyped-def]
    from lkm.link.insmod24 import Insmod24Options

    return Insmod24Options(object_path=f"/lib/modules/2.4.20/misc/{path.name}", mtime=LINK24_MTIME, **kw)  # type: ignore[arg-type]


# -- pictures (tests/draw) ------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def lkm(*args: str) -> tuple[int, str, str]:
    from lkm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["lkm", *args])
    return rc, out.getvalue(), err.getvalue()


def lkm_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``lkm ARGS`` run in this process (lkm.cli.main, as ``python -m lkm`` runs it), its
    streams bytes decoded with surrogateescape as a process's would be: the same output
    without an interpreter start per call."""
    from lkm.cli import main

    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape") for _ in range(2)]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams
    try:
        rc = main(["lkm", *args])
    finally:
        for s in streams:
            s.flush()
        sys.stdout, sys.stderr = saved
    out, err = (s.buffer.getvalue().decode("utf-8", "surrogateescape") for s in streams)  # type: ignore[attr-defined]
    return subprocess.CompletedProcess(["lkm", *args], rc, out, err)


def summary_sections(text: str) -> list[tuple[str, int, int, str]]:
    rows = []
    for line in text.splitlines()[1:]:
        name, addr, size, region = line.split()
        rows.append((name, int(addr, 16), int(size, 16), region))
    return rows


def map24_sections(text: str) -> list[tuple[str, int, int]]:
    rows = []
    for line in text.split("\n\n")[0].splitlines()[1:]:
        name, size, addr, _align = line.split()
        rows.append((name, int(addr, 16), int(size, 16)))
    return rows


def kallsyms_for(paths: list[Path], out: Path) -> Path:
    from lkm.module import ModuleFile

    names: set[str] = set()
    for p in paths:
        names |= {n.name for n in ModuleFile.open(p).needed}
    out.write_text(
        "".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(sorted(names)))
    )
    return out


WHY_MODS = {
    "kernel/core.ko": make_module("core", exports={"core_fn": 1}),
    "kernel/mid.ko": make_module("mid", exports={"mid_fn": 1}, needs={"core_fn": 1}),
    "kernel/top.ko": make_module("top", needs={"mid_fn": 1}, modinfo=["alias=dev:top*"]),
    "kernel/net-a.ko": make_module(
        "net_a", needs={"core_fn": 1}, modinfo=["alias=pci:v0000ABCDd*sv*sd*bc*sc*i*"]
    ),
    "kernel/helper.ko": make_module("helper"),
    "kernel/withsd.ko": make_module("withsd", modinfo=["softdep=pre: helper post: crypto_x"]),
    "kernel/crypto_x.ko": make_module("crypto_x", modinfo=["alias=cipher-x"]),
    "kernel/bad.ko": make_module("bad", modinfo=["alias=dev:bad"]),
    "kernel/wrapped.ko": make_module("wrapped"),
    "kernel/inner.ko": make_module("inner"),
    "kernel/fsmod.ko": make_module("fsmod", modinfo=["alias=fs-fsmod"]),
    "kernel/opt.ko": make_module("opt"),
}
WHY_CONF = b"""blacklist bad
install wrapped /sbin/modprobe --ignore-install inner; /sbin/modprobe --ignore-install wrapped
softdep top post: helper
alias my-name opt
options opt debug=1
"""


# -- trust (tests/trust) --------------------------------------------------------------


def corpus_tree(name: str) -> Path:
    from testing.corpus import corpus_dir

    d = corpus_dir() / name
    require(d.is_dir(), f"corpus tree {name} missing: run scripts/fetch_corpus.py")
    return d


def tree_image(name: str) -> Path:
    images = sorted((corpus_tree(name) / "boot").glob("vmlinuz-*"))
    require(images, f"{name}: no vmlinuz")
    return images[0]


def tree_modules(name: str) -> list[Path]:
    mods = sorted(p for p in (corpus_tree(name) / "lib" / "modules").rglob("*.ko*"))
    require(mods, f"{name}: no modules")
    return mods


RSA_KEY = FIX6 / "signing_key.pem"
RSA_CERT = FIX6 / "signing_key.x509"


# -- headless Chromium for the picture tests ----------------------------------------
# Debian's ``chromium``, started per call (nothing is downloaded): the DOM after loading
# (``--dump-dom``), console errors from its log, and a screenshot.

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--mute-audio",
]
# Log lines that mean the page itself had a problem (scripts, failed fetches, parse errors)
PAGE_ERRORS = (
    "CONSOLE",
    "Uncaught",
    "net::ERR",
    "Failed to load resource",
    "Refused to",
    "XML Parsing Error",
    "This page contains the following errors",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path, "Debian's chromium is not installed: apt-get install chromium")
    assert path is not None
    return path


def load(
    path: Path, *, dark: bool = False, shot: tuple[Path, int, int] | None = None
) -> tuple[str, list[str]]:
    """(the DOM as the browser serialises it, the log lines that report page errors).
    ``shot=(png, width, height)``: the same browser run also takes a screenshot into *png*
    (one start of chromium instead of two)."""
    cmd = [
        chromium(),
        *FLAGS,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=2000",
        *(["--force-dark-mode"] if dark else []),
        *([f"--screenshot={shot[0]}", f"--window-size={shot[1]},{shot[2]}"] if shot else []),
        "--dump-dom",
        path.resolve().as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    if shot:
        assert shot[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = [ln for ln in p.stderr.splitlines() if any(e in ln for e in PAGE_ERRORS)]
    return p.stdout, errors


def screenshot(path: Path, out: Path, width: int, height: int, *, dark: bool = False) -> bytes:
    cmd = [
        chromium(),
        *FLAGS,
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        *(["--force-dark-mode"] if dark else []),
        path.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def png_distinct_bytes(data: bytes) -> int:
    """How many different byte values the decompressed pixel rows hold (a blank image: ~2)."""
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return len(set(zlib.decompress(idat)))


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each element id'ed by a class."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _t, a in self.tags if cls in a.get("class", "").split()]


def self_contained(text: str) -> list[str]:
    """References that would need the network or a script: there must be none."""
    bad = []
    for tag, attrs in Elements(text).tags:
        if tag == "script":
            bad.append("<script>")
        for k, v in attrs.items():
            if k in ("src", "href", "xlink:href") and not v.startswith("#"):
                bad.append(f"{tag} {k}={v}")
            if k.startswith("on"):
                bad.append(f"{tag} {k}")
    if "@import" in text or "url(" in text:
        bad.append("CSS fetch")
    return bad

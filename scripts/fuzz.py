#!/usr/bin/env python3
"""A hostile-input campaign over lkm's tools: seeded, bounded, runnable by anyone.

    nice -n 10 python scripts/fuzz.py --seconds 600            # every tool, 600 s each
    python scripts/fuzz.py --tools modinfo,link --execs 2000 --seed 7
    python scripts/fuzz.py --quick                              # the CI slice (fixed seed)
    python scripts/fuzz.py --sum run1.json run2.json --drop run1.json:state:1000   # runs summed

Inputs: mutants of the fixtures (tests/fixtures) and, when present, of small corpus modules
(~/.cache/lkm/corpus): bit flips, random bytes, interesting integers written into ELF header,
section header, symbol and relocation fields, truncation, recompression and decompression
bombs; hostile special files (FIFO, /dev/zero, /dev/urandom, directories, an 8 GB sparse file,
empty files, dangling symlinks, non-UTF-8 names); damaged model states (page overwrites, bit
flips, truncation, rows rewritten with bad JSON/zlib/bytes); mutated oops reports, generated
console logs for triage (plain, compressed, journal exports) and verify
snapshots; planted symlinks for depmod's temporaries.

Execution N of a tool draws from its own generator (seed, tool, N), so every failure is named
``[seed S exec N]`` and ``--replay TOOL:S:N`` makes the same input again.  A worker whose peak
RSS passes 1 GB after an execution reports that input (``rss``) and is replaced by a fresh one
that goes on at N+1; the parent's watchdog kills a worker whose index does not move for 60 s
or whose RSS passes 2 GB (``hang``/``rss``), and a fresh worker goes on after that input.

Each tool runs in its own worker process, calling ``lkm.cli.main`` in-process (no fork per
execution), so an execution costs what the tool costs.  An execution fails when the CLI
reports an internal error (the boundary's last-resort line, exit 70), an exception escapes it,
it takes more than 10 s (a hang), or a security check fails (depmod wrote outside -b DIR; a
model ran a host command).  Each failure's input is saved under --out.  The report gives
executions per tool, failures by kind and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import lzma
import mmap
import os
import random
import resource
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIX6 = ROOT / "tests" / "fixtures" / "6x"
FIX24 = ROOT / "tests" / "fixtures" / "24"
OOPS = ROOT / "tests" / "data" / "oops"
CORPUS = Path(os.environ.get("LKM_CORPUS", Path.home() / ".cache" / "lkm" / "corpus"))
HANG_S = 10.0
INTERESTING = [
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
    0xFFFFFFFF, 0x100000000, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 4 << 30, 1 << 32,
]  # fmt: skip
TOOLS = (
    "modinfo",
    "depmod",
    "link",
    "run",
    "model",
    "ksymoops",
    "triage",
    "verify",
    "special",
    "state",
    "index",
)
RSS_CAP_MB = 1024.0  # the bound: peak RSS under 1 GB per process


class Hang(BaseException):
    pass


# -- inputs -------------------------------------------------------------------------------


_SMALL: list[str] = []  # the corpus's small modules, listed once per process (forked workers inherit it)


def small_corpus_modules() -> list[str]:
    tree = CORPUS / "amd64-6.1" / "lib" / "modules"
    if not _SMALL and tree.is_dir():
        small = []
        for dirpath, _dirs, files in os.walk(tree):
            for f in files:
                if f.endswith(".ko") or f.endswith(".ko.xz"):
                    p = os.path.join(dirpath, f)
                    with contextlib.suppress(OSError):
                        if os.path.getsize(p) < 60_000:
                            small.append(p)
            if len(small) > 2000:
                break
        _SMALL[:] = sorted(small)
    return _SMALL


def seeds(rng: random.Random, limit: int = 40) -> list[tuple[str, bytes]]:
    """(name, bytes) of the modules mutants start from."""
    out = [(p.name, p.read_bytes()) for p in sorted(FIX6.glob("*.ko")) + sorted(FIX24.glob("*.o"))]
    small = small_corpus_modules()
    if small:
        for p in rng.sample(small, min(limit, len(small))):
            data = Path(p).read_bytes()
            if p.endswith(".xz"):
                with contextlib.suppress(lzma.LZMAError):
                    data = lzma.decompress(data)
            out.append((os.path.basename(p).split(".")[0] + ".ko", data))
    return out


def _put(buf: bytearray, off: int, value: int, size: int, little: bool) -> None:
    if off >= 0 and off + size <= len(buf):
        buf[off : off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
            size, "little" if little else "big"
        )


def _elf_fields(buf: bytearray, rng: random.Random) -> None:
    """Write an interesting value into a structural field: ELF header, a section header, a
    symbol or a relocation."""
    if len(buf) < 64 or buf[:4] != b"\x7fELF":
        return
    is64 = buf[4] == 2
    little = buf[5] != 2
    e = "<" if little else ">"
    v = rng.choice(INTERESTING) if rng.random() < 0.8 else rng.getrandbits(64)
    try:
        if is64:
            shoff = struct.unpack_from(e + "Q", buf, 0x28)[0]
            shentsize, shnum, _shstrndx = struct.unpack_from(e + "HHH", buf, 0x3A)
        else:
            shoff = struct.unpack_from(e + "I", buf, 0x20)[0]
            shentsize, shnum, _shstrndx = struct.unpack_from(e + "HHH", buf, 0x2E)
    except struct.error:
        return
    r = rng.random()
    if r < 0.15 or not shnum or shoff >= len(buf):
        fields = [(0x28, 8), (0x3A, 2), (0x3C, 2), (0x3E, 2), (0x12, 2)] if is64 else [
            (0x20, 4), (0x2E, 2), (0x30, 2), (0x32, 2), (0x12, 2)]  # fmt: skip
        off, size = rng.choice(fields)
        _put(buf, off, v, size, little)
        return
    i = rng.randrange(shnum)
    sh = shoff + i * shentsize
    if is64:
        fields = [(4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8)]
    else:
        fields = [(4, 4), (8, 4), (12, 4), (16, 4), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4)]
    if r < 0.6:
        off, size = rng.choice(fields)
        _put(buf, sh + off, v, size, little)
        return
    # inside the section's contents: a symbol or relocation entry's field
    try:
        if is64:
            sh_type, _f, _a, off_, size_ = struct.unpack_from(e + "IQQQQ", buf, sh + 4)
        else:
            sh_type, _f, _a, off_, size_ = struct.unpack_from(e + "IIIII", buf, sh + 4)
    except struct.error:
        return
    if sh_type not in (2, 4, 9, 11) or not size_ or off_ >= len(buf):
        off, size = rng.choice(fields)
        _put(buf, sh + off, v, size, little)
        return
    ent = {2: 24 if is64 else 16, 11: 24 if is64 else 16, 4: 24 if is64 else 12, 9: 16 if is64 else 8}[
        sh_type
    ]
    n = max(1, size_ // ent)
    at = off_ + rng.randrange(n) * ent
    word = 8 if is64 else 4
    fo = rng.randrange(0, ent, word if sh_type in (4, 9) else 2)
    _put(buf, at + fo, v, min(word, ent - fo), little)


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        r = rng.random()
        if r < 0.35:
            _elf_fields(buf, rng)
        elif r < 0.6 and buf:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif r < 0.75 and buf:
            i = rng.randrange(len(buf))
            n = rng.randint(1, 16)
            buf[i : i + n] = rng.randbytes(n)
        elif r < 0.82 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif r < 0.88 and buf:
            # a .modinfo/.strtab name byte made non-UTF-8
            j = bytes(buf).find(b"name=")
            if j >= 0:
                buf[j + 5] = rng.choice((0xFF, 0xC3, 0x80, 0xFE))
            else:
                buf[rng.randrange(len(buf))] = 0xFF
        elif r < 0.94:
            buf += rng.randbytes(rng.randint(1, 64))
        elif buf:
            i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
            buf[i:j] = buf[i:j][::-1]
    out = bytes(buf)
    r = rng.random()
    if r < 0.04:
        out = gzip.compress(out, 1)
    elif r < 0.06:
        out = lzma.compress(out, preset=0)
    elif r < 0.08:
        try:
            import zstandard

            out = zstandard.ZstdCompressor(level=1).compress(out)
        except ImportError:
            pass
    elif r < 0.085:
        out = bomb(rng)
    return out


def bomb(rng: random.Random, kind: str | None = None) -> bytes:
    """A small stream that decompresses past lkm's cap (300 MB of zeros), built in chunks."""
    kind = kind or rng.choice(("gzip", "xz", "zstd"))
    if kind not in _BOMBS:
        mb = b"\0" * (1 << 20)
        if kind == "zstd":
            try:
                import zstandard
            except ImportError:
                return b""
            _BOMBS[kind] = zstandard.ZstdCompressor(level=3).compress(mb) * 300
        elif kind == "xz":
            c = lzma.LZMACompressor(preset=1)
            _BOMBS[kind] = b"".join(c.compress(mb) for _ in range(300)) + c.flush()
        else:
            import zlib

            z = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            _BOMBS[kind] = b"".join(z.compress(mb) for _ in range(300)) + z.flush()
    return _BOMBS[kind]


_BOMBS: dict[str, bytes] = {}


def mutate_text(text: bytes, rng: random.Random) -> bytes:
    lines = text.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if not lines:
            break
        i = rng.randrange(len(lines))
        if r < 0.2:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif r < 0.35:
            del lines[i]
        elif r < 0.55:
            b = bytearray(lines[i])
            for _ in range(rng.randint(1, 4)):
                if b:
                    b[rng.randrange(len(b))] = rng.choice(b"0123456789abcdefx:+/[]<> \xff\x00\t-")
            lines[i] = bytes(b)
        elif r < 0.7:
            words = lines[i].split(b" ")
            words[rng.randrange(len(words))] = rng.choice(
                [
                    b"ffffffffffffffffffff",
                    b"0x",
                    b"-1",
                    b"nan",
                    b"\xff\xfe",
                    b"",
                    b"+0x1/0x0",
                    b"999999999999999999999",
                    b"[<ffffffffc0000000>]",
                    b"? ",
                    b"RIP:",
                    b"Call Trace:",
                    b"Modules linked in:",
                    b"%s%n",
                ]
            )
            lines[i] = b" ".join(words)
        elif r < 0.8:
            lines[i] = lines[i] * rng.randint(2, 200)
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return b"\n".join(lines)


# -- running a tool in-process ----------------------------------------------------------------


class Result:
    def __init__(self, rc: int, err: str, seconds: float, hung: bool) -> None:
        self.rc, self.err, self.seconds, self.hung = rc, err, seconds, hung
        self.cpu = 0.0


_hang_flag = [False]
_in_call = [False]


def _alarm(_sig: int, _frame: object) -> None:
    if _in_call[0]:  # a late timer outside a call is ignored (the call already returned)
        _hang_flag[0] = True
        raise Hang()


_STREAMS: list[io.TextIOWrapper] = []


def _stream(i: int) -> io.TextIOWrapper:
    """A strict UTF-8 text stream over bytes, emptied; reused across calls while a tool leaves
    it open (a new one costs more than many small tools' executions)."""
    while len(_STREAMS) <= i:
        _STREAMS.append(io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict"))
    s = _STREAMS[i]
    try:
        s.flush()
        s.seek(0)  # the text layer seeks and truncates its byte buffer too
        s.truncate(0)
    except (ValueError, OSError):  # closed or broken by the last tool: a fresh one
        s = _STREAMS[i] = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    return s


def call(argv: list[str]) -> Result:
    from lkm.cli import main

    out = _stream(0)
    err = _stream(1)
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    _hang_flag[0] = False
    _in_call[0] = True
    signal.setitimer(signal.ITIMER_REAL, HANG_S * 3)
    t0 = time.monotonic()
    try:
        rc = main(["lkm", *argv])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except Hang:
        rc = 124
    except BaseException as exc:  # escaped the boundary: a failure
        rc = 99
        err.write(f"ESCAPED {type(exc).__name__}: {exc}\n")
    finally:
        _in_call[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = old
    dt = time.monotonic() - t0
    try:
        err.flush()
        text = err.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
    except Exception as exc:
        text = f"stderr unreadable: {exc}"
    return Result(rc, text, dt, _hang_flag[0] or dt > HANG_S)


class Campaign:
    def __init__(self, tool: str, seed: int, work: Path, out: Path) -> None:
        self.tool = tool
        self.seed = seed
        self.rng = random.Random(seed)
        self.work = work
        self.out = out
        self.execs = 0
        self.slow = 0  # over 10 s once, under it when run again at once (a starved process)
        self.rss_cap = RSS_CAP_MB
        self.over_cap = False
        self.index = 0  # the execution being run (its seed: reseed)
        self.failures: dict[str, int] = {}
        self.examples: list[str] = []
        self.seed_modules = seeds(random.Random(seed))
        self.ksyms = self._kernel_symbols()
        self._states: set[Path] = set()
        self._crashgen: Any = None
        self._itree: tuple[Path, str, dict[Path, bytes]] | None = None

    # bookkeeping
    def reseed(self, index: int) -> None:
        """Execution ``index`` draws from its own generator: (seed, tool, index) names an input."""
        self.rng.seed(f"{self.seed}:{self.tool}:{index}")

    def check(self, res: Result, argv: list[str], inputs: list[Path]) -> None:
        self.execs += 1
        kind = None
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if rss > self.rss_cap and not self.over_cap:
            self.over_cap = True  # this input took the process past the cap: the worker restarts
            self.fail("rss", f"{' '.join(argv)} -> peak RSS {rss:.0f} MB (cap {self.rss_cap:.0f} MB)", inputs)
        if res.hung:
            # Confirm on the spot: a machine shared with other jobs can starve a process for
            # seconds; an input that really hangs (or spins) does it again.
            again = call(argv)
            if again.hung:
                kind = "hang"
            else:
                self.slow += 1
                res = again
        if kind is None and (res.rc in (70, 99) or "Traceback" in res.err or "Exception ignored" in res.err):
            kind = "traceback"
        elif kind is None and res.rc != 0 and res.err.count("\n") > 40:
            kind = "multiline-error"
        if kind:
            self.fail(
                kind, f"{' '.join(argv)} -> rc {res.rc} ({res.seconds:.1f}s): {res.err.strip()[:300]}", inputs
            )

    def fail(self, kind: str, text: str, inputs: list[Path]) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        n = sum(self.failures.values())
        text = f"[seed {self.seed} exec {self.index}] {text}"
        if n <= 200:
            keep = self.out / f"{self.tool}-s{self.seed}-e{self.index}"
            keep.mkdir(parents=True, exist_ok=True)
            (keep / "what.txt").write_bytes(text.encode("utf-8", "surrogateescape") + b"\n")
            for p in inputs:
                with contextlib.suppress(OSError):
                    if p.is_dir():
                        shutil.copytree(p, keep / p.name, symlinks=True, dirs_exist_ok=True)
                    elif p.is_file() and not p.is_symlink() and p.stat().st_size < 50 << 20:
                        shutil.copy(p, keep / p.name)
        if len(self.examples) < 10:
            self.examples.append(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))

    def module(self) -> tuple[str, bytes]:
        name, data = self.rng.choice(self.seed_modules)
        return name, mutate(data, self.rng)

    def _kernel_symbols(self) -> Path:
        from lkm.module import ModuleFile

        names: set[str] = set()
        for _n, data in self.seed_modules:
            with contextlib.suppress(Exception):
                names |= {s.name for s in ModuleFile.from_bytes(data).needed}
        p = self.work / "System.map"
        p.write_text(
            "".join(f"{0xFFFFFFFF81000000 + i * 0x40:016x} T {n}\n" for i, n in enumerate(sorted(names)))
        )
        return p

    def write(self, name: str, data: bytes) -> Path:
        p = self.work / name
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        p.write_bytes(data)
        return p

    # tools
    def t_modinfo(self) -> None:
        name, data = self.module()
        p = self.write(name, data)
        opts = self.rng.choice(([], [], ["-F", "name"], ["--json"], ["-a"], ["-0"]))
        argv = ["modinfo", *opts, str(p)]
        self.check(call(argv), argv, [p])

    def kernel_symbols(self) -> Path:
        """The kernel's symbols for a link: the harness's System.map, or (a quarter of the
        time) a damaged symbol file of any format the reader detects: System.map,
        /proc/kallsyms with module columns, 2.4 /proc/ksyms, Module.symvers, an ELF."""
        rng = self.rng
        if rng.random() < 0.75:
            return self.ksyms
        lines = [ln for ln in self.ksyms.read_bytes().splitlines() if len(ln.split()) == 3]
        lines = lines[: rng.randrange(1, 400)]
        kind = rng.randrange(5)
        if kind == 0:
            text = b"\n".join(lines)
        elif kind == 1:
            text = b"\n".join(ln.replace(b" T ", b" t ") + b"\t[chardev]" if i % 7 == 0 else ln
                               for i, ln in enumerate(lines))  # fmt: skip
        elif kind == 2:
            text = b"\n".join(
                b"%s %s_R%08x" % (ln.split()[0][-8:], ln.split()[-1], i) for i, ln in enumerate(lines)
            )
        elif kind == 3:
            kinds = (b"EXPORT_SYMBOL\t", b"EXPORT_SYMBOL_GPL\t", b"EXPORT_SYMBOL\tNS")
            text = b"\n".join(
                b"0x%08x\t%s\tvmlinux\t%s" % (i * 2654435761 & 0xFFFFFFFF, ln.split()[-1], kinds[i % 3])
                for i, ln in enumerate(lines)
            )
        else:
            return self.write("vmlinux", mutate(self.module()[1], rng))
        return self.write(
            rng.choice(("System.map", "kallsyms", "Module.symvers", "ksyms")), mutate_text(text, rng)
        )

    def t_link(self) -> None:
        name, data = self.module()
        p = self.write(name, data)
        argv = ["link", str(p), "--kernel", str(self.kernel_symbols()), "-o", str(self.work / "out.elf")]
        if self.rng.random() < 0.5:
            argv += [
                "--base",
                self.rng.choice(("0xffffffffc0000000", "0x12340000", "0", "0xffffffffffffffff")),
            ]
        if self.rng.random() < 0.2:
            argv += ["--blob", str(self.work / "blob")]
        if self.rng.random() < 0.1:
            argv += ["--layout", self.rng.choice(("linux-6.1", "linux-6.12", "linux-2.4"))]
        self.check(call(argv), argv, [p])

    def t_run(self) -> None:
        name, data = self.module()
        p = self.write(name, data)
        argv = ["run", str(p), "--synthetic", "--budget", "200000", "--timeout", "2"]
        if self.rng.random() < 0.5:
            argv.append("--exit")
        if self.rng.random() < 0.1:
            argv += ["--timeout", self.rng.choice(("nan", "inf", "-1", "0", "1e308"))]
        self.check(call(argv), argv, [p])

    def _profile(self, small: bool) -> Any:
        """The 6.1 amd64 profile, whole or cut to the symbols the seed modules and fixtures
        need plus a fixed sample of the rest: the same schema, rows and header fields, so every
        command does the same work per row, with far fewer rows (a page overwrite lands in a
        module's rows more often, and reading kallsyms costs milliseconds, not half a second)."""
        from lkm.kernel.model.profile import Profile, load_profile
        from lkm.module import ModuleFile

        prof = load_profile("linux-6.1-amd64")
        if not small:
            return prof
        need: set[str] = set()
        for _n, data in self.seed_modules:
            with contextlib.suppress(Exception):
                need |= {s.name for s in ModuleFile.from_bytes(data).needed}
        rest = [s for s in prof.symbols if s.name not in need]
        keep = need | {s.name for s in random.Random(0).sample(rest, min(400, len(rest)))}
        return Profile(prof.name, dict(prof.fields), [s for s in prof.symbols if s.name in keep])

    def state(self, small: bool = True) -> Path:
        """A booted state with the fixtures' modules loaded: booted once per worker (the
        template, ``clean*.db``), then copied (a boot costs a second, a copy a millisecond)."""
        st = self.work / ("k.db" if small else "k-full.db")
        if st not in self._states:
            from lkm.kernel.model import ModelKernel

            try:
                k = ModelKernel.boot(self._profile(small), st, force=True)
            except TypeError:  # an lkm from before --force (comparing with older code)
                k = ModelKernel.boot(self._profile(small), st)
            for f in ("exporter.ko", "importer.ko", "chardev.ko", "params.ko"):
                with contextlib.suppress(Exception):
                    k.finit_module(str(FIX6 / f))
            k.close()
            self._states.add(st)
            shutil.copy(st, self.work / ("clean.db" if small else "clean-full.db"))
        return st

    def t_model(self) -> None:
        st = self.state()
        name, data = self.module()
        p = self.write(name, data)
        argv = ["insmod", "--state", str(st), str(p)]
        res = call(argv)
        self.check(res, argv, [p])
        if res.rc == 0:
            from lkm.module import ModuleFile

            try:
                mname = ModuleFile.from_bytes(data).name
            except Exception:
                mname = name.split(".")[0]
            argv = ["rmmod", "--state", str(st), mname]
            self.check(call(argv), argv, [p])
            if self.rng.random() < 0.5:
                argv = ["rmmod", "-f", "--state", str(st), mname]
                self.check(call(argv), argv, [p])
        if self.rng.random() < 0.05:
            for argv in (["model", "check", "--state", str(st)], ["lsmod", "--state", str(st)],
                         ["proc", "--state", str(st), "kallsyms"]):  # fmt: skip
                self.check(call(argv), argv, [st])

    def t_depmod(self) -> None:
        rel = "6.1.0-fuzz"
        root = self.work / "tree"
        d = root / "lib" / "modules" / rel
        if root.exists():
            shutil.rmtree(root)
        (d / "kernel").mkdir(parents=True)
        names = []
        for i in range(self.rng.randint(1, 4)):
            name, data = self.module()
            base = name.split(".")[0]
            ext = ".ko" if data[:2] not in (b"\x1f\x8b",) else ".ko.gz"
            (d / "kernel" / f"{base}{i}{ext}").write_bytes(data)
            names.append(base)
        outside = self.work / "outside.txt"
        outside.write_text("precious\n")
        if self.rng.random() < 0.3:  # planted symlinks where a naive depmod writes temporaries
            for n in ("modules.dep", "modules.alias", "modules.symbols", "modules.dep.bin"):
                for tmpname in (f"{n}.tmp", f".{n}.tmp", f"{n}.{os.getpid()}.tmp"):
                    with contextlib.suppress(OSError):
                        (d / tmpname).symlink_to(outside)
        if self.rng.random() < 0.1:
            (d / "modules.order").write_bytes(mutate_text(b"kernel/a.ko\nkernel/b.ko\n", self.rng))
        argv = ["depmod", "-b", str(root), rel]
        if self.rng.random() < 0.3:
            argv.insert(1, self.rng.choice(("-a", "-e", "-A", "-n")))
        self.check(call(argv), argv, [root])
        if outside.read_text() != "precious\n":
            self.fail("escape", f"{' '.join(argv)}: depmod wrote through a planted symlink", [root])
        for f in d.iterdir():
            if f.name.endswith(".tmp") and not f.is_symlink():
                self.fail("leftover", f"{' '.join(argv)}: temporary {f.name} left behind", [root])
                break

    # a module tree from a stranger: damaged indexes and configuration under modinfo/modprobe
    INDEX_CONF = (
        "alias fuzz-alias exporter\nalias pci:v00001234d* pcidemo\nalias wild* chardev\n"
        'options params count=3 name="a b"\noptions chardev major=0\n'
        "install kreqfs /bin/touch {marker}\nremove kreqfs /bin/touch {marker}\n"
        "install importer /bin/touch {marker}; /sbin/modprobe --ignore-install importer\n"
        "softdep importer pre: exporter post: params\nblacklist kcalls\nbogus directive\n"
    )

    def _index_tree(self) -> tuple[Path, str, dict[Path, bytes]]:
        """A tree (fixtures and a few seed modules, kmod's indexes written by lkm depmod once
        per worker), its release (the model profile's, so that --state can load from it) and
        the pristine bytes of every file a mutation may damage."""
        if self._itree is None:
            import lkm.cli.depmod
            from lkm.kernel.model import ModelKernel

            k = ModelKernel(self.state())
            rel = k.release
            k.close()
            root = self.work / "itree"
            d = root / "lib" / "modules" / rel
            (d / "kernel").mkdir(parents=True)
            for m in ("exporter", "importer", "chardev", "params", "kreq", "kreqfs", "pcidemo", "kcalls"):
                shutil.copy(FIX6 / f"{m}.ko", d / "kernel")
            for name, data in self.seed_modules[-8:]:
                (d / "kernel" / name).write_bytes(data)
            (d / "modules.order").write_text(
                "".join(f"kernel/{f.name}\n" for f in sorted((d / "kernel").iterdir()))
            )
            conf = root / "etc" / "modprobe.d" / "fuzz.conf"
            conf.parent.mkdir(parents=True)
            conf.write_text(self.INDEX_CONF.format(marker=self.work / "marker"))
            with contextlib.redirect_stderr(io.StringIO()):
                lkm.cli.depmod.run("depmod", ["-b", str(root), rel])
            files = [conf, *(f for f in sorted(d.iterdir()) if f.is_file() and f.name.startswith("modules."))]
            self._itree = (root, rel, {f: f.read_bytes() for f in files})
        return self._itree

    def t_index(self) -> None:
        root, rel, pristine = self._index_tree()
        for f, data in pristine.items():  # undo the last execution's damage
            if f.is_symlink() or not f.is_file() or f.stat().st_size != len(data) or f.read_bytes() != data:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                f.write_bytes(data)
        rng = self.rng
        targets = list(pristine)
        for f in rng.sample(targets, rng.choice((1, 1, 1, 2, 3))):
            r = rng.random()
            if r < 0.05:
                f.unlink()
            elif r < 0.08:
                f.write_bytes(b"")
            elif f.name.endswith(".bin"):
                f.write_bytes(mutate(pristine[f], rng)[: 1 << 20])
            else:
                f.write_bytes(
                    mutate_text(pristine[f], rng) if rng.random() < 0.8 else mutate(pristine[f], rng)
                )
        names = ["exporter", "importer", "chardev", "params", "kreq", "kreqfs", "pcidemo", "kcalls",
                 "fuzz-alias", "wild-thing", "pci:v00001234d00005678sv*", "symbol:printk", "no-such",
                 "chardev.ko", "-", "", "a" * 300, os.fsdecode(b"caf\xe9"), "kernel/chardev.ko",
                 *(n.split(".")[0] for n, _d in self.seed_modules[-8:])]  # fmt: skip
        name = rng.choice(names)
        conf = str(root / "etc" / "modprobe.d" / "fuzz.conf")
        base = ["-d", str(root), "-S", rel]
        if rng.random() < 0.7:
            base += ["-C", conf if rng.random() < 0.8 else str(root / "etc" / "modprobe.d")]
        how = rng.random()
        st = None
        if how < 0.25:
            argv = [
                "modinfo",
                "-b",
                str(root),
                "-k",
                rel,
                *rng.choice(([], ["-F", "alias"], ["--json"])),
                name,
            ]
        elif how < 0.45:
            argv = ["modprobe", *base, "-D", name]
        elif how < 0.55:
            argv = ["modprobe", *base, "-R", name]
        elif how < 0.7:
            argv = ["modprobe", *base, "-n", *rng.choice(([], ["-v"], ["-a"], ["-r"])), name]
        elif how < 0.75:
            argv = ["modprobe", *base, "-c"]
        else:  # load into a model kernel from the damaged tree, then remove
            st = self.work / "ix.db"
            shutil.copy(self.work / "clean.db", st)
            argv = ["modprobe", "--state", str(st), *base, *rng.choice(([], ["-v"], ["-i"])), name]
        self.check(call(argv), argv, [root])
        if st is not None and rng.random() < 0.5:
            argv = ["modprobe", "--state", str(st), *base, "-r", name]
            self.check(call(argv), argv, [root])
        marker = self.work / "marker"
        if marker.exists():
            marker.unlink()
            self.fail("escape", f"{' '.join(argv)}: an install/remove command ran on the host", [root])

    def t_ksymoops(self) -> None:
        logs = sorted(OOPS.glob("*.txt"))
        text = mutate_text(self.rng.choice(logs).read_bytes(), self.rng)
        p = self.write("oops.txt", text)
        argv = ["ksymoops", str(p)]
        r = self.rng.random()
        if r < 0.3:
            argv += ["-k", str(self.ksyms)]
        if r < 0.2:
            mods = self.work / "mods"
            mods.mkdir(exist_ok=True)
            name, data = self.module()
            (mods / name).write_bytes(data)
            argv += ["-o", str(mods)]
        if self.rng.random() < 0.2:
            argv += ["--format", self.rng.choice(("ksymoops", "json", "decode-stacktrace"))]
        self.check(call(argv), argv, [p])

    def t_triage(self) -> None:
        """lkm triage's log reader: generated console logs (tests/oops/crashgen.py), mutated, in
        the containers it reads (plain, gzip, xz, zstd, bzip2, journal export and JSON)."""
        if self._crashgen is None:
            sys.path.insert(0, str(ROOT / "tests" / "oops"))
            import crashgen

            self._crashgen = crashgen
        rng = self.rng
        text, _titles = self._crashgen.log(rng, rng.randrange(1, 4), callers=rng.random() < 0.3,
                                           interleave=rng.random() < 0.3)  # fmt: skip
        data = mutate_text(text.encode(), rng) if rng.random() < 0.9 else rng.randbytes(rng.randrange(4096))
        r = rng.random()
        if r < 0.15:
            bodies = [ln.split(b"] ", 1)[-1] for ln in data.split(b"\n")]
            entry = b"__CURSOR=s=1;i=%d\n__MONOTONIC_TIMESTAMP=%s\n_TRANSPORT=kernel\nMESSAGE=%s\n\n"
            stamps = (b"x", b"-1", b"")
            data = b"".join(
                entry % (i, rng.choice((b"%d" % (i * 1000), *stamps)), b) for i, b in enumerate(bodies)
            )
            if rng.random() < 0.3:  # a binary field: name, little-endian size, bytes
                data += b"MESSAGE\n" + rng.choice((8, 1 << 62, 3)).to_bytes(8, "little") + data[:8] + b"\n\n"
        elif r < 0.25:
            lines = [ln.split(b"] ", 1)[-1] for ln in data.split(b"\n")]
            entry = b'{"__CURSOR": "s=%d", "MESSAGE": %s, "__MONOTONIC_TIMESTAMP": "%d", "_TRANSPORT": "%s"}'
            msgs = [json.dumps(ln.decode("latin-1")).encode() for ln in lines]
            data = b"\n".join(
                entry % (i, m if rng.random() < 0.9 else b"[255, 1000, -1]", i, b"kernel")
                for i, m in enumerate(msgs)
            )
        c = rng.random()
        if c < 0.1:
            data = gzip.compress(data, 1)
        elif c < 0.2:
            data = lzma.compress(data, preset=0)
        elif c < 0.25:
            import bz2

            data = bz2.compress(data, 1)
        elif c < 0.3:
            with contextlib.suppress(ImportError):
                import zstandard

                data = zstandard.ZstdCompressor(level=1).compress(data)
        elif c < 0.31:
            data = bomb(rng)
        if c < 0.3 and rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]  # a cut-off compressed log
        p = self.write(rng.choice(("console.log", "dmesg.txt.gz", "journal.export", "k.log.xz")), data)
        argv = ["triage", str(p)]
        f = rng.random()
        if f < 0.3:
            argv += ["--format", rng.choice(("json", "html", "table"))]
        if f < 0.1:
            argv += ["-o", str(self.work / "triage.out")]
        if rng.random() < 0.1:
            argv.append(str(self.work))  # the whole directory: every file of it is a log
        self.check(call(argv), argv, [p])

    def _snapshot(self) -> Path:
        snap = self.work / "snap"
        if snap.exists():
            shutil.rmtree(snap)
        (snap / "memory").mkdir(parents=True)
        files = {
            "release": b"6.1.0-fuzz\n",
            "machine": b"x86_64\n",
            "proc-modules.txt": b"chardev 16384 0 - Live 0xffffffffc0000000\n",
            "proc-kallsyms.txt": self.ksyms.read_bytes()[:4000],
            "sections.txt": b"chardev .text 0xffffffffc0000000\nchardev .data 0xffffffffc0002000\n"
            b"chardev .gnu.linkonce.this_module 0xffffffffc0003000\n",
        }
        for k, v in files.items():
            if self.rng.random() < 0.5:
                v = mutate_text(v, self.rng)
            (snap / k).write_bytes(v)
        mem = self.rng.choice(("ffffffffc0000000-1000.bin", "zz-10.bin", "ffffffffc0000000-ffffffffffff.bin",
                               "-.bin", "ffffffffc0000000-0.bin"))  # fmt: skip
        (snap / "memory" / mem).write_bytes(self.rng.randbytes(self.rng.choice((0, 16, 4096))))
        return snap

    def t_verify(self) -> None:
        snap = self._snapshot()
        if self.rng.random() < 0.5:
            _name, data = self.module()
            p = self.write("chardev.ko", data)
        else:
            p = FIX6 / "chardev.ko"
        argv = ["verify", "--snapshot", str(snap), str(p)]
        self.check(call(argv), argv, [snap, p])

    def special_paths(self) -> list[Path]:
        d = self.work / "special"
        if not d.exists():
            d.mkdir()
            os.mkfifo(d / "fifo.ko")
            (d / "zero.ko").symlink_to("/dev/zero")
            (d / "urandom.ko").symlink_to("/dev/urandom")
            (d / "null.ko").symlink_to("/dev/null")
            (d / "dir.ko").mkdir()
            (d / "dangling.ko").symlink_to(d / "nowhere")
            (d / "empty.ko").write_bytes(b"")
            with open(d / "sparse.ko", "wb") as f:
                f.write(b"\x7fELF\x02\x01\x01")
                f.truncate(8 << 30)
            (d / "loop.ko").symlink_to(d / "loop.ko")
            raw = (FIX6 / "chardev.ko").read_bytes()
            (d / os.fsdecode(b"caf\xe9.ko")).write_bytes(raw)
        return sorted(d.iterdir())

    def t_special(self) -> None:
        p = self.rng.choice(self.special_paths())
        st = self.state()
        tools = ("modinfo", "link", "run", "insmod", "ksymoops-o", "ksymoops", "verify", "depmod-conf",
                 "lsmod-state", "link-kernel", "run-script", "dev-state")  # fmt: skip
        tool = self.rng.choice(tools)
        argv = {
            "modinfo": ["modinfo", str(p)],
            "link": ["link", str(p), "--kernel", str(self.ksyms)],
            "link-kernel": ["link", str(FIX6 / "chardev.ko"), "--kernel", str(p)],
            "run": ["run", str(p), "--synthetic", "--timeout", "2"],
            "insmod": ["insmod", "--state", str(st), str(p)],
            "ksymoops-o": ["ksymoops", "-o", str(p.parent), str(OOPS / "fmt-6.12-null-plain.txt")],
            "ksymoops": ["ksymoops", str(p)],
            "verify": ["verify", "--snapshot", str(p), str(FIX6 / "chardev.ko")],
            "depmod-conf": ["depmod", "-C", str(p), "-b", str(self.work / "tree"), "6.1.0-fuzz"],
            "lsmod-state": ["lsmod", "--state", str(p)],
            "run-script": ["run", "--script", str(p), "--synthetic"],
            "dev-state": ["dev", "--state", str(p), "open", "x"],
        }[tool]
        self.check(call(argv), argv, [])

    def t_state(self) -> None:
        small = self.rng.random() < 0.85  # the whole 6.1 profile's state now and then
        self.state(small)
        st = self.work / "bad.db"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (self.work / f"bad.db{suffix}").unlink()
        shutil.copy(self.work / ("clean.db" if small else "clean-full.db"), st)
        r = self.rng.random()
        if r < 0.5:
            buf = bytearray(st.read_bytes())
            how = self.rng.random()
            if how < 0.4:
                page = 4096 * self.rng.randrange(max(1, len(buf) // 4096))
                n = self.rng.choice((1, 8, 64, 4096))
                buf[page + self.rng.randrange(4096 - n + 1) :][:n] = self.rng.randbytes(n)
            elif how < 0.7:
                for _ in range(self.rng.randint(1, 20)):
                    i = self.rng.randrange(len(buf))
                    buf[i] ^= 1 << self.rng.randrange(8)
            else:
                del buf[self.rng.randrange(len(buf)) :]
            st.write_bytes(bytes(buf))
        else:
            db = sqlite3.connect(st)
            stmts = [
                "UPDATE modules SET info='{' WHERE rowid=(SELECT min(rowid) FROM modules)",
                "UPDATE modules SET info='[]'",
                'UPDATE modules SET info=\'{"exit": "x", "init": 1}\'',
                "UPDATE memory SET data=x'00ff00'",
                "UPDATE memory SET data='text'",
                "UPDATE kallsyms SET lines=x'789c'",
                "UPDATE modules SET name=CAST(x'ff6e616d65' AS TEXT)",
                "UPDATE msyms SET name=CAST(x'c3' AS TEXT)",
                "DELETE FROM meta WHERE key='release'",
                "UPDATE meta SET value='x' WHERE key='bits'",
                "UPDATE meta SET value='nope' WHERE key='range'",
                "UPDATE meta SET value='linux-9' WHERE key='layout'",
                "UPDATE meta SET value='0' WHERE key='page_size'",
                "DROP TABLE refs",
                "UPDATE modules SET base='str'",
                "UPDATE modules SET size=-1",
                "UPDATE areas SET span=0",
                "UPDATE modules SET state='Weird'",
                "UPDATE refs SET used=999",
                "DELETE FROM modules WHERE rowid=(SELECT min(rowid) FROM modules)",
                "UPDATE modules SET usecount=-5",
                "PRAGMA user_version=7",
                "PRAGMA user_version=0",
                "UPDATE ksyms SET address=NULL",
            ]
            for s in self.rng.sample(stmts, self.rng.randint(1, 3)):
                with contextlib.suppress(sqlite3.Error):
                    db.execute(s)
            db.commit()
            db.close()
        tool = self.rng.choice(
            (
                ["lsmod"],
                ["model", "info"],
                ["model", "check"],
                ["rmmod", "chardev"],
                ["rmmod", "-f", "params"],
                ["insmod", str(FIX6 / "kreq.ko")],
                ["proc", "modules"],
                ["proc", "kallsyms"],
                ["ksyms", "-a"],
                ["proc", "vmallocinfo"],
                ["model", "request-module", "chardev"],
            )
        )
        argv = [*tool[:1], "--state", str(st), *tool[1:]]
        if tool[0] == "model":
            argv = ["model", tool[1], "--state", str(st), *tool[2:]]
        self.check(call(argv), argv, [st])


def one_core() -> None:
    """One execution uses one core: lkm's fan-out over forked workers (depmod's module reading
    and output building, modinfo of many files) runs in-process instead.  The campaign shares
    the machine; the fan-out's own code is tested elsewhere, and what each chunk runs is the
    same code either way."""
    import lkm.parallel

    lkm.parallel.workers_available = lambda: 1


def worker(
    tool: str, seed: int, seconds: float, execs: int, work: Path, out: Path, start: int = 0
) -> dict[str, object]:
    """Executions ``start``, ``start + 1``, ... of one tool's campaign, in this process, until
    ``execs`` executions or ``seconds`` have passed, or an input took the process past the RSS
    cap (the parent then starts a fresh worker at the next index)."""
    limit = os.environ.get("FUZZ_RLIMIT_AS")  # bytes: keep a runaway input from eating the machine
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    os.environ["LKM_STATE_TIMEOUT"] = "2"
    os.environ.pop("LKM_STATE", None)
    signal.signal(signal.SIGALRM, _alarm)
    one_core()
    c = Campaign(tool, seed, work, out)
    run: Callable[[], None] = getattr(c, f"t_{tool}")
    t0 = time.monotonic()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru.ru_utime + ru.ru_stime  # the executions' CPU time, not the set-up's
    i = start
    while c.execs < execs and time.monotonic() - t0 < seconds and not c.over_cap:
        c.index = i
        _PROGRESS[0:8] = i.to_bytes(8, "little")  # the parent's watchdog reads it after a kill
        c.reseed(i)
        run()
        i += 1
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "tool": tool,
        "seed": seed,
        "execs": c.execs,
        "cpu_seconds": round(ru.ru_utime + ru.ru_stime - cpu0, 1),
        "next": i,
        "restart": c.over_cap,
        "seconds": round(time.monotonic() - t0, 1),
        "failures": c.failures,
        "slow_once": c.slow,
        "examples": c.examples,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(tool: str, seed: int, seconds: float, execs: int, out: Path, wfd: int, start: int) -> None:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    # tmpfs: cheap rewrites; the pid in the name lets the watchdog keep a killed worker's inputs
    with tempfile.TemporaryDirectory(prefix=f"lkm-fuzz-{tool}-{os.getpid()}-", dir=shm) as tmp:
        try:
            res = worker(tool, seed, seconds, execs, Path(tmp), out, start)
        except BaseException as exc:  # the harness itself failed: say so, as a failure
            import traceback

            where = "".join(traceback.format_tb(exc.__traceback__)[-3:])
            res = {"tool": tool, "seed": seed, "execs": 0, "failures": {"harness": 1},
                   "examples": [f"{type(exc).__name__}: {exc}\n{where}"], "peak_rss_mb": 0}  # fmt: skip
        # a special directory holds a FIFO: TemporaryDirectory removes it fine
    os.write(wfd, json.dumps(res).encode())
    os.close(wfd)


_PROGRESS = mmap.mmap(-1, 8)  # in a worker: the index it runs, shared with its parent's watchdog


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for ln in f:
                if ln.startswith(b"VmRSS:"):
                    return int(ln.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def spawn_once(
    tool: str, seed: int, seconds: float, execs: int, out: Path, start: int = 0
) -> dict[str, object]:
    """One worker in a child process with a watchdog: a worker stuck past the per-execution
    timer is killed and counted as a hang; one whose RSS passes twice the cap (the in-process
    check comes after an execution, this one during it) is killed and counted as ``rss``."""
    global _PROGRESS
    prog = mmap.mmap(-1, 8)  # anonymous, shared with the child: each worker its own
    prog[0:8] = start.to_bytes(8, "little")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _PROGRESS = prog
        os.close(r)
        code = 0
        try:
            _child(tool, seed, seconds, execs, out, w, start)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    deadline = time.monotonic() + seconds + 120 + HANG_S * 3
    last, since = -1, time.monotonic()
    chunks = []
    os.set_blocking(r, False)
    killed = None
    while True:
        try:
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
        except BlockingIOError:
            now = time.monotonic()
            cur = int.from_bytes(prog[0:8], "little")
            if cur != last:
                last, since = cur, now
            if now > deadline or now - since > HANG_S * 6:  # the in-process timer did not fire
                killed = "hang"
            elif _rss_mb(pid) > 2 * RSS_CAP_MB:
                killed = "rss"
            if killed:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(r)
                shm = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
                for left in Path(shm).glob(f"lkm-fuzz-{tool}-{pid}-*"):  # its inputs, then gone
                    keep = out / f"{tool}-s{seed}-e{cur}"
                    for f in left.iterdir():  # regular files only (a special file may be a FIFO)
                        with contextlib.suppress(OSError):
                            if f.is_file() and not f.is_symlink():
                                keep.mkdir(parents=True, exist_ok=True)
                                shutil.copy(f, keep / f.name)
                    shutil.rmtree(left, ignore_errors=True)
                return {"tool": tool, "seed": seed, "execs": max(0, cur - start), "failures": {killed: 1},
                        "next": cur + 1, "restart": True, "peak_rss_mb": 0,
                        "examples": [f"[seed {seed} exec {cur}] watchdog kill ({killed})"]}  # fmt: skip
            time.sleep(0.2)
    os.close(r)
    _pid, status = os.waitpid(pid, 0)
    if not chunks:
        cur = int.from_bytes(prog[0:8], "little")
        return {"tool": tool, "seed": seed, "execs": max(0, cur - start), "failures": {"crash": 1},
                "next": cur + 1, "restart": True, "peak_rss_mb": 0,
                "examples": [f"[seed {seed} exec {cur}] worker died (status {status})"]}  # fmt: skip
    return dict(json.loads(b"".join(chunks)))


def spawn(tool: str, seed: int, seconds: float, execs: int, out: Path) -> dict[str, object]:
    """A tool's campaign for ``seconds``: workers restarted after an input that passed the RSS
    cap, each continuing at the next execution index (so seeds stay deterministic)."""
    t0 = time.monotonic()
    total: dict[str, Any] = {"tool": tool, "seed": seed, "execs": 0, "cpu_seconds": 0.0, "failures": {},
                             "slow_once": 0, "examples": [], "peak_rss_mb": 0.0, "workers": 0}  # fmt: skip
    start = 0
    while True:
        left = seconds - (time.monotonic() - t0)
        res = spawn_once(tool, seed, left, execs - int(total["execs"]), out, start)
        total["workers"] += 1
        total["execs"] += int(res["execs"])  # type: ignore[call-overload]
        total["slow_once"] += int(res.get("slow_once", 0))  # type: ignore[call-overload]
        total["cpu_seconds"] = round(total["cpu_seconds"] + float(res.get("cpu_seconds", 0.0)), 1)  # type: ignore[arg-type]
        for k, v in dict(res["failures"]).items():  # type: ignore[call-overload]
            total["failures"][k] = total["failures"].get(k, 0) + int(v)
        total["examples"] += list(res.get("examples") or [])[: max(0, 10 - len(total["examples"]))]  # type: ignore[call-overload]
        total["peak_rss_mb"] = max(float(total["peak_rss_mb"]), float(res["peak_rss_mb"]))  # type: ignore[arg-type]
        start = int(res.get("next", start))  # type: ignore[call-overload]
        if not res.get("restart") or time.monotonic() - t0 > seconds - 1 or total["execs"] >= execs:
            break
    total["seconds"] = round(time.monotonic() - t0, 1)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0, help="per tool")
    ap.add_argument(
        "--seconds-for", default="", metavar="TOOL=S,...", help="per-tool times instead of --seconds"
    )
    ap.add_argument("--execs", type=int, default=10**9, help="per tool")
    ap.add_argument(
        "--stop-at", type=float, default=0.0, metavar="EPOCH", help="start no worker after this time"
    )
    ap.add_argument("--rounds", type=int, default=1, help="repeat with seed+1, seed+2, ...")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="fuzz-out", help="failing inputs are kept here")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--quick", action="store_true", help="the CI slice: fixed seed, ~40 s")
    ap.add_argument("--replay", metavar="TOOL:SEED:EXEC", help="run one execution again (as reported)")
    ap.add_argument("--sum", nargs="+", metavar="REPORT", help="sum the --json reports of several runs")
    ap.add_argument("--drop", default="", metavar="REPORT:TOOL:SEED,...",
                    help="with --sum: leave out a report's slices run again on fixed code")  # fmt: skip
    a = ap.parse_args(argv)
    if a.replay:
        return replay(a.replay, Path(a.out))
    if a.sum:
        drop = set(filter(None, a.drop.split(",")))
        runs: list[dict[str, object]] = []
        wall = 0.0
        revs = []
        for f in a.sum:
            rep = json.loads(Path(f).read_text())
            runs += [r for r in rep["runs"] if f"{Path(f).name}:{r['tool']}:{r['seed']}" not in drop]
            wall += float(rep["summary"].get("wall_seconds", 0.0))
            revs.append(f"{f}: {rep.get('lkm', '?')}")
        summary = summarize(runs, wall)
        summary["reports"] = revs
        summary["dropped"] = sorted(drop)
        print(json.dumps(summary, indent=1))
        return 1 if summary["failures"] else 0
    tools = [t for t in a.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools {sorted(unknown)}")
    if a.quick:
        a.seed, a.seconds, a.execs = 1, 5.0, 60
    out = Path(a.out)
    if {"modinfo", "depmod", "link", "run", "model", "verify", "triage"} & set(tools):
        for kind in ("gzip", "xz", "zstd"):  # built once here, inherited by every forked worker
            bomb(random.Random(0), kind)
    per_tool = {t: a.seconds for t in tools}
    for item in filter(None, a.seconds_for.split(",")):
        t, _eq, v = item.partition("=")
        if t not in per_tool:
            ap.error(f"--seconds-for: {t!r} is not among --tools")
        per_tool[t] = float(v)
    jobs = [(t, a.seed + r * 1000) for r in range(a.rounds) for t in tools]
    results: list[dict[str, object]] = []
    t0 = time.monotonic()

    def done(res: dict[str, object]) -> None:
        results.append(res)
        _line(res)
        if a.json:  # after every worker: a campaign stopped half way keeps what it ran
            summary = summarize(results, time.monotonic() - t0)
            tmp = Path(a.json + ".tmp")
            tmp.write_text(json.dumps({"summary": summary, "argv": sys.argv[1:], "lkm": _revision(),
                                       "runs": results}, indent=1) + "\n")  # fmt: skip
            tmp.replace(a.json)

    if a.jobs <= 1:
        for t, s in jobs:
            left = a.stop_at - time.time() if a.stop_at else per_tool[t]
            if left < 5:
                break
            done(spawn(t, s, min(per_tool[t], left), a.execs, out))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(a.jobs) as ex:
            for res in ex.map(lambda js: spawn(js[0], js[1], per_tool[js[0]], a.execs, out), jobs):
                done(res)
    summary = summarize(results, time.monotonic() - t0)
    print(json.dumps(summary))
    return 1 if summary["failures"] else 0


def _revision() -> str:
    """The commit the campaign ran on (+dirty when the tree had changes): executions count only
    on code that has the fixes."""
    import subprocess

    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return rev or "unknown"


def summarize(results: list[dict[str, object]], wall: float) -> dict[str, Any]:
    """Executions, CPU seconds and wall seconds per tool, failures by kind, the peak RSS."""
    total: dict[str, int] = {}
    execs: dict[str, int] = {}
    cpu: dict[str, float] = {}
    secs: dict[str, float] = {}
    rss = 0.0
    slow = 0
    for res in results:
        t = str(res["tool"])
        slow += int(res.get("slow_once", 0))  # type: ignore[call-overload]
        execs[t] = execs.get(t, 0) + int(res["execs"])  # type: ignore[call-overload]
        cpu[t] = round(cpu.get(t, 0.0) + float(res.get("cpu_seconds", 0.0)), 1)  # type: ignore[arg-type]
        secs[t] = round(secs.get(t, 0.0) + float(res.get("seconds", 0.0)), 1)  # type: ignore[arg-type]
        for k, v in dict(res["failures"]).items():  # type: ignore[call-overload]
            total[k] = total.get(k, 0) + int(v)
        rss = max(rss, float(res["peak_rss_mb"]))  # type: ignore[arg-type]
    return {
        "execs": execs,
        "total_execs": sum(execs.values()),
        "cpu_seconds": cpu,
        "seconds": secs,
        "wall_seconds": round(wall, 1),
        "failures": total,
        "slow_once": slow,
        "peak_rss_mb": rss,
    }


def replay(what: str, out: Path) -> int:
    """One execution again, from its (tool, seed, index): the same input, made in a fresh
    directory (state a tool's earlier executions left, like a model state, is not replayed)."""
    tool, seed, index = what.split(":")
    os.environ["LKM_STATE_TIMEOUT"] = "2"
    signal.signal(signal.SIGALRM, _alarm)
    work = Path(tempfile.mkdtemp(prefix=f"lkm-fuzz-replay-{tool}-"))
    c = Campaign(tool, int(seed), work, out)
    c.index = int(index)
    c.reseed(c.index)
    global call
    real = call

    def show(argv: list[str]) -> Result:
        res = real(argv)
        print(f"$ lkm {' '.join(argv)}\n-> exit {res.rc} in {res.seconds:.1f} s\n{res.err}", end="")
        return res

    call = show
    getattr(c, f"t_{tool}")()
    print(f"inputs kept in {work}")
    return 1 if c.failures else 0


def _line(res: dict[str, object]) -> None:
    print(
        f"{res['tool']:<9} seed {res['seed']:<6} execs {res['execs']:<7} cpu {res.get('cpu_seconds', 0)} s "
        f"failures {res['failures']} "
        f"slow-once {res.get('slow_once', 0)} peak RSS {res['peak_rss_mb']} MB",
        flush=True,
    )
    for e in list(res.get("examples") or [])[:3]:  # type: ignore[call-overload]
        print(f"    {e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

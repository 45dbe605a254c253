"""lkm's derived-data cache (lkm.cache): kernel-image symbols keyed by the image's content,
versioned, whole-or-nothing under concurrent writers, corrupt entries rebuilt; emulator
sessions that keep the kernel files they were made with; progress on stderr (lkm.cli.progress)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lkm import cache
from lkm.symbols import sources
from lkm.symbols.table import KernelSymbol

from support import FIX6, ROOT


def recovered(seed: int, count: int = 600) -> list[KernelSymbol]:
    """What a recovery gives: kallsyms entries, exports among them (GPL, CRC, namespace), and
    exports kallsyms does not list (no type letter), as for an arm64 Image."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name = f"sym{seed}_{i}_" + "".join(rng.choice("abcdefghij_") for _ in range(rng.randrange(1, 30)))
        addr = 0xFFFF800008010000 + i * 16
        kind = rng.randrange(4)
        if kind == 0:
            out.append(KernelSymbol(name, addr, rng.choice("TtDdBbRrA")))
        elif kind == 1:
            out.append(
                KernelSymbol(name, addr, "T", None, True, rng.random() < 0.5, rng.getrandbits(32), None)
            )
        elif kind == 2:
            out.append(KernelSymbol(name, addr, "D", None, True, False, None, rng.choice(["CXL", None])))
        else:
            out.append(KernelSymbol(name, addr, None, None, True, True))
    return out


class Recovery:
    """Stands in for the seconds of decompressing and decoding an image: counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        monkeypatch.setattr(sources, "_recover_image_symbols", self)

    def __call__(self, data: bytes, path: str | None, arch: str | None) -> tuple[str, list[KernelSymbol]]:
        self.calls += 1
        return arch or "arm64", recovered(data[0])


def image(seed: int) -> bytes:
    return bytes([seed]) + random.Random(seed).randbytes(4095)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("LKM_CACHE_DIR", str(d))
    monkeypatch.delenv("LKM_CACHE", raising=False)
    return d


def _entries(d: Path) -> list[Path]:
    return sorted((d / sources.IMAGE_SYMBOLS).glob("*")) if (d / sources.IMAGE_SYMBOLS).is_dir() else []


def test_image_symbols_cached_by_content(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recovery(monkeypatch)
    arch, cold = sources.image_symbols(image(1))
    assert (arch, cold, rec.calls) == ("arm64", recovered(1), 1)
    (entry,) = _entries(cache_dir)
    assert entry.name.startswith(f"v{cache.VERSION}-") and oct(entry.stat().st_mode & 0o777) == "0o600"
    assert sources.image_symbols(image(1)) == (arch, cold) and rec.calls == 1  # every field back
    assert sources.parse_kernel_image(image(1)) == cold and rec.calls == 1
    assert sources.image_symbols(image(2))[1] == recovered(2) and rec.calls == 2  # another content
    assert sources.image_symbols(image(1), arch="x86_64")[0] == "x86_64" and rec.calls == 3  # another arch


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # a torn write
        lambda b: b"\0" * len(b),
        lambda b: b.replace(b'"version":1', b'"version":99'),  # another lkm's entry
        lambda b: b.replace(b'"count":', b'"count":1', 1),  # inconsistent columns
        lambda b: b.replace(b'"addresses":"', b'"addresses":"!', 1),  # bad base64
    ],
)
def test_corrupt_entry_ignored_and_rebuilt(
    cache_dir: Path, damage: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recovery(monkeypatch)
    _arch, good = sources.image_symbols(image(3))
    (entry,) = _entries(cache_dir)
    whole = entry.read_bytes()
    assert callable(damage)
    entry.write_bytes(damage(whole))
    _arch, again = sources.image_symbols(image(3))
    assert again == good == recovered(3) and rec.calls == 2
    assert entry.read_bytes() == whole  # rewritten whole


def test_location_and_off_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LKM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == str(tmp_path / "xdg" / "lkm")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored (XDG)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == str(tmp_path / "home" / ".cache" / "lkm")
    monkeypatch.setenv("LKM_CACHE", "off")
    assert cache.cache_dir() is None and not cache.put("k", "x", 1) and cache.get("k", "x") is None
    rec = Recovery(monkeypatch)
    sources.image_symbols(image(4))
    sources.image_symbols(image(4))
    assert rec.calls == 2 and not (tmp_path / "home").exists()


def test_unwritable_cache_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LKM_CACHE_DIR", str(blocker / "sub"))  # a file where a directory is needed
    Recovery(monkeypatch)
    assert sources.image_symbols(image(5))[1] == recovered(5)


WRITER = """
import sys
from lkm import cache
payload = {"n": int(sys.argv[1]), "pad": "x" * 400000}
for _ in range(15):
    cache.put("race", "key", payload)
"""
READER = """
import sys
from lkm import cache
seen = 0
for _ in range(300):
    got = cache.get("race", "key")
    if got is not None:
        assert len(got["pad"]) == 400000 and got["n"] in range(4), got
        seen += 1
print(seen)
"""


def test_concurrent_writers_and_readers(cache_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LKM_CACHE_DIR": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(i)], env=env) for i in range(4)]
    reader = subprocess.run(
        [sys.executable, "-c", READER], env=env, capture_output=True, text=True, check=False
    )
    assert all(p.wait() == 0 for p in procs)
    assert reader.returncode == 0, reader.stderr  # every entry read was whole
    assert sorted(p.name for p in (cache_dir / "race").iterdir()) == [
        f"v{cache.VERSION}-key.json"
    ]  # no temps
    assert cache.get("race", "key")["n"] in range(4)


# -- sessions ---------------------------------------------------------------------------------


def test_session_keeps_its_kernel_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lkm run -k FILE --session S` then `lkm dev --session S`: each replay binds FILE's
    symbols, whatever $LKM_EMULATE_KALLSYMS says at that time."""
    pytest.importorskip("unicorn")
    from lkm.cli import main
    from lkm.emulate.session import load_state
    from lkm.module import ModuleFile

    names = sorted(n.name for n in ModuleFile.open(FIX6 / "chardev.ko").needed)
    mine, other = tmp_path / "mine.kallsyms", tmp_path / "other.kallsyms"
    mine.write_text("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    other.write_text("".join(f"{0xFFFFFFFF82000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    session = tmp_path / "s.json"
    monkeypatch.setenv("LKM_EMULATE_KALLSYMS", "")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["lkm", "run", str(FIX6 / "chardev.ko"), "-k", str(mine), "--session", str(session)]) == 0
    saved = json.loads(session.read_text())
    assert (saved["symbols"], saved["kernel"]) == ("kernel", [str(mine)])
    monkeypatch.setenv("LKM_EMULATE_KALLSYMS", str(other))
    s = load_state(str(session))
    assert s.symbols is not None and not isinstance(s.symbols, str)
    got = s.symbols.table.lookup("__register_chrdev")
    assert got is not None and got.address == 0xFFFFFFFF81000000 + names.index("__register_chrdev") * 0x100
    assert main(["lkm", "dev", "--session", str(session), "open", "lkmchar"]) == 0
    assert json.loads(session.read_text())["kernel"] == [str(mine)]


def _kallsyms_text(seed: int, count: int = 3000) -> str:
    """A /proc/kallsyms with what the real one has: static namesakes (one name at several
    addresses), data and per-cpu letters, module symbols, symbols sharing an address."""
    rng = random.Random(seed)
    lines = []
    addr = 0xFFFFFFFF81000000
    for i in range(count):
        addr += rng.choice((0, 0x10, 0x40, 0x1000))
        name = rng.choice(("dup_a", "dup_b", f"s{i}_{rng.randrange(10**6)}", f"s{i}"))
        letter = rng.choice("TtDdBbRrWw")
        lines.append(f"{addr:016x} {letter} {name}")
    lines += [f"{0x1000 * i:016x} A pcpu{i}" for i in range(5)]
    lines += [f"{0xFFFFFFFFC0000000 + i * 0x20:016x} t m{i}\t[mod{i % 3}]" for i in range(40)]
    return "\n".join(lines) + "\n"


def test_session_symbols_cached_answer_as_the_table(cache_dir: Path, tmp_path: Path) -> None:
    """A replayed session's kernel symbols from lkm.cache (columns, CompactSymbolSpace) answer
    every question the emulator asks exactly as the SymbolSpace over SymbolTable.from_files of
    the same files: lookup(name) for every name and absent ones, the address-sorted entries,
    name_at/size_at anywhere."""
    pytest.importorskip("unicorn")
    from lkm.emulate.kernel import SymbolSpace
    from lkm.emulate.session import SESSION_SYMBOLS, CompactSymbolSpace, kernel_symbols
    from lkm.symbols.table import SymbolTable

    for seed in range(3):
        a, b = tmp_path / f"a{seed}.kallsyms", tmp_path / f"b{seed}.kallsyms"
        a.write_text(_kallsyms_text(seed))
        b.write_text(_kallsyms_text(seed + 100, 500))
        files = [str(a), str(b)]
        ref = SymbolSpace(SymbolTable.from_files(*files))
        first = kernel_symbols(files)
        assert not isinstance(first, CompactSymbolSpace)  # computed, then stored
        hit = kernel_symbols(files)
        assert isinstance(hit, CompactSymbolSpace)
        names = {sym.name for sym in ref.table} | {"absent", "dup_", "zzzz", ""}
        for n in sorted(names):
            want, got = ref.table.lookup(n), hit.table.lookup(n)
            assert (want is None) == (got is None), n
            if want is not None and got is not None:
                assert (got.address, got.type) == (want.address, want.type), n
        assert hit.entries == ref.entries
        rng = random.Random(seed)
        lo, hi = ref.addresses[0] - 0x100, ref.addresses[-1] + 0x2000
        for addr in [rng.randrange(lo, hi) for _ in range(500)] + ref.addresses[:50]:
            assert hit.name_at(addr) == ref.name_at(addr)
            assert hit.size_at(addr) == ref.size_at(addr)
    # A damaged entry is not believed: the files are read again.
    for entry in (cache_dir / SESSION_SYMBOLS).glob("*.json"):
        doc = json.loads(entry.read_text())
        doc["payload"]["names"] = doc["payload"]["names"][::-1]
        entry.write_text(json.dumps(doc))
    assert not isinstance(kernel_symbols(files), CompactSymbolSpace)


def test_dev_replay_same_with_and_without_the_cache(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lkm dev read` on a session made with -k FILE prints the same with its symbols from the
    cache as when they are read from FILE."""
    pytest.importorskip("unicorn")
    from lkm.cli import main
    from lkm.module import ModuleFile

    names = sorted(n.name for n in ModuleFile.open(FIX6 / "chardev.ko").needed)
    k = tmp_path / "k.kallsyms"
    k.write_text("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    session = tmp_path / "s.json"
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["lkm", "run", str(FIX6 / "chardev.ko"), "-k", str(k), "--session", str(session)]) == 0
    assert main(["lkm", "dev", "--session", str(session), "open", "lkmchar"]) == 0
    saved = session.read_text()
    outputs = []
    for mode in ("off", "on", "on"):  # read from the file; computed and stored; from the cache
        monkeypatch.setenv("LKM_CACHE", mode)
        session.write_text(saved)
        out.seek(0)
        out.truncate()
        assert main(["lkm", "dev", "--session", str(session), "--json", "read", "lkmchar"]) == 0
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert "Hello world" in outputs[0]


# -- progress ---------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_drawn_on_a_tty_and_erased() -> None:
    from lkm.cli.progress import Progress, enabled

    tty = Tty()
    assert enabled(tty) and not enabled(tty, quiet=True) and not enabled(io.StringIO())
    with Progress("loading", total=10, stream=tty, delay=0.0) as p:
        p.advance(5)
        time.sleep(0.6)
    text = tty.getvalue()
    assert "loading: 5/10 (50%)" in text and text.endswith("\r\x1b[K")


def test_progress_silent_when_not_a_tty_quiet_or_short(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkm.cli.progress import Progress

    for stream, quiet, delay in ((io.StringIO(), False, 0.0), (Tty(), True, 0.0), (Tty(), False, 5.0)):
        with Progress("x", stream=stream, quiet=quiet, delay=delay):
            time.sleep(0.3)
        assert stream.getvalue() == ""
    monkeypatch.setenv("LKM_PROGRESS", "0")
    tty = Tty()
    with Progress("x", stream=tty, delay=0.0):
        time.sleep(0.3)
    assert tty.getvalue() == ""


def test_progress_import_is_cheap() -> None:
    """No dependency: over lkm.cli it loads only threading (what tqdm or rich would be instead)."""
    code = (
        "import sys, json, lkm.cli; before = set(sys.modules); import lkm.cli.progress; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert set(json.loads(out)) <= {"lkm.cli.progress", "threading", "_weakrefset"}


def test_run_takes_several_kernel_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-k is repeatable: symbols from every file (here the imports split over a System.map and a
    /proc/kallsyms copy), kept in the session in that order."""
    pytest.importorskip("unicorn")
    from lkm.cli import main
    from lkm.emulate.session import load_state
    from lkm.module import ModuleFile

    names = sorted(n.name for n in ModuleFile.open(FIX6 / "chardev.ko").needed)
    addr = {n: 0xFFFFFFFF81000000 + i * 0x100 for i, n in enumerate(names)}
    half = len(names) // 2
    a, b = tmp_path / "System.map", tmp_path / "proc-kallsyms"
    a.write_text("".join(f"{addr[n]:016x} T {n}\n" for n in names[:half]))
    b.write_text("".join(f"{addr[n]:016x} T {n}\n" for n in names[half:]))
    session = tmp_path / "s.json"
    monkeypatch.setenv("LKM_EMULATE_KALLSYMS", "")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    args = [
        "lkm",
        "run",
        str(FIX6 / "chardev.ko"),
        "-k",
        str(a),
        "--kernel",
        str(b),
        "--session",
        str(session),
    ]
    assert main(args) == 0
    assert json.loads(session.read_text())["kernel"] == [str(a), str(b)]
    s = load_state(str(session))
    assert s.symbols is not None and not isinstance(s.symbols, str)
    got = {n: (sym.address if (sym := s.symbols.table.lookup(n)) else None) for n in names}
    assert got == addr

"""Inputs the fuzz campaign (scripts/fuzz.py) found, each through the tool it broke: the tool
ends in a bounded time with its normal output or one line naming the file and the reason,
never a traceback or the boundary's internal error.  Each case failed before its fix (the
note says how)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from support import lkm_cmd

CASES = Path(__file__).resolve().parent / "cases"

LINK = ["link", "{}", "--kernel", "{map}", "-o", "{out}"]
REL = "6.1.0-56-amd64"  # the release of the damaged trees under cases/index-*

# (file, argv with {} for the file, expected exit status, what it did before the fix)
RUNS = [
    # A Code: line of 51 glued hex digits: the units pattern "(?:[<(]?[0-9a-f]{1,8}[>)]? ?)+"
    # backtracked exponentially (ksymoops hung; found by the campaign's ksymoops target).
    ("ksymoops-code-glued-digits.txt", ["ksymoops", "{}"], 0, "hang"),
    # 46 KB of xz that inflate to 300 MB: triage inflated it whole, then matched every pattern
    # against a 300 MB line (minutes, > 1 GB); now refused at the decompression cap.
    ("triage-xz-bomb.log.xz", ["triage", "{}"], 1, "hang, memory"),
    # a 40 MB line of NULs (under the cap) then a heading: every pattern scanned the long line
    # (tens of seconds); lines past printk's length are text now, the report is still found.
    ("triage-long-line.log.gz", ["triage", "--format", "json", "{}"], 0, "hang"),
    # a journal JSON export whose MESSAGE byte array holds 1000 and -1, and a line that is a
    # JSON list: ValueError from bytes() (internal error, exit 70); the good entry is read.
    ("triage-journal-json-bad-bytes.json", ["triage", "--format", "json", "{}"], 0, "traceback"),
    # a 2.4 object whose symbol names section 64767 of 13: IndexError in obj24's final_value
    # (modutils indexes its section array unchecked); refused at load now, ENOEXEC.
    ("link24-symbol-section-index.o", ["link", "{}", "--kernel", "{ksyms}", "-o", "{out}"], 1, "traceback"),
    # a 2.4 object linked against a 64-bit kernel's map: a GOT entry took the 64-bit value
    # (struct.error); i386 insmod's addresses wrap to 32 bits, as the relocations already did.
    ("link24-got-64bit-kernel.o", ["link", "{}", "--kernel", "{map}", "-o", "{out}"], 0, "traceback"),
    # a mutated 2.4 object whose __ksymtab is shorter than the export entries insmod patches:
    # struct.error from pack_into; now "patch past the end of the section".
    ("link24-ksymtab-patch-past-end.o", ["link", "{}", "--kernel", "{map}", "-o", "{out}"], 1, "traceback"),
    # a 2.4 symbol in section 0xfff3 (reserved, neither ABS nor COMMON): IndexError in the load
    # map's symbols; refused at load now.
    ("link24-symbol-reserved-index.o", ["link", "{}", "--kernel", "{map}", "-o", "{out}"], 1, "traceback"),
    # a 2.4 object whose section sizes make a 250 MB image: linked and written whole (25 s,
    # 1.2 GB RSS, exit 0); 2.4's create_module cannot vmalloc past VMALLOC_RESERVE (128 MiB):
    # ENOMEM now, before anything is allocated.
    ("link24-image-past-vmalloc.o", [*LINK, "--blob", "{blob}"], 1, "hang"),
    # a mutated module whose relocation names symbol 1600083278: IndexError in verify's search
    # for the per-CPU base; the link's own "relocation symbol index ... out of range" now.
    ("verify-reloc-symbol-index/chardev.ko", ["verify", "--snapshot", "{dir}/snap", "{}"], 1, "traceback"),
    # a Code: unit closed without being opened ("1>"): ValueError from int(); unavailable now.
    ("ksymoops-code-half-marked.txt", ["ksymoops", "{}"], 0, "traceback"),
    # Damaged kmod indexes in a module tree (the campaign's index target): lkm.index followed
    # node offsets, child ranges, value counts and strings past the end of the file.  Each was
    # an internal error (IndexError, struct.error); now "damaged index: ..." naming the file.
    # modules.dep.bin: a child offset past the end (modprobe -D: IndexError from the mmap)
    ("index-dep-bin-child-past-end", ["modprobe", "-d", "{}", "-S", REL, "-D", "btqca"], 1, "traceback"),
    # modules.symbols.bin: a value count of 4110406200 (modprobe -c: unpack past the end)
    ("index-showconfig-values-past-end", ["modprobe", "-d", "{}", "-S", REL, "-c"], 1, "traceback"),
    # modules.alias.bin: a child table running past the end (modinfo by alias: struct.error)
    (
        "index-modinfo-lookup-past-end",
        ["modinfo", "-b", "{}", "-k", REL, "pci:v00001234d00005678sv*"],
        1,
        "traceback",
    ),
    # modules.symbols.bin: a node whose last child is before its first (struct format "-3I")
    ("index-children-reversed", ["modprobe", "-d", "{}", "-S", REL, "-c"], 1, "traceback"),
]

# what the 2.4 fixtures need from the kernel (so a link gets as far as relocation)
KSYMS = ["printk", "kmalloc", "kfree", "register_chrdev", "unregister_chrdev", "__generic_copy_to_user"]


@pytest.mark.parametrize(("name", "argv", "status", "before"), RUNS, ids=[r[0] for r in RUNS])
def test_campaign_case(name: str, argv: list[str], status: int, before: str, tmp_path: Path) -> None:
    path = CASES / name
    ksyms = tmp_path / "System.map"
    ksyms.write_text("".join(f"{0xC0100000 + 64 * i:08x} T {n}\n" for i, n in enumerate(KSYMS)))
    subst = {"{}": str(path), "{ksyms}": str(ksyms), "{out}": str(tmp_path / "out.elf"),
             "{map}": str(path.with_suffix(".map")), "{blob}": str(tmp_path / "blob"),
             "{dir}/snap": str(path.parent / "snap")}  # fmt: skip
    env = dict(os.environ)
    env.pop("LKM_TRACEBACK", None)
    env.pop("LKM_DECOMPRESS_LIMIT", None)
    t0 = time.monotonic()
    p = subprocess.run(
        [*lkm_cmd(), *[subst.get(a, a) for a in argv]],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        env=env,
    )
    took = time.monotonic() - t0
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == status, (p.returncode, p.stderr)
    assert took < 60, took  # seconds on a loaded machine; minutes or a hang before the fix
    if status:
        lines = [ln for ln in p.stderr.splitlines() if str(path) in ln]
        assert len(lines) == 1 and p.stderr.count("\n") == 1, p.stderr
        if "bomb" in name:
            assert "decompressed size exceeds" in lines[0], p.stderr
    if name.startswith("triage-") and not status:
        assert '"reports": 1,' in p.stdout, p.stdout[:500]
        assert '"title": "KASAN: use-after-free in' in p.stdout, p.stdout[:500]


def test_state_schema_text_not_utf8(tmp_path: Path) -> None:
    """A bit flipped in the schema page (sqlite_master) of a booted state, as the campaign's
    state target did: every command refuses it in one line.  Before: UnicodeDecodeError from
    SQLite's message on open (``ksyms -a``: internal error) and ``model check`` printed the
    codec's message."""
    st = tmp_path / "k.db"
    env = dict(os.environ)
    env.pop("LKM_TRACEBACK", None)
    boot = subprocess.run([*lkm_cmd(), "model", "boot", "linux-6.1-amd64", "--state", str(st)],
                          capture_output=True, env=env, check=False)  # fmt: skip
    assert boot.returncode == 0, boot.stderr
    data = bytearray(st.read_bytes())
    at = data.find(b"\x00indexsqlite_autoindex_memory_1memory")
    assert 0 < at < 4096  # page 1: the schema
    data[at + 37] |= 0x80  # the record header byte after the name, as found (0x79 -> 0xf9)
    st.write_bytes(bytes(data))
    state = ["--state", str(st)]
    for argv in (
        ["ksyms", *state, "-a"],
        ["lsmod", *state],
        ["model", "check", *state],
        ["model", "info", *state],
    ):
        full = [*lkm_cmd(), *argv]
        p = subprocess.run(full, capture_output=True, text=True, errors="replace", env=env, check=False)
        assert p.returncode == 1, (argv, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr and "codec" not in p.stderr
        assert p.stderr.count("\n") == 1, p.stderr


def _index(root: Path, nodes: bytes) -> Path:
    """A kmod index (modules.alias.bin) whose root node is at offset 12, then ``nodes``."""
    import struct

    d = root / "lib" / "modules" / REL
    d.mkdir(parents=True)
    (d / "modules.alias.bin").write_bytes(
        struct.pack(">III", 0xB007F457, 0x00020001, 12 | 0x20000000) + nodes
    )
    return d / "modules.alias.bin"


@pytest.mark.parametrize("cmd", [["-c"], ["-R", "a*"], ["-R", "aaaa"]])
def test_index_with_a_loop(tmp_path: Path, cmd: list[str]) -> None:
    """A trie node whose only child ('a'..'*') is the node itself: a loop.  Before the fix,
    modprobe -c (every key) and -R (an alias: a wildcard lookup) recursed until RecursionError
    (internal error); each node of an expanded subtree is now read once, and a node reached
    twice is damage."""
    import struct

    loop = 12 | 0x20000000
    idx = _index(tmp_path, bytes([ord("*"), ord("a")]) + struct.pack(">I", loop) * (ord("a") - ord("*") + 1))
    env = dict(os.environ)
    env.pop("LKM_TRACEBACK", None)
    p = subprocess.run([*lkm_cmd(), "modprobe", "-d", str(tmp_path), "-S", REL, *cmd],
                       capture_output=True, text=True, errors="replace", timeout=120, env=env)  # fmt: skip
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == 1 and p.stderr.count("\n") == 1, (p.returncode, p.stderr)
    assert f"{idx}: damaged index: node at 0xc reached twice" in p.stderr, p.stderr


@pytest.mark.parametrize(
    ("case", "table"), [("state-modules-row-of-nulls", "modules"), ("state-ksyms-row-of-nulls", "ksyms")]
)
@pytest.mark.parametrize(
    "argv", [["proc", "modules"], ["lsmod"], ["rmmod", "chardev"], ["model", "info"], ["proc", "kallsyms"]]
)
def test_state_row_of_nulls(tmp_path: Path, argv: list[str], case: str, table: str) -> None:
    """A state whose damaged page (the campaign's state target: a page overwritten) left a
    modules row of NULLs, though every column is NOT NULL (SQLite checks that on writing
    only).  Before: ``proc modules`` formatted None (TypeError, internal error).  Every open
    now checks the tables' rows against their column types: one line, the file untouched.
    The second case, a kernel symbol row with NULLs, made ``proc kallsyms`` format None until
    the symbol tables were checked too."""
    import gzip

    st = tmp_path / "k.db"
    st.write_bytes(gzip.decompress((CASES / f"{case}.db.gz").read_bytes()))
    before = st.read_bytes()
    env = dict(os.environ)
    env.pop("LKM_TRACEBACK", None)
    cut = 2 if argv[0] == "model" else 1  # lkm model SUBCOMMAND --state FILE; lkm TOOL --state FILE
    full = [*lkm_cmd(), *argv[:cut], "--state", str(st), *argv[cut:]]
    p = subprocess.run(full, capture_output=True, text=True, errors="replace", timeout=120, env=env)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == 1 and p.stderr.count("\n") == 1, (p.returncode, p.stderr)
    assert f"damaged state: {table} row" in p.stderr, p.stderr
    assert st.read_bytes() == before

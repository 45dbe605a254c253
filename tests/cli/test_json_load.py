"""``--json`` of the tools that act rather than list (issue 16): insmod and rmmod (today's and
2.4's model kernels), the kmod multi-call (``kmod list``, ``kmod static-nodes``) and ``lkm
demo``.  Every document is checked against the published schema (lkm/data/lkm-1.schema.json)
and against what the text says: the message is the text mode's stderr line, the exit status
the text mode's, a loaded module's size and address are lsmod's and /proc/modules' row, its
sections /proc's memory view, the log the model's dmesg; 2.4's address is modutils' ksymoops
symbol; static-nodes is kmod's own ``--format=devname`` output (Debian's kmod, the oracle);
demo's steps are the text walk's, and the state each shows is the lsmod text it printed."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kmodlink import can_unshare, tool_link

from support import FIX6, FIX24, ROOT, kmod_tool, require
from support import lkm_process as lkm

DATA = ROOT / "src" / "lkm" / "data"


def docs(text: str, kind: str, validator: Any) -> list[dict[str, Any]]:
    out = [json.loads(ln) for ln in text.splitlines()]
    for d in out:
        errors = sorted(validator.iter_errors(d), key=str)
        assert not errors, (d, errors[0])
        assert d["schema"] == "lkm/1" and d["kind"] == kind
    return out


def one(p: subprocess.CompletedProcess[str], kind: str, validator: Any) -> dict[str, Any]:
    (d,) = docs(p.stdout, kind, validator)
    return d


def error_line(stderr: str, prog: str) -> str:
    """The message of kmod's one-line ``PROG: ERROR: message``."""
    (ln,) = stderr.splitlines()
    assert ln.startswith(f"lkm {prog}: ERROR: ")
    return ln[len(f"lkm {prog}: ERROR: ") :]


def lsmod_rows(text: str) -> list[tuple[str, int]]:
    """kmod's lsmod text (header, then ``name size used [by]``): (name, size) per row."""
    return [(f[0], int(f[1])) for f in (ln.split() for ln in text.splitlines()[1:])]


# -- insmod and rmmod on today's model kernel --------------------------------------------------


def test_insmod_rmmod_json_6x(tmp_path: Path, validator: Any) -> None:
    st = ["--state", str(tmp_path / "k.db")]
    assert lkm("model", "boot", "linux-6.1-amd64", *st).returncode == 0
    exporter, importer = str(FIX6 / "exporter.ko"), str(FIX6 / "importer.ko")

    # a failure: the same status and stderr as the text mode, the message is its line
    text = lkm("insmod", *st, importer)
    p = lkm("insmod", *st, "--json", importer)
    assert (p.returncode, p.stderr) == (text.returncode, text.stderr) == (1, text.stderr)
    d = one(p, "insmod", validator)
    assert (d["name"], d["result"], d["errno"], d["error"]) == ("importer", "failed", errno.ENOENT, "ENOENT")
    assert (
        d["message"]
        == error_line(text.stderr, "insmod")
        == f"could not insert module {importer}: " + ("Unknown symbol in module")
    )

    log_before = lkm("model", "dmesg", *st).stdout.splitlines()
    p = lkm("insmod", *st, "--json", exporter)
    assert (p.returncode, p.stderr) == (0, "")
    d = one(p, "insmod", validator)
    assert (d["name"], d["result"], d["errno"], d["message"]) == ("exporter", "loaded", None, None)
    assert lkm("model", "dmesg", *st).stdout.splitlines() == log_before + d["log"]
    # the failed importer tainted the kernel for good (add_taint is never undone): its
    # out-of-tree line is in the log before, the exporter's load announces nothing again
    assert "importer: loading out-of-tree module taints kernel." in log_before
    assert not any("out-of-tree module taints kernel" in ln for ln in d["log"])
    # /proc/modules' row: "exporter 16384 0 - Live 0xffffffffc0000000 (OE)"
    (row,) = lkm("proc", *st, "modules").stdout.splitlines()
    f = row.split()
    assert (d["name"], d["size"], d["state"], d["address"], f"({d['taints']})") == (
        f[0], int(f[1]), f[4], f"0x{int(f[5], 16):x}", f[6])  # fmt: skip
    assert lsmod_rows(lkm("lsmod", *st).stdout) == [(d["name"], d["size"])]
    # the taint letters are the kernel's bits: O = TAINT_OOT_MODULE (12), E = TAINT_UNSIGNED_MODULE (13)
    assert d["taints"] == "OE" and d["kernel_taint"] & (1 << 12 | 1 << 13) == 1 << 12 | 1 << 13
    rows = [ln.split() for ln in lkm("proc", *st, "memory").stdout.splitlines()]
    memory = {(m, s): a for m, s, a, *_ in rows}
    assert {s: int(a, 16) for s, a in d["sections"].items()} == {
        s: int(a, 16) for (m, s), a in memory.items() if m == "exporter"
    }
    assert int(d["regions"]["core"], 16) == int(d["address"], 16)

    text = lkm("insmod", *st, exporter)
    p = lkm("insmod", *st, "--json", exporter)
    assert (p.returncode, p.stderr) == (text.returncode, text.stderr) == (1, text.stderr)
    d = one(p, "insmod", validator)
    assert (d["result"], d["errno"], d["message"]) == (
        "already-loaded", errno.EEXIST, error_line(text.stderr, "insmod"))  # fmt: skip

    assert one(lkm("insmod", *st, "--json", importer), "insmod", validator)["result"] == "loaded"
    before = {m["name"]: m for m in docs(lkm("lsmod", *st, "--json").stdout, "lsmod", validator)}

    text = lkm("rmmod", *st, "exporter")
    p = lkm("rmmod", *st, "--json", "exporter")
    assert (p.returncode, p.stderr) == (text.returncode, text.stderr) == (1, text.stderr)
    d = one(p, "rmmod", validator)
    assert (d["result"], d["errno"]) == ("in-use", errno.EBUSY)
    assert d["message"] == error_line(text.stderr, "rmmod")
    assert d["message"] == "Module exporter is in use by: importer"

    p = lkm("rmmod", *st, "--json", "importer", "exporter", "nosuch")
    assert p.returncode == 1 and p.stderr == "lkm rmmod: ERROR: Module nosuch is not currently loaded\n"
    out = docs(p.stdout, "rmmod", validator)
    assert [(d["name"], d["result"]) for d in out] == [
        ("importer", "removed"), ("exporter", "removed"), ("nosuch", "not-loaded")]  # fmt: skip
    for d in out[:2]:  # what it was, as lsmod showed it before
        was = before[d["name"]]
        assert (d["size"], d["address"], d["errno"]) == (was["size"], was["address"], None)
    assert out[2]["message"] == error_line(p.stderr, "rmmod") and out[2]["errno"] == errno.ENOENT
    assert lkm("lsmod", *st).stdout.splitlines()[1:] == []


def test_insmod_json_missing_file(tmp_path: Path, validator: Any) -> None:
    missing = str(tmp_path / "nosuch.ko")
    text = lkm("insmod", missing)
    p = lkm("insmod", "--json", missing)
    assert (p.returncode, p.stderr) == (text.returncode, text.stderr) == (1, text.stderr)
    d = one(p, "insmod", validator)
    assert (d["name"], d["result"], d["error"]) == ("nosuch", "failed", "ENOENT")
    assert (
        d["message"]
        == error_line(text.stderr, "insmod")
        == f"could not load module {missing}: " + (os.strerror(errno.ENOENT))
    )


# -- insmod and rmmod on a 2.4 model kernel (modutils' tools) -----------------------------------


def test_insmod_rmmod_json_24(tmp_path: Path, validator: Any) -> None:
    st = ["--state", str(tmp_path / "k24.db")]
    assert lkm("model", "boot", "linux-2.4-i386", *st).returncode == 0
    fat, msdos, hello = (str(FIX24 / f"{n}.o") for n in ("fat24", "msdos24", "hello24"))
    d = one(lkm("insmod", *st, "--json", fat), "insmod", validator)
    assert (d["name"], d["result"], d["warnings"]) == ("fat24", "loaded", [])
    # modutils' lsmod row, and insmod's ksymoops symbol __insmod_fat24_O<path>_M..._V... at the module
    (row,) = [ln.split() for ln in lkm("lsmod", *st).stdout.splitlines()[1:]]
    assert (row[0], int(row[1])) == (d["name"], d["size"])
    ksyms = [ln.split() for ln in lkm("proc", *st, "ksyms").stdout.splitlines()]
    real = os.path.realpath(fat)  # modutils names the file it opened
    (obj,) = [int(a, 16) for a, name, *_ in ksyms if name.startswith(f"__insmod_fat24_O{real}_M")]
    assert int(d["address"], 16) == obj

    # -n -m: linked, not loaded; the map is the text mode's -m output
    text = lkm("insmod", *st, "-n", "-m", msdos)
    d = one(lkm("insmod", *st, "--json", "-n", "-m", msdos), "insmod", validator)
    assert (d["result"], d["map"]) == ("linked", text.stdout) and text.stdout.startswith("Sections:")

    text = lkm("insmod", *st, str(tmp_path / "no.o"))
    p = lkm("insmod", *st, "--json", str(tmp_path / "no.o"))
    assert (p.returncode, p.stderr) == (text.returncode, text.stderr) == (1, text.stderr)
    assert one(p, "insmod", validator)["message"] == text.stderr.rstrip("\n")

    assert lkm("insmod", *st, "-e", "", hello, "sticky=42").returncode == 0
    text = lkm("rmmod", *st, "-v", "hello24")
    assert lkm("insmod", *st, "-e", "", hello).returncode == 0
    p = lkm("rmmod", *st, "--json", "-v", "hello24", "nosuch")
    assert p.returncode == 1 and p.stderr == "rmmod: module nosuch is not loaded\n"
    ok, gone = docs(p.stdout, "rmmod", validator)
    assert (ok["result"], ok["notes"]) == ("removed", text.stdout.splitlines())
    assert (gone["result"], gone["message"]) == ("not-loaded", p.stderr.rstrip("\n"))


# -- kmod list / static-nodes ------------------------------------------------------------------


def test_kmod_list_json_is_lsmod_json(tmp_path: Path, validator: Any) -> None:
    st = ["--state", str(tmp_path / "k.db")]
    assert lkm("model", "boot", "linux-6.1-amd64", *st).returncode == 0
    for m in ("exporter.ko", "importer.ko"):
        assert lkm("insmod", *st, str(FIX6 / m)).returncode == 0
    listed = docs(lkm("kmod", "list", *st, "--json").stdout, "lsmod", validator)
    assert listed == docs(lkm("lsmod", *st, "--json").stdout, "lsmod", validator)
    assert [(d["name"], d["size"]) for d in listed] == lsmod_rows(lkm("kmod", "list", *st).stdout)
    assert listed[0]["holders"] == [] and listed[1]["holders"] == ["importer"]
    bad = lkm("kmod", "list", "--jsonx")
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", "Usage: list\n")  # kmod's for any argument


# A loaded kernel as kmod reads it: /proc/modules' rows, /sys/module's refcnt and holders.
PROC_MODULES = (
    "a 16384 0 - Live 0xffffffffc0000000\n"
    "b 20480 2 a,c, Live 0xffffffffc0010000 (OE)\n"
    "c 65536 1 a, Live 0xffffffffc0020000\n"
)
SYS_MODULE = {"a": ("0", []), "b": ("2", ["a", "c"]), "c": ("1", ["a"])}


@pytest.mark.oracle
def test_kmod_list_json_as_kmod_list(tmp_path: Path, validator: Any) -> None:
    """``kmod list --json`` says what Debian's ``kmod list`` prints, both reading one fake
    loaded kernel (a private mount namespace: /proc/modules on a tmpfs over /proc, since a
    machine without module support has none, and /sys/module bound to a fake tree)."""
    require(can_unshare(), "needs root and unshare -m (a private mount namespace)")
    sysmod = tmp_path / "sysmodule"
    for name, (ref, holders) in SYS_MODULE.items():
        (sysmod / name / "holders").mkdir(parents=True)
        (sysmod / name / "initstate").write_text("live\n")
        (sysmod / name / "refcnt").write_text(ref + "\n")
        for h in holders:
            (sysmod / name / "holders" / h).mkdir()
    (tmp_path / "modules").write_text(PROC_MODULES)
    script = (
        f"mount -t tmpfs none /proc && cp '{tmp_path / 'modules'}' /proc/modules "
        f"&& mount --bind '{sysmod}' /sys/module || exit 99\n"
        'exec "$@"'
    )

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd], capture_output=True, text=True)
        assert p.returncode != 99, p.stderr
        return p

    theirs, ours = run(kmod_tool("kmod"), "list"), run(str(tool_link("kmod")), "list", "--json")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    rows = [ln.split() for ln in theirs.stdout.splitlines()[1:]]
    assert len(rows) == 3
    got = docs(ours.stdout, "lsmod", validator)
    assert [(d["name"], d["size"], d["refcount"], d["holders"] or []) for d in got] == [
        (f[0], int(f[1]), int(f[2]), f[3].split(",") if len(f) > 3 else []) for f in rows
    ]


DEVNAME = (
    "# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\ntun net/tun c10:200\n"
    "dm_mod mapper/control c10:236\nloop loop0 b7:0\nbad entry\nx y z1:2\nsnd-timer snd/timer c116:33\n"
)


def _with_devname(tmp_path: Path, devname: str, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """``cmd`` with /lib/modules/$(uname -r)/modules.devname as given (an overlay on /usr/lib,
    as tests/cli/test_kmod_parity.py makes it)."""
    up, work = tmp_path / "up", tmp_path / "work"
    d = up / "modules" / os.uname().release
    d.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    (d / "modules.devname").write_text(devname)
    script = (
        f"mount -t overlay overlay -o lowerdir=/usr/lib,upperdir={up},workdir={work} /usr/lib || exit 99\n"
        'exec "$@"'
    )
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd], capture_output=True, text=True,
                       check=False, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})  # fmt: skip
    if p.returncode == 99:
        pytest.skip(f"no overlay mount here: {p.stderr!r}")
    return p


@pytest.mark.oracle
@pytest.mark.parametrize("devname", [DEVNAME, ""])
def test_static_nodes_json_is_kmods_devname(tmp_path: Path, devname: str, validator: Any) -> None:
    require(can_unshare(), "needs root and unshare -m (a private mount namespace)")
    theirs = _with_devname(tmp_path / "k", devname, [kmod_tool("kmod"), "static-nodes", "--format=devname"])
    ours = _with_devname(tmp_path / "l", devname, [tool_link("kmod"), "static-nodes", "--json"])
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
    got = docs(ours.stdout, "static-node", validator)
    want = [re.fullmatch(r"(\S+) (\S+) ([cb])(\d+):(\d+)", ln) for ln in theirs.stdout.splitlines()]
    assert all(want)
    assert [(d["module"], d["devname"], d["type"], d["major"], d["minor"]) for d in got] == [
        (m[1], m[2], m[3], int(m[4]), int(m[5])) for m in want if m
    ]
    assert len(got) == (5 if devname else 0)  # "bad entry" and "x y z1:2" are refused by both
    # --output writes the same lines into the file (parents made, as for the text formats)
    out = tmp_path / "l" / "run/tmpfiles.d/nodes.jsonl"
    cmd = [tool_link("kmod"), "static-nodes", "--json", f"--output={out}"]
    p = _with_devname(tmp_path / "l2", devname, cmd)
    assert (p.returncode, p.stdout) == (ours.returncode, "") and out.read_text() == ours.stdout


def test_kmod_help_stays_text() -> None:
    p = lkm("kmod", "help")
    assert p.returncode == 0 and p.stdout.startswith("kmod - Manage kernel modules")


# -- demo ------------------------------------------------------------------------------------


def test_demo_json_steps_are_the_walks(validator: Any) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    run = [sys.executable, "-m", "lkm", "demo"]
    text = subprocess.run(run, capture_output=True, text=True, check=True, env=env).stdout
    p = subprocess.run([*run, "--json"], capture_output=True, text=True, check=True, env=env)
    steps = docs(p.stdout, "demo-step", validator)
    assert [d["step"] for d in steps] == list(range(1, len(steps) + 1)) and len(steps) > 20

    def norm(s: str) -> str:  # each run has its own temporary directory and time (persist file)
        return re.sub(r"\d\d:\d\d:\d\d", "T", re.sub(r"/tmp/lkm-demo-[^/\s]+", "TMP", s))

    # the text walk, rebuilt from the steps: part headings, "$ command   # note", the output
    rebuilt, part = [], ""
    for d in steps:
        if d["part"] != part:
            part = d["part"]
            rebuilt.append(f"\n== {part} ==\n")
        head = f"$ {d['command']}" if d["command"].startswith(("lkm ", "cat ")) else d["command"]
        rebuilt.append(f"\n{head}" + (f"   # {d['note']}" if d["note"] else "") + "\n" + d["output"])
    assert norm("".join(rebuilt)) == norm(text)

    # each step's state is the model kernel's lsmod after it: the lsmod steps print the same
    lsmods = [d for d in steps if d["command"].startswith("lkm lsmod ")]
    assert len(lsmods) == 2
    for d in lsmods:
        rows = [ln.split() for ln in d["output"].splitlines()[1:]]
        assert [(f[0], int(f[1])) for f in rows] == [(m["name"], m["size"]) for m in d["modules"]]
    refused = [d for d in steps if d["outcome"] == "failed"]
    assert [d["command"].split()[-1] for d in refused] == ["fat24", "exporter"]
    assert [(d["status"], d["output"]) for d in refused] == [
        (1, "rmmod: fat24: Device or resource busy\n"),  # modutils' words
        (1, "lkm rmmod: ERROR: Module exporter is in use by: importer\n"),  # kmod's
    ]
    assert steps[-1]["modules"] == []


def test_readme_table_is_filled() -> None:
    """The README's surface table: a row per tool, every cell filled, --json everywhere (the
    option tables say the same: test_json_tools.test_every_tool_has_json)."""
    from lkm.cli import TOOLS, all_tools

    readme = (ROOT / "README.md").read_text()
    head = "| tool | `--help` | `--version` | `--json` | man page | completion |"
    lines = readme[readme.index(head) :].splitlines()[2:]
    rows = {
        c[0]: c[1:] for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in lines[: len(TOOLS)])
    }
    assert sorted(rows) == sorted(TOOLS)
    for name, cells in rows.items():
        assert len(cells) == 5 and all(cells), name
        assert not cells[2].startswith("no"), name
        assert cells[3] == f"lkm-{name}.8" and (DATA / "man" / cells[3]).is_file(), name
        assert any("json" in o.long for o in all_tools()[name].options), name


def test_kmsg_records() -> None:
    """/dev/kmsg's record format (Documentation/ABI/testing/dev-kmsg): one record per read,
    "prio,seq,usec,flags;text\\n" then " KEY=value" lines; unprintable bytes and the backslash
    written as \\xNN.  A SEQPACKET socket keeps records apart as the device does."""
    import socket

    from lkm.cli.loadjson import Kmsg

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for rec in (
        b"4,1234,5140900,-;importer: Unknown symbol lkm_fixture_add (err -2)\n",
        b"6,1235,5140901,-;e1000 0000:00:03.0 eth0: (PCI:33MHz:32-bit)\n"
        b" SUBSYSTEM=pci\n DEVICE=+pci:0000:00:03.0\n",
        b"6,1236,5140902,c;a\\x5cb caf\\xc3\\xa9 \\x07\n",
    ):
        a.send(rec)
    b.setblocking(False)
    k = Kmsg.__new__(Kmsg)
    k.fd = os.dup(b.fileno())
    assert k.read() == [
        "importer: Unknown symbol lkm_fixture_add (err -2)",
        "e1000 0000:00:03.0 eth0: (PCI:33MHz:32-bit)",
        "a\\b café \x07",
    ]
    a.close()
    b.close()

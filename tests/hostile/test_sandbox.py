"""The sandbox, watched from inside the interpreter (issue 15's security tests): Python's audit
hooks (PEP 578) report every file open, rename, utime, process start and socket the process
makes, whatever code path makes it.  That is the oracle: not what lkm's code looks like, but
what the process did.

- depmod writes nothing outside its tree, opens every new file exclusively (a planted
  symlink is never followed) and never touches a file through a symlink, even when every
  output name and every guessable temporary name is a symlink to a file outside;
- module code run by the emulator (its init and exit, with devices, request_module and the
  emulated kernel's library) opens no host file, starts no process and makes no socket;
- the model kernel's request_module with an ``install`` rule starts no host process by
  default (only the modules root's files are read).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import FIX6, ROOT

# Run in a child: an audit hook cannot be removed once added.
WATCH = r"""
import json, os, stat, sys
EVENTS = []
ACTIVE = [0 if os.environ.get("AUDIT_ONLY_EMULATION") else 1]
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGE = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.utime", "os.chmod", "os.chown",
          "os.symlink", "os.link", "os.truncate", "os.chflags", "os.lchmod", "os.lchown",
          "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move", "shutil.rmtree"}
START = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
         "os.forkpty", "os.startfile", "pty.spawn", "os.kill", "os.killpg")
NET = ("socket.", "urllib.", "http.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.",
       "telnetlib.", "webbrowser.")
LIBS = tuple(os.path.realpath(p) + os.sep for p in sys.path if p and os.path.isdir(p))

def import_of(path):  # the interpreter importing a module: not the code's doing
    p = os.path.realpath(path)
    return p.endswith((".py", ".pyc", ".so", ".pth")) and p.startswith(LIBS)

def hook(ev, args):
    if not ACTIVE[0]:
        return
    if ev == "open":
        path, mode, flags = args
        if isinstance(path, int) or import_of(os.fsdecode(path)):
            return
        writes = bool((flags or 0) & WRITE) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
        link = os.path.islink(path)
        EVENTS.append(["open", os.fsdecode(path), writes, flags if isinstance(flags, int) else -1, link])
    elif ev in CHANGE:
        paths = [os.fsdecode(a) for a in args if isinstance(a, (str, bytes, os.PathLike))]
        EVENTS.append([ev, paths, [os.path.islink(p) for p in paths]])
    elif ev.startswith(START) or ev.startswith(NET) or ev in ("ctypes.dlopen", "sqlite3.connect"):
        EVENTS.append([ev, repr(args)[:300]])

sys.addaudithook(hook)
import lkm.parallel  # every event in this process: lkm's fan-out over forked workers in-process
lkm.parallel.workers_available = lambda: 1

if os.environ.get("AUDIT_ONLY_EMULATION"):  # only while module code runs (and what it calls)
    import lkm.emulate.machine as machine
    real = machine.Machine._run_slices
    def watched(self, start):
        ACTIVE[0] += 1
        try:
            return real(self, start)
        finally:
            ACTIVE[0] -= 1
    machine.Machine._run_slices = watched

import contextlib, io
from lkm.cli import main
codes = []
for run in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        if isinstance(run, str):  # Python statements (the library, where no tool reaches)
            exec(run, {})
            codes.append(0)
        else:
            codes.append(main(["lkm", *run]))
ACTIVE[0] = 0
sys.stdout.write(json.dumps({"codes": codes, "events": EVENTS}))
"""


def audited(
    runs: list[list[str] | str], *, emulation_only: bool = False
) -> tuple[list[int], list[list[object]]]:
    env = dict(os.environ)
    env.pop("LKM_TRACEBACK", None)
    env.pop("LKM_STATE", None)
    if emulation_only:
        env["AUDIT_ONLY_EMULATION"] = "1"
    p = subprocess.run(
        [sys.executable, "-c", WATCH, json.dumps(runs)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    return got["codes"], got["events"]


# -- depmod never writes outside -b DIR ---------------------------------------------------------


def test_depmod_writes_only_inside_its_tree(tmp_path: Path) -> None:
    rel = "6.1.0-sandbox"
    root = tmp_path / "root"
    d = root / "lib" / "modules" / rel
    (d / "extra").mkdir(parents=True)
    for m in ("exporter", "importer", "chardev", "params", "kreq", "kreqfs"):
        shutil.copy(FIX6 / f"{m}.ko", d / "extra")
    # What depmod writes for this tree, made once in a scratch copy: the files outside are
    # byte-identical to the outputs, so a depmod that "refreshes" a current output instead of
    # writing it would touch them if it followed the symlink.
    scratch = tmp_path / "scratch"
    shutil.copytree(root, scratch)
    assert audited([["depmod", "-b", str(scratch), rel]])[0] == [0]
    sd = scratch / "lib" / "modules" / rel
    outputs = sorted(f.name for f in sd.iterdir() if f.name.startswith("modules.") and f.is_file())
    assert "modules.dep" in outputs and "modules.alias.bin" in outputs
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = {}
    for name in outputs:
        victim = outside / name
        shutil.copy2(sd / name, victim)
        os.utime(victim, (1_000_000_000, 1_000_000_000))
        (d / name).symlink_to(victim)  # the output itself: kmod renames over it
        for tmp in (f"{name}.tmp", f".{name}.tmp", f"{name}~", f"{name}.new", f"{name}.bak"):
            (d / tmp).symlink_to(outside / f"{tmp}.victim")  # guessable temporaries
            planted[tmp] = outside / f"{tmp}.victim"
    before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in outside.iterdir()}

    codes, events = audited([["depmod", "-b", str(root), rel], ["depmod", "-b", str(root), rel],
                             ["depmod", "-a", "-b", str(root), rel]])  # fmt: skip
    assert codes == [0, 0, 0]
    inside = os.path.realpath(d)
    wrote = 0
    for ev in events:
        if ev[0] == "open":
            _kind, path, writes, flags, link = ev
            if not writes:
                continue
            wrote += 1
            assert os.path.realpath(os.path.dirname(str(path))) == inside, ev
            assert not link, ev
            if int(flags) >= 0 and int(flags) & os.O_CREAT:
                assert int(flags) & os.O_EXCL, ("a new file not opened exclusively", ev)
        elif ev[0] in ("os.rename", "os.remove", "os.utime", "os.chmod", "os.chown", "os.truncate",
                       "os.mkdir", "os.symlink", "os.link", "shutil.copyfile", "shutil.move"):  # fmt: skip
            paths, links = ev[1], ev[2]
            assert isinstance(paths, list) and isinstance(links, list)
            for p in paths:
                assert os.path.realpath(os.path.dirname(str(p))) == inside, ev
            if ev[0] in ("os.utime", "os.chmod", "os.chown", "os.truncate"):
                assert not any(links), ("changed through a symlink", ev)
        else:
            raise AssertionError(f"depmod did something else: {ev}")
    assert wrote >= len(outputs)  # it wrote every output (the symlinks were replaced)
    after = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in outside.iterdir()}
    assert after == before  # nothing outside changed, not even a time stamp
    for name in outputs:
        assert not (d / name).is_symlink(), name
        if name != "modules.lkm-cache":  # lkm's own cache holds paths and inodes
            assert (d / name).read_bytes() == (sd / name).read_bytes(), name
    for tmp, victim in planted.items():
        assert (d / tmp).is_symlink() and not victim.exists(), tmp
    assert not [f.name for f in d.iterdir() if f.name.endswith(".tmp") and not f.is_symlink()]


# -- the emulator: module code reaches nothing of the host ---------------------------------------


def _run_argvs(modules: list[Path]) -> list[list[str]]:
    return [["run", "--synthetic", "--exit", "--timeout", "20", str(m)] for m in modules]


def _host_access(events: list[list[object]]) -> list[list[object]]:
    return [ev for ev in events if ev[0] != "ctypes.dlopen" or "unicorn" not in str(ev[1])]


def test_emulated_module_code_opens_no_host_file_starts_no_process_makes_no_socket() -> None:
    pytest.importorskip("unicorn")
    mods = [FIX6 / f"{m}.ko" for m in ("chardev", "params", "kcalls", "kreq", "kreqfs", "kreqlong",
                                       "kreqself", "exporter", "dwarfmod")]  # fmt: skip
    runs = _run_argvs(mods)
    runs.append(["run", "--synthetic", "--exit", "--device", "auto", "--irq", "11", "--advance", "50",
                 str(FIX6 / "pcidemo.ko")])  # fmt: skip
    codes, events = audited(runs, emulation_only=True)
    assert codes.count(0) >= len(runs) - 2, codes  # the module code ran (kreqself may fail)
    assert _host_access(events) == []


@pytest.mark.corpus
def test_emulated_corpus_modules_reach_nothing_of_the_host() -> None:
    """Forty real modules (a fixed sample of the 6.1 tree's small ones): their inits call far
    more of the emulated kernel than the fixtures do."""
    pytest.importorskip("unicorn")
    import random

    from support import tree_modules

    small = [p for p in tree_modules("amd64-6.1") if p.suffix == ".ko" and p.stat().st_size < 40_000]
    sample = random.Random(15).sample(small, min(40, len(small)))
    codes, events = audited(_run_argvs(sample), emulation_only=True)
    assert len(codes) == len(sample)
    assert _host_access(events) == []


# -- the model's request_module: no host process by default ------------------------------------


def test_model_request_module_starts_no_host_process_by_default(tmp_path: Path) -> None:
    """kreq.ko's init asks for kreqfs; the modules root's modprobe.d has an install rule for
    it.  With the default exec=none the model's modprobe records the command and runs
    nothing: no process start of any kind, no write outside the state's directory."""
    pytest.importorskip("unicorn")
    from lkm.cli.depmod import run as depmod
    from lkm.kernel.model import ModelKernel

    root = tmp_path / "root"
    release = ModelKernel.boot("linux-6.1-amd64", tmp_path / "probe.db").release
    extra = root / "lib" / "modules" / release / "extra"
    extra.mkdir(parents=True)
    for m in ("exporter", "kreqfs"):
        shutil.copy(FIX6 / f"{m}.ko", extra)
    (root / "etc" / "modprobe.d").mkdir(parents=True)
    marker = tmp_path / "marker"
    (root / "etc" / "modprobe.d" / "evil.conf").write_text(f"install kreqfs /bin/touch {marker}\n")
    assert depmod("depmod", ["-q", "-b", str(root), release]) == 0
    state = tmp_path / "k.db"
    code = f"""
from lkm.emulate.executor import for_profile
from lkm.kernel.model import ModelKernel
k = ModelKernel.boot("linux-6.1-amd64", {str(state)!r}, executor=for_profile("linux-6.1-amd64"),
                     modules_root={str(root)!r})
k.finit_module({str(FIX6 / "kreq.ko")!r})
k.request_module("kreqfs")
open({str(tmp_path / "commands.json")!r}, "w").write(__import__("json").dumps(k.commands))
k.close()
"""
    codes, events = audited([code])
    assert codes == [0]
    assert not marker.exists()
    commands = json.loads((tmp_path / "commands.json").read_text())
    assert commands and all(c == ["install", "kreqfs", f"/bin/touch {marker}"] for c in commands)
    start = ("subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.")
    starts = [ev for ev in events if str(ev[0]).startswith(start)]
    assert starts == []
    for ev in events:
        if ev[0] == "open" and ev[2]:  # a write: only the state (and its journal) beside it
            assert os.path.realpath(os.path.dirname(str(ev[1]))) == os.path.realpath(tmp_path), ev
        if ev[0] == "open" and not ev[2]:  # reads: the modules root, the fixtures, lkm's data
            assert not str(ev[1]).startswith("/etc"), f"host configuration read: {ev}"

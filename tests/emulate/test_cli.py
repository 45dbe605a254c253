"""lkm run / lkm dev as a user runs them, against the real kernel's log and device data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from support import FIX6, run

DATA = Path(__file__).parent / "data" / "dmesg-6.1-amd64.json"


def _real(guest: str) -> dict[str, object]:
    steps = json.loads(DATA.read_text())["steps"]
    return next(s for s in steps if s["guest"] == guest)  # type: ignore[no-any-return]


def _lkm(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "LKM_EMULATE_KALLSYMS": ""}  # the synthetic symbol space: no corpus needed
    p = run([sys.executable, "-m", "lkm", *args], cwd=cwd, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_run_json_init_and_exit() -> None:
    rc, out, err = _lkm("run", str(FIX6 / "chardev.ko"), "--exit", "--json")
    assert rc == 0, err
    insmod, rmmod = json.loads(out)
    assert insmod["dmesg"][-1:] == _real("$B insmod /m/chardev.ko")["dmesg"]
    assert insmod["value"] == 0 and insmod["fault"] is None
    assert [c["name"] for c in insmod["calls"]] == ["__register_chrdev", "_printk"]
    assert rmmod["dmesg"] == _real("$B rmmod chardev")["dmesg"]


def test_dev_through_a_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "session.json")
    rc, _, err = _lkm("run", str(FIX6 / "chardev.ko"), "--state", state)
    assert rc == 0, err
    real = _real(next(s["guest"] for s in json.loads(DATA.read_text())["steps"] if "mknod" in s["guest"]))
    reads = []
    for _ in range(2):
        for args in (["open", "lkmchar"], ["read", "lkmchar"], ["release", "lkmchar"]):
            rc, out, err = _lkm("dev", "--state", state, "--json", *args)
            assert rc == 0, err
            if args[0] == "read":
                reads.append(json.loads(out)["output"].rstrip("\n"))
    assert reads == real["output"][1:]  # type: ignore[index]
    rc, out, _ = _lkm("dev", "--state", state, "cat", "/proc/devices")
    assert f"{real['output'][0].split()[1]} lkmchar\n" in out  # type: ignore[index]


def test_dev_errors_are_one_line(tmp_path: Path) -> None:
    state = str(tmp_path / "s.json")
    assert _lkm("run", str(FIX6 / "chardev.ko"), "--state", state)[0] == 0
    rc, out, err = _lkm("dev", "--state", state, "read", "lkmchar")
    assert rc == 1 and out == "" and err.count("\n") == 1 and "not open" in err
    rc, _, err = _lkm("dev", "--state", state, "open", "nosuchdev")
    assert rc == 1 and err.count("\n") == 1 and "No such device" in err
    rc, _, err = _lkm("run", str(tmp_path / "missing.ko"))
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err

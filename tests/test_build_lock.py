"""testing.lock.build_lock, what lets two pytest workers (``-n 2``) ask for one capture at once:
of several processes that each build a result unless it is there, exactly one builds and the
others wait and find it whole.  The oracle is the builders' own log (one line per build) and
the result's content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT

BUILDER = """
import sys, time
from pathlib import Path
from testing.lock import build_lock

result, log = Path(sys.argv[1]), Path(sys.argv[2])
with build_lock(result):
    if not result.is_file():
        with open(log, "a") as f:
            f.write("built\\n")
        part = result.with_name(result.name + ".part")
        part.write_text("x" * 100000)
        time.sleep(0.3)  # the others are waiting for the lock meanwhile
        part.replace(result)
print(len(result.read_text()))
"""


HOLDER = """
import sys, time
from pathlib import Path
from testing.lock import build_lock

with build_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_one_builder_the_others_wait_and_reuse(tmp_path: Path) -> None:
    result, log = tmp_path / "sub" / "capture.txt", tmp_path / "log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(result), str(log)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert outs == ["100000\n"] * 4  # every one read the whole result
    assert log.read_text() == "built\n"


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    result = tmp_path / "capture.txt"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(result)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait()
    from testing.lock import build_lock

    with build_lock(result):  # would wait forever if the lock outlived its holder
        pass

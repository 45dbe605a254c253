"""Make every guest capture the tests read, a few QEMU guests at a time (``./scripts/test``).

    python -m testing.prepare [--jobs N]

The captures of :mod:`testing.captures` (each tree's /proc/kallsyms, the oops captures of
amd64 6.1 and 6.12, the device recordings of ``scripts/guest_replay.py``) and the kernel's
``scripts/faddr2line`` (:mod:`testing.kscripts`, a download) are independent: a guest under
TCG keeps one core busy, so on N cores N of them run at once, the longest first.  Each is
idempotent (a current capture is kept) and locked (a pytest worker asking for the same
capture at the same time waits for it).  One line per job on stderr with its wall time; exit
status 1 if any failed, after all have run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

from testing import captures, kscripts
from testing.corpus import load_trees

ROOT = Path(__file__).resolve().parent.parent
OOPS_TREES = ("amd64-6.1", "amd64-6.12")
REPLAY_TREE = "amd64-6.1"


def replay_drivers() -> list[str]:
    """The drivers scripts/guest_replay.py records (its RECORDINGS table)."""
    spec = importlib.util.spec_from_file_location("guest_replay", ROOT / "scripts" / "guest_replay.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return sorted(mod.RECORDINGS)


def _faddr2line() -> Path:
    path = kscripts.kernel_script("faddr2line")
    if path is None:
        raise captures.CaptureError("scripts/faddr2line of linux-source-6.1: apt-get download failed")
    return path


def jobs() -> list[tuple[str, Callable[[], object], bool]]:
    """(label, job, boots a guest), longest first: the oops boots (kbuild, 20,000 %pS lines,
    KASLR), the arm64 guest (TCG emulates another architecture), then the rest."""
    trees = sorted(load_trees(), key=lambda t: (t.arch != "arm64", t.name))
    out: list[tuple[str, Callable[[], object], bool]] = [
        ("kernel scripts/faddr2line", _faddr2line, False)  # the network, not a core
    ]
    out += [(f"oops {name}", partial(captures.oops_capture, name), True) for name in OOPS_TREES]
    out += [(f"kallsyms {t.name}", partial(captures.guest_kallsyms, t), True) for t in trees]
    out += [(f"replay {d}", partial(captures.replay_capture, d, REPLAY_TREE), True) for d in replay_drivers()]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testing.prepare", description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="guests at once (default: cores)")
    args = ap.parse_args(argv)
    todo = jobs()
    guests = threading.BoundedSemaphore(max(1, args.jobs))
    failed = 0
    t0 = time.monotonic()

    def timed(job: Callable[[], object], guest: bool) -> float:
        with guests if guest else contextlib.nullcontext():
            start = time.monotonic()
            job()
            return time.monotonic() - start

    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        running = {pool.submit(timed, job, guest): label for label, job, guest in todo}
        for fut in as_completed(running):
            try:
                took = fut.result()
            except Exception as exc:  # report every failure, after every job has run
                failed += 1
                print(f"prepare: {running[fut]}: FAILED: {exc}", file=sys.stderr)
            else:
                print(f"prepare: {running[fut]}: {took:.0f} s", file=sys.stderr)
    print(f"prepare: {len(todo)} jobs, {failed} failed, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

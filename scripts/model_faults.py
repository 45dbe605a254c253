#!/usr/bin/env python3
"""Fault runs for the model kernel: concurrent processes and processes killed mid-call.

  scripts/model_faults.py concurrent [--kernel 6.1|2.4] [--procs 4] [--ops 500] [--seed N]
      PROCS processes each make OPS random insmod/rmmod/query calls on one state; afterwards
      the integrity check must pass (no dangling references, memory areas consistent with the
      module table, each module's exported symbols equal to its file's exports / its struct
      module's table).
  scripts/model_faults.py kill [--kernel 6.1|2.4] [--insmods 200] [--seed N]
      one process loads and unloads modules; it is SIGKILLed at random moments and restarted
      until it has made INSMODS successful insmods; the integrity check runs after every kill.

Prints one summary line per run; exit status 1 on any integrity problem or unexpected error.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from lkm.errors import LkmError  # noqa: E402
from lkm.kernel.interface import KernelError  # noqa: E402
from lkm.kernel.model import ModelKernel  # noqa: E402

FIX = ROOT / "tests" / "fixtures"
MODULES = {
    "6.1": (
        "linux-6.1-amd64",
        ["exporter.ko", "importer.ko", "chardev.ko", "params.ko", "dwarfmod.ko"],
        "6x",
    ),
    "2.4": ("linux-2.4-i386", ["fat24.o", "msdos24.o", "chardev24.o", "common24.o", "hello24.o"], "24"),
}
# Refusals that are the kernel's right answer to a random sequence (already loaded, not loaded,
# in use, a dependency missing).
EXPECTED = {errno.EEXIST, errno.ENOENT, errno.EBUSY, errno.EWOULDBLOCK}


def _name(path: str) -> str:
    return os.path.basename(path).split(".")[0]


def insmod(k: ModelKernel, path: str) -> None:
    if k.version.user_space_link:
        from lkm.modutils.insmod import insmod as insmod24

        insmod24(k, path, [])
    else:
        k.finit_module(path)


def rmmod(k: ModelKernel, name: str) -> None:
    if k.version.user_space_link:
        k.delete_module_24(name)
    else:
        k.delete_module(name)


def expected(exc: Exception) -> bool:
    if isinstance(exc, KernelError):
        return exc.errno in EXPECTED
    reason = getattr(exc, "reason", "")
    # 2.4 insmod's refusals; and its races, real in 2.4 too: insmod is several calls, so another
    # process's rmmod can free the module between create_module and init_module (ENOENT), or
    # unload a module it linked against (EINVAL: "dependency that is (no longer?) a module").
    return any(r in reason for r in ("already exists", "unresolved symbol", "init_module: No such file",
                                     "init_module: Invalid argument"))  # fmt: skip


def worker(state: str, kind: str, ops: int, seed: int) -> int:
    """Random calls; exit 0, or 2 with the unexpected error on stderr."""
    rng = random.Random(seed)
    k = ModelKernel(state)
    paths = [str(FIX / MODULES[kind][2] / f) for f in MODULES[kind][1]]
    for _ in range(ops):
        path = rng.choice(paths)
        op = rng.choice(("insmod", "insmod", "rmmod", "query"))
        try:
            if op == "insmod":
                insmod(k, path)
            elif op == "rmmod":
                rmmod(k, _name(path))
            else:
                k.modules()
                if k.version.user_space_link:
                    from lkm.kernel.model.struct24 import QM_MODULES

                    k.query_module(None, QM_MODULES)
                k.kallsyms()
        except LkmError as exc:
            if not expected(exc):
                print(f"unexpected: {op} {path}: {exc}", file=sys.stderr)
                return 2
    return 0


def loop_worker(state: str, kind: str, counter: str, seed: int) -> int:
    """insmod + rmmod cycles forever, counting successful insmods in ``counter``."""
    rng = random.Random(seed)
    k = ModelKernel(state)
    paths = [str(FIX / MODULES[kind][2] / f) for f in MODULES[kind][1]]
    done = int(Path(counter).read_text() or 0) if Path(counter).exists() else 0
    sys.stdout.write("ready\n")  # imports done: the parent's random delay starts now
    sys.stdout.flush()
    while True:
        path = rng.choice(paths)
        try:
            insmod(k, path)
            done += 1
            Path(counter).write_text(str(done))
        except LkmError as exc:
            if not expected(exc):
                print(f"unexpected: insmod {path}: {exc}", file=sys.stderr)
                return 2
        if rng.random() < 0.5:
            for m in k.modules():
                try:
                    rmmod(k, m.name)
                except LkmError as exc:
                    if not expected(exc):
                        print(f"unexpected: rmmod {m.name}: {exc}", file=sys.stderr)
                        return 2


def integrity(k: ModelKernel) -> list[str]:
    """The state's own check plus: each 6.x module's exports are exactly its file's."""
    problems = k.check_integrity()
    if not k.version.user_space_link:
        from lkm.module.file import ModuleFile

        files = {_name(f): str(FIX / MODULES["6.1"][2] / f) for f in MODULES["6.1"][1]}
        for name, syms in k.module_symbols():
            want = sorted(e.name for e in ModuleFile.open(files[name]).exports)
            if sorted(s.name for s in syms) != want:
                problems.append(f"{name}: exports in the symbol table differ from the module's")
    return problems


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def concurrent(kind: str, procs: int, ops: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "k.db")
        ModelKernel.boot(MODULES[kind][0], state).close()
        t = time.perf_counter()
        children = [_spawn("_worker", state, kind, str(ops), str(seed + i)) for i in range(procs)]
        errors = [c.communicate()[1].decode() for c in children]
        bad = [e for c, e in zip(children, errors, strict=True) if c.returncode]
        k = ModelKernel(state)
        problems = integrity(k)
        took = time.perf_counter() - t
        print(f"concurrent {kind}: {procs} processes x {ops} ops in {took:.1f}s, {len(k.modules())} modules "
              f"left, {len(bad)} failed workers, {len(problems)} integrity problems")  # fmt: skip
        for line in [*bad, *problems]:
            print("  " + line.strip())
        return 1 if bad or problems else 0


def kill(kind: str, insmods: int, seed: int) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        state, counter = os.path.join(tmp, "k.db"), os.path.join(tmp, "count")
        ModelKernel.boot(MODULES[kind][0], state).close()
        kills = 0
        problems: list[str] = []
        window, before = 0.25, -1  # seconds; widened while kills land before any insmod ends
        while True:
            done = int(Path(counter).read_text() or 0) if Path(counter).exists() else 0
            if done >= insmods:
                break
            # A busy machine makes each call slower: without progress the window doubles (so the
            # run ends), with progress it is back to a quarter second.
            window = 0.25 if done > before else min(2 * window, 8.0)
            before = done
            child = _spawn("_loop", state, kind, counter, str(rng.randrange(1 << 30)))
            assert child.stdout is not None
            child.stdout.readline()  # "ready": the kill lands among the worker's calls
            time.sleep(rng.uniform(0.0, window))
            if child.poll() is not None:
                print("worker stopped: " + child.communicate()[1].decode().strip())
                return 1
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            k = ModelKernel(state)
            problems += [f"after kill {kills}: {p}" for p in integrity(k)]
            k.close()
        print(f"kill {kind}: {done} insmods with {kills} SIGKILLs at random moments, "
              f"{len(problems)} integrity problems")  # fmt: skip
        for p in problems:
            print("  " + p)
        return 1 if problems else 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        return worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    if len(sys.argv) > 1 and sys.argv[1] == "_loop":
        return loop_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", choices=("concurrent", "kill"))
    ap.add_argument("--kernel", choices=tuple(MODULES), default="6.1")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--ops", type=int, default=500)
    ap.add_argument("--insmods", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.run == "concurrent":
        return concurrent(a.kernel, a.procs, a.ops, a.seed)
    return kill(a.kernel, a.insmods, a.seed)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time lkm against its anchors (kmod, python itself) in one run and print the ratios.

    python3 bench/run.py [--only a,b,c] [--repeat N] [--startup-repeat M]
                         [--python PYTHON] [--tree NAME] [--json FILE] [--busy]

Benchmarks (see bench/README.md); targets of issue 18 as lkm/anchor ratios:

  a  ``lkm modinfo`` over every module of the corpus tree, one call,
     vs kmod ``modinfo`` over the same files, one call        wall <= 0.6, CPU <= 1.0
  b  read modinfo + exports + needed symbols (with CRCs) of every module of the tree,
     1 core (wall <= 1.0) and all cores (wall <= 0.6), vs ``depmod -b``;   CPU <= 1.0
  c  start-up: ``lkm modinfo chardev.ko``, ``lkm lsmod``, ``lkm modprobe -D ext4``
     vs ``python -c pass``                                             wall <= 1.5
  d  ``lkm dev --session S read lkmchar`` on a cached session (issue 16): the chardev
     fixture loaded by ``lkm run --session`` (synthetic kernel symbols, and ``-k`` the
     corpus tree's vmlinuz when there is one), its device opened; each timed run restores
     the session file first (``cp``, on the anchor's side too) and reads once; vs ``python
     -c pass`` and ``python -c "import unicorn"`` (the emulator's own floor)  wall <= 0.5 s

Each command runs once as a warm-up (so both sides see a warm page cache), then N times,
lkm and anchor interleaved; the median wall time (time.perf_counter around
subprocess.run) and the median CPU time (user + system of the command and its children,
getrusage(RUSAGE_CHILDREN)) are reported, each as a ratio lkm median / anchor median.
``--busy`` repeats the whole thing with a CPU-bound process pinned on one core; the
whole-tree wall targets are then 1.0.  Nothing is asserted: the exit status is 0 whatever
the ratios, and non-zero only if no benchmark could run.

lkm is the one installed for ``--python`` (default: this interpreter); its console
script is looked for next to it (``Path(python).parent / "lkm"``).  Measure a
non-editable install, e.g. a venv made with ``pip install .``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
READ_TREE = HERE / "read_tree.py"
FIXTURE = REPO / "tests" / "fixtures" / "6x" / "chardev.ko"
SBIN = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])

BENCHES = {
    "a": "modinfo over a whole tree vs kmod modinfo",
    "b": "read a whole tree's metadata vs depmod -b",
    "c": "lkm modinfo one.ko start-up vs python -c pass",
    "d": "lkm dev read on a cached session vs python -c pass",
}
ALIASES = {"modinfo": "a", "tree": "b", "read": "b", "depmod": "b", "startup": "c", "start": "c", "dev": "d"}


class Skip(Exception):
    """A benchmark cannot run; the message says why."""


# -- running and timing ---------------------------------------------------------------------


def run_once(cmd: Sequence[str]) -> tuple[float, float, int]:
    """Wall time and CPU time (user + system of the command and its children, from
    getrusage(RUSAGE_CHILDREN)) of one run, stdout and stderr to /dev/null."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.returncode


def capture(cmd: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)


Samples = dict[str, list[tuple[float, float]]]  # command -> (wall, cpu) per run


def measure(cmds: dict[str, Sequence[str]], repeat: int) -> Samples:
    """One warm-up of each command, then `repeat` rounds of all of them, interleaved.

    A command that exits non-zero (in the warm-up or later) raises Skip.
    """
    for key, cmd in cmds.items():
        p = capture(cmd)
        if p.returncode != 0:
            tail = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise Skip(f"{key} command failed in warm-up (exit {p.returncode}): {' | '.join(tail)}")
    samples: Samples = {key: [] for key in cmds}
    for _ in range(repeat):
        for key, cmd in cmds.items():
            t, cpu, rc = run_once(cmd)
            if rc != 0:
                raise Skip(f"{key} command exited {rc} during timing")
            samples[key].append((t, cpu))
    return samples


def show_cmd(cmd: Sequence[str], npaths: int = 0) -> str:
    """A command for display; a trailing list of npaths module paths is abbreviated."""
    head = list(cmd[: len(cmd) - npaths]) if npaths else list(cmd)
    text = " ".join(head)
    return text + (f" <{npaths} module paths>" if npaths else "")


# -- prerequisites --------------------------------------------------------------------------


def kmod_tool(name: str) -> tuple[str, str]:
    """Path and version line of kmod's `name`, or Skip."""
    path = shutil.which(name) or shutil.which(name, path=SBIN)
    if not path:
        raise Skip(f"no `{name}` on PATH or in /usr/sbin, /sbin (install Debian's kmod package)")
    p = capture([path, "--version"])
    text = (p.stdout + p.stderr).decode(errors="replace")
    if "kmod" not in text:
        raise Skip(f"{path} is not kmod's {name} (`{name} --version` does not mention kmod)")
    return path, text.strip().splitlines()[0]


class Lkm:
    """The lkm under test: interpreter, console script, and (lazily) the corpus tree."""

    def __init__(self, python: str, tree_name: str) -> None:
        self.python = python
        self.tree_name = tree_name
        self.script = str(Path(python).parent / "lkm")
        self.import_error: str | None = None
        self.module_path: str | None = None
        p = capture([python, "-c", "import lkm, sys; sys.stdout.write(lkm.__file__)"])
        if p.returncode != 0:
            tail = p.stderr.decode(errors="replace").strip().splitlines()[-1:]
            self.import_error = f"{python} cannot import lkm: {' '.join(tail)}"
        else:
            self.module_path = p.stdout.decode(errors="replace")
        self._tree: dict[str, object] | None = None
        self._tree_error: str | None = None

    def need_import(self) -> None:
        if self.import_error:
            raise Skip(self.import_error)

    def need_script(self) -> str:
        self.need_import()
        if not os.access(self.script, os.X_OK):
            raise Skip(f"no lkm console script next to the interpreter ({self.script})")
        return self.script

    def tree(self) -> dict[str, object]:
        """The corpus tree as listed by bench/read_tree.py --list, or Skip."""
        self.need_import()
        if self._tree is None and self._tree_error is None:
            p = capture([self.python, str(READ_TREE), "--tree", self.tree_name, "--list"])
            if p.returncode != 0:
                lines = p.stderr.decode(errors="replace").strip().splitlines()
                why = lines[-1] if lines else f"exit {p.returncode}"
                hint = "" if "fetch_corpus" in why else " (fetch it with scripts/fetch_corpus.py)"
                self._tree_error = f"corpus tree {self.tree_name} unavailable: {why}{hint}"
            else:
                tree = json.loads(p.stdout)
                if not tree["paths"]:
                    self._tree_error = f"corpus tree {self.tree_name} has no modules"
                else:
                    self._tree = tree
        if self._tree_error:
            raise Skip(self._tree_error)
        assert self._tree is not None
        return self._tree


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def arg_bytes(argv: Sequence[str]) -> int:
    return sum(len(os.fsencode(a)) + 1 for a in argv) + 8 * (len(argv) + 1)


def env_bytes() -> int:
    return sum(len(os.fsencode(k)) + len(os.fsencode(v)) + 2 + 8 for k, v in os.environ.items())


# -- results --------------------------------------------------------------------------------


def result(
    bench: str,
    name: str,
    lkm_samples: list[tuple[float, float]],
    anchor_samples: list[tuple[float, float]],
    target: float,
    lkm_cmd: str,
    anchor_cmd: str,
    cpu_target: float | None = None,
    **extra: object,
) -> dict[str, object]:
    """Medians of wall and CPU time, both ratios lkm/anchor; ``target`` bounds the wall ratio
    and ``cpu_target`` (if any) the CPU ratio; the verdict needs both."""
    lkm_med = statistics.median(w for w, _c in lkm_samples)
    anchor_med = statistics.median(w for w, _c in anchor_samples)
    lkm_cpu = statistics.median(c for _w, c in lkm_samples)
    anchor_cpu = statistics.median(c for _w, c in anchor_samples)
    ratio = lkm_med / anchor_med if anchor_med > 0 else float("inf")
    cpu_ratio = lkm_cpu / anchor_cpu if anchor_cpu > 0 else float("inf")
    met = ratio <= target and (cpu_target is None or cpu_ratio <= cpu_target)
    wanted = f"wall <= {target}" + (f", CPU <= {cpu_target}" if cpu_target is not None else "")
    return {
        "bench": bench,
        "name": name,
        "lkm_median_s": lkm_med,
        "anchor_median_s": anchor_med,
        "ratio": ratio,
        "lkm_cpu_median_s": lkm_cpu,
        "anchor_cpu_median_s": anchor_cpu,
        "cpu_ratio": cpu_ratio,
        "target": target,
        "cpu_target": cpu_target,
        "met": met,
        "verdict": f"{wanted}: {'MET' if met else 'NOT MET'}",
        "repeats": len(lkm_samples),
        "lkm_cmd": lkm_cmd,
        "anchor_cmd": anchor_cmd,
        "lkm_samples_s": [w for w, _c in lkm_samples],
        "anchor_samples_s": [w for w, _c in anchor_samples],
        "lkm_cpu_samples_s": [c for _w, c in lkm_samples],
        "anchor_cpu_samples_s": [c for _w, c in anchor_samples],
        **extra,
    }


def first_difference(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    line = a[:i].count(b"\n") + 1
    start = a.rfind(b"\n", 0, i) + 1
    la = a[start : a.find(b"\n", start) if b"\n" in a[start:] else len(a)]
    lb = b[start : b.find(b"\n", start) if b"\n" in b[start:] else len(b)]
    return f"first difference at byte {i} (line {line}): lkm {la[:120]!r} vs kmod {lb[:120]!r}"


# -- the benchmarks -------------------------------------------------------------------------


def bench_a(lkm: Lkm, repeat: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    script = lkm.need_script()
    modinfo, version = kmod_tool("modinfo")
    tree = lkm.tree()
    paths = [str(p) for p in tree["paths"]]  # type: ignore[attr-defined]
    lkm_cmd = [script, "modinfo", *paths]
    kmod_cmd = [modinfo, *paths]
    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        limit = 2 * 1024 * 1024
    need = arg_bytes(lkm_cmd) + env_bytes()
    if need >= limit:
        raise Skip(f"{len(paths)} paths need {need} bytes of argv+environment, over ARG_MAX {limit}")
    log(f"a: {len(paths)} files of {tree['name']} ({arg_bytes(paths) // 1024} KiB of argv), {version}")

    # Identity, outside the timing.
    pl, pk = capture(lkm_cmd), capture(kmod_cmd)
    identical = pl.stdout == pk.stdout
    if identical:
        check = f"outputs byte-identical: yes ({len(pl.stdout)} bytes of stdout)"
    else:
        check = (
            f"outputs byte-identical: NO (lkm {len(pl.stdout)} bytes, kmod {len(pk.stdout)} bytes; "
            f"{first_difference(pl.stdout, pk.stdout)})"
        )
    if pl.returncode != pk.returncode or pl.stderr or pk.stderr:
        check += (
            f"; exit lkm {pl.returncode} / kmod {pk.returncode}, "
            f"stderr lkm {len(pl.stderr)} bytes / kmod {len(pk.stderr)} bytes"
        )
    log(f"a: {check}")

    s = measure({"lkm": lkm_cmd, "kmod modinfo": kmod_cmd}, repeat)
    return [
        result(
            "a",
            f"a modinfo, {len(paths)} files, 1 call",
            s["lkm"],
            s["kmod modinfo"],
            TARGETS["tree_wall"],
            show_cmd(lkm_cmd, len(paths)),
            show_cmd(kmod_cmd, len(paths)),
            cpu_target=TARGETS["tree_cpu"],
            files=len(paths),
            identical=identical,
            check=check,
            anchor_version=version,
        )
    ]


# What depmod reads from a modules directory besides the modules (it writes the rest).
_DEPMOD_INPUTS = frozenset({"modules.order", "modules.builtin", "modules.builtin.modinfo"})


def bench_b(lkm: Lkm, repeat: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    lkm.need_import()
    depmod, version = kmod_tool("depmod")
    tree = lkm.tree()
    n = cores()
    # The modules directory is passed as depmod gets its tree: a path, no manifest to load.
    where = ["--dir", str(tree["modules_dir"])]
    seq_cmd = [lkm.python, str(READ_TREE), *where, "--jobs", "1"]
    par_cmd = [lkm.python, str(READ_TREE), *where, "--jobs", str(n)]
    # The anchor is `depmod -b ROOT RELEASE` as the issue names it, writing its indexes; the
    # root is a scratch copy made of links to the corpus, so the corpus itself is never written.
    scratch = Path(tempfile.mkdtemp(prefix="lkm-bench-depmod-"))
    atexit.register(shutil.rmtree, scratch, True)
    src_dir = Path(str(tree["modules_dir"]))
    dst_dir = scratch / "lib" / "modules" / str(tree["release"])
    dst_dir.mkdir(parents=True)
    for entry in src_dir.iterdir():
        if entry.name == "kernel" or not entry.name.startswith("modules.") or entry.name in _DEPMOD_INPUTS:
            (dst_dir / entry.name).symlink_to(entry)
    dep_cmd = [depmod, "-b", str(scratch), str(tree["release"])]
    log(f"b: {len(tree['paths'])} modules of {tree['name']}, {n} core(s), {version}")  # type: ignore[arg-type]

    summaries = {}
    for key, cmd in (("1 core", seq_cmd), (f"all cores ({n})", par_cmd)):
        p = capture(cmd)
        out = p.stdout.decode(errors="replace").strip()
        summaries[key] = out if p.returncode == 0 else f"exit {p.returncode}"
        log(f"b: read_tree {key}: {summaries[key]}")
    same = len(set(s.rsplit(";", 1)[0] for s in summaries.values())) == 1

    s = measure({"1 core": seq_cmd, "all cores": par_cmd, "depmod": dep_cmd}, repeat)
    common = {"anchor_version": version, "summaries": summaries, "same_counts": same}
    return [
        result(
            "b",
            "b read tree metadata, 1 core",
            s["1 core"],
            s["depmod"],
            TARGETS["one_core_wall"],
            show_cmd(seq_cmd),
            show_cmd(dep_cmd),
            cpu_target=TARGETS["tree_cpu"],
            workers=1,
            **common,
        ),
        result(
            "b",
            f"b read tree metadata, all cores ({n})",
            s["all cores"],
            s["depmod"],
            TARGETS["tree_wall"],
            show_cmd(par_cmd),
            show_cmd(dep_cmd),
            cpu_target=TARGETS["tree_cpu"],
            workers=n,
            **common,
        ),
    ]


def bench_c(lkm: Lkm, repeat: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    """Start-up of three small calls against ``python -c pass``: modinfo of one fixture,
    lsmod, and modprobe --show-depends of one name (on the corpus tree's indexes, made by
    kmod's depmod in a scratch root; that row is left out without the corpus or kmod)."""
    script = lkm.need_script()
    if not FIXTURE.is_file():
        raise Skip(f"fixture {FIXTURE} missing")
    py_cmd = [lkm.python, "-c", "pass"]
    cmds: dict[str, list[str]] = {"modinfo": [script, "modinfo", str(FIXTURE)]}
    if os.path.exists("/proc/modules"):
        cmds["lsmod"] = [script, "lsmod"]
    else:
        log("c: lsmod left out: no /proc/modules here")
    try:
        depmod, _version = kmod_tool("depmod")
        tree = lkm.tree()
        root = _scratch_root(tree)
        subprocess.run([depmod, "-b", str(root), str(tree["release"])], check=True, capture_output=True)
        cmds["modprobe -D"] = [script, "modprobe", "-d", str(root), "-S", str(tree["release"]), "-D", "ext4"]
    except (Skip, subprocess.CalledProcessError) as exc:
        log(f"c: modprobe -D left out: {exc}")
    log(f"c: {repeat} repeats")
    s = measure({**cmds, "python": py_cmd}, repeat)
    rows = []
    for key, cmd in cmds.items():
        extra_ms = (
            statistics.median(w for w, _c in s[key]) - statistics.median(w for w, _c in s["python"])
        ) * 1000
        rows.append(
            result(
                "c",
                f"c start-up: lkm {key}",
                s[key],
                s["python"],
                TARGETS["startup"],
                show_cmd(cmd),
                show_cmd(py_cmd),
                extra_ms=extra_ms,
            )
        )
    return rows


def bench_d(lkm: Lkm, repeat: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    """``lkm dev read`` on a session made once (and its kernel symbols cached by the warm-up,
    in a scratch cache directory), against python's own start-up."""
    script = lkm.need_script()
    if not FIXTURE.is_file():
        raise Skip(f"fixture {FIXTURE} missing")
    if capture([lkm.python, "-c", "import unicorn"]).returncode != 0:
        raise Skip("unicorn is not installed (lkm[run])")
    scratch = Path(tempfile.mkdtemp(prefix="lkm-bench-dev-"))
    atexit.register(shutil.rmtree, scratch, True)
    saved_env = os.environ.get("LKM_CACHE_DIR")
    os.environ["LKM_CACHE_DIR"] = str(scratch / "cache")
    kinds: dict[str, list[str]] = {"synthetic symbols": []}
    try:
        vmlinuz = lkm.tree().get("vmlinuz")
        if vmlinuz:
            kinds["-k vmlinuz"] = ["-k", str(vmlinuz)]
    except Skip as exc:
        log(f"d: -k vmlinuz left out: {exc}")
    try:
        cmds: dict[str, list[str]] = {}
        for n, (label, extra) in enumerate(kinds.items()):
            made = scratch / f"made{n}.json"
            p = capture([script, "run", str(FIXTURE), *extra, "--session", str(made)])
            p2 = capture([script, "dev", "--session", str(made), "open", "lkmchar"])
            if p.returncode or p2.returncode:
                raise Skip(
                    f"making the session failed: {(p.stderr + p2.stderr).decode(errors='replace')[-200:]}"
                )
            use = scratch / f"use{n}.json"
            cmds[label] = [
                "sh",
                "-c",
                'cp "$0" "$1" && exec "$2" dev --session "$1" read lkmchar',
                str(made),
                str(use),
                script,
            ]
        cmds["python"] = [
            "sh",
            "-c",
            'cp "$0" "$1" && exec "$2" -c pass',
            str(scratch / "made0.json"),
            str(scratch / "p.json"),
            lkm.python,
        ]
        cmds["import unicorn"] = [lkm.python, "-c", "import unicorn"]
        log(f"d: {repeat} repeats")
        s = measure(cmds, repeat)
    finally:
        if saved_env is None:
            os.environ.pop("LKM_CACHE_DIR", None)
        else:
            os.environ["LKM_CACHE_DIR"] = saved_env
    rows = []
    for label in kinds:
        r = result(
            "d",
            f"d dev read ({label})",
            s[label],
            s["python"],
            float("inf"),
            "lkm dev --session S read lkmchar",
            "python -c pass",
        )
        wall = float(r["lkm_median_s"])  # type: ignore[arg-type]
        r["met"] = wall <= 0.5
        r["verdict"] = f"wall <= 0.5 s: {'MET' if wall <= 0.5 else 'NOT MET'}"
        r["unicorn_import_median_s"] = statistics.median(w for w, _c in s["import unicorn"])
        r["unicorn_import_cpu_median_s"] = statistics.median(c for _w, c in s["import unicorn"])
        rows.append(r)
    u = result(
        "d",
        "d floor: python -c 'import unicorn'",
        s["import unicorn"],
        s["python"],
        float("inf"),
        "python -c 'import unicorn'",
        "python -c pass",
    )
    u["verdict"] = "(reference)"
    rows.append(u)
    return rows


def _scratch_root(tree: dict[str, object]) -> Path:
    """A scratch root whose modules directory links to the tree's inputs."""
    scratch = Path(tempfile.mkdtemp(prefix="lkm-bench-root-"))
    atexit.register(shutil.rmtree, scratch, True)
    src_dir = Path(str(tree["modules_dir"]))
    dst_dir = scratch / "lib" / "modules" / str(tree["release"])
    dst_dir.mkdir(parents=True)
    for entry in src_dir.iterdir():
        if entry.name == "kernel" or entry.name in _DEPMOD_INPUTS:
            (dst_dir / entry.name).symlink_to(entry)
    return scratch


# Targets of issue 18 (ratios lkm/anchor); --busy relaxes the whole-tree wall targets.
TARGETS = {"tree_wall": 0.6, "tree_cpu": 1.0, "one_core_wall": 1.0, "startup": 1.5}


def start_busy() -> subprocess.Popen[bytes] | None:
    """A CPU-bound process pinned on one core (the last this process may use)."""
    try:
        cpu = max(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin)


# -- main -----------------------------------------------------------------------------------


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(BENCHES)
    out = []
    for word in text.split(","):
        w = word.strip().lower()
        if not w:
            continue
        key = ALIASES.get(w, w)
        if key not in BENCHES:
            raise SystemExit(f"run.py: unknown benchmark {word!r} (choose from {', '.join(BENCHES)})")
        if key not in out:
            out.append(key)
    return out


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        "benchmark",
        "lkm wall",
        "anchor wall",
        "wall ratio",
        "lkm CPU",
        "anchor CPU",
        "CPU ratio",
        "verdict",
    )
    lines = [header]
    for r in rows:
        lines.append(
            (
                str(r["name"]),
                f"{r['lkm_median_s']:.4f} s",
                f"{r['anchor_median_s']:.4f} s",
                f"{r['ratio']:.2f}",
                f"{r['lkm_cpu_median_s']:.4f} s",
                f"{r['anchor_cpu_median_s']:.4f} s",
                f"{r['cpu_ratio']:.2f}",
                str(r["verdict"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for k, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        cells = (c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in pairs)
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time lkm against kmod and python; print ratios.")
    ap.add_argument("--only", help="comma-separated subset of a,b,c,d (default: all)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per command, a and b (default: 5)")
    ap.add_argument("--startup-repeat", type=int, default=30, help="timed runs per command, c (default: 30)")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the lkm measured")
    ap.add_argument("--tree", default="amd64-6.1", help="corpus tree for a and b (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument(
        "--busy",
        action="store_true",
        help="run with a CPU-bound process pinned on one core (whole-tree wall target 1.0)",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.startup_repeat < 1:
        ap.error("repeat counts must be >= 1")
    only = parse_only(args.only)

    python = str(Path(args.python).absolute())  # not resolved: a venv's python is a symlink
    lkm = Lkm(python, args.tree)
    load_start = os.getloadavg()
    print(f"python: {python}")
    print(f"lkm:    {lkm.module_path or lkm.import_error}")
    if lkm.module_path and "site-packages" not in lkm.module_path:
        print("        (not a site-packages install: start-up numbers may not be representative)")
    print(f"cores:  {cores()}   load average at start: {' '.join(f'{x:.2f}' for x in load_start)}")
    if load_start[0] >= 0.5 * cores():
        print("WARNING: the machine is busy (1-min load average >= half the cores): numbers are unreliable")
    print()

    def log(msg: str) -> None:
        print(msg, flush=True)

    busy = None
    if args.busy:
        TARGETS["tree_wall"] = 1.0
        busy = start_busy()
        print(f"busy:   {'a CPU-bound process pinned on one core' if busy else 'cannot pin a process'}\n")
    funcs = {"a": bench_a, "b": bench_b, "c": bench_c, "d": bench_d}
    rows: list[dict[str, object]] = []
    skipped: list[dict[str, str]] = []
    for key in only:
        repeat = args.startup_repeat if key in ("c", "d") else args.repeat
        try:
            rows.extend(funcs[key](lkm, repeat, log))
        except Skip as exc:
            line = f"{key}: CANNOT RUN ({BENCHES[key]}): {exc}"
            print(line, flush=True)
            skipped.append({"bench": key, "reason": str(exc)})
    load_end = os.getloadavg()
    if busy is not None:
        busy.kill()
        busy.wait()

    print()
    if rows:
        print_table(rows)
    for s in skipped:
        print(f"{s['bench']}: not run: {s['reason']}")
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in load_end)}")

    if args.json:
        doc = {
            "python": python,
            "lkm_module": lkm.module_path,
            "cores": cores(),
            "loadavg_start": list(load_start),
            "loadavg_end": list(load_end),
            "repeat": args.repeat,
            "startup_repeat": args.startup_repeat,
            "tree": args.tree,
            "busy": args.busy,
            "results": rows,
            "skipped": skipped,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

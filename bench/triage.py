"""``lkm triage`` on many generated console logs: unique crashes against the generator's
ground truth, and throughput with the local engine and on Dask.

    python bench/triage.py --logs 100000 --dir /tmp/triage-logs [--workers 2] [--engines local,dask]

The logs come from tests/oops/crashgen.py (every report family it knows, 4.x to 6.12, x86_64
and arm64): one to three reports each, duplicates of one crash with other addresses, times,
PIDs and tasks, ~20% with printk caller ids and a second task interleaved, dropped-message
notes glued in front of headings, user-space ``WARNING:`` noise, serial garbage (random
bytes, cut lines) between reports, a panic closing the last report of half of them; one log
in ten gzip-compressed.  The ground truth (every report's title, in order) is written beside
the logs as ``<dir>.truth.json`` and reused when the directory exists.

Each engine runs :func:`lkm.oops.triage.triage` over the directory, as ``lkm triage DIR``
does, in this process (``local``) or on a Dask LocalCluster of ``--workers`` processes with
one thread each (``dask``; cluster start-up included in the time).  One JSON line per engine:
logs, reports, unique crashes, the truth's counts, whether every title and count equals the
truth, wall seconds, MB/s (bytes of the log files as stored) and reports/s, and the load
average (the machine is shared: numbers taken under load are lower bounds).  A last line says
whether the engines' results are identical (signature, title, count, releases, first and
last seen, in order).  Exit status 0 when every engine equals the truth and they agree.

On a busy machine the engines can run at once, as two processes: ``--engines local --save D``
and ``--engines dask --save D``, then ``--compare D/local.json D/dask.json``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oops"))

import crashgen

from lkm.oops.triage import expand, read_log, to_json, triage


def generate(n: int, root: str, seed: int) -> tuple[collections.Counter[str], int]:
    """Write ``n`` logs under ``root`` (1000 per subdirectory); their titles and total reports."""
    truth: collections.Counter[str] = collections.Counter()
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        callers = rng.random() < 0.2
        text, titles = crashgen.log(
            rng, rng.randrange(1, 4), callers=callers, interleave=callers, garbage=rng.random() < 0.3
        )
        data = text.encode("utf-8", "surrogateescape")
        sub = os.path.join(root, f"{i // 1000:04d}")
        if i % 1000 == 0:
            os.makedirs(sub, exist_ok=True)
        name = os.path.join(sub, f"console-{i:06d}.log")
        if i % 10 == 9:
            with open(name + ".gz", "wb") as f:
                f.write(gzip.compress(data, 1))
        else:
            with open(name, "wb") as f:
                f.write(data)
        truth.update(titles)
    return truth, sum(truth.values())


def _usage() -> tuple[float, float, int, int]:
    """(CPU seconds of this process, of its reaped children, peak RSS KiB of this process, of
    its largest reaped child)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime, me.ru_maxrss, ch.ru_maxrss


def read_all(root: str) -> tuple[int, int, float, float]:
    """The anchor: every log read, decompressed and decoded as triage reads it, no parsing
    (files, bytes, wall, CPU)."""
    t0, c0 = time.monotonic(), time.process_time()
    files = nbytes = 0
    for path in expand([root]):
        read_log(path)
        files += 1
        nbytes += os.path.getsize(path)
    return files, nbytes, time.monotonic() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=1000, help="logs to generate (default 1000)")
    ap.add_argument("--dir", help="where the logs are (generated when missing; default a temporary one)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--workers", type=int, default=2, help="processes of each engine (default 2)")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--batch", type=int, default=256, help="logs per task")
    ap.add_argument("--no-anchor", action="store_true", help="skip the read-only anchor")
    ap.add_argument("--save", metavar="DIR", help="write each engine's JSON output to DIR/<engine>.json")
    ap.add_argument("--compare", nargs=2, metavar="JSON", help="only compare two saved runs")
    a = ap.parse_args()
    if a.compare:  # engines run as separate processes: are their outputs the same bytes?
        blobs = []
        for path in a.compare:
            with open(path, "rb") as f:
                blobs.append(f.read())
        same = blobs[0] == blobs[1]
        print(json.dumps({"identical": same, "sha256": [hashlib.sha256(b).hexdigest()[:16] for b in blobs]}))
        return 0 if same else 1
    tmp = None
    if a.dir is None:
        tmp = tempfile.mkdtemp(prefix="lkm-triage-bench-")
        a.dir = os.path.join(tmp, "logs")
    try:
        return _run(a)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp)


def _run(a: argparse.Namespace) -> int:
    root = os.path.abspath(a.dir)
    truth_path = root.rstrip("/") + ".truth.json"
    if os.path.isdir(root) and os.path.exists(truth_path):
        with open(truth_path) as f:
            doc = json.load(f)
        truth = collections.Counter(doc["titles"])
        if doc["logs"] != a.logs or doc["seed"] != a.seed:
            print(f"{root} holds {doc['logs']} logs of seed {doc['seed']}: using them", file=sys.stderr)
    else:
        t0 = time.monotonic()
        truth, _n = generate(a.logs, root, a.seed)
        with open(truth_path, "w") as f:
            json.dump({"logs": a.logs, "seed": a.seed, "titles": truth}, f)
        print(json.dumps({"generated": a.logs, "seconds": round(time.monotonic() - t0, 1)}), flush=True)
    anchor = None
    if not a.no_anchor:
        load = os.getloadavg()[0]
        files, nbytes, wall, cpu = read_all(root)
        anchor = wall
        print(
            json.dumps(
                {
                    "anchor": "read+decompress every log, no parsing (1 process)",
                    "logs": files,
                    "MB": round(nbytes / 1e6, 1),
                    "seconds": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "MB_per_s": round(nbytes / wall / 1e6, 1),
                    "load_avg_before_after": [round(load, 1), round(os.getloadavg()[0], 1)],
                }
            ),
            flush=True,
        )
    ok = True
    outputs: dict[str, str] = {}
    for engine in [e for e in a.engines.split(",") if e]:
        load = os.getloadavg()[0]
        u0 = _usage()
        t0 = time.monotonic()
        res = triage([root], engine=engine, workers=a.workers, batch=a.batch)
        dt = time.monotonic() - t0
        u1 = _usage()
        cpu = (u1[0] - u0[0]) + (u1[1] - u0[1])
        got = collections.Counter({c.title: c.count for c in res.crashes})
        outputs[engine] = to_json(res)
        if a.save:
            os.makedirs(a.save, exist_ok=True)
            with open(
                os.path.join(a.save, f"{engine}.json"), "w", encoding="utf-8", errors="surrogateescape"
            ) as f:
                f.write(outputs[engine])
        equal = got == truth and len(res.crashes) == len(truth) and not res.errors
        ok = ok and equal
        row = {
            "engine": f"{engine} ({a.workers} {'processes' if engine == 'local' else 'workers'})",
            "logs": res.logs,
            "MB": round(res.bytes / 1e6, 1),
            "reports": res.reports,
            "truth_reports": sum(truth.values()),
            "unique": len(res.crashes),
            "truth_unique": len(truth),
            "equal_to_truth": equal,
            "seconds": round(dt, 1),
            "cpu_s": round(cpu, 1),
            "MB_per_s": round(res.bytes / dt / 1e6, 2),
            "reports_per_s": round(res.reports / dt),
            "logs_per_s": round(res.logs / dt),
            "peak_rss_MiB": {"main": round(u1[2] / 1024), "largest_child": round(u1[3] / 1024)},
            "errors": len(res.errors),
            "corrupted_crashes": sum(c.corrupted == c.count for c in res.crashes),
            "output_sha256": hashlib.sha256(outputs[engine].encode("utf-8", "surrogateescape")).hexdigest()[
                :16
            ],
            "load_avg_before_after": [round(load, 1), round(os.getloadavg()[0], 1)],
        }
        if anchor:
            row["x_anchor_wall"] = round(dt / anchor, 1)
        print(json.dumps(row), flush=True)
        if not equal:
            missing = truth - got
            extra = got - truth
            print(json.dumps({"missing": dict(missing.most_common(5)), "extra": dict(extra.most_common(5))}))
    if len(outputs) > 1:
        first = next(iter(outputs.values()))
        same = all(r == first for r in outputs.values())
        ok = ok and same
        print(json.dumps({"engines_output_identical": same}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

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
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oops"))

import crashgen

from lkm.oops.triage import triage


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=1000)
    ap.add_argument("--dir", required=True, help="where the logs are (generated when missing)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--workers", type=int, default=2, help="Dask LocalCluster processes")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--batch", type=int, default=256, help="logs per task")
    ap.add_argument("--save", metavar="DIR", help="write each engine's crashes to DIR/<engine>.json")
    ap.add_argument("--compare", nargs=2, metavar="JSON", help="only compare two saved runs")
    a = ap.parse_args()
    if a.compare:  # engines run as separate processes at the same time: are their results equal?
        docs = []
        for path in a.compare:
            with open(path) as f:
                docs.append(json.load(f))
        same = docs[0] == docs[1]
        print(json.dumps({"identical": same, "crashes": [len(d) for d in docs]}))
        return 0 if same else 1
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
    ok = True
    results = {}
    for engine in [e for e in a.engines.split(",") if e]:
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        c0 = time.process_time()
        res = triage([root], engine=engine, workers=a.workers, batch=a.batch)
        dt = time.monotonic() - t0
        cpu = time.process_time() - c0
        got = collections.Counter({c.title: c.count for c in res.crashes})
        results[engine] = [
            (c.signature, c.title, c.count, c.releases, c.first_seen, c.last_seen) for c in res.crashes
        ]
        if a.save:
            os.makedirs(a.save, exist_ok=True)
            with open(os.path.join(a.save, f"{engine}.json"), "w") as f:
                json.dump(results[engine], f)
        equal = got == truth and len(res.crashes) == len(truth) and not res.errors
        ok = ok and equal
        print(
            json.dumps(
                {
                    "engine": engine + (f" ({a.workers} workers)" if engine == "dask" else ""),
                    "logs": res.logs,
                    "MB": round(res.bytes / 1e6, 1),
                    "reports": res.reports,
                    "truth_reports": sum(truth.values()),
                    "unique": len(res.crashes),
                    "truth_unique": len(truth),
                    "equal_to_truth": equal,
                    "seconds": round(dt, 1),
                    "MB_per_s": round(res.bytes / dt / 1e6, 2),
                    "reports_per_s": round(res.reports / dt),
                    "logs_per_s": round(res.logs / dt),
                    "errors": len(res.errors),
                    "corrupted_crashes": sum(c.corrupted == c.count for c in res.crashes),
                    "this_process_cpu_s": round(cpu, 1),
                    "load_avg_before_after": [round(load, 1), round(os.getloadavg()[0], 1)],
                }
            ),
            flush=True,
        )
        if not equal:
            missing = truth - got
            extra = got - truth
            print(json.dumps({"missing": dict(missing.most_common(5)), "extra": dict(extra.most_common(5))}))
    if len(results) > 1:
        first = next(iter(results.values()))
        same = all(r == first for r in results.values())
        ok = ok and same
        print(json.dumps({"engines_identical": same}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""lkm triage on many generated logs: unique crashes against the generator's ground truth,
throughput local and on Dask.

    python scripts/triage_bench.py --logs 100000 --dir /tmp/logs [--dask-workers 2]

Writes the logs (tests/oops/crashgen.py, one to three reports each, ~20% with printk caller
ids and interleaved tasks) and the ground truth, runs :func:`lkm.oops.triage.triage` with the
local engine and with Dask (LocalCluster of N processes), and prints one JSON line per run:
logs, reports, unique crashes, whether titles and counts equal the ground truth, seconds,
MB/s and reports/s.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "oops"))

import crashgen

from lkm.oops.triage import triage


def generate(n: int, root: str, seed: int) -> collections.Counter[str]:
    truth: collections.Counter[str] = collections.Counter()
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        callers = rng.random() < 0.2
        text, titles = crashgen.log(rng, rng.randrange(1, 4), callers=callers, interleave=callers)
        sub = os.path.join(root, f"{i // 1000:04d}")
        if i % 1000 == 0:
            os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"console-{i:06d}.log"), "w") as f:
            f.write(text)
        truth.update(titles)
    with open(os.path.join(root, "..", os.path.basename(root) + ".truth.json"), "w") as f:
        json.dump(truth, f)
    return truth


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=1000)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--engines", default="local,dask")
    a = ap.parse_args()
    truth_path = os.path.join(a.dir, "..", os.path.basename(a.dir) + ".truth.json")
    if os.path.isdir(a.dir) and os.path.exists(truth_path):
        with open(truth_path) as f:
            truth = collections.Counter(json.load(f))
    else:
        t0 = time.monotonic()
        truth = generate(a.logs, a.dir, a.seed)
        print(json.dumps({"generated": a.logs, "seconds": round(time.monotonic() - t0, 1)}), flush=True)
    results = {}
    for engine in a.engines.split(","):
        t0 = time.monotonic()
        c0 = time.process_time()
        res = triage([a.dir], engine=engine, workers=a.dask_workers)
        dt = time.monotonic() - t0
        cpu = time.process_time() - c0
        got = collections.Counter({c.title: c.count for c in res.crashes})
        results[engine] = [(c.signature, c.title, c.count, c.releases) for c in res.crashes]
        print(
            json.dumps(
                {
                    "engine": engine,
                    "logs": res.logs,
                    "reports": res.reports,
                    "unique": len(res.crashes),
                    "truth_unique": len(truth),
                    "titles_equal": set(got) == set(truth),
                    "counts_equal": got == truth,
                    "seconds": round(dt, 1),
                    "MB_per_s": round(res.bytes / dt / 1e6, 2),
                    "reports_per_s": round(res.reports / dt),
                    "errors": len(res.errors),
                    "this_process_cpu_s": round(cpu, 1),
                    "load_avg": os.getloadavg()[0],
                    "corrupted": sum(c.corrupted for c in res.crashes),
                }
            ),
            flush=True,
        )
    if len(results) > 1:
        first = next(iter(results.values()))
        print(json.dumps({"engines_identical": all(r == first for r in results.values())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

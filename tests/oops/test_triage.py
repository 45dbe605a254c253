"""lkm triage: unique crashes of many logs equal the generator's ground truth, whatever the
container (plain, gzip, xz, zstd, journal export, stdin), and the engines agree."""

from __future__ import annotations

import collections
import gzip
import json
import lzma
import pickle
import random
import sys
from pathlib import Path

import pytest

from lkm.oops import triage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crashgen


def _write_logs(d: Path, n: int, seed: int = 5) -> collections.Counter[str]:
    rng = random.Random(seed)
    truth: collections.Counter[str] = collections.Counter()
    for i in range(n):
        text, titles = crashgen.log(rng, rng.randrange(1, 4), callers=i % 3 == 0, interleave=i % 6 == 0)
        truth.update(titles)
        data = text.encode()
        if i % 4 == 1:
            (d / f"log{i}.txt.gz").write_bytes(gzip.compress(data))
        elif i % 4 == 2:
            (d / f"log{i}.txt.xz").write_bytes(lzma.compress(data))
        else:
            (d / f"sub{i % 2}").mkdir(exist_ok=True)
            (d / f"sub{i % 2}" / f"log{i}.txt").write_bytes(data)
    return truth


def test_unique_crashes_equal_ground_truth(tmp_path: Path) -> None:
    truth = _write_logs(tmp_path, 40)
    res = triage.triage([str(tmp_path)])
    assert res.errors == [] and res.logs == 40
    assert {c.title: c.count for c in res.crashes} == dict(truth)
    assert res.reports == sum(truth.values())


def test_analyze_is_pure_and_picklable() -> None:
    text, titles = crashgen.log(random.Random(9), 3)
    a = triage.analyze(text, "x")
    assert a == triage.analyze(text, "x") and [s.title for s in a] == titles
    assert pickle.loads(pickle.dumps(a)) == a
    assert "".join(s.text for s in a) in text or all(s.text in text for s in a)


def test_journal_export_and_json() -> None:
    text, titles = crashgen.log(random.Random(11), 2)
    bodies = [ln.split("] ", 1)[1] for ln in text.splitlines()]
    export = b""
    js = ""
    for i, b in enumerate(bodies):
        export += (
            f"__CURSOR=s=1;i={i}\n__REALTIME_TIMESTAMP=1700000000{i:06d}\n__MONOTONIC_TIMESTAMP={i * 1000}\n"
            f"_TRANSPORT=kernel\nMESSAGE={b}\n\n"
        ).encode()
        js += (
            json.dumps(
                {
                    "__CURSOR": f"s={i}",
                    "MESSAGE": b,
                    "__MONOTONIC_TIMESTAMP": str(i * 1000),
                    "_TRANSPORT": "kernel",
                }
            )
            + "\n"
        )
    for data in (export, js.encode()):
        got = triage.analyze(triage.decode_log_bytes(data))
        assert [s.title for s in got] == titles


def test_bad_file_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08garbage")
    (tmp_path / "ok.txt").write_text(crashgen.log(random.Random(1), 1)[0])
    res = triage.triage([str(tmp_path)])
    assert len(res.errors) == 1 and "bad.gz" in res.errors[0] and res.reports == 1


def test_cli_formats(tmp_path: Path) -> None:
    from support import lkm_cmd, run

    truth = _write_logs(tmp_path / "logs" if (tmp_path / "logs").mkdir() is None else tmp_path, 12)
    r = run([*lkm_cmd(), "triage", "--format", "json", str(tmp_path / "logs")])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {c["title"]: c["count"] for c in doc["crashes"]} == dict(truth)
    html_out = tmp_path / "t.html"
    r = run([*lkm_cmd(), "triage", "--format", "html", "-o", str(html_out), str(tmp_path / "logs")])
    page = html_out.read_text()
    assert r.returncode == 0 and "<script" not in page and "<style>" in page
    assert all(t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page for t in truth)
    text = crashgen.log(random.Random(2), 1)[0]
    r = run([*lkm_cmd(), "triage", "-"], input=text.encode())
    assert r.returncode == 0 and b"1 unique crashes, 1 reports in 1 logs" in r.stdout
    r = run([*lkm_cmd(), "triage", "--engine", "spark", "-"], input=b"")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1


def test_dask_engine_identical(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    _write_logs(tmp_path, 30, seed=8)
    local = triage.triage([str(tmp_path)], batch=4)
    dask = triage.triage([str(tmp_path)], engine="dask", batch=4, workers=2)
    assert [c.asdict() for c in dask.crashes] == [c.asdict() for c in local.crashes]


@pytest.mark.corpus
@pytest.mark.vm
def test_symbols_dir_decodes_representative(tmp_path: Path) -> None:
    """A guest's report in a log, the guest's symbols under <release>/: the representative is
    decoded (module frames get their source lines)."""
    from support import oops_capture, require

    cap = oops_capture("amd64-6.1")
    require((cap / "proc-kallsyms.txt").is_file(), "no amd64-6.1 oops capture")
    report = (Path(__file__).resolve().parent.parent / "data" / "oops" / "vm-6.1-gpf.txt").read_text()
    release = triage.analyze(report)[0].release
    assert release
    sym = tmp_path / "symbols" / release
    sym.mkdir(parents=True)
    for name in ("proc-kallsyms.txt", "proc-modules.txt", "sections.txt", "modules"):
        (sym / name).symlink_to(cap / name)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("noise\n" + report)
    res = triage.triage([str(tmp_path / "logs")])
    (crash,) = res.crashes
    decoded, _notes = triage.decode_representative(crash, str(tmp_path / "symbols"))
    assert decoded is not None and "oopsmod.c:" in decoded
    assert triage.decode_representative(crash, str(tmp_path))[0] is None  # no <release>/ there


def test_folded_runs_equal_one_fold() -> None:
    """What workers send back (each run of logs folded) combines to the fold of all the
    sightings one by one: counts, logs, first/last seen (with ties and logs without a time),
    releases, representative, order."""
    rng = random.Random(23)
    sights: list[list[triage.Sighting]] = []
    for i in range(80):
        text, _titles = crashgen.log(rng, rng.randrange(1, 4), families=["warning", "gpf", "hung", "kasan"])
        seen = rng.choice([None, f"2026-01-{rng.randrange(1, 4):02d}T00:00:00+00:00"])
        got = triage.analyze(text, f"log{i}", seen)
        for s in got:
            s.release = rng.choice([None, "6.1.0-1", "6.12.0-2"])
            s.corrupted = rng.choice(["", "", "truncated"])
        sights.append(got)
    want = [c.asdict() for c in triage.merge(sights)]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(sights)), rng.randrange(1, 12)))
        runs = [sights[a:b] for a, b in zip([0, *cuts], [*cuts, len(sights)], strict=True)]
        got = triage.ranked(triage.combine(triage.fold(run) for run in runs))
        assert [c.asdict() for c in got] == want


def test_batch_size_and_stdin_position_do_not_change_results(tmp_path: Path) -> None:
    _write_logs(tmp_path, 12, seed=8)
    text, _t = crashgen.log(random.Random(3), 2)
    runs = [
        triage.triage([str(tmp_path / "sub0"), "-", str(tmp_path)], stdin_text=text, batch=b)
        for b in (1, 5, 1000)
    ]
    docs = [triage.to_json(r) for r in runs]
    assert docs[0] == docs[1] == docs[2]
    assert runs[0].logs == len(list((tmp_path / "sub0").iterdir())) + 12 + 1


def test_engines_identical_and_equal_ground_truth(tmp_path: Path) -> None:
    """300 generated logs (every family, caller ids and interleaved tasks, serial garbage, one
    in ten gzipped, as bench/triage.py writes them): the local engine in this process, in a
    pool of 2 processes and on Dask with 2 workers print the same JSON byte for byte, and its
    unique crashes and counts are the generator's ground truth."""
    import importlib.util

    from support import require

    rng = random.Random(300)
    truth: collections.Counter[str] = collections.Counter()
    for i in range(300):
        callers = rng.random() < 0.2
        text, titles = crashgen.log(
            rng, rng.randrange(1, 4), callers=callers, interleave=callers, garbage=rng.random() < 0.3
        )
        truth.update(titles)
        data = text.encode("utf-8", "surrogateescape")
        sub = tmp_path / f"{i // 100:02d}"
        sub.mkdir(exist_ok=True)
        if i % 10 == 9:
            (sub / f"console-{i:03d}.log.gz").write_bytes(gzip.compress(data, 1))
        else:
            (sub / f"console-{i:03d}.log").write_bytes(data)
    one = triage.triage([str(tmp_path)], batch=32)
    assert one.errors == [] and one.logs == 300 and one.reports == sum(truth.values())
    assert {c.title: c.count for c in one.crashes} == dict(truth) and len(one.crashes) == len(truth)
    want = triage.to_json(one)
    assert triage.to_json(triage.triage([str(tmp_path)], batch=32, workers=2)) == want
    require(importlib.util.find_spec("distributed"), "dask.distributed missing: pip install 'lkm[dask]'")
    from dask.distributed import LocalCluster

    # workers as threads of this process: the cluster starts in a second (the engine's own
    # LocalCluster of processes is test_dask_engine_identical and bench/triage.py)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        got = triage.triage([str(tmp_path)], engine="dask", address=cluster.scheduler_address, batch=32)
    assert triage.to_json(got) == want

"""Many console logs in, unique crashes out: every report of every log found and named
(:mod:`lkm.oops.report`, :mod:`lkm.oops.families`), reports grouped by signature.

:func:`analyze` is the unit of work: a pure function of one log's text (and its name and
time) returning plain, picklable :class:`Sighting` records, so any engine can map it over
logs; :func:`merge` folds sightings into :class:`Crash` groups in input order, so a local run
and a distributed one give identical results.  :func:`read_log` reads a file as a user keeps
it: plain, ``.gz``/``.xz``/``.zst``/``.bz2``, a ``journalctl -o export`` or ``-o json`` dump.
:func:`triage` runs the whole thing locally or on Dask (:func:`triage` ``engine="dask"``).
"""

from __future__ import annotations

import bz2
import collections
import concurrent.futures
import datetime
import errno
import html
import itertools
import json
import multiprocessing
import os
import re
from dataclasses import dataclass

from lkm.compress import TooLarge, decompress, detect, limit
from lkm.errors import LkmError
from lkm.oops.inputs import Inputs, decode_text, release_mismatch
from lkm.oops.report import parse
from lkm.record import Fields, Record
from lkm.safeio import read_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

__all__ = [
    "Crash",
    "Part",
    "Sighting",
    "TriageResult",
    "analyze",
    "analyze_path",
    "analyze_paths",
    "combine",
    "decode_log_bytes",
    "decode_representative",
    "expand",
    "fold",
    "format_table",
    "merge",
    "ranked",
    "read_log",
    "symbol_dir",
    "to_html",
    "to_json",
    "triage",
    "triage_batch",
]


@dataclass(slots=True, unsafe_hash=True)
class Sighting(Fields):
    """One report seen in one log."""

    signature: str
    title: str
    family: str
    guilty: str | None
    corrupted: str
    release: str | None
    source: str
    seen: str | None
    line: int
    text: str


class Crash(Record):
    """Reports with one signature: how many, where and when first and last seen, on which
    kernel releases, and one representative report (the first one not corrupted)."""

    __slots__ = (
        "signature",
        "title",
        "family",
        "guilty",
        "count",
        "logs",
        "first_seen",
        "last_seen",
        "releases",
        "corrupted",
        "representative",
        "decoded",
    )

    def __init__(self, first: Sighting) -> None:
        self.signature = first.signature
        self.title = first.title
        self.family = first.family
        self.guilty = first.guilty
        self.count = 0
        self.logs: list[str] = []
        self.first_seen: dict[str, object] = {}
        self.last_seen: dict[str, object] = {}
        self.releases: list[str] = []
        self.corrupted = 0  # how many of the reports were corrupted
        self.representative: Sighting = first
        self.decoded: str | None = None

    def add(self, s: Sighting) -> None:
        self.count += 1
        if s.source not in self.logs[-8:]:
            self.logs.append(s.source)
        where = {"source": s.source, "line": s.line, "time": s.seen}
        if not self.first_seen or (s.seen and str(s.seen) < str(self.first_seen.get("time") or "~")):
            self.first_seen = where
        if not self.last_seen or (s.seen or "") >= str(self.last_seen.get("time") or ""):
            self.last_seen = where
        if s.release and s.release not in self.releases:
            self.releases.append(s.release)
        if s.corrupted:
            self.corrupted += 1
        elif self.representative.corrupted:
            self.representative = s

    def absorb(self, other: Crash) -> None:
        """Fold in the crash of the same signature from the logs that come after this one's:
        the same result as adding ``other``'s sightings one by one (counts add, first seen
        keeps the earlier on a tie, last seen takes the later, releases in order of first
        appearance, the representative is the first report not corrupted)."""
        self.count += other.count
        for src in other.logs:
            if src not in self.logs[-8:]:
                self.logs.append(src)
        if other.first_seen and str(other.first_seen.get("time") or "~") < str(
            self.first_seen.get("time") or "~"
        ):
            self.first_seen = other.first_seen
        if other.last_seen and str(other.last_seen.get("time") or "") >= str(
            self.last_seen.get("time") or ""
        ):
            self.last_seen = other.last_seen
        for r in other.releases:
            if r not in self.releases:
                self.releases.append(r)
        self.corrupted += other.corrupted
        if self.representative.corrupted and not other.representative.corrupted:
            self.representative = other.representative

    def asdict(self) -> dict[str, object]:
        d = super().asdict()
        d["representative"] = self.representative.asdict()
        d["logs"] = len(self.logs)
        return d


def analyze(text: str, source: str = "-", seen: str | None = None) -> list[Sighting]:
    """Every report of one log, named (pure: same text, same result; the records pickle)."""
    log = parse(text)
    out = []
    for idx, r in enumerate(log.reports):
        rel = r.facts.get("release")
        body = "".join(ln.raw for ln in log.lines[r.lines[0] : r.lines[-1] + 1] if ln.report == idx)
        out.append(
            Sighting(
                r.signature,
                r.title,
                r.family,
                r.guilty,
                r.corrupted,
                rel if isinstance(rel, str) else None,
                source,
                seen,
                r.lines[0] + 1,
                body,
            )
        )
    return out


def fold(results: Iterable[list[Sighting]]) -> dict[str, Crash]:
    """Sightings (in input order) grouped by signature, in order of first appearance."""
    crashes: dict[str, Crash] = {}
    for batch in results:
        for s in batch:
            c = crashes.get(s.signature)
            if c is None:
                c = crashes[s.signature] = Crash(s)
            c.add(s)
    return crashes


def combine(parts: Iterable[dict[str, Crash]]) -> dict[str, Crash]:
    """Folds of consecutive runs of logs, in order, as one fold of all of them."""
    crashes: dict[str, Crash] = {}
    for part in parts:
        _fold_in(crashes, part)
    return crashes


def _fold_in(crashes: dict[str, Crash], part: dict[str, Crash]) -> None:
    for sig, c in part.items():
        have = crashes.get(sig)
        if have is None:
            crashes[sig] = c
        else:
            have.absorb(c)


def ranked(crashes: dict[str, Crash]) -> list[Crash]:
    """Most frequent first (ties: first seen)."""
    order = {sig: n for n, sig in enumerate(crashes)}
    return sorted(crashes.values(), key=lambda c: (-c.count, order[c.signature]))


def merge(results: Iterable[list[Sighting]]) -> list[Crash]:
    """Sightings (in input order) grouped by signature, most frequent first (ties: first seen)."""
    return ranked(fold(results))


# -- reading logs --------------------------------------------------------------------------------

_EXPORT_FIELD = re.compile(rb"^([A-Z0-9_]+)=(.*)$")


def _journal_export(data: bytes) -> str:
    """Kernel messages of a ``journalctl -o export`` stream, as dmesg lines."""
    out = []
    entry: dict[bytes, bytes] = {}
    pos = 0
    n = len(data)

    def flush() -> None:
        msg = entry.get(b"MESSAGE")
        if msg is not None and entry.get(b"_TRANSPORT", b"kernel") == b"kernel":
            out.append(_dmesg_line(entry.get(b"__MONOTONIC_TIMESTAMP"), msg))
        entry.clear()

    while pos < n:
        e = data.find(b"\n", pos)
        if e < 0:
            e = n
        line = data[pos:e]
        pos = e + 1
        if not line:
            flush()
            continue
        if b"=" in line:
            k, _, v = line.partition(b"=")
            entry[k] = v
        else:  # binary field: name \n le64 size, data, \n
            if pos + 8 > n:
                break
            size = int.from_bytes(data[pos : pos + 8], "little")
            entry[line] = data[pos + 8 : pos + 8 + size]
            pos += 8 + size + 1
    flush()
    return "".join(out)


def _dmesg_line(mono: bytes | str | None, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "surrogateescape") if isinstance(msg, bytes) else msg
    try:
        usec = int(mono or b"")
    except ValueError:
        return text.rstrip("\n") + "\n"
    return f"[{usec // 1000000:5d}.{usec % 1000000:06d}] {text.rstrip(chr(10))}\n"


def _journal_json(data: bytes) -> str:
    out = []
    for raw in data.splitlines():
        try:
            e = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(e, dict):  # a line that is JSON but not an entry
            continue
        msg = e.get("MESSAGE")
        if isinstance(msg, list):  # journalctl writes non-UTF-8 messages as byte arrays
            if not all(isinstance(b, int) and 0 <= b < 256 for b in msg):
                continue  # not a byte array: no message to read
            msg = bytes(msg).decode("utf-8", "surrogateescape")
        if isinstance(msg, str) and e.get("_TRANSPORT", "kernel") == "kernel":
            out.append(_dmesg_line(e.get("__MONOTONIC_TIMESTAMP"), msg))
    return "".join(out)


def _bunzip2(data: bytes, cap: int) -> bytes:
    out = bytearray()
    pending = data
    while pending:
        d = bz2.BZ2Decompressor()
        while not d.eof:
            chunk = d.decompress(pending, max_length=cap + 1 - len(out))
            pending = b""
            out += chunk
            if len(out) > cap:
                raise TooLarge(cap)
            if d.needs_input and not d.eof:
                raise ValueError("truncated bzip2 stream")
        pending = d.unused_data  # concatenated streams, as bunzip2 reads them
    return bytes(out)


def decode_log_bytes(data: bytes, cap: int | None = None) -> str:
    """A log's text from its bytes: decompressed by magic, journal exports turned into dmesg
    lines, anything else decoded as UTF-8 with surrogate escapes (bytes survive).  A log
    whose text would pass ``cap`` bytes (default: the decompression cap of
    :func:`lkm.compress.limit`, ``$LKM_DECOMPRESS_LIMIT``) is refused: "decompressed size
    exceeds N", before it is inflated past it."""
    cap = limit() if cap is None else cap
    try:
        comp = detect(data[:8])
        if comp is not None:
            data = decompress(data, comp, cap=cap)
        elif data[:3] == b"BZh":
            data = _bunzip2(data, cap)
        elif len(data) > cap:
            raise LkmError(f"log size {len(data)} exceeds {cap}", errno=errno.EFBIG)
    except TooLarge as exc:
        raise LkmError(exc.reason, errno=errno.EFBIG) from None
    except LkmError as exc:  # damaged compressed data: one reason, no traceback
        raise LkmError(exc.reason if exc.errno == errno.EFBIG else f"cannot decompress: {exc.reason}",
                       errno=exc.errno) from None  # fmt: skip
    except Exception as exc:
        raise LkmError(f"cannot decompress: {exc}") from None
    head = data[:4096]
    if head.startswith(b"__CURSOR=") or (b"\nMESSAGE=" in head and b"\n__REALTIME_TIMESTAMP=" in head):
        return _journal_export(data)
    if head.startswith(b"{") and b'"MESSAGE"' in head and b'"__CURSOR"' in head:
        return _journal_json(data)
    return data.decode("utf-8", "surrogateescape")


def read_log(path: str) -> tuple[str, str | None]:
    """(text, ISO time of last modification) of one log file."""
    try:
        data = read_bytes(path, limit=limit())  # a regular file only (a FIFO would hang)
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None
    try:
        text = decode_log_bytes(data)
    except LkmError as exc:
        raise LkmError(exc.reason, path=path, errno=exc.errno) from None
    seen = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).isoformat(timespec="seconds")
    return text, seen


def expand(paths: Iterable[str]) -> Iterator[str]:
    """Files named, and every file under the directories named (sorted, recursively)."""
    for p in paths:
        if p != "-" and os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for n in sorted(files):
                    yield os.path.join(root, n)
        else:
            yield p


def analyze_path(path: str) -> list[Sighting]:
    """:func:`analyze` of one log file (what a worker runs)."""
    text, seen = read_log(path)
    return analyze(text, path, seen)


def analyze_paths(paths: list[str]) -> list[list[Sighting]]:
    return [analyze_path(p) for p in paths]


# -- engines -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriageResult:
    crashes: list[Crash]
    logs: int
    reports: int
    bytes: int
    errors: list[str]


def _safe(path: str) -> tuple[list[Sighting], int, str | None]:
    try:
        size = os.path.getsize(path)
        return analyze_path(path), size, None
    except LkmError as exc:
        return [], 0, str(exc)


def _safe_batch(paths: list[str]) -> list[tuple[list[Sighting], int, str | None]]:
    return [_safe(p) for p in paths]


@dataclass(frozen=True, slots=True)
class Part:
    """What one run of consecutive logs gives: its crashes folded (one representative text
    each, not every report's), and its counts; what a worker sends back."""

    crashes: dict[str, Crash]
    logs: int
    reports: int
    bytes: int
    errors: list[str]


def triage_batch(paths: list[str]) -> Part:
    """:func:`analyze` of each log file, folded (the unit of work an engine maps)."""
    got = _safe_batch(paths)
    return Part(
        fold(r[0] for r in got), len(got), sum(len(r[0]) for r in got), sum(r[1] for r in got),
        [e for _s, _n, e in got if e],
    )  # fmt: skip


def _batches(paths: list[str], batch: int) -> Iterator[list[str] | None]:
    """Runs of at most ``batch`` consecutive files (None: stdin, where ``-`` was named),
    produced as the directories are walked."""
    run: list[str] = []
    for p in expand(paths):
        if p == "-":
            if run:
                yield run
                run = []
            yield None
            continue
        run.append(p)
        if len(run) >= batch:
            yield run
            run = []
    if run:
        yield run


def _local(work: Iterator[list[str] | None], workers: int) -> Iterator[Part | None]:
    """Each batch's :class:`Part` in order (None for stdin), in this process or in a pool of
    ``workers`` processes with at most ``2 * workers`` batches in flight (bounded memory)."""
    first = list(itertools.islice(work, 2))  # one batch of files: no pool to start
    if workers <= 1 or sum(b is not None for b in first) < 2:
        for b in itertools.chain(first, work):
            yield None if b is None else triage_batch(b)
        return
    # fork where there is one: "spawn" would re-run the lkm script (bin/lkm) in each child
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        window: collections.deque[concurrent.futures.Future[Part] | None] = collections.deque()
        for b in itertools.chain(first, work):
            window.append(None if b is None else pool.submit(triage_batch, b))
            while len(window) > 2 * workers:
                f = window.popleft()
                yield None if f is None else f.result()
        while window:
            f = window.popleft()
            yield None if f is None else f.result()


def triage(
    paths: list[str],
    *,
    engine: str = "local",
    address: str | None = None,
    stdin_text: str | None = None,
    batch: int = 64,
    workers: int | None = None,
) -> TriageResult:
    """Unique crashes of the logs at ``paths`` (files or directories; ``-`` is
    ``stdin_text``).  ``engine``: ``local`` (this process, or a pool of ``workers``
    processes) or ``dask`` (a Dask cluster at ``address``, or a LocalCluster of ``workers``
    processes, default 2), with identical results.  Logs are read as the directories are
    walked and each batch's result is folded in as it comes: memory holds the unique crashes
    and the batches in flight, not every log's reports."""
    if engine not in ("local", "dask"):
        raise LkmError(f"unknown engine {engine!r} (local, dask)")
    work = _batches(paths, max(1, batch))
    done = _local(work, workers or 1) if engine == "local" else _run_dask(work, address, workers or 2)
    crashes: dict[str, Crash] = {}
    logs = reports = nbytes = 0
    errors: list[str] = []
    for part in done:
        if part is None:  # stdin, where it was named
            text = stdin_text or ""
            sights = analyze(text, "-", None)
            part = Part(fold([sights]), 1, len(sights), len(text.encode("utf-8", "surrogateescape")), [])
        _fold_in(crashes, part.crashes)
        logs += part.logs
        reports += part.reports
        nbytes += part.bytes
        errors.extend(part.errors)
    return TriageResult(ranked(crashes), logs, reports, nbytes, errors)


def _run_dask(work: Iterator[list[str] | None], address: str | None, workers: int) -> Iterator[Part | None]:
    """Each batch's :class:`Part` in order (None for stdin), computed on Dask: at most
    ``4 * workers`` batches submitted ahead of the one being folded."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise LkmError("the dask engine needs Dask: pip install 'lkm[dask]'") from None
    cluster = None
    if address:
        client = Client(address)  # type: ignore[no-untyped-call]
    else:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)  # type: ignore[no-untyped-call]
    try:
        ahead = 4 * max(workers, len(client.scheduler_info().get("workers", ())))
        window: collections.deque[Any] = collections.deque()
        for b in work:
            window.append(None if b is None else client.submit(triage_batch, b, pure=False))
            while len(window) > ahead:
                f = window.popleft()
                yield None if f is None else f.result()
        while window:
            f = window.popleft()
            yield None if f is None else f.result()
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


# -- symbols for representatives -------------------------------------------------------------------


def symbol_dir(root: str, release: str | None, build_ids: Iterable[str] = ()) -> str | None:
    """The folder of ``root`` holding the symbols of a report: ``<release>/`` or ``<build-id>/``."""
    for name in [*(b for b in build_ids if b), *([release] if release else [])]:
        d = os.path.join(root, name)
        if os.path.isdir(d):
            return d
    return None


def decode_representative(crash: Crash, root: str) -> tuple[str | None, list[str]]:
    """The representative report decoded with the symbols of its release found under ``root``
    (kallsyms or System.map, vmlinux, modules/), and notes; (None, notes) when none is there."""

    rep = crash.representative
    log = parse(rep.text)
    bids = [f.build_id for r in log.reports for f in r.frames if f.build_id]
    d = symbol_dir(root, rep.release, bids)
    if d is None:
        return None, [f"no symbols for {rep.release or 'an unknown release'} in {root}"]
    notes: list[str] = []
    release_file = os.path.join(d, "release")  # a <build-id>/ folder may say which release it is
    if os.path.isfile(release_file):
        with open(release_file, encoding="utf-8", errors="replace") as f:
            note = release_mismatch(rep.release, f.read().strip())
        if note:
            notes.append(note)
    names = set(os.listdir(d))

    def pick(*cands: str) -> str | None:
        return next((os.path.join(d, c) for c in cands if c in names), None)

    kallsyms = pick("kallsyms", "proc-kallsyms.txt", "proc-kallsyms")
    system_map = pick("System.map", *sorted(n for n in names if n.startswith("System.map")))
    vmlinux = pick("vmlinux", *sorted(n for n in names if n.startswith("vmlinux")))
    modules = pick("modules")
    proc_modules = pick("proc-modules.txt", "modules.txt")
    sections = pick("sections.txt")
    try:
        out, got = decode_text(
            rep.text,
            Inputs(kallsyms, proc_modules, sections, None if kallsyms else system_map, modules, vmlinux),
            "decode-stacktrace",
        )
    except LkmError as exc:
        return None, [str(exc)]
    notes.extend(got)
    return out, notes


# -- output ----------------------------------------------------------------------------------------


def format_table(result: TriageResult) -> str:
    """One line per unique crash: count, logs, first and last seen, releases, title."""
    rows = [f"{'COUNT':>6} {'LOGS':>5}  {'FIRST SEEN':<25} {'LAST SEEN':<25} {'RELEASES':<24} TITLE"]
    for c in result.crashes:
        rel = ",".join(c.releases[:3]) + ("..." if len(c.releases) > 3 else "")
        mark = " (corrupted)" if c.corrupted == c.count else ""
        rows.append(
            f"{c.count:>6} {len(c.logs):>5}  {c.first_seen.get('time') or '-'!s:<25} "
            f"{c.last_seen.get('time') or '-'!s:<25} {rel or '-':<24} {c.title}{mark}"
        )
    rows.append(f"{len(result.crashes)} unique crashes, {result.reports} reports in {result.logs} logs")
    return "\n".join(rows) + "\n"


def to_json(result: TriageResult) -> str:
    doc = {
        "logs": result.logs,
        "reports": result.reports,
        "bytes": result.bytes,
        "errors": result.errors,
        "crashes": [c.asdict() for c in result.crashes],
    }
    return json.dumps(doc, indent=1) + "\n"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.n{text-align:right}pre{background:#f8f8f8;padding:8px;overflow:auto;
font-size:12px}details{margin:0}.c{color:#a00}summary{cursor:pointer}"""


def to_html(result: TriageResult) -> str:
    """A single self-contained HTML page (inline CSS, no script): the table, and each crash's
    representative report (decoded when symbols were found) in a <details> block."""
    e = html.escape
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lkm triage</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{len(result.crashes)} unique crashes</h1>",
        f"<p>{result.reports} reports in {result.logs} logs ({result.bytes} bytes).</p>",
        "<table><tr><th>Count</th><th>Logs</th><th>First seen</th><th>Last seen</th><th>Releases</th>"
        "<th>Crash</th></tr>",
    ]
    for c in result.crashes:
        rep = c.decoded if c.decoded is not None else c.representative.text
        bad = " <span class='c'>(corrupted)</span>" if c.corrupted == c.count else ""
        out.append(
            f"<tr><td class='n'>{c.count}</td><td class='n'>{len(c.logs)}</td>"
            f"<td>{e(str(c.first_seen.get('time') or '-'))}<br>{e(str(c.first_seen.get('source')))}</td>"
            f"<td>{e(str(c.last_seen.get('time') or '-'))}<br>{e(str(c.last_seen.get('source')))}</td>"
            f"<td>{e(', '.join(c.releases) or '-')}</td>"
            f"<td><details><summary>{e(c.title)}{bad}</summary>"
            f"<p>{e(c.representative.source)}:{c.representative.line} · family {e(c.family)}"
            f" · guilty {e(c.guilty or '-')} · signature {e(c.signature)}</p>"
            f"<pre>{e(rep.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace'))}</pre>"
            "</details></td></tr>"
        )
    out.append("</table>")
    if result.errors:
        out.append(
            "<h2>Unreadable logs</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in result.errors) + "</ul>"
        )
    out.append("</body></html>\n")
    return "".join(out)

"""``insmod --json`` / ``rmmod --json`` on a real kernel (runs inside the VM guest): the JSON
says what kmod's tools and the kernel say — the message is kmod's stderr line, the exit
status kmod's, size, address and taints /proc/modules' row, sections /sys/module/M/sections."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from guestlib import (
    clean,  # noqa: F401  (autouse: each test unloads what it loaded)
    fixture,
    kmod,
    lkm,
    loaded,
)


def _docs(text: str, kind: str) -> list[dict[str, Any]]:
    out = [json.loads(ln) for ln in text.splitlines()]
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        root = Path(__file__).resolve().parents[3]
        schema = json.loads((root / "src/lkm/data/lkm-1.schema.json").read_text())
        v = jsonschema.Draft202012Validator(schema)
        for d in out:
            assert not list(v.iter_errors(d)), d
    assert all(d["kind"] == kind for d in out)
    return out


def _row(name: str) -> list[str]:
    with open("/proc/modules") as f:
        return next(ln.split() for ln in f if ln.split(" ", 1)[0] == name)


def test_insmod_rmmod_json_live() -> None:
    exporter, importer = str(fixture("exporter")), str(fixture("importer"))

    theirs = kmod("insmod", importer)  # unknown symbols: kmod's words and status
    ours = lkm("insmod", "--json", importer)
    assert (ours.rc, ours.err) == (theirs.rc, theirs.err) == (1, theirs.err)
    (d,) = _docs(ours.out, "insmod")
    assert (d["name"], d["result"], d["error"]) == ("importer", "failed", "ENOENT")
    # the kernel's own words (kernel/module/main.c resolve_symbol_wait), read from /dev/kmsg
    assert any(ln.startswith("importer: Unknown symbol ") and ln.endswith(" (err -2)") for ln in d["log"])
    assert f"insmod: ERROR: {d['message']}\n" == theirs.err

    ours = lkm("insmod", "--json", exporter)
    assert (ours.rc, ours.err) == (0, "")
    (d,) = _docs(ours.out, "insmod")
    f = _row("exporter")  # "exporter 16384 0 - Live 0xffffffffc0a1b000 (OE)"
    assert (d["name"], d["result"], d["size"], d["state"]) == ("exporter", "loaded", int(f[1]), f[4])
    assert int(d["address"], 16) == int(f[5], 16) and f"({d['taints']})" == (f[6] if len(f) > 6 else "()")
    secs = Path("/sys/module/exporter/sections")
    assert {s: int(a, 16) for s, a in d["sections"].items()} == {
        p.name: int(p.read_text(), 16) for p in secs.iterdir()
    }
    with open("/proc/sys/kernel/tainted") as t:
        assert d["kernel_taint"] == int(t.read())
    assert isinstance(d["log"], list)

    theirs = kmod("insmod", exporter)  # already loaded
    ours = lkm("insmod", "--json", exporter)
    assert (ours.rc, ours.err) == (theirs.rc, theirs.err)
    (d,) = _docs(ours.out, "insmod")
    assert (d["result"], d["error"], f"insmod: ERROR: {d['message']}\n") == (
        "already-loaded",
        "EEXIST",
        theirs.err,
    )

    assert kmod("insmod", importer).rc == 0
    theirs = kmod("rmmod", "exporter")  # in use
    ours = lkm("rmmod", "--json", "exporter")
    assert (ours.rc, ours.err) == (theirs.rc, theirs.err) == (1, theirs.err)
    (d,) = _docs(ours.out, "rmmod")
    assert (d["result"], f"rmmod: ERROR: {d['message']}\n") == ("in-use", theirs.err)

    size = int(_row("importer")[1])
    ours = lkm("rmmod", "--json", "importer", "exporter", "nosuchmod")
    theirs = kmod("rmmod", "nosuchmod")
    assert (ours.rc, ours.err) == (1, theirs.err)
    a, b, c = _docs(ours.out, "rmmod")
    assert [(x["name"], x["result"]) for x in (a, b, c)] == [
        ("importer", "removed"), ("exporter", "removed"), ("nosuchmod", "not-loaded")]  # fmt: skip
    assert a["size"] == size and f"rmmod: ERROR: {c['message']}\n" == theirs.err
    assert not {"importer", "exporter"} & set(loaded())
    assert os.path.exists("/proc/modules")

"""Recorded hardware (lkm.emulate.replay): QEMU's trace text read into a device trace, and a
device trace replayed to a driver.

Oracles: ``tests/data/replay/qemu-e1000-excerpt.log`` is an excerpt of QEMU 7.2's own trace
(log backend) of a 6.1 guest loading and removing e1000 with ``-device e1000,addr=03.0`` and
the phase marks of scripts/guest_replay.py; the values asserted below are read off its lines
(the numbers in the comments are its line numbers).  The replays use the pcidemo fixture,
whose source says which registers its probe() and remove() touch, in which order."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.emulate.harness import Harness
from lkm.emulate.replay import (
    DeviceTrace,
    Recorded,
    Replayer,
    TraceError,
    device_trace,
    parse_qemu_trace,
    same_lines,
    split_dmesg,
)

from support import FIXTURES, ROOT, lkm_cmd

EXCERPT = ROOT / "tests" / "data" / "replay" / "qemu-e1000-excerpt.log"
PCIDEMO = str(FIXTURES / "6x" / "pcidemo.ko")


def excerpt_trace() -> DeviceTrace:
    return device_trace(parse_qemu_trace(EXCERPT.read_text()), "00:03.0")


# -- QEMU's trace ---------------------------------------------------------------------------------
def test_events_of_the_excerpt() -> None:
    ev = parse_qemu_trace(EXCERPT.read_text())
    first = ev[0]  # line 1: pci_cfg_read e1000 00:03.0 @0x4 -> 0x103, then a 2-byte data read
    assert (first.event, first.line, first.dev, first.slot, first.addr, first.value, first.size) == (
        "cfg-read",
        1,
        "e1000",
        "00:03.0",
        0x4,
        0x103,
        2,
    )
    write = next(e for e in ev if e.event == "cfg-write")  # line 5, after a 2-byte data write
    assert (write.line, write.addr, write.value, write.size) == (5, 0x4, 0x100, 2)
    maps = [(e.event, e.bar, e.addr, e.value) for e in ev if e.event.startswith("map-")]
    assert maps == [
        ("map-del", 0, 0xFEBC0000, 0x20000),
        ("map-del", 1, 0xC000, 0x40),
        ("map-add", 0, 0xFEBC0000, 0x20000),
        ("map-add", 1, 0xC000, 0x40),
    ]
    io = next(e for e in ev if e.event == "mr-write" and e.name == "e1000-io")  # line 130
    assert (io.line, io.addr, io.value, io.size) == (130, 0xC000, 0, 4)


def test_device_trace_of_the_excerpt() -> None:
    t = excerpt_trace()
    # the configuration space as the sysfs read before the B mark (lines 25-78) gave it
    assert t.ids == {
        "vendor": 0x8086,
        "device": 0x100E,
        "revision": 3,
        "class": 0x020000,
        "subvendor": 0x1AF4,
        "subdevice": 0x1100,
    }
    assert t.irq == 11 and t.config[0x3D] == 1
    assert t.bars == [(0, "mem", 0xFEBC0000, 0x20000), (1, "io", 0xC000, 0x40)]
    probe = [a.row() for a in t.accesses[slice(*t.phases["probe"])]]
    assert probe[:9] == [
        ["cfg", "r", -1, 0x4, 2, 0x103],  # line 81
        ["cfg", "r", -1, 0x3D, 1, 0x1],  # line 96 (PIIX3's accesses between are another device's)
        ["cfg", "r", -1, 0x4, 2, 0x103],
        ["cfg", "r", -1, 0x4, 2, 0x103],
        ["cfg", "w", -1, 0x4, 2, 0x107],
        ["cfg", "r", -1, 0xD, 1, 0x0],
        ["cfg", "w", -1, 0xD, 1, 0x40],
        ["cfg", "r", -1, 0x0, 4, 0x100E8086],
        ["cfg", "r", -1, 0x4, 4, 0x107],
    ]
    bar = [r for r in probe if r[0] != "cfg"]  # lines 120-133; the HPET reads are not the device's
    assert bar[:3] == [["mmio", "r", 0, 0x8, 4, 0x80080783]] * 2 + [["mmio", "w", 0, 0xD8, 4, 0xFFFFFFFF]]
    assert bar[10:12] == [["pio", "w", 1, 0x0, 4, 0x0], ["pio", "w", 1, 0x4, 4, 0x4140240]]
    assert len(bar) == 14
    remove = [a.row() for a in t.accesses[slice(*t.phases["remove"])]]
    assert remove == [
        ["mmio", "r", 0, 0x0, 4, 0x40140240],
        ["mmio", "w", 0, 0x0, 4, 0xC0140240],
        ["mmio", "r", 0, 0x8, 4, 0x80080781],
        ["mmio", "w", 0, 0x0, 4, 0x40140240],
        ["mmio", "r", 0, 0x8, 4, 0x80080781],
        ["cfg", "r", -1, 0x4, 2, 0x107],
        ["cfg", "w", -1, 0x4, 2, 0x103],
    ]


def test_timestamped_lines() -> None:
    """``-msg timestamp=on`` prefixes each line with PID@SECONDS.MICROS: (QEMU's log backend)."""
    plain = EXCERPT.read_text().splitlines()
    stamped = "\n".join(f"4242@1733600000.{i:06d}:{ln}" for i, ln in enumerate(plain))
    assert [e.row() for e in device_trace(parse_qemu_trace(stamped)).accesses] == [
        a.row() for a in excerpt_trace().accesses
    ]


def test_unreadable_lines() -> None:
    with pytest.raises(TraceError, match="line 2: cannot read this memory_region_ops event"):
        parse_qemu_trace("qemu: a message\nmemory_region_ops_read cpu 0 mr 0x1 addr zz\n")
    with pytest.raises(TraceError, match="no phase mark B/P/E"):
        device_trace(parse_qemu_trace("pci_cfg_read e1000 00:03.0 @0x0 -> 0x100e8086\n"))
    assert parse_qemu_trace("cpu_out addr 0x80 value 0\nsomething else\n") == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(EXCERPT.read_text().splitlines()) | st.text(max_size=80), max_size=30))
def test_parser_never_crashes(lines: list[str]) -> None:
    with contextlib.suppress(TraceError):
        device_trace(parse_qemu_trace("\n".join(lines)))


# -- the device trace file ------------------------------------------------------------------------
def test_round_trip(tmp_path: Path) -> None:
    t = excerpt_trace()
    t.dmesg = {"probe": ["e1000 0000:00:03.0 eth0: Intel(R) PRO/1000 Network Connection"], "remove": []}
    p = tmp_path / "t.json"
    p.write_text(t.dumps())
    back = DeviceTrace.load(p)
    assert back.json() == t.json() and json.loads(p.read_text()) == t.json()


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(version=2), "version 2, lkm reads 1"),
        (lambda d: d.update(format="x"), "not a device trace"),
        (lambda d: d["accesses"].append(["mmio", "r", 4, 0, 4, 0]), "BAR 4 is not one of the device's"),
        (lambda d: d["accesses"].append(["dma", "r", 0, 0, 4, 0]), "cannot read"),
        (lambda d: d["pci"].update(config="00"), "config space of 1 bytes"),
        (lambda d: d["phases"].update(probe=[0, 10**6]), "outside the accesses"),
        (lambda d: d.pop("pci"), "malformed device trace"),
    ],
)
def test_bad_traces(tmp_path: Path, edit, why: str) -> None:  # type: ignore[no-untyped-def]
    doc = excerpt_trace().json()
    edit(doc)
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(TraceError, match=why):
        DeviceTrace.load(p)


def test_dmesg_phases() -> None:
    text = (
        "[    9.17] lkm-replay: B\n[    9.36] e1000: Intel(R) PRO/1000 Network Driver\n"
        "[   10.02] ACPI: \\_SB_.LNKC: Enabled at IRQ 11\n[   10.93] e1000 0000:00:03.0 eth0: x\n"
        "[   10.93] lkm-replay: P\n[   11.33] lkm-replay: E\n"
    )
    assert split_dmesg(text) == {
        "probe": ["e1000: Intel(R) PRO/1000 Network Driver", "e1000 0000:00:03.0 eth0: x"],
        "remove": [],
    }
    assert same_lines(["at 0x(____ptrval____), IRQ 11"], ["at 0x0000000041c8bc0d, IRQ 11"])
    assert not same_lines(["at 0x00000000c000, IRQ 11"], ["at 0x00000000d000, IRQ 11"])


# -- replaying ------------------------------------------------------------------------------------
def _trace(rows: list[list[object]], aliases: tuple[tuple[int, int], ...] = ()) -> DeviceTrace:
    return DeviceTrace(
        slot="00:03.0",
        config=b"",
        bars=[(0, "mem", 0xFE000000, 0x1000), (1, "io", 0xC000, 0x20)],
        irq=11,
        accesses=[Recorded(*r) for r in rows],
        phases={"probe": (0, len(rows))},
        dmesg={},
        aliases=aliases,
    )  # type: ignore[arg-type]


def test_replayer_sizes() -> None:
    r = Replayer(
        _trace(
            [
                ["mmio", "r", 0, 0, 4, 0x11223344],
                ["mmio", "r", 0, 4, 2, 0xAABB],
                ["mmio", "r", 0, 6, 2, 0xCCDD],
                ["mmio", "w", 0, 8, 4, 0x12345678],
            ]
        )
    )
    assert r.access("r", 0, 1, 1, None) == 0x33  # inside a wider recorded access (QEMU widened it)
    assert r.access("r", 0, 4, 4, None) == 0xCCDDAABB  # split into two recorded halves
    assert r.access("w", 0, 8, 4, 0x12345678) == 0x12345678 and r.complete


def test_replayer_divergence() -> None:
    r = Replayer(_trace([["mmio", "r", 0, 0, 4, 1], ["mmio", "w", 0, 4, 4, 7]]))
    assert r.access("r", 0, 0, 4, None) == 1
    assert r.access("w", 0, 4, 4, 8) is None  # another value
    d = r.divergence
    assert d is not None and (d.index, d.recorded) == (1, 1)
    assert d.describe().startswith(
        "access 1 (trace access 1): expected mmio write bar0+0x4/4 = 0x7, got mmio write bar0+0x4/4 = 0x8 at"
    )
    assert r.access("r", 0, 0, 4, None) is None and not r.complete  # the register model answers now
    r = Replayer(_trace([["mmio", "r", 0, 0, 4, 1]]))
    r.access("r", 0, 0, 4, None)
    r.access("r", 0, 0, 4, None)
    assert r.divergence is not None and r.divergence.expected is None
    assert "expected the end of the recording" in r.divergence.describe()


def test_replayer_aliases() -> None:
    """QEMU's rtl8139: BAR 1 (memory) is an alias of BAR 0's registers, traced as BAR 0."""
    rows: list[list[object]] = [["pio", "r", 0, 0x37, 1, 0x10]]
    assert Replayer(_trace(rows, ((0, 1),))).access("r", 1, 0x37, 1, None) == 0x10
    r = Replayer(_trace(rows))
    assert r.access("r", 1, 0x37, 1, None) is None and r.divergence is not None


PCIDEMO_ROWS: list[list[object]] = [  # pcidemo_probe() of fixtures/src/6x/pcidemo/pcidemo.c
    ["mmio", "r", 0, 0x0, 4, 0x010000ED],  # readl(EDU_ID)
    ["mmio", "w", 0, 0x4, 4, 0x12345678],  # writel(0x12345678, EDU_LIVENESS)
    ["mmio", "r", 0, 0x4, 4, 0xEDCBA987],  # readl(EDU_LIVENESS): the inverse
    ["pio", "w", 1, 0x0, 1, 0x5A],  # outb(0x5a, port)
    ["pio", "r", 1, 0x1, 1, 0x0],  # inb(port + 1)
]
PCIDEMO_DMESG = {
    "probe": [
        "pcidemo 0000:00:03.0: edu 1.0, liveness ok",
        "pcidemo 0000:00:03.0: port 0xc000 reads 0x0",
        "pcidemo 0000:00:03.0: irq 10, /dev/pcidemo",
    ],
    "remove": ["pcidemo 0000:00:03.0: removed after 0 interrupts"],
}


def pcidemo_trace(tmp_path: Path, rows: list[list[object]] = PCIDEMO_ROWS) -> Path:
    config = bytearray(256)
    config[0:4] = bytes.fromhex("3412e811")  # QEMU's edu: 1234:11e8
    config[0x0A:0x0C] = b"\x00\xff"  # class 0xff0000
    config[0x10:0x14] = (0xFEA00000).to_bytes(4, "little")
    config[0x14:0x18] = (0xC001).to_bytes(4, "little")
    config[0x3C:0x3E] = b"\x0a\x01"
    t = DeviceTrace(
        slot="00:03.0",
        config=bytes(config),
        bars=[(0, "mem", 0xFEA00000, 0x100000), (1, "io", 0xC000, 0x20)],
        irq=10,
        accesses=[Recorded(*r) for r in rows],  # type: ignore[arg-type]
        phases={"probe": (0, len(rows)), "remove": (len(rows), len(rows))},
        dmesg=PCIDEMO_DMESG,
    )
    p = tmp_path / "pcidemo.json"
    p.write_text(t.dumps())
    return p


def test_replay_to_pcidemo(tmp_path: Path) -> None:
    h = Harness([f"replay:{pcidemo_trace(tmp_path)}"])
    h.load(PCIDEMO)
    h.unload()
    (rep,) = h.replay()
    assert rep.ok and (rep.matched, rep.recorded, rep.made) == (5, 5, 5), rep.lines()
    assert rep.lines()[-2:] == [
        "dmesg probe: equal (3 guest lines, 3 lkm lines)",
        "dmesg remove: equal (1 guest lines, 1 lkm lines)",
    ]


def test_replay_divergence_at_the_driver_instruction(tmp_path: Path) -> None:
    rows = [list(r) for r in PCIDEMO_ROWS]
    rows[1][5] = 0x87654321  # the recording wrote another liveness value
    h = Harness([f"replay:{pcidemo_trace(tmp_path, rows)}"])
    h.load(PCIDEMO)
    (rep,) = h.replay()
    d = rep.divergence
    assert d is not None and (d.index, d.recorded, rep.matched) == (1, 1, 1)
    assert d.expected is not None and d.expected.row() == ["mmio", "w", 0, 4, 4, 0x87654321]
    assert d.got.row() == ["mmio", "w", 0, 4, 4, 0x12345678]
    assert d.site.startswith("pcidemo_probe+0x") and d.site.endswith(" [pcidemo]")
    assert not rep.ok


def test_replay_stops_short(tmp_path: Path) -> None:
    rows = [*PCIDEMO_ROWS, ["mmio", "r", 0, 0x20, 4, 0]]
    h = Harness([f"replay:{pcidemo_trace(tmp_path, rows)}"])
    h.load(PCIDEMO)
    (rep,) = h.replay()
    assert rep.divergence is None and (rep.matched, rep.recorded) == (5, 6) and not rep.ok
    assert "the driver stopped 1 recorded accesses before the end" in rep.lines()


def test_cli_device_replay(tmp_path: Path) -> None:
    trace = pcidemo_trace(tmp_path)
    r = subprocess.run(
        [*lkm_cmd(), "run", PCIDEMO, "--device-replay", str(trace), "--exit", "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.splitlines()[-1])["replay"]
    assert rep["ok"] and rep["matched"] == 5 and rep["divergence"] is None
    rows = [list(x) for x in PCIDEMO_ROWS]
    rows[0][5] = 0x010000EE  # not an edu: probe fails after the first read
    bad = pcidemo_trace(tmp_path, rows)
    r = subprocess.run(
        [*lkm_cmd(), "run", PCIDEMO, "--device-replay", str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert (
        "## device replay" in r.stdout and "the driver stopped 4 recorded accesses before the end" in r.stdout
    )
    (tmp_path / "junk.json").write_text("{")
    r = subprocess.run(
        [*lkm_cmd(), "run", PCIDEMO, "--device-replay", str(tmp_path / "junk.json")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "junk.json: not JSON" in r.stderr


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["pci", "accesses", "phases", "dmesg", "source", "x"]), _JSON))
def test_any_document_is_a_trace_or_a_trace_error(parts: dict[str, object]) -> None:
    """Whatever a file holds, reading it gives a trace or a TraceError, never another error."""
    doc = {"format": "lkm-device-trace", "version": 1, **excerpt_trace().json(), **parts}
    with contextlib.suppress(TraceError):
        DeviceTrace.from_json(doc)


def test_replay_device_at_the_recorded_slot(tmp_path: Path) -> None:
    """The device sits where it was recorded (PCI slot 5 here); a device without a slot takes
    the next free one."""
    doc = json.loads(pcidemo_trace(tmp_path).read_text())
    doc["pci"]["slot"] = "00:05.0"
    doc["dmesg"] = {}
    p = tmp_path / "slot5.json"
    p.write_text(json.dumps(doc))
    h = Harness([f"replay:{p}", "pci:v1234d0001"])
    h.load(PCIDEMO)
    assert [d.name for d in h.devices] == ["0000:00:05.0", "0000:00:03.0"]
    assert h.dmesg[-1] == "pcidemo 0000:00:05.0: irq 10, /dev/pcidemo"
    doc["pci"]["slot"] = "0:5"
    p.write_text(json.dumps(doc))
    with pytest.raises(TraceError, match=r"PCI slot '0:5' is not BB:DD\.F"):
        DeviceTrace.load(p)

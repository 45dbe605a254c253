"""Recorded hardware: a real device's answers, recorded in QEMU, replayed to the same driver.

QEMU's device models are real enough for Linux's drivers (``-device e1000``, ``rtl8139``,
``ne2k_pci``).  A guest loads the driver and removes it again while QEMU traces every access
to device memory, I/O ports and PCI configuration space (``scripts/guest_replay.py``); this
module turns that trace into a *device trace* of ours and replays it: ``lkm run drv.ko
--device-replay TRACE`` (or ``Harness(devices=["replay:TRACE"])``) puts a PCI device with the
recorded IDs, BARs, IRQ and configuration space on the emulated bus, and the device answers
each read of its BARs with the value recorded at that point, in the recorded order, and checks
each write against the recorded write.  The first access that differs (another register, size,
direction or written value, or one past the end of the recording) is a *divergence*,
reported with its index, what was expected and what came, and the driver's instruction as
symbol+offset.  Time does not enter: a driver polling a register sees the recorded number of
"busy" answers however long (or short) its udelay()s are.

QEMU's trace (the ``log`` backend, QEMU 7.2's trace-events; ``-trace enable=EVENT`` with
``-D FILE``, lines optionally prefixed ``PID@SECONDS.MICROS:`` by ``-msg timestamp=on``)::

    memory_region_ops_read cpu 0 mr 0x55.. addr 0xfebc0008 value 0x80080783 size 4 name 'e1000-mmio'
    memory_region_ops_write cpu 0 mr 0x55.. addr 0xc000 value 0x0 size 4 name 'e1000-io'
    pci_cfg_read e1000 00:03.0 @0x4 -> 0x103
    pci_cfg_write e1000 00:03.0 @0x4 <- 0x107
    pci_update_mappings_add e1000 00:03.0 0,0xfebc0000+0x20000

QEMU's ``cpu_in``/``cpu_out`` events do not fire for a TCG guest's ``in``/``out`` instructions
(they go through the I/O address space as memory-region accesses, traced above), so they are
not needed.  ``addr`` of a memory-region access is absolute (QEMU's memory_region_to_absolute_addr): a
port number for the I/O space, a physical address else.  ``pci_cfg_*`` carry no size: it is
the size of the ``pci-conf-data`` access (ports 0xcfc-0xcff) that made them, traced just after
a read and just before a write.  Phase markers: the recording guest writes one byte to an I/O
port nothing claims (:data:`MARKER_PORT`): ``B`` before ``insmod``, ``P`` after it (probe done),
``E`` after ``rmmod``.

The device trace (JSON, :data:`FORMAT` version :data:`VERSION`)::

    {"format": "lkm-device-trace", "version": 1,
     "source": {"recorder": "qemu", "model": "e1000", "driver": "e1000", "kernel": "6.1.0-..."},
     "pci": {"slot": "00:03.0", "config": "<256 bytes, hex>", "irq": 11,
             "bars": [[0, "mem", 4273733632, 131072], [1, "io", 49152, 64]]},
     "phases": {"probe": [0, 11982], "remove": [11982, 12050]},
     "dmesg": {"probe": ["e1000 0000:00:03.0 eth0: ..."], "remove": []},
     "accesses": [["mmio", "r", 0, 8, 4, 2148009859], ["cfg", "w", -1, 4, 2, 263], ...]}

An access is ``[kind, op, bar, offset, size, value]``: kind ``mmio``, ``pio`` or ``cfg``, op
``r`` or ``w``, the BAR (-1 for configuration space), the offset within the BAR (or config
space), the size in bytes and the value.  ``config`` is the device's configuration space as
the guest read it just before the driver loaded; ``phases`` are index ranges of ``accesses``.
``aliases`` (optional) pairs BARs that are one register file in the device model (QEMU's
rtl8139 maps its memory BAR 1 as an alias of its I/O BAR 0, and traces both as the I/O
region's addresses): a recorded access to one matches the driver's access to the other.

Configuration space accesses are recorded from the PCI core as well as from the driver
(``pci_enable_device``, ``pci_save_state``... read and write it for the driver, and lkm's
base kernel implements those without touching config space), so the driver's own config
accesses are checked as a subsequence of the recorded ones, in order; BAR accesses are all
the driver's own and are checked one for one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lkm.emulate.hw import Bar, Device, DeviceSpecError, parse_device
from lkm.errors import LkmError

if TYPE_CHECKING:
    from lkm.emulate.hw import Access, Hardware

__all__ = [
    "CONF_DATA",
    "CORE_LINES",
    "FORMAT",
    "LOADER_LINES",
    "MARKER_PORT",
    "MAX_TRACE_BYTES",
    "PHASE_MARKS",
    "VERSION",
    "DeviceTrace",
    "Divergence",
    "QemuEvent",
    "Recorded",
    "ReplayDevice",
    "ReplayReport",
    "Replayer",
    "TraceError",
    "bar_script",
    "check_config",
    "device_from_spec",
    "device_trace",
    "driver_lines",
    "parse_qemu_trace",
    "replay_device",
    "replay_devices",
    "report",
    "same_lines",
    "split_dmesg",
]


FORMAT = "lkm-device-trace"
VERSION = 1
MARKER_PORT = 0x7E0  # an I/O port nothing on QEMU's PC claims: the recording guest's phase marks
PHASE_MARKS = {"B": "begin", "P": "probed", "E": "end"}
MAX_TRACE_BYTES = 1 << 28  # a device trace larger than this is refused


class TraceError(LkmError):
    """A QEMU trace or a device trace that cannot be read."""


# -- QEMU's trace text ---------------------------------------------------------------------------
@dataclass(slots=True, unsafe_hash=True)
class QemuEvent:
    """One line of QEMU's trace that matters here."""

    event: str  # mr-read, mr-write, cfg-read, cfg-write, map-add, map-del
    line: int  # 1-based line number in the trace text
    dev: str = field(default="", kw_only=True)  # cfg/map: QEMU's device type name ("e1000")
    slot: str = field(default="", kw_only=True)  # cfg/map: "00:03.0" (bus:slot.function)
    addr: int = field(default=0, kw_only=True)  # mr: absolute address; cfg: offset; map: BAR start
    value: int = field(default=0, kw_only=True)  # mr/cfg: the value; map: the BAR's size
    size: int = field(
        default=0, kw_only=True
    )  # mr: access size; cfg: filled in from the pci-conf-data access
    name: str = field(default="", kw_only=True)  # mr: the memory region's name
    bar: int = field(default=-1, kw_only=True)  # map: the BAR index (6: expansion ROM)


_PREFIX = re.compile(r"\d+@\d+\.\d+:")  # -msg timestamp=on: PID@SECONDS.MICROS:
_MR = re.compile(
    r"memory_region_ops_(read|write) cpu -?\d+ mr 0x[0-9a-f]+ addr 0x([0-9a-f]+) "
    r"value 0x([0-9a-f]+) size (\d+) name '([^']*)'$"
)
_CFG = re.compile(
    r"pci_cfg_(read|write) (\S+) ([0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]) @0x([0-9a-f]+) (?:->|<-) 0x([0-9a-f]+)$"
)
_MAP = re.compile(
    r"pci_update_mappings_(add|del) (\S+) ([0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]) "
    r"(\d+),0x([0-9a-f]+)\+0x([0-9a-f]+)$"
)
CONF_DATA = "pci-conf-data"


def parse_qemu_trace(text: str) -> list[QemuEvent]:
    """The memory-region, PCI configuration and BAR-mapping events of a QEMU trace (log
    backend); other lines (other events, QEMU's messages) are skipped.  A config access gets
    the size of the pci-conf-data access next to it (after a read, before a write)."""
    out: list[QemuEvent] = []
    pending_read: QemuEvent | None = None  # a cfg read whose pci-conf-data read follows
    last_data_write = 0  # size of the pci-conf-data write just before a cfg write
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stamp = _PREFIX.match(line)
        if stamp is not None:
            line = line[stamp.end() :]
        if line.startswith("memory_region_ops_"):
            m = _MR.match(line)
            if m is None:
                raise TraceError(f"line {n}: cannot read this memory_region_ops event: {line[:120]!r}")
            op, addr, value, size, name = m.groups()
            if int(size) not in (1, 2, 4, 8):
                raise TraceError(f"line {n}: an access of {size} bytes")
            ev = QemuEvent(
                f"mr-{op}",
                n,
                addr=int(addr, 16),
                value=int(value, 16) & _mask(int(size)),
                size=int(size),
                name=name,
            )
            if name == CONF_DATA:
                if op == "read" and pending_read is not None:
                    pending_read.size = ev.size
                    pending_read = None
                elif op == "write":
                    last_data_write = ev.size
            out.append(ev)
        elif line.startswith("pci_cfg_"):
            m = _CFG.match(line)
            if m is None:
                raise TraceError(f"line {n}: cannot read this pci_cfg event: {line[:120]!r}")
            op, dev, slot, off, value = m.groups()
            ev = QemuEvent(f"cfg-{op}", n, dev=dev, slot=slot, addr=int(off, 16), value=int(value, 16))
            if op == "read":
                ev.size = 4  # until the pci-conf-data read says
                pending_read = ev
            else:
                ev.size = last_data_write or 4
                last_data_write = 0
            out.append(ev)
        elif line.startswith("pci_update_mappings_"):
            m = _MAP.match(line)
            if m is None:
                raise TraceError(f"line {n}: cannot read this pci_update_mappings event: {line[:120]!r}")
            op, dev, slot, bar, start, size = m.groups()
            out.append(
                QemuEvent(
                    f"map-{op}", n, dev=dev, slot=slot, addr=int(start, 16), value=int(size, 16), bar=int(bar)
                )
            )
    return out


# -- the device trace ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded access of the device trace."""

    kind: str
    op: str
    bar: int
    offset: int
    size: int
    value: int

    def row(self) -> list[object]:
        return [self.kind, self.op, self.bar, self.offset, self.size, self.value]

    def describe(self) -> str:
        where = "config" if self.kind == "cfg" else f"bar{self.bar}"
        verb = {"r": "read", "w": "write"}[self.op]
        return f"{self.kind} {verb} {where}+{self.offset:#x}/{self.size} = {self.value:#x}"


class DeviceTrace:
    """A recorded device: its PCI identity and resources, the accesses and the guest's log."""

    def __init__(
        self,
        *,
        slot: str,
        config: bytes,
        bars: list[tuple[int, str, int, int]],
        irq: int,
        accesses: list[Recorded],
        phases: dict[str, tuple[int, int]],
        dmesg: dict[str, list[str]],
        source: dict[str, str] | None = None,
        aliases: Sequence[tuple[int, int]] = (),
    ) -> None:
        self.slot = slot
        self.aliases = [(int(a), int(b)) for a, b in aliases]  # BARs onto the same registers
        self.config = bytes(config).ljust(256, b"\0")[:256]
        self.bars = bars  # (index, "mem"|"io", start, size)
        self.irq = irq
        self.accesses = accesses
        self.phases = phases
        self.dmesg = dmesg
        self.source = dict(source or {})
        self.path = ""

    @property
    def devfn(self) -> int:
        """The slot and function of ``slot`` ("00:03.0": 0x18); the bus number is not kept."""
        dev, fn = self.slot.rpartition(":")[2].split(".")
        return (int(dev, 16) << 3) | int(fn, 16)

    # the PCI identity, as the configuration space gives it
    def _cfg(self, at: int, size: int) -> int:
        return int.from_bytes(self.config[at : at + size], "little")

    @property
    def ids(self) -> dict[str, int]:
        return {
            "vendor": self._cfg(0, 2),
            "device": self._cfg(2, 2),
            "revision": self._cfg(8, 1),
            "class": self._cfg(9, 3),
            "subvendor": self._cfg(0x2C, 2),
            "subdevice": self._cfg(0x2E, 2),
        }

    def json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "pci": {
                "slot": self.slot,
                "config": self.config.hex(),
                "irq": self.irq,
                "bars": [list(b) for b in self.bars],
                "aliases": [list(a) for a in self.aliases],
            },
            "phases": {k: list(v) for k, v in self.phases.items()},
            "dmesg": self.dmesg,
            "accesses": [a.row() for a in self.accesses],
        }

    def dumps(self) -> str:
        """The trace as JSON text: one access per line, so that diffs of traces read well."""
        doc = self.json()
        rows = doc.pop("accesses")
        assert isinstance(rows, list)
        head = json.dumps(doc, indent=1)[:-2]
        body = ",\n".join("  " + json.dumps(r) for r in rows)
        return f'{head},\n "accesses": [\n{body}\n ]\n}}\n'

    @classmethod
    def from_json(cls, doc: object, where: str = "trace") -> DeviceTrace:
        try:
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise TraceError(f"{where}: not a device trace (format {FORMAT!r} expected)")
            if doc.get("version") != VERSION:
                raise TraceError(f"{where}: device trace version {doc.get('version')!r}, lkm reads {VERSION}")
            pci = doc["pci"]
            if not re.fullmatch(r"[0-9a-f]{2}:[01][0-9a-f]\.[0-7]", str(pci["slot"])):
                raise TraceError(f"{where}: PCI slot {pci['slot']!r} is not BB:DD.F")
            config = bytes.fromhex(pci["config"])
            if len(config) != 256:
                raise TraceError(f"{where}: config space of {len(config)} bytes, 256 expected")
            bars = []
            for b in pci["bars"]:
                index, kind, start, size = int(b[0]), str(b[1]), int(b[2]), int(b[3])
                limit = 1 << 16 if kind == "io" else 1 << 64
                if (
                    not 0 <= index <= 5
                    or kind not in ("mem", "io")
                    or size <= 0
                    or size & (size - 1)
                    or not 0 <= start <= limit - size
                ):
                    raise TraceError(f"{where}: bad BAR {b!r}")
                bars.append((index, kind, start, size))
            accesses = []
            for i, r in enumerate(doc["accesses"]):
                kind, op, bar, off, size, value = r
                if kind not in ("mmio", "pio", "cfg") or op not in ("r", "w") or size not in (1, 2, 4, 8):
                    raise TraceError(f"{where}: access {i}: cannot read {r!r}")
                if kind != "cfg" and not any(b[0] == bar for b in bars):
                    raise TraceError(f"{where}: access {i}: BAR {bar} is not one of the device's")
                accesses.append(Recorded(kind, op, int(bar), int(off), int(size), int(value)))
            phases = {str(k): (int(v[0]), int(v[1])) for k, v in doc.get("phases", {}).items()}
            for name, (lo, hi) in phases.items():
                if not 0 <= lo <= hi <= len(accesses):
                    raise TraceError(f"{where}: phase {name} [{lo}, {hi}) is outside the accesses")
            dmesg = {str(k): [str(x) for x in v] for k, v in doc.get("dmesg", {}).items()}
            source = {str(k): str(v) for k, v in doc.get("source", {}).items()}
            aliases = [(int(a), int(b)) for a, b in pci.get("aliases", [])]
            if not 0 <= int(pci["irq"]) <= 255:
                raise TraceError(f"{where}: IRQ {pci['irq']!r} is not a line 0-255")
            return cls(
                slot=str(pci["slot"]),
                config=config,
                bars=bars,
                irq=int(pci["irq"]),
                accesses=accesses,
                phases=phases,
                dmesg=dmesg,
                source=source,
                aliases=aliases,
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise TraceError(f"{where}: malformed device trace ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> DeviceTrace:
        p = Path(path)
        try:
            with open(p, "rb") as f:
                data = f.read(MAX_TRACE_BYTES + 1)
        except OSError as exc:
            raise TraceError(f"{p}: {exc.strerror or exc}") from None
        if len(data) > MAX_TRACE_BYTES:
            raise TraceError(f"{p}: larger than {MAX_TRACE_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceError(f"{p}: not JSON ({exc})") from None
        t = cls.from_json(doc, str(p))
        t.path = str(p)
        return t


def device_trace(
    events: Sequence[QemuEvent],
    slot: str = "00:03.0",
    *,
    dmesg: dict[str, list[str]] | None = None,
    source: dict[str, str] | None = None,
    marker_port: int = MARKER_PORT,
    aliases: Sequence[tuple[int, int]] = (),
) -> DeviceTrace:
    """The device trace of the PCI device at ``slot`` from a QEMU trace's events: its
    configuration space as last read before the ``B`` mark, its BARs as mapped then, and its
    accesses between the ``B`` and ``E`` marks (``P`` splits probe from remove)."""
    config = bytearray(256)
    mapped: dict[int, tuple[int, int]] = {}  # BAR -> (start, size), as QEMU maps them now
    accesses: list[Recorded] = []
    marks: dict[str, int] = {}
    bars_at_begin: dict[int, tuple[int, int]] = {}
    for ev in events:
        kind = ev.event
        if kind.startswith("map-"):
            if ev.slot == slot and 0 <= ev.bar <= 5:
                if kind == "map-add":
                    mapped[ev.bar] = (ev.addr, ev.value)
                else:
                    mapped.pop(ev.bar, None)
            continue
        if kind.startswith("mr-") and ev.addr == marker_port and ev.size == 1 and kind == "mr-write":
            mark = chr(ev.value)
            if mark in PHASE_MARKS and mark not in marks:
                marks[mark] = len(accesses)
                if mark == "B":
                    bars_at_begin = dict(mapped)
            continue
        began = "B" in marks and "E" not in marks
        if kind.startswith("cfg-"):
            if ev.slot != slot:
                continue
            op = "r" if kind == "cfg-read" else "w"
            ev.value &= _mask(ev.size)  # the pci-conf-data access's size bounds the value
            if not began and op == "r" and ev.addr + ev.size <= 256:
                config[ev.addr : ev.addr + ev.size] = ev.value.to_bytes(ev.size, "little")
            if began:
                accesses.append(Recorded("cfg", op, -1, ev.addr, ev.size, ev.value))
            continue
        if not began:
            continue
        for bar, (start, size) in mapped.items():
            if start <= ev.addr < start + size:
                io = _bar_is_io(config, bar)
                if io != (ev.addr < 0x10000):  # the other address space at the same number
                    continue
                op = "r" if kind == "mr-read" else "w"
                accesses.append(
                    Recorded("pio" if io else "mmio", op, bar, ev.addr - start, ev.size, ev.value)
                )
                break
    missing = [m for m in "BPE" if m not in marks]
    if missing:
        raise TraceError(
            f"the trace has no phase mark {'/'.join(missing)} (a byte written to port {marker_port:#x})"
        )
    if not bars_at_begin and not any(_bar_start(config, i) for i in range(6)):
        raise TraceError(f"no PCI device at {slot} in the trace")
    bars = []
    for index in range(6):
        if index in bars_at_begin:
            start, size = bars_at_begin[index]
            bars.append((index, "io" if _bar_is_io(config, index) else "mem", start, size))
    irq = config[0x3C] if config[0x3C] not in (0, 0xFF) else 11
    return DeviceTrace(
        slot=slot,
        config=bytes(config),
        bars=bars,
        irq=irq,
        accesses=accesses,
        phases={"probe": (marks["B"], marks["P"]), "remove": (marks["P"], marks["E"])},
        dmesg=dict(dmesg or {}),
        source=source,
        aliases=aliases,
    )


def _bar_is_io(config: bytes | bytearray, bar: int) -> bool:
    return bool(config[0x10 + 4 * bar] & 1)


def _bar_start(config: bytes | bytearray, bar: int) -> int:
    raw = int.from_bytes(config[0x10 + 4 * bar : 0x14 + 4 * bar], "little")
    return raw & ~0x3 if raw & 1 else raw & ~0xF


_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ")
#: Lines of the guest's log in a driver's phase that the PCI core prints, not the driver:
#: pci_enable_device -> acpi_pci_irq_enable routes the interrupt link on first enable.
CORE_LINES = (re.compile(r"^ACPI: \\\S+: Enabled at IRQ \d+$"),)


#: Lines of lkm's log in the probe phase that the module loader prints, not the driver (the
#: guest's kernel has Debian's signing key: it verifies the module and prints nothing).
LOADER_LINES = (
    re.compile(r"^\S+: module verification failed: signature and/or required key missing - tainting kernel$"),
    re.compile(r"^\S+: loading out-of-tree module taints kernel\.$"),
)


def driver_lines(lines: Iterable[str]) -> list[str]:
    """lkm's log lines of a phase without the module loader's (:data:`LOADER_LINES`)."""
    out = [ln.rstrip("\n") for ln in lines]
    return [ln for ln in out if not any(p.match(ln) for p in LOADER_LINES)]


def split_dmesg(text: str, marks: Sequence[str] = ("B", "P", "E")) -> dict[str, list[str]]:
    """The guest's dmesg between its ``lkm-replay: B``/``P``/``E`` lines (written to
    /dev/kmsg by the recording guest): ``{"probe": [...], "remove": [...]}``, timestamps
    dropped and lines the PCI core prints (:data:`CORE_LINES`) left out."""
    lines = [_TIMESTAMP.sub("", ln) for ln in text.replace("\r", "").splitlines()]
    where = {m: next((i for i, ln in enumerate(lines) if ln == f"lkm-replay: {m}"), -1) for m in marks}
    if any(v < 0 for v in where.values()):
        raise TraceError("the guest's dmesg has no lkm-replay: B/P/E lines")

    def keep(lo: int, hi: int) -> list[str]:
        return [ln for ln in lines[lo + 1 : hi] if not any(p.match(ln) for p in CORE_LINES)]

    return {"probe": keep(where["B"], where["P"]), "remove": keep(where["P"], where["E"])}


# -- replaying -----------------------------------------------------------------------------------
@dataclass(slots=True, unsafe_hash=True)
class Divergence:
    """Where the driver's access first differs from the recording."""

    index: int  # the driver's access (index among the device's BAR accesses in lkm)
    recorded: int  # index in the trace's accesses
    expected: Recorded | None  # None: the recording ended
    got: Recorded
    pc: int = 0
    site: str = field(default="", init=False)

    def describe(self) -> str:
        exp = self.expected.describe() if self.expected is not None else "the end of the recording"
        at = self.site or f"{self.pc:#x}"
        got = self.got.describe()
        return f"access {self.index} (trace access {self.recorded}): expected {exp}, got {got} at {at}"


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def bar_script(trace: DeviceTrace, phases: Iterable[str] = ("probe", "remove")) -> list[tuple[int, Recorded]]:
    """The BAR accesses of the given phases, with their indices in the trace."""
    out = []
    for ph in phases:
        lo, hi = trace.phases.get(ph, (0, 0))
        out += [(i, trace.accesses[i]) for i in range(lo, hi) if trace.accesses[i].kind != "cfg"]
    return out


class Replayer:
    """The recorded answers of one device, handed out in order (:class:`ReplayDevice` uses it)."""

    def __init__(self, trace: DeviceTrace) -> None:
        self.trace = trace
        self.script = bar_script(trace)
        self.pos = 0  # next entry of script
        self.count = 0  # the driver's BAR accesses so far
        self.divergence: Divergence | None = None
        self.same = {(a, b) for a, b in trace.aliases} | {(b, a) for a, b in trace.aliases}

    def _kind(self, bar: int) -> str:
        return "pio" if any(b[0] == bar and b[1] == "io" for b in self.trace.bars) else "mmio"

    def access(self, op: str, bar: int, offset: int, size: int, value: int | None) -> int | None:
        """The value a read returns (None after a divergence: the caller's register model
        answers); a write is checked."""
        got = Recorded(self._kind(bar), op, bar, offset, size, 0 if value is None else value)
        self.count += 1
        if self.divergence is not None:
            return None
        want = 0
        have = 0  # bytes of [offset, offset+size) covered so far
        pos = self.pos
        while have < size:
            if pos >= len(self.script):
                self._diverge(got, None)
                return None
            rec = self.script[pos][1]
            lo = offset + have
            if (
                rec.op != op
                or (rec.bar != bar and (rec.bar, bar) not in self.same)
                or not (rec.offset <= lo < rec.offset + rec.size)
            ):
                self._diverge(got, rec)
                return None
            shift = lo - rec.offset
            take = min(rec.size - shift, size - have)
            if have and rec.offset != lo:  # a split access continues where the last piece ended
                self._diverge(got, rec)
                return None
            part = (rec.value >> (8 * shift)) & _mask(take)
            if op == "w" and value is not None and part != (value >> (8 * have)) & _mask(take):
                self._diverge(got, rec)
                return None
            want |= part << (8 * have)
            have += take
            pos += 1
        self.pos = pos
        return want if op == "r" else value

    def _diverge(self, got: Recorded, expected: Recorded | None) -> None:
        rec = self.script[self.pos][0] if self.pos < len(self.script) else len(self.trace.accesses)
        self.divergence = Divergence(self.count - 1, rec, expected, got)
        return None

    @property
    def complete(self) -> bool:
        """Every recorded BAR access was made, and nothing else."""
        return self.divergence is None and self.pos == len(self.script)


def check_config(trace: DeviceTrace, made: Sequence[Access]) -> tuple[int, list[str]]:
    """The driver's configuration-space accesses (lkm's trace) as a subsequence of the recorded
    ones, in order: (how many were found, one line per access that was not)."""
    rec = [a for a in trace.accesses if a.kind == "cfg"]
    pos, found, missing = 0, 0, []
    for a in made:
        op = "r" if a.op == "cfg-read" else "w"
        j = next(
            (
                i
                for i in range(pos, len(rec))
                if rec[i].op == op
                and rec[i].offset == a.offset
                and rec[i].size == a.size
                and rec[i].value == a.value
            ),
            None,
        )
        if j is None:
            missing.append(f"{a.op} config+{a.offset:#x}/{a.size} = {a.value:#x} at {a.site or hex(a.pc)}")
        else:
            found += 1
            pos = j + 1
    return found, missing


_HASHED = re.compile(r"(?<![0-9a-fA-F])0{8}[0-9a-f]{8}(?![0-9a-fA-F])|\(____ptrval____\)")


def same_lines(recorded: Sequence[str], got: Sequence[str]) -> bool:
    """The guest's and lkm's log lines are the same, hashed pointers aside: a plain %p prints
    a 32-bit hash of a per-boot key (zero-padded to 16 digits), or ``(____ptrval____)`` while
    that key is not ready yet (early after boot, as in the recording guests)."""

    def norm(lines: Sequence[str]) -> list[str]:
        return [_HASHED.sub("(hashed)", ln) for ln in lines]

    return norm(recorded) == norm(got)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """How a replay went: BAR accesses matched, config accesses found, the logs compared."""

    path: str
    matched: int
    recorded: int
    made: int
    divergence: Divergence | None
    config_found: int
    config_missing: list[str]
    dmesg: dict[str, tuple[list[str], list[str]]]

    @property
    def ok(self) -> bool:
        return (
            self.divergence is None
            and self.matched == self.recorded == self.made
            and not self.config_missing
            and all(same_lines(g, m) for g, m in self.dmesg.values())
        )

    def lines(self) -> list[str]:
        out = [
            f"replay {self.path}: {self.matched}/{self.recorded} recorded BAR accesses made as recorded"
            f" ({self.made} made)"
        ]
        if self.divergence is not None:
            out.append(f"divergence at {self.divergence.describe()}")
        elif self.matched < self.recorded:
            nxt = self.recorded - self.matched
            out.append(f"the driver stopped {nxt} recorded accesses before the end")
        out.append(
            f"config space: {self.config_found} driver accesses found in the recording"
            + (f", {len(self.config_missing)} not" if self.config_missing else "")
        )
        out += [f"  not recorded: {m}" for m in self.config_missing[:10]]
        for phase, (guest, mine) in self.dmesg.items():
            verdict = "equal" if same_lines(guest, mine) else "DIFFERENT"
            out.append(f"dmesg {phase}: {verdict} ({len(guest)} guest lines, {len(mine)} lkm lines)")
            if verdict != "equal":
                out += [f"  guest: {ln}" for ln in guest] + [f"  lkm:   {ln}" for ln in mine]
        return out

    def json(self) -> dict[str, object]:
        d = self.divergence
        return {
            "trace": self.path,
            "ok": self.ok,
            "matched": self.matched,
            "recorded": self.recorded,
            "made": self.made,
            "config_found": self.config_found,
            "config_missing": self.config_missing,
            "divergence": None
            if d is None
            else {
                "index": d.index,
                "trace_index": d.recorded,
                "site": d.site,
                "pc": f"{d.pc:#x}",
                "expected": None if d.expected is None else d.expected.row(),
                "got": d.got.row(),
            },
            "dmesg": {
                p: {"guest": g, "lkm": m, "equal": same_lines(g, m)} for p, (g, m) in self.dmesg.items()
            },
        }


def report(dev: object, hw: Hardware, logs: dict[str, list[str]] | None = None) -> ReplayReport:
    """The replay report of a :class:`ReplayDevice` after a run; ``logs``: lkm's printk lines
    per phase that ran (probe: the insmod, remove: the rmmod), compared with the guest's; the
    recorded accesses counted are those of these phases (both when ``logs`` is not given)."""
    assert isinstance(dev, ReplayDevice)
    r = dev.replayer
    bar_accesses = [a for a in hw.trace if a.device == dev.name and a.space.startswith("bar")]
    d = r.divergence
    if d is not None and d.index < len(bar_accesses):
        a = bar_accesses[d.index]
        d.pc, d.site = a.pc, a.site
    cfg = [a for a in hw.trace if a.device == dev.name and a.space == "config"]
    found, missing = check_config(r.trace, cfg)
    phases = list(logs) if logs else ["probe", "remove"]
    recorded = len(bar_script(r.trace, [p for p in ("probe", "remove") if p in phases]))
    dmesg = {p: (r.trace.dmesg.get(p, []), driver_lines(lines)) for p, lines in (logs or {}).items()}
    return ReplayReport(r.trace.path, r.pos, recorded, r.count, d, found, missing, dmesg)


class ReplayDevice(Device):
    """A PCI device answering from a recording: BAR reads return the recorded values in the
    recorded order, BAR writes are checked against the recorded writes (:class:`Replayer`).
    After a divergence it goes on as the plain register model (reads as last written)."""

    def __init__(self, trace: DeviceTrace, spec: str = "") -> None:
        super().__init__("pci", trace.ids, spec=spec)
        self.replayer = Replayer(trace)
        self.irq = trace.irq
        self.fixed_bars = [Bar(i, kind, start, size) for i, kind, start, size in trace.bars]
        self.config = bytearray(trace.config)
        self.devfn = trace.devfn

    def read_reg(self, space: str, offset: int, size: int) -> int:
        if space.startswith("bar"):
            v = self.replayer.access("r", int(space[3:]), offset, size, None)
            if v is not None:
                return v
        return super().read_reg(space, offset, size)

    def write_reg(self, space: str, offset: int, size: int, value: int) -> None:
        if space.startswith("bar"):
            self.replayer.access("w", int(space[3:]), offset, size, value)
        super().write_reg(space, offset, size, value)

    def set(self, bar: int, offset: int, value: int, size: int = 4) -> None:
        super().write_reg(f"bar{bar}", offset, size, value)  # not one of the driver's accesses

    def get(self, bar: int, offset: int, size: int = 4) -> int:
        return super().read_reg(f"bar{bar}", offset, size)


def replay_device(path: str, spec: str = "") -> ReplayDevice:
    """The device of ``--device-replay PATH`` (``--device replay:PATH``)."""
    try:
        return ReplayDevice(DeviceTrace.load(path), spec or f"replay:{path}")
    except TraceError as exc:
        raise DeviceSpecError(f"--device-replay: {exc}") from None


def replay_devices(hw: Hardware) -> list[ReplayDevice]:
    return [d for d in hw.devices if isinstance(d, ReplayDevice)]


def device_from_spec(spec: str) -> Device | None:
    """A device from a --device spec, ``replay:TRACE`` included (None for ``auto``)."""
    if spec.startswith("replay:"):
        return replay_device(spec[len("replay:") :], spec)
    return parse_device(spec)

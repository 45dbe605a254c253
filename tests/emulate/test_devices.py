"""Emulated buses and devices, and the module-author harness, against the pcidemo fixture: a
PCI driver for QEMU's edu device compiled against the 6.1 headers (fixtures/src/6x/pcidemo).
The oracle is the driver's source: what it prints and which registers it touches, in which
order, for the register values the edu device model gives; the struct offsets it reads
(pdev->irq, resources, id table) are the compiler's, so a wrong layout shows as a wrong line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lkm.emulate.harness import Harness, HarnessError
from lkm.emulate.hw import DeviceSpecError, parse_device

from support import FIXTURES, require

pytest_plugins = ["lkm.emulate.pytest_plugin"]  # the lkm_harness fixture


PCIDEMO = str(FIXTURES / "6x" / "pcidemo.ko")
EDU = "pci:v1234d11E8,bar0=mem:0x100000,bar1=io:0x20,irq=10"
PCIDEMO_FACT, PCIDEMO_ARM = 0xC0047001, 0x7002  # _IOWR('p', 1, unsigned int), _IO('p', 2)


def edu_model(h: Harness) -> None:
    """QEMU's edu device (hw/misc/edu.c): identification 0x010000ed, liveness reads back the
    inverse, the factorial register computes."""
    edu = h.devices[0]
    edu.set(0, 0x00, 0x010000ED)
    state = {"live": 0, "fact": 0}
    edu.on_write(0, 0x04, lambda v: state.__setitem__("live", v))
    edu.on_read(0, 0x04, lambda: ~state["live"])
    edu.on_write(0, 0x08, lambda v: state.__setitem__("fact", math.factorial(min(v, 12))))
    edu.on_read(0, 0x08, lambda: state["fact"])


def loaded() -> Harness:
    h = Harness([EDU])
    edu_model(h)
    h.load(PCIDEMO)
    return h


def test_probe_with_the_device_model() -> None:
    h = loaded()
    d = h.devices[0]
    assert d.name == "0000:00:03.0" and d.probe_result == 0 and d.driver_name == "pcidemo"
    assert h.dmesg[-3:] == [
        "pcidemo 0000:00:03.0: edu 1.0, liveness ok",
        "pcidemo 0000:00:03.0: port 0xc000 reads 0x0",
        "pcidemo 0000:00:03.0: irq 10, /dev/pcidemo",
    ]
    ops = [(a.op, a.space, a.offset, a.size, a.value) for a in h.accesses(d.name)]
    assert ops == [
        ("read", "bar0", 0x0, 4, 0x010000ED),
        ("write", "bar0", 0x4, 4, 0x12345678),
        ("read", "bar0", 0x4, 4, 0xEDCBA987),
        ("out", "bar1", 0x0, 1, 0x5A),
        ("in", "bar1", 0x1, 1, 0x0),
    ]
    pcidemo = h.kernel.modules["pcidemo"]
    assert all(pcidemo.contains(a.pc) for a in h.accesses())  # the module's own instructions
    assert [r.kind for r in h.registrations] == ["pci"] and h.unimplemented == []


def test_interrupt_runs_handler_tasklet_and_work() -> None:
    h = loaded()
    f = h.open("pcidemo")
    assert h.irq(10) == 0  # status 0: the handler says IRQ_NONE
    h.devices[0].set(0, 0x24, 0x1)
    assert h.irq(10) == 1
    assert h.dmesg[-1] == "pcidemo 0000:00:03.0: interrupt 1: status 0x1"
    assert f.read(100) == b"irqs=1 tasklets=1 works=1 timers=0\n"
    acks = h.accesses(op="write", space="bar0")
    assert (acks[-1].offset, acks[-1].value) == (0x64, 0x1)
    assert h.irq(11) == 0  # nothing on that line


def test_ioctl_with_user_memory() -> None:
    h = loaded()
    f = h.open("pcidemo")
    arg = h.user((5).to_bytes(4, "little"))
    assert f.ioctl(PCIDEMO_FACT, arg) == 0
    assert int.from_bytes(h.peek(arg, 4), "little") == 120
    assert f.ioctl(0x1234) == -25  # -ENOTTY
    assert f.ioctl(PCIDEMO_FACT, 0x10) == -14  # get_user on a bad address: -EFAULT


def test_timers_fire_on_the_virtual_clock() -> None:
    h = loaded()
    f = h.open("pcidemo")
    assert f.ioctl(PCIDEMO_ARM) == 0
    assert h.advance(50) == 0  # armed for HZ/10 = 100 ms
    assert h.advance(60) == 1
    assert h.dmesg[-1] == "pcidemo: timer fired (1)"
    assert h.advance(1000) == 2  # it re-arms itself twice more, then stops
    assert [x for x in h.dmesg if "timer fired" in x] == [f"pcidemo: timer fired ({i})" for i in (1, 2, 3)]


def test_remove_on_unload() -> None:
    h = loaded()
    h.devices[0].set(0, 0x24, 0x2)
    h.irq(10)
    h.unload()
    assert h.dmesg[-1] == "pcidemo 0000:00:03.0: removed after 1 interrupts"
    assert h.devices[0].driver == 0 and h.devices[0].removed
    assert h.irq(10) == 0  # free_irq took the handler off the line
    assert not any(m.name == "pcidemo" for m in h.kernel.state.misc)
    assert h.kernel.state.regions == []  # pci_release_regions


def test_matching_by_id_table() -> None:
    other = Harness(["pci:v1234d11E9"])  # another device id: no probe
    other.load(PCIDEMO)
    assert not other.devices[0].probed
    assert other.calls("pci_enable_device") == []
    modalias = Harness(["pci:v00001234d000011E8sv*sd*bc*sc*i*"])  # modinfo's alias form
    modalias.load(PCIDEMO)
    assert modalias.devices[0].probed


def test_auto_device_from_the_table() -> None:
    h = Harness(["auto"])
    h.load(PCIDEMO)
    (d,) = h.devices
    assert (d.ids["vendor"], d.ids["device"]) == (0x1234, 0x11E8)
    # No model: the identification register reads 0, the driver refuses with -ENODEV (which
    # really_probe does not report).
    assert d.probe_result == -19
    assert h.dmesg[-1] == "pcidemo 0000:00:03.0: not an edu device (id 0x0)"


def test_hotplug_after_registration() -> None:
    h = Harness()
    h.load(PCIDEMO)
    d = h.add_device(EDU)
    assert d.probed and d.probe_result == -19


def test_fixture(lkm_harness) -> None:  # type: ignore[no-untyped-def]
    h = lkm_harness([EDU])
    edu_model(h)
    h.load(PCIDEMO)
    assert h.devices[0].probe_result == 0


@pytest.mark.parametrize(
    "spec, ids",
    [
        ("pci:v8086d100E", {"vendor": 0x8086, "device": 0x100E, "class": 0}),
        (
            "pci:v8086d100Esv1AF4sd1100c020000",
            {"vendor": 0x8086, "device": 0x100E, "subvendor": 0x1AF4, "subdevice": 0x1100, "class": 0x020000},
        ),
        ("usb:v046DpC52B", {"vendor": 0x046D, "product": 0xC52B}),
        (
            "usb:v046DpC52Bd0111dc00dsc00dp00ic03isc01ip02in00",
            {
                "vendor": 0x046D,
                "product": 0xC52B,
                "bcd": 0x111,
                "class": 0,
                "subclass": 0,
                "protocol": 0,
                "ifclass": 3,
                "ifsubclass": 1,
                "ifprotocol": 2,
                "ifnumber": 0,
            },
        ),
    ],
)
def test_spec_ids(spec: str, ids: dict[str, int]) -> None:
    d = parse_device(spec)
    assert d is not None and d.ids == ids


@pytest.mark.parametrize(
    "spec", ["pci", "isa:v1", "pci:v8086,bar9=mem:1", "pci:vXYZ", "pci:v1,irq=x", "auto,irq=1"]
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(DeviceSpecError):
        parse_device(spec)


def test_harness_errors() -> None:
    h = Harness()
    with pytest.raises(HarnessError):
        h.unload()
    with pytest.raises(HarnessError):
        h.device("0000:00:09.0")


def test_cli_device_json(tmp_path: Path) -> None:
    spec = EDU + ",bar0+0x0=0x010000ed"
    cmd = [sys.executable, "-m", "lkm", "run", "--synthetic", "--json", "--device", spec, "--irq", "10",
           "--advance", "10", "--exit", PCIDEMO]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    docs = [json.loads(x) for x in out.stdout.splitlines()]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[2] / "src/lkm/data/lkm-1.schema.json").read_text())
    for doc in docs:
        jsonschema.validate(doc, schema)
    assert docs[0]["accesses"][0]["site"].startswith("pcidemo_probe+")
    assert [d["command"] for d in docs[1:]] == ["irq 10", "advance 10", "rmmod pcidemo"]
    first = docs[0]["accesses"][0]
    assert (first["op"], first["device"], first["space"], first["value"]) == ("read", "0000:00:03.0", "bar0",
                                                                              "0x10000ed")  # fmt: skip
    assert "pcidemo 0000:00:03.0: edu 1.0, liveness stuck" in docs[0]["dmesg"]  # no model: reads as written
    assert docs[-1]["dmesg"] == ["pcidemo 0000:00:03.0: removed after 0 interrupts"]
    bad = subprocess.run(
        [*cmd[:5], "--device", "pci:zz", PCIDEMO], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "pci:zz" in bad.stderr


def test_readme_example() -> None:
    """The harness example in the README runs as written (against the fixture)."""
    from support import ROOT

    text = (ROOT / "README.md").read_text()
    start = text.index("```python\nfrom lkm.emulate.harness")
    code = text[start + len("```python\n") : text.index("```", start + 10)]
    code = code.replace('h.load("pcidemo.ko")', f"h.load({PCIDEMO!r})")
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    test = scope["test_pcidemo"]
    assert callable(test)
    test()


# -- corpus drivers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus61(corpus_trees):  # type: ignore[no-untyped-def]
    """amd64-6.1's modules by file name, and its kernel symbols read from the vmlinuz (no
    guest capture needed)."""
    from lkm.emulate.kernel import SymbolSpace
    from lkm.symbols.table import SymbolTable
    from testing.corpus import module_files

    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    require(tree.vmlinuz is not None and tree.vmlinuz.is_file(), "amd64-6.1 vmlinuz missing")
    files = {p.name: str(p) for p in module_files(tree)}
    return files, SymbolSpace(SymbolTable.from_files(str(tree.vmlinuz)), "x86_64")


@pytest.mark.corpus
def test_corpus_e1000_probe_and_remove(corpus61) -> None:  # type: ignore[no-untyped-def]
    """Debian's e1000: probe() on its first id (8086:1000) enables the device, claims the BARs
    its pci_select_bars names (the memory BARs), and fails as the real one does without
    alloc_etherdev (-ENOMEM) after undoing all of it."""
    files, symbols = corpus61
    h = Harness(["auto"], symbols=symbols)
    h.load(files["e1000.ko"])
    (d,) = h.devices
    assert (d.ids["vendor"], d.ids["device"]) == (0x8086, 0x1000) and d.probed
    names = [t.name for t in h.calls() if t.name.startswith("pci_")]
    assert names[:4] == ["pci_select_bars", "pci_enable_device_mem", "pci_request_selected_regions",
                         "pci_set_master"]  # fmt: skip
    if "alloc_etherdev_mqs" in h.unimplemented:
        assert d.probe_result == -12
        assert h.dmesg[-1] == "e1000: probe of 0000:00:03.0 failed with error -12"
        assert h.kernel.state.regions == []  # released on the error path


@pytest.mark.corpus
def test_corpus_usb_serial_probe_and_disconnect(corpus61) -> None:  # type: ignore[no-untyped-def]
    """ftdi_sio over the real usbserial core: usb_serial_register_drivers sets the id table
    after registering and calls driver_attach; usb_serial_probe matches and the driver's
    attach prints as the kernel's does."""
    files, symbols = corpus61
    h = Harness(["auto"], symbols=symbols)
    h.load(files["usbserial.ko"])
    h.load(files["ftdi_sio.ko"])
    d = next(d for d in h.devices if d.driver_name == "ftdi_sio")
    assert d.ids["vendor"] == 0x0403 and d.name.startswith("1-")
    assert f"ftdi_sio {d.name}: FTDI USB Serial Device converter detected" in h.dmesg
    h.unload("ftdi_sio")
    assert f"ftdi_sio {d.name}: device disconnected" in h.dmesg
    assert "usbcore: deregistering interface driver ftdi_sio" in h.dmesg


@pytest.mark.corpus
def test_corpus_platform_pcspkr(corpus61) -> None:  # type: ignore[no-untyped-def]
    """pcspkr: a platform device named after the driver, probe() returns 0; remove() silences
    the speaker as drivers/input/misc/pcspkr.c does, outb(inb_p(0x61) & 0xFC, 0x61) on a port
    nothing claims (reads all ones)."""
    files, symbols = corpus61
    h = Harness(["auto"], symbols=symbols)
    h.load(files["pcspkr.ko"])
    (d,) = h.devices
    assert (d.bus, d.name, d.probe_result, d.driver_name) == ("platform", "pcspkr", 0, "pcspkr")
    assert h.accesses() == []
    h.unload()
    assert [(a.op, a.address, a.size, a.value) for a in h.accesses()] == [
        ("in", 0x61, 1, 0xFF),
        ("out", 0x61, 1, 0xFC),
    ]
    assert d.removed and d.driver == 0

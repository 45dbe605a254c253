"""A network driver under the module-author harness, as its author would test it: the netdemo
fixture (fixtures/src/6x/netdemo, a PCI Ethernet driver compiled against the 6.1 headers)
against a device model written here.  The oracles are the model and the test's own bytes: the
MAC the driver prints and registers is the one the model's registers hold, a frame sent is
what the model reads by DMA at the address the driver wrote to its registers, a frame received
is what the model put in its receive buffer, and the counters are the frames the test moved.
The struct offsets the driver reads and writes (sk_buff, net_device, its queues) are the
compiler's, so a wrong layout in lkm's netdev core shows as a wrong byte or count."""

from __future__ import annotations

import pytest

from lkm.emulate.harness import Harness, HarnessError

from support import FIXTURES

pytest_plugins = ["lkm.emulate.pytest_plugin"]  # the lkm_harness fixture

NETDEMO = str(FIXTURES / "6x" / "netdemo.ko")
NIC = "pci:v1234d4E44,bar0=mem:0x1000,irq=11"
MAC = bytes.fromhex("525400123456")
MAC_LO, MAC_HI, CTRL, LINK, ISR, IACK = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
TX_LO, TX_HI, TX_LEN, TX_GO, RX_LEN, RX_BUF = 0x20, 0x24, 0x28, 0x2C, 0x30, 0x100
ISR_RX, ISR_TX, ISR_LINK = 1, 2, 4


class Model:
    """The netdemo device (the register map in netdemo.c's header): the MAC in MAC_LO/HI,
    interrupt causes in ISR cleared by writing IACK, a doorbell that sends the frame at the
    DMA address in TX_LO/HI (the model reads it from memory: the wire), a receive buffer."""

    def __init__(self, h: Harness, mac: bytes = MAC) -> None:
        self.h = h
        self.dev = h.devices[0]
        self.isr = 0
        self.wire: list[bytes] = []
        self.dev.set(0, MAC_LO, int.from_bytes(mac[:4], "little"))
        self.dev.set(0, MAC_HI, int.from_bytes(mac[4:], "little"))
        self.dev.on_read(0, ISR, lambda: self.isr)
        self.dev.on_write(0, IACK, self._ack)
        self.dev.on_write(0, TX_GO, self._send)

    def _ack(self, v: int) -> None:
        self.isr &= ~v

    def _send(self, v: int) -> None:
        if v & 1:
            addr = self.dev.get(0, TX_LO) | self.dev.get(0, TX_HI) << 32
            self.wire.append(self.h.dma(addr, self.dev.get(0, TX_LEN)))
            self.isr |= ISR_TX

    def receive(self, frame: bytes) -> None:
        self.dev.set(0, RX_LEN, len(frame))
        for i in range(0, len(frame), 4):
            self.dev.set(0, RX_BUF + i, int.from_bytes(frame[i : i + 4].ljust(4, b"\0"), "little"))
        self.isr |= ISR_RX

    def link(self, up: bool) -> None:
        self.dev.set(0, LINK, int(up))
        self.isr |= ISR_LINK


def frame(dest: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dest + src + ethertype.to_bytes(2, "big") + payload


PEER = bytes.fromhex("020000000001")
ARP = frame(b"\xff" * 6, MAC, 0x0806, bytes(range(28)) + bytes(18))  # 60 bytes, ETH_ZLEN


def loaded(link_up: bool = True) -> tuple[Harness, Model]:
    h = Harness([NIC])
    model = Model(h)
    model.dev.set(0, LINK, int(link_up))
    h.load(NETDEMO)
    return h, model


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def test_probe_registers_the_device_with_the_models_mac() -> None:
    h, model = loaded()
    eth = h.netdev()
    assert (eth.name, eth.ifindex, eth.mtu, eth.mac) == ("eth0", 2, 1500, mac_text(MAC))
    assert h.dmesg[-1] == f"netdemo 0000:00:03.0 eth0: netdemo at irq 11, MAC {mac_text(MAC)}"
    assert not eth.up and model.dev.probe_result == 0
    # probe reads the two MAC registers, nothing else, with the driver's own instructions
    assert [(a.op, a.offset) for a in h.accesses()] == [("read", MAC_LO), ("read", MAC_HI)]
    assert all(h.kernel.modules["netdemo"].contains(a.pc) for a in h.accesses())
    assert {r.kind for r in h.registrations} >= {"pci", "netdev"} and h.unimplemented == []
    assert [a.irq for a in h.hw.irqs] == [11]


def test_invalid_mac_fails_probe_and_undoes_it() -> None:
    h = Harness([NIC])
    Model(h, mac=bytes.fromhex("010203040506"))  # a multicast address
    h.load(NETDEMO)
    assert h.dmesg[-2:] == [
        "netdemo 0000:00:03.0: invalid MAC address 01:02:03:04:05:06",
        "netdemo: probe of 0000:00:03.0 failed with error -99",
    ]
    assert h.devices[0].probe_result == -99
    assert h.netdevs == [] and h.hw.irqs == []
    assert not [r for r in h.registrations if r.kind.startswith("netdev")]  # free_netdev ran
    with pytest.raises(HarnessError):
        h.netdev("eth0")


def test_open_follows_the_link_register() -> None:
    h, model = loaded(link_up=False)
    eth = h.netdev("eth0")
    assert eth.open() == 0 and eth.up and not eth.carrier and not eth.queue_stopped
    assert h.dmesg[-1] == "netdemo 0000:00:03.0 eth0: link down"
    assert model.dev.get(0, CTRL) == 0x7  # RX, TX and interrupts on
    model.link(True)
    assert h.irq(11) == 1 and eth.carrier
    assert h.dmesg[-1] == "netdemo 0000:00:03.0 eth0: link up"
    eth.stop()
    assert not eth.up and not eth.carrier and model.dev.get(0, CTRL) == 0
    assert h.irq(11) == 0  # nothing pending: IRQ_NONE


def test_transmit_reaches_the_wire_by_dma() -> None:
    h, model = loaded()
    eth = h.netdev()
    assert eth.xmit(ARP) == -100  # -ENETDOWN: not up
    eth.open()
    second = frame(PEER, MAC, 0x0800, b"second frame".ljust(46, b"."))
    assert eth.xmit(ARP) == 1 and model.wire == [ARP]
    assert eth.queue_stopped  # one frame in flight
    assert eth.xmit(second) == 0 and eth.queued == 1 and model.wire == [ARP]
    assert h.irq(11) == 1  # TX done: the queue wakes and the waiting frame goes
    assert model.wire == [ARP, second] and eth.queued == 0 and eth.queue_stopped
    assert h.irq(11) == 1 and not eth.queue_stopped
    assert h.skbs == 0  # both completed and freed
    stats = eth.stats()
    assert (stats["tx_packets"], stats["tx_bytes"]) == (2, len(ARP) + len(second))
    assert (stats["rx_packets"], stats["tx_dropped"]) == (0, 0)
    writes = [(a.offset, a.value) for a in h.accesses(op="write") if a.offset in (TX_LEN, TX_GO)]
    assert writes == [(TX_LEN, len(ARP)), (TX_GO, 1), (TX_LEN, len(second)), (TX_GO, 1)]
    assert h.unimplemented == []  # every kernel call on the way was lkm's own


def test_receive_hands_the_frame_up() -> None:
    h, model = loaded()
    eth = h.netdev()
    eth.open()
    ip = frame(MAC, PEER, 0x0800, b"\x45\x00" + bytes(range(64)))
    bcast = frame(b"\xff" * 6, PEER, 0x0806, bytes(28))
    other = frame(bytes.fromhex("020000000099"), PEER, 0x86DD, bytes(40))
    raw = frame(MAC, PEER, 0x0020, b"\xff\xff" + bytes(30))  # 802.3 length field, raw IPX
    for f in (ip, bcast, other, raw):
        model.receive(f)
        assert h.irq(11) == 1
    assert eth.received == [ip, bcast, other, raw]
    # eth_type_trans: protocol and packet type (PACKET_HOST, _BROADCAST, _OTHERHOST)
    got = [(f.protocol, f.pkt_type) for f in eth.frames]
    assert got == [(0x0800, 0), (0x0806, 1), (0x86DD, 3), (0x0001, 0)]
    stats = eth.stats()
    assert (stats["rx_packets"], stats["rx_bytes"]) == (4, sum(map(len, (ip, bcast, other, raw))))
    assert h.skbs == 0 and h.unimplemented == []


def test_receive_runs_in_the_napi_poll() -> None:
    """The handler only schedules NAPI; the frame goes up from the poll, in the NET_RX softirq
    at the interrupt's exit, and the context is complete again after it (NAPI_STATE_SCHED
    clear), so the next interrupt schedules it anew.  Stopped, the context is disabled
    (SCHED and NPSVC held) and an interrupt no longer polls."""
    from lkm.emulate.base.netdev import NAPI

    h, model = loaded()
    eth = h.netdev()
    (napi,) = [r.address for r in h.registrations if r.kind == "napi"]
    state = lambda: h.kernel.machine.read_word(napi + NAPI["state"])  # noqa: E731
    assert state() & 0b1001 == 0b1001  # added: SCHED | NPSVC until napi_enable
    eth.open()
    assert state() & 0b1001 == 0
    first = frame(MAC, PEER, 0x0800, bytes(50))
    model.receive(first)
    assert h.irq(11) == 1 and eth.received == [first] and state() & 1 == 0
    names = [t.name for t in h.calls()]
    i = names.index("napi_schedule_prep")
    assert names[i : i + 2] == ["napi_schedule_prep", "__napi_schedule"]
    assert names.index("napi_gro_receive") > i and names[-1] == "napi_complete_done"
    model.receive(first)
    assert h.irq(11) == 1 and len(eth.received) == 2
    eth.stop()
    assert state() & 0b1001 == 0b1001
    model.receive(first)
    assert h.irq(11) == 1 and len(eth.received) == 2  # handled, but NAPI is disabled


def test_bad_receive_length_is_counted() -> None:
    h, model = loaded()
    eth = h.netdev()
    eth.open()
    model.dev.set(0, RX_LEN, 4000)
    model.isr |= ISR_RX
    assert h.irq(11) == 1
    assert h.dmesg[-1] == "netdemo 0000:00:03.0 eth0: bad frame length 4000"
    assert eth.received == [] and eth.stats()["rx_errors"] == 1


def test_unload_while_up_stops_the_device_first() -> None:
    h, model = loaded()
    eth = h.netdev()
    eth.open()
    eth.xmit(ARP)  # in flight when the module goes
    assert h.skbs == 1
    h.unload()
    assert h.netdevs == [] and h.hw.irqs == [] and h.skbs == 0  # ndo_stop freed the frame
    assert model.dev.get(0, CTRL) == 0
    assert h.dmesg[-1] == "netdemo 0000:00:03.0: removed after 0 interrupts"
    assert [(a.op, a.offset, a.value) for a in h.accesses()][-1] == ("write", CTRL, 0)


def test_second_device_gets_the_next_name(lkm_harness) -> None:  # type: ignore[no-untyped-def]
    h = lkm_harness([NIC, NIC.replace("irq=11", "irq=12")])
    for i, d in enumerate(h.devices):
        d.set(0, MAC_LO, int.from_bytes(MAC[:4], "little"))
        d.set(0, MAC_HI, int.from_bytes(bytes([MAC[4], MAC[5] + i]), "little"))
    h.load(NETDEMO)
    assert [(n.name, n.ifindex, n.mac[-2:]) for n in h.netdevs] == [("eth0", 2, "56"), ("eth1", 3, "57")]
    assert h.netdev("eth1").open() == 0 and not h.netdev("eth0").up


def test_readme_example() -> None:
    """The network driver example of the README runs as written (against the fixture)."""
    from support import ROOT

    text = (ROOT / "README.md").read_text()
    start = text.index("```python\ndef test_netdemo")
    code = text[start + len("```python\n") : text.index("```", start + 10)]
    code = code.replace('h.load("netdemo.ko")', f"h.load({NETDEMO!r})")
    code = "from lkm.emulate.harness import Harness\n" + code  # imported by the example before
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    test = scope["test_netdemo"]
    assert callable(test)
    test()


def test_skb_calls_keep_the_kernels_rules() -> None:
    """net/core/skbuff.c's rules, called as a driver calls them: __netdev_alloc_skb reserves
    NET_SKB_PAD (64 on x86) of headroom, skb_put past the end is skb_over_panic (BUG),
    skb_pull of more than len is NULL, a second free is the refcount underflow warning."""
    from lkm.emulate.base.skbuff import SKB
    from lkm.emulate.machine import EmulationFault

    h, _model = loaded()
    k, m = h.kernel, h.kernel.machine
    dev = h.netdev().address

    def call(name: str, *args: int) -> int:
        return k.call(k.add_function(name), args)

    skb = call("__netdev_alloc_skb", dev, 100, 0x820)
    head, data = m.read_word(skb + SKB["head"]), m.read_word(skb + SKB["data"])
    assert data - head == 64 and m.read_word(skb + SKB["dev"]) == dev and h.skbs == 1
    assert call("skb_put", skb, 100) == data and m.read_int(skb + SKB["len"], 4) == 100
    assert call("skb_pull", skb, 101) == 0 and call("skb_pull", skb, 14) == data + 14
    end = m.read_int(skb + SKB["end"], 4)
    with pytest.raises(EmulationFault) as exc:
        call("skb_put", skb, end)  # far past the end
    assert exc.value.kind == "bug" and h.dmesg[-1].startswith("skbuff: skb_over_panic: text:")
    assert f" len:86 put:{end} " in h.dmesg[-1] and h.dmesg[-1].endswith(f"end:{end:#x} dev:eth0")
    call("consume_skb", skb)
    assert h.skbs == 0
    call("consume_skb", skb)
    assert h.dmesg[-1] == "refcount_t: underflow; use-after-free."


@pytest.mark.corpus
@pytest.mark.vm  # the QEMU recording is made on first use
@pytest.mark.parametrize("driver", ["e1000", "e100", "8139cp", "ne2k-pci"])
def test_recorded_driver_registers_the_guests_mac(driver: str, corpus_trees) -> None:  # type: ignore[no-untyped-def]
    """Corpus drivers probed against their QEMU recording: the net_device they register holds
    the MAC the real kernel printed for eth0 in the recording guest (its dmesg, the oracle)."""
    import re

    from lkm.kernel.load import module_name
    from testing.vm import with_dependencies

    from support import corpus_symbols, replay_capture

    tree = next(t for t in corpus_trees if t.name == "amd64-6.1")
    capture = replay_capture(driver)
    guest = (capture / "dmesg.txt").read_text(errors="replace")
    found = re.search(r" eth0: .*?((?:[0-9a-f]{2}:){5}[0-9a-f]{2})", guest)
    assert found is not None
    h = Harness([f"replay:{capture / 'trace.json'}"], symbols=corpus_symbols(), time_budget=600)
    for mod in with_dependencies(tree, [module_name(driver)]):
        h.load(str(mod))
    eth = h.netdev("eth0")
    assert (eth.mac, eth.ifindex, eth.up) == (found.group(1), 2, False)
    h.unload(module_name(driver))
    assert h.netdevs == []

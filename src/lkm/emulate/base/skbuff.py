"""Socket buffers and the paths a network driver's frames take (net/core/skbuff.c, dev.c,
net/ethernet/eth.c): allocating and freeing sk_buffs, growing and trimming their data,
eth_type_trans, handing received frames to the stack (netif_rx, netif_receive_skb,
napi_gro_receive), the transmit queue's wake-up, and opening, closing and transmitting on a
registered device as the core does (:func:`dev_open`, :func:`dev_close`, :func:`dev_xmit`).

The stack above the device is a recorder: a received frame (from its MAC header to its end)
is kept in :func:`received` and its sk_buff consumed; frames to send wait in a FIFO per device
(the default qdisc's order) and are handed to ndo_start_xmit while the queue is not stopped,
as the NET_TX softirq does (:func:`net_tx_action`).  Offsets: struct sk_buff,
skb_shared_info, net_device_ops, netdev_queue and net_device of Debian's 6.1 amd64 build,
measured with offsetof() against its headers."""

from __future__ import annotations

from dataclasses import dataclass

from lkm.emulate.base.net import ND
from lkm.emulate.base.netdev import NAPI, NETDEV
from lkm.emulate.base.registry import table
from lkm.emulate.kernel import BaseKernel, OutOfMemory, kfunc
from lkm.emulate.machine import EmulationFault, TrapCall

__all__ = [
    "DISABLE",
    "EADDRNOTAVAIL",
    "EBUSY",
    "ENODEV",
    "ETH_HLEN",
    "ETH_P_802_3_MIN",
    "GRO_NORMAL",
    "IFF_LIVE_ADDR_CHANGE",
    "IFF_UP",
    "IN_BUSY_POLL",
    "LINK_STATE_PRESENT",
    "LINK_STATE_START",
    "MISSED",
    "NAPI_DEV",
    "NAPI_POLL_CAP",
    "NDO",
    "NETDEV_FLAGS",
    "NETDEV_PRIV_FLAGS",
    "NETDEV_STATS",
    "NETDEV_TX_BUSY",
    "NETDEV_TX_OK",
    "NET_RX_SUCCESS",
    "NET_SKB_PAD",
    "NPSVC",
    "PACKET_BROADCAST",
    "PACKET_HOST",
    "PACKET_MULTICAST",
    "PACKET_OTHERHOST",
    "PREFER_BUSY_POLL",
    "QUEUE_STATE_DRV_XOFF",
    "SCHED",
    "SCHED_THREADED",
    "SHINFO_DATAREF",
    "SHINFO_SIZE",
    "SKB",
    "SKB_SIZE",
    "SMP_CACHE",
    "STATS64",
    "STATS64_SIZE",
    "THREADED",
    "TXQ_STATE",
    "Frame",
    "alloc_skb",
    "deliver",
    "dev_close",
    "dev_open",
    "dev_xmit",
    "free_skb",
    "get_stats",
    "live_skbs",
    "napi_schedule",
    "net_rx_action",
    "net_softirq",
    "net_tx_action",
    "queue_stopped",
    "queued",
    "received",
    "run_queue",
    "skb_for",
    "skb_reserve",
]


SKB = dict(
    dev=16, len=112, data_len=116, mac_len=120, pkt_type=128, network_header=184, mac_header=186,
    tail=188, end=192, protocol=180, head=200, data=208, truesize=216, users=220,
)  # fmt: skip
SKB_SIZE, SHINFO_SIZE, SHINFO_DATAREF = 232, 320, 32
NDO = dict(open=16, stop=24, start_xmit=32, set_rx_mode=64, validate_addr=80, get_stats64=160, get_stats=184)
NETDEV_STATS, NETDEV_FLAGS, NETDEV_PRIV_FLAGS = 304, 192, 200  # struct net_device: stats, flags, priv_flags
TXQ_STATE = 144  # struct netdev_queue: state
STATS64_SIZE = 200  # struct rtnl_link_stats64 (6.1: 25 counters)
STATS64 = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped",
           "tx_dropped", "multicast", "collisions")  # fmt: skip
SMP_CACHE, NET_SKB_PAD = 64, 64  # L1_CACHE_BYTES; NET_SKB_PAD = max(32, L1_CACHE_BYTES)
LINK_STATE_START, LINK_STATE_PRESENT, QUEUE_STATE_DRV_XOFF = 0, 1, 0
IFF_UP, IFF_LIVE_ADDR_CHANGE = 0x1, 0x100000
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
ETH_HLEN, ETH_P_802_3_MIN = 14, 0x600
NETDEV_TX_OK, NETDEV_TX_BUSY = 0x00, 0x10
NET_RX_SUCCESS, GRO_NORMAL = 0, 3
ENODEV, EADDRNOTAVAIL, EBUSY = 19, 99, 16


def _align(n: int, a: int = SMP_CACHE) -> int:
    return (n + a - 1) & ~(a - 1)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame the driver gave the stack: its device's name, the bytes from its MAC header on,
    skb->protocol (host order) and skb->pkt_type as eth_type_trans set them."""

    device: str
    data: bytes
    protocol: int
    pkt_type: int


def _live(k: BaseKernel) -> dict[object, object]:
    return table(k, "skb")


def alloc_skb(k: BaseKernel, size: int) -> int:
    """__alloc_skb(size): the sk_buff and its head (data aligned to the cache line, the
    skb_shared_info after it, dataref 1), one user, empty; NULL without memory."""
    m = k.machine
    data_size = _align(size)
    try:
        skb = k.alloc(SKB_SIZE)
        head = k.alloc(data_size + _align(SHINFO_SIZE), align=SMP_CACHE)
    except OutOfMemory as exc:
        k.log_oom(size, exc.reason)
        return 0
    m.write_word(skb + SKB["head"], head)
    m.write_word(skb + SKB["data"], head)
    m.write_int(skb + SKB["tail"], 4, 0)
    m.write_int(skb + SKB["end"], 4, data_size)
    m.write_int(skb + SKB["mac_header"], 2, 0xFFFF)
    m.write_int(skb + SKB["truesize"], 4, data_size + _align(SKB_SIZE) + _align(SHINFO_SIZE))
    m.write_int(skb + SKB["users"], 4, 1)
    m.write_int(head + data_size + SHINFO_DATAREF, 4, 1)
    _live(k)[skb] = k.current or ""
    return skb


def skb_reserve(k: BaseKernel, skb: int, n: int) -> None:
    m = k.machine
    m.write_word(skb + SKB["data"], m.read_word(skb + SKB["data"]) + n)
    m.write_int(skb + SKB["tail"], 4, m.read_int(skb + SKB["tail"], 4) + n)


def free_skb(k: BaseKernel, skb: int) -> None:
    """kfree_skb/consume_skb: one user less; the last one frees the buffer.  A buffer freed
    already is the kernel's refcount underflow warning."""
    if not skb:
        return
    m = k.machine
    if skb not in _live(k):
        k.state.printk(4, False, "refcount_t: underflow; use-after-free.\n", k.current)
        return
    users = m.read_int(skb + SKB["users"], 4)
    if users > 1:
        m.write_int(skb + SKB["users"], 4, users - 1)
        return
    del _live(k)[skb]
    k.free(m.read_word(skb + SKB["head"]))
    k.free(skb)


def _bug(k: BaseKernel, c: TrapCall, what: str, skb: int, n: int) -> EmulationFault:
    """skb_panic (skb_over_panic / skb_under_panic): the kernel's pr_emerg line (the caller's
    address as %px), then BUG()."""
    m = k.machine
    dev = m.read_word(skb + SKB["dev"])
    text = (f"skbuff: {what}: text:{k.return_address(c):016x} len:{m.read_int(skb + SKB['len'], 4)} put:{n} "
            f"head:{m.read_word(skb + SKB['head']):016x} data:{m.read_word(skb + SKB['data']):016x} "
            f"tail:{m.read_int(skb + SKB['tail'], 4):#x} end:{m.read_int(skb + SKB['end'], 4):#x} "
            f"dev:{k.cstring(dev, 16) if dev else '<NULL>'}\n")  # fmt: skip
    k.state.printk(0, False, text, k.current)
    return EmulationFault("bug", f"{what} (kernel BUG at net/core/skbuff.c)", report=text)


@kfunc("__alloc_skb", nargs=4)
def _alloc_skb(k: BaseKernel, c: TrapCall) -> int:
    """__alloc_skb(size, gfp, flags, node)."""
    return alloc_skb(k, c.arg(0) & 0xFFFFFFFF)


@kfunc("__netdev_alloc_skb", "__napi_alloc_skb", nargs=3)
def _netdev_alloc_skb(k: BaseKernel, c: TrapCall) -> int:
    """__netdev_alloc_skb(dev, len, gfp) / __napi_alloc_skb(napi, len, gfp): NET_SKB_PAD of
    headroom reserved (NET_IP_ALIGN is 0 on x86), skb->dev = dev (napi->dev)."""
    length = c.arg(1) & 0xFFFFFFFF
    skb = alloc_skb(k, length + NET_SKB_PAD)
    if skb:
        skb_reserve(k, skb, NET_SKB_PAD)
        dev = c.arg(0)
        if c.name == "__napi_alloc_skb":
            dev = k.machine.read_word(dev + NAPI_DEV) if dev else 0
        k.machine.write_word(skb + SKB["dev"], dev)
    return skb


NAPI_DEV = NAPI["dev"]


@kfunc("skb_put", nargs=2)
def _skb_put(k: BaseKernel, c: TrapCall) -> int:
    """skb_put(skb, len): the tail grows by len; past the end: skb_over_panic."""
    m = k.machine
    skb, n = c.arg(0), c.arg(1) & 0xFFFFFFFF
    tail = m.read_int(skb + SKB["tail"], 4)
    if tail + n > m.read_int(skb + SKB["end"], 4):
        raise _bug(k, c, "skb_over_panic", skb, n)
    m.write_int(skb + SKB["tail"], 4, tail + n)
    m.write_int(skb + SKB["len"], 4, m.read_int(skb + SKB["len"], 4) + n)
    return m.read_word(skb + SKB["head"]) + tail


@kfunc("skb_push", nargs=2)
def _skb_push(k: BaseKernel, c: TrapCall) -> int:
    """skb_push(skb, len): data moves back by len; before the head: skb_under_panic."""
    m = k.machine
    skb, n = c.arg(0), c.arg(1) & 0xFFFFFFFF
    data = m.read_word(skb + SKB["data"]) - n
    if data < m.read_word(skb + SKB["head"]):
        raise _bug(k, c, "skb_under_panic", skb, n)
    m.write_word(skb + SKB["data"], data)
    m.write_int(skb + SKB["len"], 4, m.read_int(skb + SKB["len"], 4) + n)
    return data


@kfunc("skb_pull", nargs=2)
def _skb_pull(k: BaseKernel, c: TrapCall) -> int:
    """skb_pull(skb, len): NULL when len > skb->len, else data moves on by len."""
    m = k.machine
    skb, n = c.arg(0), c.arg(1) & 0xFFFFFFFF
    length = m.read_int(skb + SKB["len"], 4)
    if n > length:
        return 0
    m.write_int(skb + SKB["len"], 4, length - n)
    data = m.read_word(skb + SKB["data"]) + n
    m.write_word(skb + SKB["data"], data)
    return data


@kfunc("skb_trim", nargs=2)
def _skb_trim(k: BaseKernel, c: TrapCall) -> int:
    """skb_trim(skb, len): a longer linear buffer is cut to len (tail = data + len)."""
    m = k.machine
    skb, n = c.arg(0), c.arg(1) & 0xFFFFFFFF
    if m.read_int(skb + SKB["len"], 4) > n:
        m.write_int(skb + SKB["len"], 4, n)
        data_off = m.read_word(skb + SKB["data"]) - m.read_word(skb + SKB["head"])
        m.write_int(skb + SKB["tail"], 4, data_off + n)
    return 0


@kfunc("kfree_skb_reason", "__dev_kfree_skb_any", "__dev_kfree_skb_irq", nargs=2)
def _kfree_skb_reason(k: BaseKernel, c: TrapCall) -> int:
    """kfree_skb_reason(skb, reason), __dev_kfree_skb_any / _irq(skb, reason): freed now (the
    irq variant's completion queue runs in the NET_TX softirq, which lkm runs at once)."""
    free_skb(k, c.arg(0))
    return 0


@kfunc("consume_skb", nargs=1)
def _consume_skb(k: BaseKernel, c: TrapCall) -> int:
    free_skb(k, c.arg(0))
    return 0


@kfunc("eth_type_trans", nargs=2)
def _eth_type_trans(k: BaseKernel, c: TrapCall) -> int:
    """eth_type_trans(skb, dev): skb->dev = dev, the MAC header at data, the 14-byte header
    pulled, pkt_type from the destination (broadcast, multicast, another host's); the
    protocol: the EtherType (big endian as stored), else ETH_P_802_3 for a raw 802.3 frame
    (0xFFFF) or ETH_P_802_2."""
    m = k.machine
    skb, dev = c.arg(0), c.arg(1)
    m.write_word(skb + SKB["dev"], dev)
    head, data = m.read_word(skb + SKB["head"]), m.read_word(skb + SKB["data"])
    m.write_int(skb + SKB["mac_header"], 2, data - head)
    length = m.read_int(skb + SKB["len"], 4)
    if length < ETH_HLEN:
        raise EmulationFault("bug", "eth_type_trans of a frame shorter than its header (skb_pull_inline)")
    m.write_int(skb + SKB["len"], 4, length - ETH_HLEN)
    m.write_word(skb + SKB["data"], data + ETH_HLEN)
    hdr = m.read(data, ETH_HLEN)
    dest = hdr[:6]
    if dest[0] & 1:
        pkt = PACKET_BROADCAST if dest == b"\xff" * 6 else PACKET_MULTICAST
    elif dest != m.read(m.read_word(dev + ND["dev_addr"]), 6):
        pkt = PACKET_OTHERHOST
    else:
        pkt = PACKET_HOST
    byte = m.read_int(skb + SKB["pkt_type"], 1)
    m.write_int(skb + SKB["pkt_type"], 1, (byte & ~7) | pkt)
    if int.from_bytes(hdr[12:14], "big") >= ETH_P_802_3_MIN:
        return int.from_bytes(hdr[12:14], "little")
    rest = m.read(data + ETH_HLEN, 2) if length >= ETH_HLEN + 2 else b""
    proto = 0x0001 if rest == b"\xff\xff" else 0x0004
    return int.from_bytes(proto.to_bytes(2, "big"), "little")


def received(k: BaseKernel) -> list[Frame]:
    """The frames drivers handed to the stack, oldest first."""
    got = table(k, "net-rx").setdefault("frames", [])
    assert isinstance(got, list)
    return got


def deliver(k: BaseKernel, skb: int) -> None:
    """The stack takes a received frame: recorded from its MAC header (or its data when none
    was set) to its end, then consumed."""
    m = k.machine
    head, data = m.read_word(skb + SKB["head"]), m.read_word(skb + SKB["data"])
    mac = m.read_int(skb + SKB["mac_header"], 2)
    start = head + mac if mac != 0xFFFF else data
    end = data + m.read_int(skb + SKB["len"], 4)
    dev = m.read_word(skb + SKB["dev"])
    name = k.cstring(dev, 16) if dev else ""
    proto = int.from_bytes(m.read_int(skb + SKB["protocol"], 2).to_bytes(2, "little"), "big")
    pkt_type = m.read_int(skb + SKB["pkt_type"], 1) & 7
    received(k).append(Frame(name, m.read(start, max(0, end - start)), proto, pkt_type))
    free_skb(k, skb)


@kfunc("netif_rx", "netif_receive_skb", "__netif_rx", "netif_receive_skb_core", nargs=1)
def _netif_rx(k: BaseKernel, c: TrapCall) -> int:
    deliver(k, c.arg(0))
    return NET_RX_SUCCESS


@kfunc("napi_gro_receive", nargs=2)
def _napi_gro_receive(k: BaseKernel, c: TrapCall) -> int:
    """napi_gro_receive(napi, skb): no GRO engine: the frame goes up as it is (GRO_NORMAL)."""
    deliver(k, c.arg(1))
    return GRO_NORMAL


def _txq(k: BaseKernel, dev: int) -> int:
    return k.machine.read_word(dev + ND["tx"])


def queue_stopped(k: BaseKernel, dev: int) -> bool:
    """netif_queue_stopped(dev): __QUEUE_STATE_DRV_XOFF of the first transmit queue."""
    return bool(k.machine.read_word(_txq(k, dev) + TXQ_STATE) >> QUEUE_STATE_DRV_XOFF & 1)


def _pending(k: BaseKernel) -> dict[object, object]:
    return table(k, "net-tx")


@kfunc("netif_tx_wake_queue", nargs=1)
def _netif_tx_wake_queue(k: BaseKernel, c: TrapCall) -> int:
    """netif_tx_wake_queue(txq): DRV_XOFF cleared; when it was set, the queue is scheduled
    (__netif_schedule: the NET_TX softirq runs it, :func:`net_tx_action`)."""
    m = k.machine
    txq = c.arg(0)
    state = m.read_word(txq + TXQ_STATE)
    m.write_word(txq + TXQ_STATE, state & ~(1 << QUEUE_STATE_DRV_XOFF))
    if state >> QUEUE_STATE_DRV_XOFF & 1:
        dev = m.read_word(txq)  # netdev_queue.dev
        sched = _pending(k).setdefault("scheduled", [])
        assert isinstance(sched, list)
        if dev not in sched:
            sched.append(dev)
    return 0


@kfunc("netif_device_attach", "netif_device_detach", nargs=1)
def _netif_device_attach(k: BaseKernel, c: TrapCall) -> int:
    """netif_device_attach / _detach(dev): __LINK_STATE_PRESENT set / cleared; a running
    device's queue is woken / stopped with it."""
    m = k.machine
    dev = c.arg(0)
    at = dev + NETDEV["state"]
    state = m.read_word(at)
    bit = 1 << LINK_STATE_PRESENT
    txq = _txq(k, dev)
    running = state & (1 << LINK_STATE_START)
    if c.name == "netif_device_attach":
        m.write_word(at, state | bit)
        if not state & bit and running:
            m.write_word(txq + TXQ_STATE, m.read_word(txq + TXQ_STATE) & ~1)
    else:
        m.write_word(at, state & ~bit)
        if state & bit and running:
            m.write_word(txq + TXQ_STATE, m.read_word(txq + TXQ_STATE) | 1)
    return 0


def _valid_ether(addr: bytes) -> bool:
    return not addr[0] & 1 and any(addr)


@kfunc("eth_validate_addr", nargs=1)
def _eth_validate_addr(k: BaseKernel, c: TrapCall) -> int:
    """eth_validate_addr(dev): -EADDRNOTAVAIL for a multicast or zero address."""
    m = k.machine
    return 0 if _valid_ether(m.read(m.read_word(c.arg(0) + ND["dev_addr"]), 6)) else -EADDRNOTAVAIL


@kfunc("eth_mac_addr", nargs=2)
def _eth_mac_addr(k: BaseKernel, c: TrapCall) -> int:
    """eth_mac_addr(dev, sockaddr): -EBUSY on a running device without
    IFF_LIVE_ADDR_CHANGE, -EADDRNOTAVAIL for an invalid address, else it becomes the
    device's (dev_addr and its shadow)."""
    m = k.machine
    dev = c.arg(0)
    if not m.read_int(dev + NETDEV_PRIV_FLAGS, 8) & IFF_LIVE_ADDR_CHANGE and _running(k, dev):
        return -EBUSY
    addr = m.read(c.arg(1) + 2, 6)  # struct sockaddr: sa_family, sa_data
    if not _valid_ether(addr):
        return -EADDRNOTAVAIL
    m.write(m.read_word(dev + ND["dev_addr"]), addr)
    m.write(dev + NETDEV["dev_addr_shadow"], addr)
    return 0


def _running(k: BaseKernel, dev: int) -> bool:
    return bool(k.machine.read_word(dev + NETDEV["state"]) & (1 << LINK_STATE_START))


def _module(k: BaseKernel, dev: int) -> str | None:
    regs = k.state.registrations
    return next((r.module for r in regs if r.kind == "netdev" and r.address == dev), k.current)


def _ndo(k: BaseKernel, dev: int, op: str) -> int:
    ops = k.machine.read_word(dev + NETDEV["ops"])
    return k.machine.read_word(ops + NDO[op]) if ops else 0


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def dev_open(k: BaseKernel, dev: int) -> int:
    """dev_open (__dev_open, net/core/dev.c): 0 when up already; -ENODEV when not present;
    __LINK_STATE_START, ndo_validate_addr, ndo_open; on success IFF_UP and ndo_set_rx_mode,
    on failure __LINK_STATE_START cleared again."""
    m = k.machine
    flags_at = dev + NETDEV_FLAGS
    if m.read_int(flags_at, 4) & IFF_UP:
        return 0
    state = m.read_word(dev + NETDEV["state"])
    if not state & (1 << LINK_STATE_PRESENT):
        return -ENODEV
    m.write_word(dev + NETDEV["state"], state | (1 << LINK_STATE_START))
    mod = _module(k, dev)
    ret = 0
    if fn := _ndo(k, dev, "validate_addr"):
        ret = _signed32(k.call(fn, (dev,), mod))
    if not ret and (fn := _ndo(k, dev, "open")):
        ret = _signed32(k.call(fn, (dev,), mod))
    if ret:
        m.write_word(dev + NETDEV["state"], m.read_word(dev + NETDEV["state"]) & ~(1 << LINK_STATE_START))
        return ret
    m.write_int(flags_at, 4, m.read_int(flags_at, 4) | IFF_UP)
    if fn := _ndo(k, dev, "set_rx_mode"):
        k.call(fn, (dev,), mod)
    return 0


def dev_close(k: BaseKernel, dev: int) -> None:
    """dev_close (__dev_close_many): nothing for a device that is down; else
    __LINK_STATE_START cleared, its queued frames dropped, ndo_stop, IFF_UP cleared."""
    m = k.machine
    flags_at = dev + NETDEV_FLAGS
    if not m.read_int(flags_at, 4) & IFF_UP:
        return
    m.write_word(dev + NETDEV["state"], m.read_word(dev + NETDEV["state"]) & ~(1 << LINK_STATE_START))
    queued = _pending(k).pop(dev, [])
    assert isinstance(queued, list)
    for skb in queued:
        free_skb(k, skb)
    if fn := _ndo(k, dev, "stop"):
        k.call(fn, (dev,), _module(k, dev))
    m.write_int(flags_at, 4, m.read_int(flags_at, 4) & ~IFF_UP)


@kfunc("dev_open", nargs=2)
def _dev_open(k: BaseKernel, c: TrapCall) -> int:
    return dev_open(k, c.arg(0))


@kfunc("dev_close", nargs=1)
def _dev_close(k: BaseKernel, c: TrapCall) -> int:
    dev_close(k, c.arg(0))
    return 0


def skb_for(k: BaseKernel, dev: int, frame: bytes) -> int:
    """An sk_buff holding ``frame`` as the stack hands it to a driver: headroom before it,
    skb->dev, the MAC header at data, skb->protocol from its EtherType."""
    m = k.machine
    skb = alloc_skb(k, NET_SKB_PAD + len(frame))
    if not skb:
        raise EmulationFault("oops", "out of memory for an sk_buff")
    skb_reserve(k, skb, NET_SKB_PAD)
    data = m.read_word(skb + SKB["data"])
    m.write(data, frame)
    m.write_int(skb + SKB["tail"], 4, m.read_int(skb + SKB["tail"], 4) + len(frame))
    m.write_int(skb + SKB["len"], 4, len(frame))
    m.write_word(skb + SKB["dev"], dev)
    m.write_int(skb + SKB["mac_header"], 2, data - m.read_word(skb + SKB["head"]))
    if len(frame) >= ETH_HLEN:
        m.write(skb + SKB["protocol"], frame[12:14])
    return skb


def dev_xmit(k: BaseKernel, dev: int, frame: bytes) -> int:
    """dev_queue_xmit of ``frame``: -ENETDOWN (100) on a device that is down, else queued and
    the queue run (:func:`net_tx_action`); how many frames the driver took."""
    if not k.machine.read_int(dev + NETDEV_FLAGS, 4) & IFF_UP:
        return -100
    queue = _pending(k).setdefault(dev, [])
    assert isinstance(queue, list)
    queue.append(skb_for(k, dev, frame))
    return run_queue(k, dev)


def run_queue(k: BaseKernel, dev: int) -> int:
    """qdisc_run: frames handed to ndo_start_xmit in order while the queue is not stopped;
    NETDEV_TX_BUSY puts the frame back at the head (dev_requeue_skb)."""
    queue = _pending(k).get(dev, [])
    assert isinstance(queue, list)
    sent = 0
    fn = _ndo(k, dev, "start_xmit")
    while queue and fn and not queue_stopped(k, dev) and _running(k, dev):
        skb = queue.pop(0)
        ret = k.call(fn, (skb, dev), _module(k, dev)) & 0xFFFFFFFF
        if ret == NETDEV_TX_BUSY:
            queue.insert(0, skb)
            break
        sent += 1
    return sent


def net_tx_action(k: BaseKernel) -> int:
    """The NET_TX softirq: each device whose queue was woken runs it."""
    sched = _pending(k).pop("scheduled", [])
    assert isinstance(sched, list)
    return sum(run_queue(k, dev) for dev in sched)


def queued(k: BaseKernel, dev: int) -> int:
    """Frames waiting in the device's queue."""
    q = _pending(k).get(dev, [])
    return len(q) if isinstance(q, list) else 0


def get_stats(k: BaseKernel, dev: int) -> dict[str, int]:
    """dev_get_stats: ndo_get_stats64 into a zeroed rtnl_link_stats64, else ndo_get_stats's
    struct net_device_stats, else dev->stats (the same first counters, unsigned long)."""
    m = k.machine
    mod = _module(k, dev)
    if fn := _ndo(k, dev, "get_stats64"):
        buf = k.alloc(STATS64_SIZE)
        try:
            k.call(fn, (dev, buf), mod)
            raw = m.read(buf, 8 * len(STATS64))
        finally:
            k.free(buf)
    else:
        at = dev + NETDEV_STATS
        if fn := _ndo(k, dev, "get_stats"):
            at = k.call(fn, (dev,), mod)
        raw = m.read(at, 8 * len(STATS64))
    return {n: int.from_bytes(raw[8 * i : 8 * i + 8], "little") for i, n in enumerate(STATS64)}


# -- NAPI (net/core/dev.c): scheduling, completion, the NET_RX softirq ------------------------------
SCHED, MISSED, DISABLE, NPSVC, IN_BUSY_POLL, PREFER_BUSY_POLL, THREADED, SCHED_THREADED = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 6, 1 << 7, 1 << 8, 1 << 9)  # fmt: skip
NAPI_POLL_CAP = 10000  # polls per softirq run (the kernel's netdev_budget defers the rest)


def _napi_state(k: BaseKernel, n: int) -> int:
    return k.machine.read_word(n + NAPI["state"])


def _set_napi_state(k: BaseKernel, n: int, v: int) -> None:
    k.machine.write_word(n + NAPI["state"], v)


def _poll_list(k: BaseKernel) -> list[int]:
    got = table(k, "napi").setdefault("poll_list", [])
    assert isinstance(got, list)
    return got


def napi_schedule(k: BaseKernel, n: int) -> None:
    """____napi_schedule: on this CPU's poll list (NET_RX raised: :func:`net_rx_action`)."""
    if n not in _poll_list(k):
        _poll_list(k).append(n)


@kfunc("napi_schedule_prep", nargs=1)
def _napi_schedule_prep(k: BaseKernel, c: TrapCall) -> int:
    """napi_schedule_prep(n): false while a disable is pending; else SCHED set, and when it
    was set already MISSED too (the running poll will run once more) and false."""
    n = c.arg(0)
    val = _napi_state(k, n)
    if val & DISABLE:
        return 0
    new = val | SCHED
    if val & SCHED:
        new |= MISSED
    _set_napi_state(k, n, new)
    return int(not val & SCHED)


@kfunc("__napi_schedule", "__napi_schedule_irqoff", nargs=1)
def _napi_schedule(k: BaseKernel, c: TrapCall) -> int:
    napi_schedule(k, c.arg(0))
    return 0


@kfunc("napi_complete_done", nargs=2)
def _napi_complete_done(k: BaseKernel, c: TrapCall) -> int:
    """napi_complete_done(n, work_done): false for a context not in service (NPSVC, busy
    poll); else off the poll list, SCHED (MISSED, SCHED_THREADED, PREFER_BUSY_POLL) cleared:
    true; with MISSED, SCHED stays, the context is scheduled again: false."""
    n = c.arg(0)
    val = _napi_state(k, n)
    if val & (NPSVC | IN_BUSY_POLL):
        return 0
    if n in _poll_list(k):
        _poll_list(k).remove(n)
    new = val & ~(MISSED | SCHED | SCHED_THREADED | PREFER_BUSY_POLL)
    if val & MISSED:
        new |= SCHED
    _set_napi_state(k, n, new)
    if val & MISSED:
        napi_schedule(k, n)
        return 0
    return 1


@kfunc("napi_enable", nargs=1)
def _napi_enable(k: BaseKernel, c: TrapCall) -> int:
    """napi_enable(n): SCHED and NPSVC cleared (BUG when SCHED was not set: enabled twice)."""
    n = c.arg(0)
    val = _napi_state(k, n)
    if not val & SCHED:
        k.state.printk(0, False, "kernel BUG at net/core/dev.c (napi_enable)\n", k.current)
        raise EmulationFault("bug", "napi_enable of a NAPI context that is enabled (BUG_ON in napi_enable)")
    _set_napi_state(k, n, val & ~(SCHED | NPSVC))
    return 0


@kfunc("napi_disable", nargs=1)
def _napi_disable(k: BaseKernel, c: TrapCall) -> int:
    """napi_disable(n): DISABLE set (no new scheduling), then it sleeps until SCHED and
    NPSVC are clear (a scheduled poll runs now and completes), takes both, clears THREADED,
    PREFER_BUSY_POLL and DISABLE.  A context that never completes (never enabled, or a poll
    that does not call napi_complete) sleeps the kernel forever: the call does not return."""
    n = c.arg(0)
    _set_napi_state(k, n, _napi_state(k, n) | DISABLE)
    for _ in range(NAPI_POLL_CAP):
        if n not in _poll_list(k):
            break
        _poll_one(k, n)
    val = _napi_state(k, n)
    if val & (SCHED | NPSVC):
        raise EmulationFault("timeout", "napi_disable() waits forever: the NAPI context stays scheduled")
    _set_napi_state(k, n, (val | SCHED | NPSVC) & ~(PREFER_BUSY_POLL | THREADED | DISABLE))
    return 0


def _poll_one(k: BaseKernel, n: int) -> int:
    """napi_poll: off the poll list, n->poll(n, weight) when SCHED; a poll that used its
    whole weight still owns the context: completed when a disable is pending, else polled
    again (to the list's tail) unless it rescheduled itself."""
    m = k.machine
    if n in _poll_list(k):
        _poll_list(k).remove(n)
    if not _napi_state(k, n) & SCHED:
        return 0
    weight = m.read_int(n + NAPI["weight"], 4)
    dev = m.read_word(n + NAPI["dev"])
    mod = _module(k, dev) if dev else k.current
    work = _signed32(k.call(m.read_word(n + NAPI["poll"]), (n, weight), mod))
    if work < weight or n in _poll_list(k):
        return work
    if _napi_state(k, n) & DISABLE:
        _set_napi_state(k, n, _napi_state(k, n) & ~(SCHED | MISSED))  # napi_complete
        return work
    _poll_list(k).append(n)
    return work


def net_rx_action(k: BaseKernel) -> int:
    """The NET_RX softirq: the scheduled NAPI contexts polled in order until none is left
    (at most NAPI_POLL_CAP polls, the rest stays scheduled); how many polls ran."""
    ran = 0
    while _poll_list(k) and ran < NAPI_POLL_CAP:
        _poll_one(k, _poll_list(k)[0])
        ran += 1
    return ran


def net_softirq(k: BaseKernel) -> int:
    """NET_RX then NET_TX, as an interrupt's exit runs them: how many polls and frames ran."""
    return net_rx_action(k) + net_tx_action(k)


def live_skbs(k: BaseKernel) -> int:
    """sk_buffs allocated and not freed yet."""
    return len(_live(k))

"""Network devices registering (net/core/dev.c, dev_addr_lists.c, sched/sch_generic.c): what
an Ethernet driver's probe() and remove() call between alloc_etherdev() and free_netdev().

register_netdev names the device as dev_alloc_name() does (the lowest free ``eth%d``), gives
it an ifindex (1 is the loopback device's) and marks it registered.  Offsets: struct
net_device of Debian's 6.1 amd64 build, measured with offsetof() against its headers (as
scripts/device_offsets.py does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from lkm.emulate.base.net import ND
from lkm.emulate.kernel import FUNCTIONS, RECORD_ONLY, BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.state import Registration

__all__ = [
    "EINVAL",
    "ENFILE",
    "IFNAMSIZ",
    "LINK_STATE_NOCARRIER",
    "MAX_ADDR_LEN",
    "NETDEV",
    "NETREG_REGISTERED",
    "NETREG_UNINITIALIZED",
    "NETREG_UNREGISTERED",
    "provide",
    "register",
]


NETDEV = dict(state=56, ops=208, ifindex=216, reg_state=1256, perm_addr=572, dev=1336, dev_addr_shadow=2376)
NETREG_UNINITIALIZED, NETREG_REGISTERED, NETREG_UNREGISTERED = 0, 1, 3
LINK_STATE_PRESENT, LINK_STATE_NOCARRIER = 1, 2  # __LINK_STATE_*, bits of dev->state
IFNAMSIZ, MAX_ADDR_LEN = 16, 32
ENFILE, EINVAL = 23, 22

_F = TypeVar("_F", bound=Callable[..., Any])


def provide(*names: str, nargs: int) -> Callable[[_F], _F]:
    """kfunc for the names no other subsystem file implements (imported after them): a fuller
    implementation elsewhere is kept, this one is the fallback."""

    def register(fn: _F) -> _F:
        todo = [n for n in names if n not in FUNCTIONS or FUNCTIONS[n].fn.__module__ in RECORD_ONLY]
        if todo:
            kfunc(*todo, nargs=nargs)(fn)
        return fn

    return register


def _netdevs(k: BaseKernel) -> list[Registration]:
    return [r for r in k.state.registrations if r.kind == "netdev"]


def _alloc_name(k: BaseKernel, pattern: str) -> str | None:
    """dev_alloc_name(): the lowest unit number not taken by a registered device's name."""
    taken = {r.name for r in _netdevs(k)}
    return next(
        (
            pattern.replace("%d", str(i), 1)
            for i in range(32768)
            if pattern.replace("%d", str(i), 1) not in taken
        ),
        None,
    )


def register(k: BaseKernel, dev: int) -> int:
    """register_netdevice(dev): its name made valid (an ``%d`` pattern allocated), an ifindex,
    the permanent address from dev_addr when unset, NETREG_REGISTERED, __LINK_STATE_PRESENT.
    The driver's ndo_init is not called (nor ndo_uninit at unregistering): lkm's struct
    net_device holds only what alloc_netdev and ether_setup set, which is not enough for every
    ndo_init (bonding's)."""
    m = k.machine
    name = k.cstring(dev, IFNAMSIZ)
    if "%" in name:
        if name.count("%") != 1 or "%d" not in name:
            return -EINVAL
        got = _alloc_name(k, name)
        if got is None or len(got) >= IFNAMSIZ:
            return -ENFILE
        name = got
        m.write(dev, name.encode() + b"\0")
    elif not name or any(r.name == name for r in _netdevs(k)):
        return -EINVAL if not name else -17  # -EEXIST
    index = 2 + len(_netdevs(k))  # the loopback device is 1
    m.write_int(dev + NETDEV["ifindex"], 4, index)
    addr_len = m.read_int(dev + ND["addr_len"], 1)
    addr = m.read_word(dev + ND["dev_addr"])
    perm = dev + NETDEV["perm_addr"]
    if addr and addr_len and not any(m.read(perm, addr_len)):
        m.write(perm, m.read(addr, min(addr_len, MAX_ADDR_LEN)))
    m.write_int(dev + NETDEV["reg_state"], 1, NETREG_REGISTERED)
    m.write_word(dev + NETDEV["state"], m.read_word(dev + NETDEV["state"]) | 1 << LINK_STATE_PRESENT)
    k.state.registrations.append(Registration("netdev", name, dev, k.current))
    return 0


@provide("register_netdev", "register_netdevice", nargs=1)
def _register_netdev(k: BaseKernel, c: TrapCall) -> int:
    return register(k, c.arg(0)) & k.arch.mask


@provide("unregister_netdev", "unregister_netdevice_queue", nargs=2)
def _unregister_netdev(k: BaseKernel, c: TrapCall) -> int:
    """unregister_netdevice: a device that is up closed first (dev_close_many: ndo_stop),
    then the registration gone, NETREG_UNREGISTERED."""
    from lkm.emulate.base.skbuff import dev_close

    m = k.machine
    dev = c.arg(0)
    if m.read_int(dev + NETDEV["reg_state"], 1) != NETREG_REGISTERED:
        return 0
    dev_close(k, dev)
    k.state.registrations = [
        r for r in k.state.registrations if not (r.kind == "netdev" and r.address == dev)
    ]
    m.write_int(dev + NETDEV["reg_state"], 1, NETREG_UNREGISTERED)
    return 0


@provide("dev_addr_mod", nargs=4)
def _dev_addr_mod(k: BaseKernel, c: TrapCall) -> int:
    """dev_addr_mod(dev, offset, addr, len): the bytes into dev->dev_addr and its shadow."""
    m = k.machine
    dev, off, src, n = c.arg(0), c.arg(1) & 0xFFFFFFFF, c.arg(2), c.arg(3)
    if off + n > MAX_ADDR_LEN:
        return 0
    data = m.read(src, n)
    m.write(m.read_word(dev + ND["dev_addr"]) + off, data)
    m.write(dev + NETDEV["dev_addr_shadow"] + off, data)
    return 0


@provide("netif_carrier_off", "netif_carrier_on", nargs=1)
def _netif_carrier(k: BaseKernel, c: TrapCall) -> int:
    """The carrier: __LINK_STATE_NOCARRIER set (off) or cleared (on) in dev->state."""
    m = k.machine
    at = c.arg(0) + NETDEV["state"]
    state = m.read_word(at)
    bit = 1 << LINK_STATE_NOCARRIER
    m.write_word(at, state | bit if c.name == "netif_carrier_off" else state & ~bit)
    return 0


NAPI = dict(poll_list=0, state=16, weight=24, poll=40, dev=56)  # struct napi_struct (6.1 amd64)
NAPI_STATE_SCHED, NAPI_STATE_NPSVC = 0, 3
NAPI_POLL_WEIGHT = 64


@provide("netif_napi_add_weight", nargs=4)
def _netif_napi_add_weight(k: BaseKernel, c: TrapCall) -> int:
    """netif_napi_add_weight(dev, napi, poll, weight): the context's poll function, weight
    (above NAPI_POLL_WEIGHT: the kernel's error line, kept) and device; its poll_list empty;
    NAPI_STATE_SCHED and NPSVC set: disabled until napi_enable."""
    m = k.machine
    dev, napi, poll, weight = c.arg(0), c.arg(1), c.arg(2), c.arg(3) & 0xFFFFFFFF
    if weight > NAPI_POLL_WEIGHT:
        text = f"netif_napi_add_weight() called with weight {weight}\n"
        k.state.printk(3, False, text, k.current)
    m.write_word(napi + NAPI["poll_list"], napi)
    m.write_word(napi + NAPI["poll_list"] + 8, napi)
    m.write_word(napi + NAPI["poll"], poll)
    m.write_int(napi + NAPI["weight"], 4, weight)
    m.write_word(napi + NAPI["dev"], dev)
    m.write_word(napi + NAPI["state"], 1 << NAPI_STATE_SCHED | 1 << NAPI_STATE_NPSVC)
    k.state.registrations.append(Registration("napi", f"{poll:#x}", napi, k.current))
    return 0


@provide("__netif_napi_del", "netif_napi_del", nargs=1)
def _netif_napi_del(k: BaseKernel, c: TrapCall) -> int:
    k.state.registrations = [
        r for r in k.state.registrations if not (r.kind == "napi" and r.address == c.arg(0))
    ]
    return 0

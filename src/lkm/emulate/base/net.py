"""Networking registrations: socket families (net/socket.c), protocols (net/core/sock.c),
generic netlink families (net/netlink/genetlink.c), kernel netlink sockets
(net/netlink/af_netlink.c), rtnetlink link kinds and handlers (net/core/rtnetlink.c),
packet handlers (net/core/dev.c), qdiscs / classifiers / actions (net/sched), netfilter hooks
and sockopts (net/netfilter), pernet operations (net/core/net_namespace.c), IP protocol
handlers (net/ipv4/protocol.c, net/ipv6/protocol.c), fragment queues (net/ipv4/inet_fragment.c)
and sysctl tables (kernel/sysctl.c, net/sysctl_net.c).

Each keeps what the kernel keeps to answer a second registration or an unregistration as it
does: a family or link kind or qdisc id taken is -EEXIST, a socket family >= NPROTO is
-ENOBUFS, genl families get the ids the kernel hands out from GENL_START_ALLOC.  Offsets: 6.1
amd64 (offsetof() against its headers)."""

from __future__ import annotations

import zlib

from lkm.emulate.base.registry import (
    EBUSY,
    EEXIST,
    ENOENT,
    name_at,
    ptr_name,
    register,
    table,
    unregister,
    zalloc,
)
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "AF_INET",
    "AF_INET6",
    "BUILTIN_TCP_CA",
    "ENOBUFS",
    "GENL_ID",
    "GENL_NAME",
    "GENL_START_ALLOC",
    "IFF_BROADCAST",
    "IFF_MULTICAST",
    "INET_HASH_EHASH_LOCKS",
    "INET_HASH_EHASH_LOCKS_MASK",
    "INET_HASH_EHASH_MASK",
    "INET_HASH_LHASH2",
    "INET_HASH_LHASH2_MASK",
    "INET_LHTABLE_SIZE",
    "LHASH2_BUCKET",
    "LISTENING_NULLS_BASE",
    "ND",
    "ND_SIZE",
    "NFPROTO_NUMPROTO",
    "NPROTO",
    "PERNET_ID",
    "PERNET_SIZE",
    "PROTO_NAME",
    "PROTO_OBJ_SIZE",
    "PROTO_SLAB",
    "QDISC_ID",
    "RTNL_HANDLER_SIZE",
    "RTNL_KIND",
    "RXQ_SIZE",
    "SOCKOPT_GET",
    "SOCKOPT_PF",
    "SOCKOPT_SET",
    "SOCK_DIAG_FAMILY",
    "SOCK_SIZE",
    "TCP_CA_COND_AVOID",
    "TCP_CA_CONG_CONTROL",
    "TCP_CA_FLAGS",
    "TCP_CA_KEY",
    "TCP_CA_NAME",
    "TCP_CA_SSTHRESH",
    "TCP_CA_UNDO",
    "TXQ_SIZE",
    "alloc_netdev",
]


NPROTO = 46  # AF_MAX (6.1)
ENOBUFS = 105
GENL_START_ALLOC = 19  # GENL_ID_PMCRAID + 1
GENL_NAME, GENL_ID = 8, 0
RTNL_KIND = 16  # struct rtnl_link_ops: list, kind
PROTO_NAME, PROTO_SLAB, PROTO_OBJ_SIZE = 408, 344, 352
QDISC_ID = 16  # struct Qdisc_ops / tcf_proto_ops / tc_action_ops: char id/kind[16] at 16
PERNET_ID, PERNET_SIZE = 56, 64
SOCKOPT_PF, SOCKOPT_SET, SOCKOPT_GET = 16, 20, 40  # struct nf_sockopt_ops: pf, set_optmin/max, get_optmin/max
SOCK_SIZE = 0x400


# -- socket families and protocols -------------------------------------------------------------
@kfunc("sock_register", nargs=1)
def _sock_register(k: BaseKernel, c: TrapCall) -> int:
    """sock_register(ops): -ENOBUFS for family >= NPROTO, -EEXIST when taken."""
    fam = k.machine.read_int(c.arg(0), 4)
    if fam >= NPROTO:
        k.state.printk(2, False, f"protocol {fam} >= NPROTO({NPROTO})\n", None)
        return -ENOBUFS
    fams = table(k, "net-family")
    if fam in fams.values():
        return -EEXIST
    err = register(k, "net-family", c.arg(0), str(fam))
    if err == 0:
        fams[c.arg(0)] = fam
        k.state.printk(6, False, f"NET: Registered PF_{fam} protocol family\n", None)
    return err


@kfunc("sock_unregister", nargs=1)
def _sock_unregister(k: BaseKernel, c: TrapCall) -> int:
    """sock_unregister(family)."""
    fam = c.arg(0) & 0xFFFFFFFF
    fams = table(k, "net-family")
    for ops, f in list(fams.items()):
        if f == fam and isinstance(ops, int):
            del fams[ops]
            unregister(k, "net-family", ops)
            k.state.printk(6, False, f"NET: Unregistered PF_{fam} protocol family\n", None)
    return 0


@kfunc("sock_is_registered", nargs=1)
def _sock_is_registered(k: BaseKernel, c: TrapCall) -> int:
    return int((c.arg(0) & 0xFFFFFFFF) in table(k, "net-family").values())


@kfunc("proto_register", nargs=2)
def _proto_register(k: BaseKernel, c: TrapCall) -> int:
    """proto_register(prot, alloc_slab): with alloc_slab, prot->slab = a cache of obj_size
    objects (named by prot->name); the protocol is listed."""
    prot = c.arg(0)
    name = name_at(k, prot + PROTO_NAME, 32)
    if c.arg(1) & 0xFF:
        cache = zalloc(k, 0x100)
        if not cache:
            return -12
        k.machine.write_word(cache, k.machine.read_int(prot + PROTO_OBJ_SIZE, 4))  # lkm's cache: size at 0
        k.machine.write_word(prot + PROTO_SLAB, cache)
    return register(k, "protocol", prot, name)


@kfunc("proto_unregister", nargs=1)
def _proto_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "protocol", c.arg(0))
    return 0


# -- generic netlink ---------------------------------------------------------------------------
@kfunc("genl_register_family", nargs=1)
def _genl_register_family(k: BaseKernel, c: TrapCall) -> int:
    """genl_register_family(family): -EEXIST for a name taken; family->id = the next id
    from GENL_START_ALLOC (the kernel's own families hold the first ones: nlctrl 16, the
    boot's others are not counted)."""
    fam = c.arg(0)
    name = name_at(k, fam + GENL_NAME, 16)
    ids = table(k, "genl-ids")
    err = register(k, "genl", fam, name, by_name=True)
    if err:
        return err
    used = set(ids.values())
    fid = next(i for i in range(GENL_START_ALLOC, 1 << 16) if i not in used)
    ids[fam] = fid
    k.machine.write_int(fam + GENL_ID, 4, fid)
    return 0


@kfunc("genl_unregister_family", nargs=1)
def _genl_unregister_family(k: BaseKernel, c: TrapCall) -> int:
    """-ENOENT for a family not registered."""
    if not unregister(k, "genl", c.arg(0)):
        return -ENOENT
    table(k, "genl-ids").pop(c.arg(0), None)
    return 0


# -- kernel netlink sockets and rtnetlink -----------------------------------------------------
@kfunc("__netlink_kernel_create", nargs=4)
def _netlink_kernel_create(k: BaseKernel, c: TrapCall) -> int:
    """__netlink_kernel_create(net, unit, module, cfg): the kernel socket of protocol
    ``unit`` (< MAX_LINKS 32, else NULL); a unit another kernel socket holds is NULL."""
    unit = c.arg(1) & 0xFFFFFFFF
    if unit >= 32:
        return 0
    units = table(k, "netlink-units")
    if unit in units.values():
        return 0
    sk = zalloc(k, SOCK_SIZE)
    if sk:
        units[sk] = unit
        register(k, "netlink", sk, str(unit))
    return sk


@kfunc("netlink_kernel_release", nargs=1)
def _netlink_kernel_release(k: BaseKernel, c: TrapCall) -> int:
    table(k, "netlink-units").pop(c.arg(0), None)
    unregister(k, "netlink", c.arg(0))
    return 0


@kfunc("rtnl_link_register", "__rtnl_link_register", nargs=1)
def _rtnl_link_register(k: BaseKernel, c: TrapCall) -> int:
    """rtnl_link_register(ops): -EEXIST for a kind taken."""
    return register(k, "rtnl-link", c.arg(0), ptr_name(k, c.arg(0), RTNL_KIND), by_name=True)


@kfunc("rtnl_link_unregister", "__rtnl_link_unregister", nargs=1)
def _rtnl_link_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "rtnl-link", c.arg(0))
    return 0


@kfunc("rtnl_register_module", nargs=6)
def _rtnl_register_module(k: BaseKernel, c: TrapCall) -> int:
    """rtnl_register_module(owner, protocol, msgtype, doit, dumpit, flags): the handler is
    set (replacing an earlier one, as rtnl_register_internal does)."""
    table(k, "rtnl-handlers")[(c.arg(1) & 0xFF, c.arg(2) & 0xFFFF)] = (c.arg(3), c.arg(4), k.current)
    return 0


RTNL_HANDLER_SIZE = 40  # struct rtnl_msg_handler: owner, protocol, msgtype, doit, dumpit, flags


@kfunc("__rtnl_register_many", "__rtnl_unregister_many", nargs=2)
def _rtnl_register_many(k: BaseKernel, c: TrapCall) -> int:
    """__rtnl_register_many(handlers, n): each handler registered as rtnl_register_module
    does (int protocol at 8, msgtype at 12, doit, dumpit); unregister: each one removed."""
    m = k.machine
    tab = table(k, "rtnl-handlers")
    for i in range(min(c.arg(1) & 0xFFFFFFFF, 4096)):
        h = c.arg(0) + i * RTNL_HANDLER_SIZE
        key = (m.read_int(h + 8, 4) & 0xFF, m.read_int(h + 12, 4) & 0xFFFF)
        if c.name == "__rtnl_register_many":
            tab[key] = (m.read_word(h + 16), m.read_word(h + 24), k.current)
        else:
            tab.pop(key, None)
    return 0


@kfunc("rtnl_af_register", "rtnl_af_unregister", nargs=1)
def _rtnl_af_register(k: BaseKernel, c: TrapCall) -> int:
    """rtnl_af_register(ops) / rtnl_af_unregister(ops): the address family's link ops are
    on / off rtnl_af_ops (void in 6.1)."""
    if c.name == "rtnl_af_register":
        register(k, "rtnl-af", c.arg(0))
    else:
        unregister(k, "rtnl-af", c.arg(0))
    return 0


@kfunc("rtnl_unregister", nargs=2)
def _rtnl_unregister(k: BaseKernel, c: TrapCall) -> int:
    """rtnl_unregister(protocol, msgtype): -ENOENT when no handler is set."""
    got = table(k, "rtnl-handlers").pop((c.arg(0) & 0xFF, c.arg(1) & 0xFFFF), None)
    return 0 if got is not None else -ENOENT


@kfunc("rtnl_unregister_all", nargs=1)
def _rtnl_unregister_all(k: BaseKernel, c: TrapCall) -> int:
    tab = table(k, "rtnl-handlers")
    for key in [x for x in tab if isinstance(x, tuple) and x[0] == c.arg(0) & 0xFF]:
        del tab[key]
    return 0


# -- packet handlers, traffic control ---------------------------------------------------------------
@kfunc("dev_add_pack", "dev_add_offload", "__dev_remove_pack", "dev_remove_pack", "dev_remove_offload",
       nargs=1)  # fmt: skip
def _dev_pack(k: BaseKernel, c: TrapCall) -> int:
    """dev_add_pack(pt) / dev_remove_pack(pt): the packet handler is listed / delisted
    (removing one not listed prints the kernel's "dev_remove_pack: %p not found")."""
    kind = "offload" if "offload" in c.name else "packet-type"
    if "add" in c.name:
        register(k, kind, c.arg(0))
    elif not unregister(k, kind, c.arg(0)):
        k.state.printk(4, False, f"{c.name.lstrip('_')}: {c.arg(0):016x} not found\n", None)
    return 0


def _named_ops(kind: str, off: int) -> None:
    @kfunc(f"register_{kind}" if kind != "tcf_action" else "tcf_register_action", nargs=2)
    def _reg(k: BaseKernel, c: TrapCall) -> int:
        name = name_at(k, c.arg(0) + off, 16)
        return register(k, kind, c.arg(0), name, by_name=True)

    @kfunc(f"unregister_{kind}" if kind != "tcf_action" else "tcf_unregister_action", nargs=2)
    def _unreg(k: BaseKernel, c: TrapCall) -> int:
        return 0 if unregister(k, kind, c.arg(0)) else -ENOENT


for _kind in ("qdisc", "tcf_proto_ops", "tcf_action"):
    _named_ops(_kind, QDISC_ID)


@kfunc("tcf_em_register", nargs=1)
def _tcf_em_register(k: BaseKernel, c: TrapCall) -> int:
    """tcf_em_register(ops): struct tcf_ematch_ops {int kind; ...}: -EEXIST when the kind is taken
    (-EINVAL without a match function: not checked)."""
    kind = k.machine.read_int(c.arg(0), 4)
    return register(k, "tcf-ematch", c.arg(0), str(kind), by_name=True)


@kfunc("tcf_em_unregister", nargs=1)
def _tcf_em_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "tcf-ematch", c.arg(0))
    return 0


# -- netfilter ---------------------------------------------------------------------------------------
@kfunc("nf_register_net_hooks", "nf_register_net_hook", nargs=3)
def _nf_register_net_hooks(k: BaseKernel, c: TrapCall) -> int:
    """nf_register_net_hooks(net, reg, n): the hooks are attached (to init_net)."""
    n = 1 if c.name == "nf_register_net_hook" else c.arg(2) & 0xFFFFFFFF
    hooks = table(k, "nf-hooks")
    for i in range(n):
        hooks[(c.arg(0), c.arg(1) + i * 48)] = k.current  # struct nf_hook_ops is 48 bytes
    return 0


@kfunc("nf_unregister_net_hooks", "nf_unregister_net_hook", nargs=3)
def _nf_unregister_net_hooks(k: BaseKernel, c: TrapCall) -> int:
    n = 1 if c.name == "nf_unregister_net_hook" else c.arg(2) & 0xFFFFFFFF
    hooks = table(k, "nf-hooks")
    for i in range(n):
        hooks.pop((c.arg(0), c.arg(1) + i * 48), None)
    return 0


@kfunc("nf_register_sockopt", nargs=1)
def _nf_register_sockopt(k: BaseKernel, c: TrapCall) -> int:
    """nf_register_sockopt(reg): -EBUSY when its set or get range overlaps another's of the
    same protocol family (net/netfilter/nf_sockopt.c)."""
    m = k.machine
    reg = c.arg(0)
    pf = m.read_int(reg + SOCKOPT_PF, 1)
    mine = [(m.read_int(reg + o, 4), m.read_int(reg + o + 4, 4)) for o in (SOCKOPT_SET, SOCKOPT_GET)]
    ops = table(k, "nf-sockopt")
    for v in ops.values():
        if not isinstance(v, tuple):
            continue
        opf, theirs = v
        if opf == pf and any(a < d and c2 < b for (a, b), (c2, d) in zip(mine, theirs, strict=True)):
            return -EBUSY
    ops[reg] = (pf, mine)
    register(k, "nf-sockopt", reg, str(pf))
    return 0


@kfunc("nf_unregister_sockopt", nargs=1)
def _nf_unregister_sockopt(k: BaseKernel, c: TrapCall) -> int:
    table(k, "nf-sockopt").pop(c.arg(0), None)
    unregister(k, "nf-sockopt", c.arg(0))
    return 0


# -- pernet operations -------------------------------------------------------------------------------
@kfunc("register_pernet_subsys", "register_pernet_device", nargs=1)
def _register_pernet(k: BaseKernel, c: TrapCall) -> int:
    """register_pernet_subsys(ops): with ops->id, *id = the next net_generic id (the
    kernel's own take the first ones: MIN_PERNET_OPS_ID is 1); listed.  ops->init runs for
    each network namespace: this kernel's init_net is not modelled, so it is not called."""
    m = k.machine
    ops = c.arg(0)
    idp = m.read_word(ops + PERNET_ID)
    if idp:
        ids = table(k, "pernet-ids")
        nid = max([v for v in ids.values() if isinstance(v, int)], default=64) + 1
        ids[ops] = nid
        m.write_int(idp, 4, nid)
    return register(k, "pernet", ops)


@kfunc("unregister_pernet_subsys", "unregister_pernet_device", nargs=1)
def _unregister_pernet(k: BaseKernel, c: TrapCall) -> int:
    table(k, "pernet-ids").pop(c.arg(0), None)
    unregister(k, "pernet", c.arg(0))
    return 0


# -- IP protocol handlers ----------------------------------------------------------------------------
@kfunc("inet_add_protocol", "inet6_add_protocol", "inet_add_offload", "inet6_add_offload", nargs=2)
def _inet_add_protocol(k: BaseKernel, c: TrapCall) -> int:
    """inet_add_protocol(prot, num): 0, or -1 when the slot is taken (cmpxchg)."""
    slots = table(k, c.name.replace("_add_", "-"))
    num = c.arg(1) & 0xFF
    if num in slots:
        return -1
    slots[num] = c.arg(0)
    return 0


@kfunc("inet_del_protocol", "inet6_del_protocol", "inet_del_offload", "inet6_del_offload", nargs=2)
def _inet_del_protocol(k: BaseKernel, c: TrapCall) -> int:
    slots = table(k, c.name.replace("_del_", "-"))
    num = c.arg(1) & 0xFF
    if slots.get(num) != c.arg(0):
        return -1
    del slots[num]
    return 0


@kfunc("inet_frags_init", nargs=1)
def _inet_frags_init(k: BaseKernel, c: TrapCall) -> int:
    """inet_frags_init(f): f->frags_cachep = a cache of f->qsize objects (-ENOMEM without).
    struct inet_frags (6.1): qsize at 0, ..., frags_cachep at 48, cache_name at 56."""
    m = k.machine
    cache = zalloc(k, 0x100)
    if not cache:
        return -12
    m.write_word(cache, m.read_int(c.arg(0), 4))
    m.write_word(c.arg(0) + 48, cache)
    return 0


@kfunc("inet_frags_fini", nargs=1)
def _inet_frags_fini(k: BaseKernel, c: TrapCall) -> int:
    k.free(k.machine.read_word(c.arg(0) + 48))
    return 0


# -- sysctl ------------------------------------------------------------------------------------------
@kfunc("register_sysctl", "register_net_sysctl", "register_sysctl_table", "register_sysctl_paths", nargs=2)
def _register_sysctl(k: BaseKernel, c: TrapCall) -> int:
    """register_sysctl(path, table) / register_net_sysctl(net, path, table): a
    ctl_table_header; the table is listed under its path."""
    path = "" if c.name in ("register_sysctl_table", "register_sysctl_paths") else name_at(
        k, c.arg(1 if c.name == "register_net_sysctl" else 0))  # fmt: skip
    header = zalloc(k, 0x80)
    if header:
        register(k, "sysctl", header, path)
    return header


@kfunc("unregister_sysctl_table", "unregister_net_sysctl_table", nargs=1)
def _unregister_sysctl(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(0):
        unregister(k, "sysctl", c.arg(0))
    return 0


@kfunc("register_btf_kfunc_id_set", nargs=2)
def _register_btf_kfunc_id_set(k: BaseKernel, c: TrapCall) -> int:
    """register_btf_kfunc_id_set(prog_type, set): Debian's 6.1 has BTF: the set is
    recorded (kernel/bpf/btf.c)."""
    return register(k, "btf-kfunc-set", c.arg(1), str(c.arg(0) & 0xFFFFFFFF)) if c.arg(1) not in table(
        k, "btf-kfunc-set") else 0  # fmt: skip


# -- network devices (net/core/dev.c, net/ethernet/eth.c) --------------------------------------------
ND_SIZE = 2432  # sizeof(struct net_device); netdev_priv is at ALIGN(2432, NETDEV_ALIGN 32)
ND = dict(
    flags=192, hard_header_len=222, mtu=224, min_mtu=288, max_mtu=292, type=296, min_header_len=298,
    name_assign_type=299, header_ops=560, addr_len=605, dev_addr=816, rx=824, num_rx_queues=832,
    broadcast=904, tx=960, num_tx_queues=968, real_num_tx_queues=972, tx_queue_len=984,
)  # fmt: skip
TXQ_SIZE, RXQ_SIZE = 320, 192
IFF_BROADCAST, IFF_MULTICAST = 0x2, 0x1000


def alloc_netdev(k: BaseKernel, priv: int, name: bytes, assign: int, setup: int, txqs: int, rxqs: int) -> int:
    """alloc_netdev_mqs: the device and its private area zeroed, its queues (each pointing
    back at it), name and address buffer set, then setup(dev); NULL for zero queues (with
    the kernel's message)."""
    if txqs < 1 or rxqs < 1:
        what = "TX" if txqs < 1 else "RX"
        k.state.printk(3, False, f"alloc_netdev: Unable to allocate device with zero {what} queues\n", None)
        return 0
    m = k.machine
    dev = zalloc(k, ND_SIZE + priv)
    tx, rx, addr = zalloc(k, TXQ_SIZE * txqs), zalloc(k, RXQ_SIZE * rxqs), zalloc(k, 32)
    if not (dev and tx and rx and addr):
        return 0
    m.write(dev, name[:15] + b"\0")
    m.write_int(dev + ND["name_assign_type"], 1, assign)
    m.write_word(dev + ND["tx"], tx)
    m.write_word(dev + ND["rx"], rx)
    m.write_word(dev + ND["dev_addr"], addr)
    m.write_int(dev + ND["num_tx_queues"], 4, txqs)
    m.write_int(dev + ND["real_num_tx_queues"], 4, txqs)
    m.write_int(dev + ND["num_rx_queues"], 4, rxqs)
    for i in range(txqs):
        m.write_word(tx + i * TXQ_SIZE, dev)  # netdev_init_one_queue: queue->dev
    register(k, "netdev-alloc", dev, name.decode("latin-1"))
    if setup:
        k.call(setup, (dev,), k.current)
    return dev


@kfunc("alloc_netdev_mqs", nargs=6)
def _alloc_netdev_mqs(k: BaseKernel, c: TrapCall) -> int:
    """alloc_netdev_mqs(sizeof_priv, name, name_assign_type, setup, txqs, rxqs)."""
    name = k.machine.read_cstr(c.arg(1), 16) or b""
    return alloc_netdev(k, c.arg(0) & 0xFFFFFFFF, name, c.arg(2) & 0xFF, c.arg(3), c.arg(4) & 0xFFFFFFFF,
                        c.arg(5) & 0xFFFFFFFF)  # fmt: skip


@kfunc("alloc_etherdev_mqs", nargs=3)
def _alloc_etherdev_mqs(k: BaseKernel, c: TrapCall) -> int:
    """alloc_etherdev_mqs(sizeof_priv, txqs, rxqs): "eth%d", NET_NAME_ENUM, ether_setup."""
    setup = k.add_function("ether_setup")
    return alloc_netdev(
        k, c.arg(0) & 0xFFFFFFFF, b"eth%d", 1, setup, c.arg(1) & 0xFFFFFFFF, c.arg(2) & 0xFFFFFFFF
    )


@kfunc("ether_setup", nargs=1)
def _ether_setup(k: BaseKernel, c: TrapCall) -> int:
    """ether_setup(dev): Ethernet's header ops, type ARPHRD_ETHER, 14-byte headers, MTU 1500
    (68..1500), 6-byte addresses, broadcast ff:ff:ff:ff:ff:ff, a 1000-packet queue,
    IFF_BROADCAST | IFF_MULTICAST."""
    m = k.machine
    dev = c.arg(0)
    m.write_word(dev + ND["header_ops"], k.resolve("eth_header_ops") or 0)
    for field, size, value in (("type", 2, 1), ("hard_header_len", 2, 14), ("min_header_len", 1, 14),
                               ("mtu", 4, 1500), ("min_mtu", 4, 68), ("max_mtu", 4, 1500), ("addr_len", 1, 6),
                               ("tx_queue_len", 4, 1000)):  # fmt: skip
        m.write_int(dev + ND[field], size, value)
    m.write_int(dev + ND["flags"], 4, IFF_BROADCAST | IFF_MULTICAST)
    m.write(dev + ND["broadcast"], b"\xff" * 6)
    return 0


@kfunc("free_netdev", nargs=1)
def _free_netdev(k: BaseKernel, c: TrapCall) -> int:
    """free_netdev(dev): its NAPI contexts deleted (netif_napi_del), the device and its
    queues go (NULL is allowed)."""
    dev = c.arg(0)
    if dev:
        napi_dev = 56  # struct napi_struct: dev
        k.state.registrations = [
            r for r in k.state.registrations
            if not (r.kind == "napi" and k.machine.is_mapped(r.address + napi_dev, 8)
                    and k.machine.read_word(r.address + napi_dev) == dev)
        ]  # fmt: skip
        for f in ("tx", "rx", "dev_addr"):
            k.free(k.machine.read_word(dev + ND[f]))
        unregister(k, "netdev-alloc", dev)
        k.free(dev)
    return 0


# -- smaller net registries --------------------------------------------------------------------------
@kfunc("ethtool_set_ethtool_phy_ops", nargs=1)
def _ethtool_set_ethtool_phy_ops(k: BaseKernel, c: TrapCall) -> int:
    """ethtool_set_ethtool_phy_ops(ops): ethtool's PHY operations become ops (net/ethtool/common.c)."""
    table(k, "ethtool")["phy_ops"] = c.arg(0)
    return 0


SOCK_DIAG_FAMILY = 8


@kfunc("sock_diag_register", nargs=1)
def _sock_diag_register(k: BaseKernel, c: TrapCall) -> int:
    """sock_diag_register(hndl): -EINVAL for family >= AF_MAX, -EBUSY when taken
    (net/core/sock_diag.c)."""
    fam = k.machine.read_int(c.arg(0) + SOCK_DIAG_FAMILY, 1)
    if fam >= NPROTO:
        return -22
    return -EBUSY if register(k, "sock-diag", c.arg(0), str(fam), by_name=True) else 0


@kfunc("sock_diag_unregister", nargs=1)
def _sock_diag_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "sock-diag", c.arg(0))
    return 0


@kfunc("sock_diag_register_inet_compat", "sock_diag_unregister_inet_compat", nargs=1)
def _sock_diag_inet_compat(k: BaseKernel, c: TrapCall) -> int:
    table(k, "sock-diag")["inet_compat"] = c.arg(0) if "unregister" not in c.name else 0
    return 0


TCP_CA_NAME, TCP_CA_KEY, TCP_CA_FLAGS = 88, 128, 132
TCP_CA_SSTHRESH, TCP_CA_COND_AVOID, TCP_CA_CONG_CONTROL, TCP_CA_UNDO = 0, 8, 56, 64
BUILTIN_TCP_CA = ("reno", "cubic")  # Debian's 6.1: cubic built in, reno always


@kfunc("tcp_register_congestion_control", nargs=1)
def _tcp_register_cc(k: BaseKernel, c: TrapCall) -> int:
    """tcp_register_congestion_control(ca): -EINVAL without ssthresh/undo_cwnd and
    cong_avoid or cong_control, -EEXIST for a name taken (net/ipv4/tcp_cong.c, with its
    "%s already registered or non-unique key" / "%s registered" lines)."""
    m = k.machine
    ca = c.arg(0)
    name = name_at(k, ca + TCP_CA_NAME, 16)
    w = [m.read_word(ca + o) for o in (TCP_CA_SSTHRESH, TCP_CA_UNDO, TCP_CA_COND_AVOID, TCP_CA_CONG_CONTROL)]
    if not (w[0] and w[1] and (w[2] or w[3])):
        k.state.printk(3, False, f"TCP: {name} does not implement required ops\n", None)
        return -22
    m.write_int(ca + TCP_CA_KEY, 4, zlib.crc32(name.encode()) or 1)  # jhash in the kernel: any non-zero key
    if name in BUILTIN_TCP_CA or register(k, "tcp-cc", ca, name, by_name=True):
        k.state.printk(5, False, f"TCP: {name} already registered or non-unique key\n", None)
        return -EEXIST
    k.state.printk(6, False, f"TCP: {name} registered\n", None)
    return 0


@kfunc("tcp_unregister_congestion_control", nargs=1)
def _tcp_unregister_cc(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "tcp-cc", c.arg(0))
    return 0


@kfunc("inet_register_protosw", "inet6_register_protosw", "inet_unregister_protosw",
       "inet6_unregister_protosw", nargs=1)  # fmt: skip
def _protosw(k: BaseKernel, c: TrapCall) -> int:
    """inet_register_protosw(p): listed for its socket type (a permanent entry of the same
    type/protocol would refuse it: the kernel's are TCP, UDP, ICMP ping and raw)."""
    if "unregister" in c.name:
        unregister(k, "inet-protosw", c.arg(0))
    else:
        register(k, "inet-protosw", c.arg(0))
    return 0


NFPROTO_NUMPROTO = 13


@kfunc("nf_log_register", nargs=2)
def _nf_log_register(k: BaseKernel, c: TrapCall) -> int:
    """nf_log_register(pf, logger): -EINVAL for pf >= NFPROTO_NUMPROTO (net/netfilter/nf_log.c);
    -EEXIST when a logger of the same type is already there for pf."""
    pf = c.arg(0) & 0xFF
    if pf >= NFPROTO_NUMPROTO:
        return -22
    return register(k, "nf-logger", c.arg(1), str(pf))


@kfunc("nf_log_unregister", nargs=1)
def _nf_log_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "nf-logger", c.arg(0))
    return 0


@kfunc("nf_register_queue_handler", "nf_unregister_queue_handler", nargs=1)
def _nf_queue_handler(k: BaseKernel, c: TrapCall) -> int:
    """nf_register_queue_handler(qh): the (single) queue handler (void)."""
    table(k, "nf-queue")["handler"] = c.arg(0) if c.name == "nf_register_queue_handler" else 0
    return 0


@kfunc("ipv6_mod_enabled", nargs=0)
def _ipv6_mod_enabled(k: BaseKernel, c: TrapCall) -> int:
    return 1  # IPv6 built in and not disabled on the command line


@kfunc("cn_add_callback", nargs=3)
def _cn_add_callback(k: BaseKernel, c: TrapCall) -> int:
    """cn_add_callback(id, name, callback): an id {idx, val} already taken is -EINVAL
    (cn_queue_add_callback's -EINVAL, drivers/connector/cn_queue.c)."""
    ident = k.machine.read(c.arg(0), 8)
    return -22 if register(k, "connector", int.from_bytes(ident, "little"), name_at(k, c.arg(1))) else 0


@kfunc("cn_del_callback", nargs=1)
def _cn_del_callback(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "connector", int.from_bytes(k.machine.read(c.arg(0), 8), "little"))
    return 0


# -- xfrm (net/xfrm/xfrm_state.c, xfrm_input.c) -----------------------------------------------------
AF_INET, AF_INET6 = 2, 10


@kfunc("xfrm_register_type", nargs=2)
def _xfrm_register_type(k: BaseKernel, c: TrapCall) -> int:
    """xfrm_register_type(type, family): -EAFNOSUPPORT for a family other than AF_INET/6,
    -EEXIST when the protocol (type->proto, at 8) is taken for it."""
    fam = c.arg(1) & 0xFFFFFFFF
    if fam not in (AF_INET, AF_INET6):
        return -97
    proto = k.machine.read_int(c.arg(0) + 8, 1)
    return register(k, "xfrm-type", c.arg(0), f"{fam}/{proto}", by_name=True)


@kfunc("xfrm_unregister_type", nargs=2)
def _xfrm_unregister_type(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "xfrm-type", c.arg(0))
    return 0


@kfunc("xfrm_input_register_afinfo", nargs=1)
def _xfrm_input_register_afinfo(k: BaseKernel, c: TrapCall) -> int:
    """xfrm_input_register_afinfo(afinfo): -EAFNOSUPPORT for family > AF_INET6, -EEXIST when
    the (is_ipip, family) slot is taken; struct xfrm_input_afinfo {u8 family; bool is_ipip}."""
    fam, ipip = k.machine.read_int(c.arg(0), 1), k.machine.read_int(c.arg(0) + 1, 1)
    if fam > AF_INET6:
        return -97
    return register(k, "xfrm-input-afinfo", c.arg(0), f"{ipip}/{fam}", by_name=True)


@kfunc("xfrm_input_unregister_afinfo", nargs=1)
def _xfrm_input_unregister_afinfo(k: BaseKernel, c: TrapCall) -> int:
    return 0 if unregister(k, "xfrm-input-afinfo", c.arg(0)) else -22


@kfunc("nfs_ssc_register", "nfs_ssc_unregister", nargs=1)
def _nfs_ssc_register(k: BaseKernel, c: TrapCall) -> int:
    """nfs_ssc_register(ops): the NFS server-to-server copy client table's ops (void)."""
    table(k, "nfs-ssc")["ops"] = c.arg(0) if c.name == "nfs_ssc_register" else 0
    return 0


@kfunc("nfs42_ssc_register", "nfs42_ssc_unregister", nargs=1)
def _nfs42_ssc_register(k: BaseKernel, c: TrapCall) -> int:
    """nfs42_ssc_register(ops): nfs4_ssc_client_tbl.ssc_nfs4_ops = ops (fs/nfs_common/
    nfs_ssc.c, void); unregister clears it when it is those ops."""
    tab = table(k, "nfs-ssc")
    if c.name == "nfs42_ssc_register":
        tab["nfs4-ops"] = c.arg(0)
    elif tab.get("nfs4-ops") == c.arg(0):
        tab["nfs4-ops"] = 0
    return 0


@kfunc("xfrm4_protocol_register", "xfrm6_protocol_register", nargs=2)
def _xfrm4_protocol_register(k: BaseKernel, c: TrapCall) -> int:
    """xfrm4_protocol_register(handler, protocol): ESP (50), AH (51) or IPCOMP (108), else
    -EINVAL; -EEXIST for a handler of the same priority (struct xfrm4_protocol: handler,
    input_handler, cb_handler, err_handler, next, priority at 40)."""
    proto = c.arg(1) & 0xFF
    if proto not in (50, 51, 108):
        return -22
    prio = k.machine.read_int(c.arg(0) + 40, 4)
    fam = "4" if c.name.startswith("xfrm4") else "6"
    return register(k, "xfrm-protocol", c.arg(0), f"{fam}/{proto}/{prio}", by_name=True)


@kfunc("xfrm4_protocol_deregister", "xfrm6_protocol_deregister", nargs=2)
def _xfrm4_protocol_deregister(k: BaseKernel, c: TrapCall) -> int:
    return 0 if unregister(k, "xfrm-protocol", c.arg(0)) else -2


@kfunc("__hw_addr_init", nargs=1)
def _hw_addr_init(k: BaseKernel, c: TrapCall) -> int:
    """__hw_addr_init(list): an empty address list (list_head to itself, count 0, empty
    rb tree; struct netdev_hw_addr_list, net/core/dev_addr_lists.c)."""
    m = k.machine
    lst = c.arg(0)
    m.write_word(lst, lst)
    m.write_word(lst + 8, lst)
    m.write_int(lst + 16, 4, 0)
    m.write_word(lst + 24, 0)
    return 0


@kfunc("brioctl_set", nargs=1)
def _brioctl_set(k: BaseKernel, c: TrapCall) -> int:
    """brioctl_set(hook): the bridge ioctl hook (net/socket.c's br_ioctl_hook, void)."""
    table(k, "hooks")["br_ioctl"] = c.arg(0)
    return 0


# struct inet_hashinfo (6.1 amd64): ehash, ehash_locks, ehash_mask, ehash_locks_mask, ...,
# lhash2_mask, lhash2; struct inet_listen_hashbucket {spinlock_t lock; hlist_nulls_head}
INET_HASH_EHASH_LOCKS, INET_HASH_EHASH_MASK, INET_HASH_EHASH_LOCKS_MASK = 8, 16, 20
INET_HASH_LHASH2_MASK, INET_HASH_LHASH2 = 60, 64
INET_LHTABLE_SIZE, LISTENING_NULLS_BASE, LHASH2_BUCKET = 32, 1 << 29, 16


@kfunc("inet_hashinfo2_init_mod", nargs=1)
def _inet_hashinfo2_init_mod(k: BaseKernel, c: TrapCall) -> int:
    """inet_hashinfo2_init_mod(h): a 32-bucket listening hash (each bucket's nulls list
    empty, ending in the nulls marker i + LISTENING_NULLS_BASE), lhash2_mask 31; -ENOMEM
    without memory."""
    from lkm.emulate.base.registry import zalloc

    h = c.arg(0)
    m = k.machine
    buckets = zalloc(k, INET_LHTABLE_SIZE * LHASH2_BUCKET)
    if not buckets:
        return -12
    for i in range(INET_LHTABLE_SIZE):
        m.write_word(buckets + i * LHASH2_BUCKET + 8, ((i + LISTENING_NULLS_BASE) << 1) | 1)
    m.write_word(h + INET_HASH_LHASH2, buckets)
    m.write_int(h + INET_HASH_LHASH2_MASK, 4, INET_LHTABLE_SIZE - 1)
    return 0


@kfunc("inet_ehash_locks_alloc", nargs=1)
def _inet_ehash_locks_alloc(k: BaseKernel, c: TrapCall) -> int:
    """inet_ehash_locks_alloc(h): 2 * L1_CACHE_BYTES / sizeof(spinlock_t) = 32 locks per
    possible CPU (QEMU's PC: one), at least a page of them per NUMA node (1024; Debian's
    6.1.y has that rule, as its guest shows), rounded up to a power of two, at most
    ehash_mask + 1; ehash_locks_mask = count - 1; -ENOMEM without memory."""
    from lkm.emulate.base.registry import zalloc

    h = c.arg(0)
    m = k.machine
    n = max(32 * 1, 1 * 4096 // 4)  # possible CPUs, online nodes
    n = min(1 << (n - 1).bit_length(), m.read_int(h + INET_HASH_EHASH_MASK, 4) + 1)
    locks = zalloc(k, 4 * n)
    if not locks:
        return -12
    m.write_word(h + INET_HASH_EHASH_LOCKS, locks)
    m.write_int(h + INET_HASH_EHASH_LOCKS_MASK, 4, n - 1)
    return 0

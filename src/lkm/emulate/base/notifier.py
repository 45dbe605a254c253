"""Notifier chains (kernel/notifier.c) and the subsystem chains built on them.

A chain is a list of ``struct notifier_block`` sorted by priority, highest first, kept in the
chain head's ``head`` member as the kernel keeps it (so code walking it sees the blocks);
registering a block already on the chain is refused (-EEXIST, 6.1's notifier_chain_register),
unregistering one not on it is -ENOENT.  The chains this kernel owns itself (reboot, netdevice,
netevent, inetaddr, keyboard, module...) are heads the emulator allocates by name.  Nothing
calls the chains here (no event happens) except where the kernel replays state on
registration, and this kernel has none to replay (no network device, no CPU going up).
Offsets: 6.1 amd64, offsetof() against its headers."""

from __future__ import annotations

from lkm.emulate.base.registry import EEXIST, ENOENT, table
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.state import Registration

__all__ = ["HEAD", "NB_NEXT", "NB_PRIORITY", "OWN_CHAINS", "chain_register", "chain_unregister", "own_chain"]


NB_NEXT, NB_PRIORITY = 8, 16  # struct notifier_block {notifier_call, next, priority}
HEAD = {"raw": 0, "atomic": 8, "blocking": 40, "srcu": 424}  # offset of the chain's head pointer


def chain_register(k: BaseKernel, head_ptr: int, nb: int, chain: str) -> int:
    """notifier_chain_register: insert ``nb`` after the blocks of its priority or higher."""
    m = k.machine
    prio = m.read_int(nb + NB_PRIORITY, 4)
    prio = prio - (1 << 32) if prio >> 31 else prio
    link = head_ptr
    while True:
        cur = m.read_word(link)
        if not cur:
            break
        if cur == nb:
            k.state.printk(
                4,
                False,
                f"notifier callback {k.symbolize(m.read_word(nb), False)} already registered\n",
                None,
            )
            return -EEXIST
        cp = m.read_int(cur + NB_PRIORITY, 4)
        cp = cp - (1 << 32) if cp >> 31 else cp
        if prio > cp:
            break
        link = cur + NB_NEXT
    m.write_word(nb + NB_NEXT, m.read_word(link))
    m.write_word(link, nb)
    k.state.registrations.append(Registration("notifier", chain, nb, k.current))
    return 0


def chain_unregister(k: BaseKernel, head_ptr: int, nb: int, chain: str) -> int:
    m = k.machine
    link = head_ptr
    while True:
        cur = m.read_word(link)
        if not cur:
            return -ENOENT
        if cur == nb:
            m.write_word(link, m.read_word(nb + NB_NEXT))
            k.state.registrations = [
                r for r in k.state.registrations if not (r.kind == "notifier" and r.address == nb)
            ]
            return 0
        link = cur + NB_NEXT


def _family(name: str) -> str:
    return name.split("_notifier_")[0].lstrip("_")  # X_notifier_chain_register, X_notifier_call_chain


_REGISTER = ("atomic_notifier_chain_register", "blocking_notifier_chain_register",
             "raw_notifier_chain_register", "srcu_notifier_chain_register",
             "atomic_notifier_chain_register_unique_prio",
             "blocking_notifier_chain_register_unique_prio")  # fmt: skip
_UNREGISTER = ("atomic_notifier_chain_unregister", "blocking_notifier_chain_unregister",
               "raw_notifier_chain_unregister", "srcu_notifier_chain_unregister")  # fmt: skip


@kfunc(*_REGISTER, nargs=2)
def _chain_register(k: BaseKernel, c: TrapCall) -> int:
    """{atomic,blocking,raw,srcu}_notifier_chain_register(nh, nb) (kernel/notifier.c)."""
    fam = _family(c.name)
    return chain_register(k, c.arg(0) + HEAD[fam], c.arg(1), f"{fam}@{c.arg(0):#x}")


@kfunc(*_UNREGISTER, nargs=2)
def _chain_unregister(k: BaseKernel, c: TrapCall) -> int:
    """{atomic,blocking,raw,srcu}_notifier_chain_unregister(nh, nb) (kernel/notifier.c)."""
    fam = _family(c.name)
    return chain_unregister(k, c.arg(0) + HEAD[fam], c.arg(1), f"{fam}@{c.arg(0):#x}")


@kfunc("srcu_init_notifier_head", nargs=1)
def _srcu_init(k: BaseKernel, c: TrapCall) -> int:
    """srcu_init_notifier_head(nh): an empty chain (kernel/notifier.c)."""
    k.machine.write_word(c.arg(0) + HEAD["srcu"], 0)
    return 0


@kfunc("atomic_notifier_call_chain", "blocking_notifier_call_chain", "raw_notifier_call_chain",
       "srcu_notifier_call_chain", nargs=3)  # fmt: skip
def _call_chain(k: BaseKernel, c: TrapCall) -> int:
    """notifier_call_chain: each block's callback in order until one returns NOTIFY_STOP_MASK
    (0x8000); the last return value (NOTIFY_DONE = 0 for an empty chain)."""
    m = k.machine
    fam = _family(c.name)
    nb = m.read_word(c.arg(0) + HEAD[fam])
    ret = 0
    while nb:
        nxt = m.read_word(nb + NB_NEXT)
        ret = k.call(m.read_word(nb), (nb, c.arg(1), c.arg(2)), k.current) & 0xFFFFFFFF
        if ret & 0x8000:
            break
        nb = nxt
    return ret


# The kernel's own chains: register_X_notifier(nb) / unregister_X_notifier(nb), with their
# source file.  Each is a chain head of the emulated kernel, by name.
OWN_CHAINS = {
    "reboot": "kernel/reboot.c", "netdevice": "net/core/dev.c", "netevent": "net/core/netevent.c",
    "inetaddr": "net/ipv4/devinet.c", "inet6addr": "net/ipv6/addrconf_core.c",
    "inetaddr_validator": "net/ipv4/devinet.c", "inet6addr_validator": "net/ipv6/addrconf_core.c",
    "keyboard": "drivers/tty/vt/keyboard.c", "module": "kernel/module/main.c", "pm": "kernel/power/main.c",
    "die": "kernel/notifier.c", "oom": "mm/oom_kill.c", "vmalloc": "mm/vmalloc.c",
    "netlink": "net/netlink/af_netlink.c", "crypto": "crypto/api.c",
    "mce_decode": "arch/x86/kernel/cpu/mce/core.c",
    "vt": "drivers/tty/vt/vt.c", "blocking_lsm": "security/security.c", "acpi": "drivers/acpi/event.c",
    "usb": "drivers/usb/core/notify.c", "fib": "net/core/fib_notifier.c",
    "switchdev": "net/switchdev/switchdev.c",
    "switchdev_blocking": "net/switchdev/switchdev.c", "dcbevent": "net/dcb/dcbevent.c",
    "restart_handler": "kernel/reboot.c", "user_return": "arch/x86/kernel/cpu/common.c",
    "nexthop": "net/ipv4/nexthop.c", "cpu_pm": "kernel/cpu_pm.c",
    "hw_breakpoint": "kernel/events/hw_breakpoint.c",
    "clk": "drivers/clk/clk.c", "iommu_device": "drivers/iommu/iommu.c", "lease": "fs/locks.c",
}  # fmt: skip
_CHAIN_FUNCS = {
    "register_reboot_notifier": "reboot", "register_netdevice_notifier": "netdevice",
    "register_netevent_notifier": "netevent", "register_inetaddr_notifier": "inetaddr",
    "register_inet6addr_notifier": "inet6addr", "register_inetaddr_validator_notifier": "inetaddr_validator",
    "register_inet6addr_validator_notifier": "inet6addr_validator", "register_keyboard_notifier": "keyboard",
    "register_module_notifier": "module", "register_pm_notifier": "pm", "register_die_notifier": "die",
    "register_oom_notifier": "oom", "register_vmap_purge_notifier": "vmalloc",
    "netlink_register_notifier": "netlink", "crypto_register_notifier": "crypto",
    "mce_register_decode_chain": "mce_decode", "register_vt_notifier": "vt",
    "register_blocking_lsm_notifier": "blocking_lsm", "register_acpi_notifier": "acpi",
    "usb_register_notify": "usb", "register_switchdev_notifier": "switchdev",
    "register_switchdev_blocking_notifier": "switchdev_blocking", "register_dcbevent_notifier": "dcbevent",
    "register_restart_handler": "restart_handler", "register_nexthop_notifier": "nexthop",
    "cpu_pm_register_notifier": "cpu_pm", "register_netdevice_notifier_net": "netdevice",
    "register_netdevice_notifier_dev_net": "netdevice", "lease_register_notifier": "lease",
    "register_memory_notifier": "memory",
}  # fmt: skip
_CHAIN_FUNCS.update({
    k.replace("register", "unregister", 1): v for k, v in list(_CHAIN_FUNCS.items())
})  # fmt: skip
_CHAIN_FUNCS["mce_unregister_decode_chain"] = "mce_decode"
_CHAIN_FUNCS["usb_unregister_notify"] = "usb"
_CHAIN_FUNCS["unregister_restart_handler"] = "restart_handler"


def own_chain(k: BaseKernel, name: str) -> int:
    """The address of the kernel's chain ``name``'s head pointer (allocated on first use)."""
    heads = table(k, "notifier-chains")
    addr = heads.get(name)
    if not isinstance(addr, int):
        addr = k.alloc(8)
        heads[name] = addr
    return addr


@kfunc(*_CHAIN_FUNCS, nargs=1)
def _own_chain(k: BaseKernel, c: TrapCall) -> int:
    """register_X_notifier(nb) / unregister_X_notifier(nb) for the kernel's chains listed in
    OWN_CHAINS (the _net variants take the net first).  register_netdevice_notifier replays
    NETDEV_REGISTER/UP for existing devices: there are none in this kernel."""
    chain = _CHAIN_FUNCS[c.name]
    nb = c.arg(1) if c.name.endswith(("_net", "_dev_net")) else c.arg(0)
    head = own_chain(k, chain)
    if "unregister" in c.name:
        return chain_unregister(k, head, nb, chain)
    return chain_register(k, head, nb, chain)

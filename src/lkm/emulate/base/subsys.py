"""Smaller subsystems' registrations: LED triggers (drivers/leds/led-triggers.c), key types
and keyrings (security/keys), input handlers (drivers/input/input.c), NLS tables
(fs/nls/nls_base.c), kthread workers (kernel/kthread.c), backing devices (mm/backing-dev.c),
tty drivers and consoles (drivers/tty) and other small registries.  A name already registered
is refused as the kernel refuses it (-EEXIST); unregistering forgets it.  (simple_pin_fs is
left unimplemented: it would have to run the filesystem's fill_super.)  Offsets: 6.1 amd64 (offsetof()
against its headers)."""

from __future__ import annotations

from lkm.emulate.base.registry import EEXIST, name_at, ptr_name, register, table, unregister, zalloc
from lkm.emulate.kernel import BaseKernel, kdata, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "BUILTIN_KEY_TYPES",
    "CPUHP_AP_ONLINE_DYN",
    "CPUHP_AP_ONLINE_DYN_END",
    "CPUHP_BP_PREPARE_DYN",
    "CPUHP_BP_PREPARE_DYN_END",
    "INPUT_HANDLER_NAME",
    "KEY_SIZE",
    "KTHREAD_WORKER_SIZE",
    "LED_TRIGGER_SIZE",
    "NLS_CHARSET",
    "NLS_NEXT",
    "NR_LDISCS",
    "N_TTY",
    "ONLINE_CPUS",
    "STD_TERMIOS",
    "TTY",
    "TTY_DRIVER_DYNAMIC_ALLOC",
    "TTY_DRIVER_INSTALLED",
    "TTY_DRIVER_SIZE",
    "TTY_DRIVER_UNNUMBERED_NODE",
]


LED_TRIGGER_SIZE = 88  # struct led_trigger: name at 0
INPUT_HANDLER_NAME = 72
NLS_CHARSET, NLS_NEXT = 0, 56


# -- LED triggers ----------------------------------------------------------------------------------
def _led_register(k: BaseKernel, trig: int) -> int:
    """led_trigger_register: -EEXIST for a trigger name taken (the kernel's default ones,
    e.g. "timer", "heartbeat", are modules of their own or absent here)."""
    return register(k, "led-trigger", trig, ptr_name(k, trig, 0), by_name=True)


@kfunc("led_trigger_register", "devm_led_trigger_register", nargs=2)
def _led_trigger_register(k: BaseKernel, c: TrapCall) -> int:
    return _led_register(k, c.arg(1) if c.name.startswith("devm") else c.arg(0))


@kfunc("led_trigger_unregister", nargs=1)
def _led_trigger_unregister(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "led-trigger", c.arg(0))
    return 0


@kfunc("led_trigger_register_simple", nargs=2)
def _led_trigger_register_simple(k: BaseKernel, c: TrapCall) -> int:
    """led_trigger_register_simple(name, &trig): *trig = a new trigger of that name, or NULL
    (with the kernel's warning) when it cannot be registered."""
    m = k.machine
    trig = zalloc(k, LED_TRIGGER_SIZE)
    if trig:
        m.write_word(trig, c.arg(0))
        if _led_register(k, trig):
            name = name_at(k, c.arg(0))
            k.state.printk(4, False, f"LED trigger {name} failed to register ({-EEXIST})\n", None)
            k.free(trig)
            trig = 0
    m.write_word(c.arg(1), trig)
    return 0


@kfunc("led_trigger_unregister_simple", nargs=1)
def _led_trigger_unregister_simple(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(0):
        unregister(k, "led-trigger", c.arg(0))
        k.free(c.arg(0))
    return 0


@kfunc("led_trigger_event", "led_trigger_blink", "led_trigger_blink_oneshot", nargs=2)
def _led_trigger_event(k: BaseKernel, c: TrapCall) -> int:
    return 0  # no LED is attached to any trigger in this machine


# -- keys -------------------------------------------------------------------------------------------
KEY_SIZE = 0xD8
# The key types Debian's 6.1 registers at boot (security/keys, crypto/asymmetric_keys).
BUILTIN_KEY_TYPES = frozenset(("keyring", "user", "logon", "asymmetric", ".request_key_auth", "dead",
                               "big_key", "trusted", "encrypted", "blacklist"))  # fmt: skip


@kfunc("register_key_type", nargs=1)
def _register_key_type(k: BaseKernel, c: TrapCall) -> int:
    """register_key_type(ktype): -EEXIST for a name taken (the kernel's own: "keyring",
    "user", "logon", "asymmetric", ".request_key_auth", "dead" and those of built-in code)."""
    name = ptr_name(k, c.arg(0), 0)
    if name in BUILTIN_KEY_TYPES:
        return -EEXIST
    err = register(k, "key-type", c.arg(0), name, by_name=True)
    if err == 0:
        k.state.printk(5, False, f"Key type {name} registered\n", None)
    return err


@kfunc("unregister_key_type", nargs=1)
def _unregister_key_type(k: BaseKernel, c: TrapCall) -> int:
    if unregister(k, "key-type", c.arg(0)):
        k.state.printk(5, False, f"Key type {ptr_name(k, c.arg(0), 0)} unregistered\n", None)
    return 0


@kfunc("keyring_alloc", nargs=8)
def _keyring_alloc(k: BaseKernel, c: TrapCall) -> int:
    """keyring_alloc(description, uid, gid, cred, perm, flags, restrict, dest): a new
    keyring (struct key), listed by its description."""
    key = zalloc(k, KEY_SIZE)
    if not key:
        return (-12) & k.arch.mask
    register(k, "keyring", key, name_at(k, c.arg(0)))
    return key


@kfunc("key_create_or_update", nargs=8)
def _key_create_or_update(k: BaseKernel, c: TrapCall) -> int:
    """key_create_or_update(keyring_ref, type, description, payload, plen, perm, flags): a
    key reference (possessed); a type not registered is key_type_lookup's ERR_PTR(-ENOKEY).
    The payload is not parsed (an asymmetric key's parser does not run here)."""
    tname = name_at(k, c.arg(1))
    known = tname in BUILTIN_KEY_TYPES or any(
        n == tname for n in table(k, "key-type").values()
    )  # fmt: skip
    if not known:
        return (-126) & k.arch.mask  # -ENOKEY
    key = zalloc(k, KEY_SIZE)
    if not key:
        return (-12) & k.arch.mask
    register(k, "key", key, f"{tname}:{name_at(k, c.arg(2))}")
    return key | 1  # make_key_ref(key, possessed)


@kfunc("key_put", "key_revoke", "key_invalidate", nargs=1)
def _key_put(k: BaseKernel, c: TrapCall) -> int:
    return 0  # the key stays with its keyring (the last reference of a keyring is the kernel's)


# -- input handlers --------------------------------------------------------------------------------
@kfunc("input_register_handler", nargs=1)
def _input_register_handler(k: BaseKernel, c: TrapCall) -> int:
    """input_register_handler(handler): listed, and connected to each input device it
    matches: this machine has none registered by the kernel itself."""
    return register(k, "input-handler", c.arg(0), ptr_name(k, c.arg(0), INPUT_HANDLER_NAME))


@kfunc("input_unregister_handler", nargs=1)
def _input_unregister_handler(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "input-handler", c.arg(0))
    return 0


# -- NLS --------------------------------------------------------------------------------------------
@kfunc("__register_nls", "register_nls", nargs=2)
def _register_nls(k: BaseKernel, c: TrapCall) -> int:
    """__register_nls(nls, owner): -EBUSY when the table is linked already or its charset is
    taken (fs/nls/nls_base.c); the built-in default is utf8's sibling "default"."""
    nls = c.arg(0)
    if k.machine.read_word(nls + NLS_NEXT):
        return -16
    name = ptr_name(k, nls, NLS_CHARSET)
    return -16 if register(k, "nls", nls, name, by_name=True) else 0


@kfunc("unregister_nls", nargs=1)
def _unregister_nls(k: BaseKernel, c: TrapCall) -> int:
    return 0 if unregister(k, "nls", c.arg(0)) else -22


# -- kthread workers ---------------------------------------------------------------------------------
KTHREAD_WORKER_SIZE = 0x60


@kfunc("kthread_create_worker", "kthread_create_worker_on_cpu", nargs=3, varargs=True)
def _kthread_create_worker(k: BaseKernel, c: TrapCall) -> int:
    """kthread_create_worker(flags, namefmt, ...): a worker whose thread is created (it runs
    queued work when deferred work runs); its task is kept in the worker's task member
    (struct kthread_worker 6.1: flags, lock, work_list(16), delayed_work_list(16), task at 40)."""
    w = zalloc(k, KTHREAD_WORKER_SIZE)
    if not w:
        return (-12) & k.arch.mask
    task = zalloc(k, 0x2800)
    m = k.machine
    for off in (8, 24):  # empty work lists
        m.write_word(w + off, w + off)
        m.write_word(w + off + 8, w + off)
    m.write_word(w + 40, task)
    register(k, "kthread-worker", w)
    return w


@kfunc("kthread_destroy_worker", nargs=1)
def _kthread_destroy_worker(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "kthread-worker", c.arg(0))
    k.free(c.arg(0))
    return 0


@kfunc("kthread_stop", nargs=1)
def _kthread_stop(k: BaseKernel, c: TrapCall) -> int:
    """kthread_stop(task): the thread's exit code; a thread that never ran (this kernel
    does not schedule them) is -EINTR, as the kernel's for a never-woken thread."""
    return -4


# -- backing devices -----------------------------------------------------------------------------
@kfunc("bdi_alloc", nargs=1)
def _bdi_alloc(k: BaseKernel, c: TrapCall) -> int:
    """bdi_alloc(node): a zeroed backing_dev_info (NULL without memory)."""
    return zalloc(k, 0x400)


@kfunc("bdi_register", "bdi_register_va", nargs=2)
def _bdi_register(k: BaseKernel, c: TrapCall) -> int:
    return register(k, "bdi", c.arg(0))


@kfunc("bdi_put", "bdi_unregister", nargs=1)
def _bdi_put(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "bdi", c.arg(0))
    return 0


# -- tty drivers (drivers/tty/tty_io.c) -----------------------------------------------------------------
TTY = dict(owner=16, driver_name=24, name=32, name_base=40, major=44, minor_start=48, num=52, type=56,
           subtype=58, init_termios=60, flags=104, ttys=128, ports=136, termios=144, ops=160)  # fmt: skip
TTY_DRIVER_SIZE = 184
TTY_DRIVER_INSTALLED, TTY_DRIVER_DYNAMIC_ALLOC = 0x1, 0x40
TTY_DRIVER_UNNUMBERED_NODE = 0x80
# tty_std_termios (drivers/tty/tty_io.c): B38400 | CS8 | CREAD | HUPCL, ICRNL | IXON, OPOST | ONLCR,
# ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN, INIT_C_CC, 38400 baud.
STD_TERMIOS = (
    (0x500).to_bytes(4, "little") + (0x5).to_bytes(4, "little") + (0x4BF).to_bytes(4, "little")
    + (0x8A3B).to_bytes(4, "little") + b"\0"
    + bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0])
    + (38400).to_bytes(4, "little") * 2
)  # fmt: skip


@kdata("tty_std_termios")
def _tty_std_termios(k: BaseKernel, addr: int, size: int) -> None:
    """The boot value drivers copy into driver->init_termios."""
    k.machine.write(addr, STD_TERMIOS)


@kfunc("__tty_alloc_driver", nargs=3)
def _tty_alloc_driver(k: BaseKernel, c: TrapCall) -> int:
    """__tty_alloc_driver(lines, owner, flags): a driver for ``lines`` lines (-EINVAL for 0
    lines without TTY_DRIVER_UNNUMBERED_NODE... as the kernel: lines == 0 is ERR_PTR(-EINVAL)),
    kref 1, owner, flags, and per-line tables unless TTY_DRIVER_DYNAMIC_ALLOC."""
    m = k.machine
    lines, owner, flags = c.arg(0) & 0xFFFFFFFF, c.arg(1), c.arg(2)
    if not lines or (flags & TTY_DRIVER_UNNUMBERED_NODE and lines > 1):
        return (-22) & k.arch.mask
    drv = zalloc(k, TTY_DRIVER_SIZE)
    if not drv:
        return (-12) & k.arch.mask
    m.write_int(drv, 4, 1)  # kref
    m.write_int(drv + TTY["num"], 4, lines)
    m.write_word(drv + TTY["owner"], owner)
    m.write_word(drv + TTY["flags"], flags)
    if not flags & TTY_DRIVER_DYNAMIC_ALLOC:
        for f in ("ttys", "termios", "ports"):
            m.write_word(drv + TTY[f], zalloc(k, 8 * lines))
    return drv


@kfunc("tty_register_driver", nargs=1)
def _tty_register_driver(k: BaseKernel, c: TrapCall) -> int:
    """tty_register_driver(driver): its character device region (a dynamic major when
    major is 0, written back), listed as installed."""
    m = k.machine
    drv = c.arg(0)
    major, minor = m.read_int(drv + TTY["major"], 4), m.read_int(drv + TTY["minor_start"], 4)
    num = m.read_int(drv + TTY["num"], 4)
    name = ptr_name(k, drv, TTY["name"]) or ptr_name(k, drv, TTY["driver_name"])
    got = k.state.register_chrdev_region(major, minor, num, name, 0, k.current)
    if got < 0:
        return got
    if not major:
        m.write_int(drv + TTY["major"], 4, got)
        m.write_int(drv + TTY["minor_start"], 4, minor)
    m.write_word(drv + TTY["flags"], m.read_word(drv + TTY["flags"]) | TTY_DRIVER_INSTALLED)
    register(k, "tty-driver", drv, name)
    return 0


@kfunc("tty_unregister_driver", nargs=1)
def _tty_unregister_driver(k: BaseKernel, c: TrapCall) -> int:
    m = k.machine
    drv = c.arg(0)
    k.state.unregister_chrdev_region(
        m.read_int(drv + TTY["major"], 4),
        m.read_int(drv + TTY["minor_start"], 4),
        m.read_int(drv + TTY["num"], 4),
    )
    unregister(k, "tty-driver", drv)
    return 0


@kfunc("tty_driver_kref_put", "put_tty_driver", nargs=1)
def _tty_driver_kref_put(k: BaseKernel, c: TrapCall) -> int:
    """The last reference frees the driver (and its tables)."""
    m = k.machine
    drv = c.arg(0)
    n = m.read_int(drv, 4) - 1
    m.write_int(drv, 4, max(n, 0))
    if n <= 0:
        for f in ("ttys", "termios", "ports"):
            k.free(m.read_word(drv + TTY[f]))
        k.free(drv)
    return 0


@kfunc("tty_set_operations", nargs=2)
def _tty_set_operations(k: BaseKernel, c: TrapCall) -> int:
    k.machine.write_word(c.arg(0) + TTY["ops"], c.arg(1))
    return 0


@kfunc("tty_port_init", nargs=1)
def _tty_port_init(k: BaseKernel, c: TrapCall) -> int:
    """tty_port_init(port): a zeroed port (its buffers and locks: the kernel's own)."""
    return 0


@kfunc("tty_port_link_device", nargs=3)
def _tty_port_link_device(k: BaseKernel, c: TrapCall) -> int:
    """tty_port_link_device(port, driver, index): driver->ports[index] = port."""
    m = k.machine
    ports = m.read_word(c.arg(1) + TTY["ports"])
    index = c.arg(2) & 0xFFFFFFFF
    if ports and index < m.read_int(c.arg(1) + TTY["num"], 4):
        m.write_word(ports + 8 * index, c.arg(0))
    return 0


@kfunc("tty_port_destroy", "tty_port_put", nargs=1)
def _tty_port_destroy(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("register_console", nargs=1)
def _register_console(k: BaseKernel, c: TrapCall) -> int:
    """register_console(con): listed; the kernel says "printk: console [NAMEn] enabled" for
    a console that gets enabled, which needs console= on the command line or no console yet:
    this kernel's console is ttyS0, so a module's console stays disabled (no line)."""
    register(k, "console", c.arg(0), name_at(k, c.arg(0), 16))
    return 0


@kfunc("unregister_console", nargs=1)
def _unregister_console(k: BaseKernel, c: TrapCall) -> int:
    """-ENODEV for a console not registered."""
    return 0 if unregister(k, "console", c.arg(0)) else -19


# -- more registries --------------------------------------------------------------------------------
@kfunc("register_shrinker", "prealloc_shrinker", nargs=2, varargs=True)
def _register_shrinker(k: BaseKernel, c: TrapCall) -> int:
    """register_shrinker(shrinker, fmt, ...): listed (memory pressure never calls it here)."""
    register(k, "shrinker", c.arg(0))
    return 0


@kfunc("unregister_shrinker", "free_prealloced_shrinker", nargs=1)
def _unregister_shrinker(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "shrinker", c.arg(0))
    return 0


N_TTY, NR_LDISCS = 0, 30


@kfunc("tty_register_ldisc", nargs=1)
def _tty_register_ldisc(k: BaseKernel, c: TrapCall) -> int:
    """tty_register_ldisc(ops): -EINVAL for num outside [N_TTY, NR_LDISCS); the slot is
    (re)set (drivers/tty/tty_ldisc.c)."""
    num = k.machine.read_int(c.arg(0) + 8, 4)
    if num >= NR_LDISCS:
        return -22
    slots = table(k, "tty-ldisc")
    slots[num] = c.arg(0)
    return 0


@kfunc("tty_unregister_ldisc", nargs=1)
def _tty_unregister_ldisc(k: BaseKernel, c: TrapCall) -> int:
    table(k, "tty-ldisc").pop(k.machine.read_int(c.arg(0) + 8, 4), None)
    return 0


@kfunc("cpufreq_register_governor", nargs=1)
def _cpufreq_register_governor(k: BaseKernel, c: TrapCall) -> int:
    """cpufreq_register_governor(gov): -EBUSY for a name taken (the built-in ones:
    performance, schedutil)."""
    name = name_at(k, c.arg(0), 16)
    if name in ("performance", "schedutil") or register(k, "cpufreq-governor", c.arg(0), name, by_name=True):
        return -16
    return 0


@kfunc("cpufreq_unregister_governor", nargs=1)
def _cpufreq_unregister_governor(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "cpufreq-governor", c.arg(0))
    return 0


@kfunc("register_asymmetric_key_parser", nargs=1)
def _register_asymmetric_key_parser(k: BaseKernel, c: TrapCall) -> int:
    """register_asymmetric_key_parser(parser): -EEXIST for a name taken (the built-in x509
    parser), "Asymmetric key parser '%s' registered" (crypto/asymmetric_keys/asymmetric_type.c)."""
    name = ptr_name(k, c.arg(0), 24)
    if name == "x509" or register(k, "asymmetric-parser", c.arg(0), name, by_name=True):
        k.state.printk(3, False, f"Asymmetric key parser '{name}' already registered\n", None)
        return -EEXIST
    k.state.printk(5, False, f"Asymmetric key parser '{name}' registered\n", None)
    return 0


@kfunc("unregister_asymmetric_key_parser", nargs=1)
def _unregister_asymmetric_key_parser(k: BaseKernel, c: TrapCall) -> int:
    if unregister(k, "asymmetric-parser", c.arg(0)):
        k.state.printk(5, False, f"Asymmetric key parser '{ptr_name(k, c.arg(0), 24)}' unregistered\n", None)
    return 0


@kfunc("zpool_register_driver", "zpool_unregister_driver", nargs=1)
def _zpool_driver(k: BaseKernel, c: TrapCall) -> int:
    """zpool_register_driver(driver) (void) / zpool_unregister_driver: 0 when removed."""
    if "unregister" in c.name:
        return 0 if unregister(k, "zpool", c.arg(0)) else -2
    register(k, "zpool", c.arg(0), ptr_name(k, c.arg(0), 0))
    return 0


@kfunc("sched_set_fifo", "sched_set_fifo_low", "sched_set_normal", nargs=2)
def _sched_set(k: BaseKernel, c: TrapCall) -> int:
    """The task's scheduling policy (void): recorded, as nothing schedules tasks here."""
    table(k, "sched-policy")[c.arg(0)] = c.name.removeprefix("sched_set_")
    return 0


@kfunc("prepare_kernel_cred", nargs=1)
def _prepare_kernel_cred(k: BaseKernel, c: TrapCall) -> int:
    """prepare_kernel_cred(daemon): a fresh root credential (struct cred, usage 1)."""
    cred = zalloc(k, 0xB0)
    if cred:
        k.machine.write_int(cred, 4, 1)
    return cred


@kfunc("make_kuid", "make_kgid", nargs=2)
def _make_kid(k: BaseKernel, c: TrapCall) -> int:
    """make_kuid(ns, uid): init_user_ns maps every id to itself (the only namespace here)."""
    return c.arg(1) & 0xFFFFFFFF


@kfunc("input_free_device", nargs=1)
def _input_free_device(k: BaseKernel, c: TrapCall) -> int:
    """input_free_device(dev): an input device never registered is freed (NULL allowed)."""
    if c.arg(0):
        k.free(c.arg(0))
    return 0


@kfunc("backlight_device_unregister", nargs=1)
def _backlight_device_unregister(k: BaseKernel, c: TrapCall) -> int:
    return 0  # NULL (no backlight registered) is allowed


# -- CPU hotplug states (kernel/cpu.c) -----------------------------------------------------------------
CPUHP_BP_PREPARE_DYN, CPUHP_BP_PREPARE_DYN_END = 70, 90  # 6.1 amd64's enum cpuhp_state
CPUHP_AP_ONLINE_DYN, CPUHP_AP_ONLINE_DYN_END = 201, 231
ONLINE_CPUS = (0,)


def _cpuhp_slot(k: BaseKernel, state: int) -> int:
    """The state to use: a free dynamic one for the *_DYN placeholders (-ENOSPC when all are
    taken), else the fixed one (-EBUSY when it has callbacks already)."""
    states = table(k, "cpuhp")
    for lo, hi in (
        (CPUHP_BP_PREPARE_DYN, CPUHP_BP_PREPARE_DYN_END),
        (CPUHP_AP_ONLINE_DYN, CPUHP_AP_ONLINE_DYN_END),
    ):
        if state == lo:
            return next((s for s in range(lo, hi) if s not in states), -28)
    return -16 if state in states else state


@kfunc("__cpuhp_setup_state", "__cpuhp_setup_state_cpuslocked", nargs=6)
def _cpuhp_setup_state(k: BaseKernel, c: TrapCall) -> int:
    """__cpuhp_setup_state(state, name, invoke, startup, teardown, multi_instance): the
    callbacks installed in the state (a dynamic one allocated: its number is returned, else
    0); with invoke, startup(cpu) runs for each online CPU (CPU 0 here) and a failure
    undoes the state and is returned.  (The boot's own dynamic states are not counted: the
    number is the first of the range.)"""
    state = c.arg(0) & 0xFFFFFFFF
    slot = _cpuhp_slot(k, state)
    if slot < 0:
        return slot
    startup, teardown, multi = c.arg(3), c.arg(4), bool(c.arg(5) & 0xFF)
    table(k, "cpuhp")[slot] = (name_at(k, c.arg(1)), startup, teardown, multi, k.current)
    if c.arg(2) & 0xFF and startup and not multi:
        for cpu in ONLINE_CPUS:
            ret = k.call(startup, (cpu,), k.current) & 0xFFFFFFFF
            if ret:
                del table(k, "cpuhp")[slot]
                return ret - (1 << 32) if ret >> 31 else ret
    return slot if slot != state else 0


@kfunc("__cpuhp_remove_state", "__cpuhp_remove_state_cpuslocked", nargs=2)
def _cpuhp_remove_state(k: BaseKernel, c: TrapCall) -> int:
    """__cpuhp_remove_state(state, invoke): teardown(cpu) for each online CPU with invoke."""
    got = table(k, "cpuhp").pop(c.arg(0) & 0xFFFFFFFF, None)
    if isinstance(got, tuple) and c.arg(1) & 0xFF and got[2] and not got[3]:
        for cpu in ONLINE_CPUS:
            k.call(got[2], (cpu,), k.current)
    return 0


@kfunc("__cpuhp_state_add_instance", "__cpuhp_state_add_instance_cpuslocked", nargs=3)
def _cpuhp_add_instance(k: BaseKernel, c: TrapCall) -> int:
    """__cpuhp_state_add_instance(state, node, invoke): -EINVAL for a state that is not
    multi-instance; with invoke, startup(cpu, node) for each online CPU."""
    got = table(k, "cpuhp").get(c.arg(0) & 0xFFFFFFFF)
    if not isinstance(got, tuple) or not got[3]:
        return -22
    if c.arg(2) & 0xFF and got[1]:
        for cpu in ONLINE_CPUS:
            ret = k.call(got[1], (cpu, c.arg(1)), k.current) & 0xFFFFFFFF
            if ret:
                return ret - (1 << 32) if ret >> 31 else ret
    return 0


@kfunc("__cpuhp_state_remove_instance", nargs=3)
def _cpuhp_remove_instance(k: BaseKernel, c: TrapCall) -> int:
    got = table(k, "cpuhp").get(c.arg(0) & 0xFFFFFFFF)
    if not isinstance(got, tuple) or not got[3]:
        return -22
    if c.arg(2) & 0xFF and got[2]:
        for cpu in ONLINE_CPUS:
            k.call(got[2], (cpu, c.arg(1)), k.current)
    return 0


@kfunc("load_nls", nargs=1)
def _load_nls(k: BaseKernel, c: TrapCall) -> int:
    """load_nls(charset): the registered table of that charset, else after request_module
    ("nls_<charset>"), else NULL (fs/nls/nls_base.c's try_then_request_module)."""
    from lkm.emulate.base.registry import lookup

    name = name_at(k, c.arg(0), 32)
    found = lookup(k, "nls", name)
    if not found and k.request_module is not None:
        k.request_module(f"nls_{name}", True)
        found = lookup(k, "nls", name)
    return found


@kfunc("unload_nls", nargs=1)
def _unload_nls(k: BaseKernel, c: TrapCall) -> int:
    return 0  # the table's module reference (module_put): tables stay registered

"""printk and the formatting family: _printk/printk/vprintk, dev_* and netdev_* messages,
the s*printf functions, kasprintf and sysfs_emit, all over :class:`lkm.emulate.vsprintf.Formatter`."""

from __future__ import annotations

from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.vsprintf import Args, Formatter, split_level

__all__ = [
    "DEFAULT_LOGLEVEL",
    "NETDEV_PARENT",
    "NETDEV_REG_STATE",
    "CallArgs",
    "VaList",
    "dev_prefix",
    "emit",
    "fmt_call",
    "formatter",
    "netdev_prefix",
]


DEFAULT_LOGLEVEL = 4  # CONFIG_MESSAGE_LOGLEVEL_DEFAULT


class CallArgs:
    """Variadic arguments of a trapped call, from argument ``start`` on."""

    def __init__(self, c: TrapCall, start: int) -> None:
        self.c = c
        self.i = start

    def next(self) -> int:
        v = self.c.arg(self.i)
        self.i += 1
        return v

    def next64(self) -> int:
        if self.c.machine.arch.word == 8:
            return self.next()
        lo = self.next()
        return lo | (self.next() << 32)


class VaList:
    """A ``va_list``: x86_64's {gp_offset, fp_offset, overflow_arg_area, reg_save_area};
    i386's plain pointer into the stack."""

    def __init__(self, k: BaseKernel, va: int) -> None:
        self.m = k.machine
        if self.m.arch.base.va_list_pointer:
            self.gp = self.m.read_int(va, 4)
            self.overflow = self.m.read_word(va + 8)
            self.save = self.m.read_word(va + 16)
        else:
            self.gp = 48
            self.overflow = va

    def next(self) -> int:
        if self.gp < 48:
            v = self.m.read_word(self.save + self.gp)
            self.gp += 8
            return v
        v = self.m.read_word(self.overflow)
        self.overflow += self.m.arch.word
        return v

    def next64(self) -> int:
        if self.m.arch.word == 8:
            return self.next()
        lo = self.next()
        return lo | (self.next() << 32)


def formatter(k: BaseKernel) -> Formatter:
    f = getattr(k, "_formatter", None)
    if f is None:

        def va_args(ptr: int) -> Args:
            # struct va_format's va is a va_list *: x86_64's va_list is the struct it points to
            return VaList(k, ptr if k.arch.base.va_list_pointer else k.machine.read_word(ptr))

        f = Formatter(k.machine, k.arch.word, k.symbol_name, va_args)
        k._formatter = f  # type: ignore[attr-defined]
    return f


def fmt_call(k: BaseKernel, c: TrapCall, fmt_index: int) -> bytes:
    return formatter(k).format(k.machine.read_cstr(c.arg(fmt_index)) or b"", CallArgs(c, fmt_index + 1))


def emit(k: BaseKernel, text: bytes, prefix: bytes = b"", level: int | None = None) -> int:
    lvl, cont, body = split_level(text, DEFAULT_LOGLEVEL, angle=k.version.angle_levels)
    if level is not None:
        lvl = level
    body = prefix + body
    k.state.printk(lvl, cont and not prefix, body.decode("utf-8", "replace"), k.current)
    return len(body)


@kfunc("_printk", "printk", nargs=1, varargs=True)
def _printk(k: BaseKernel, c: TrapCall) -> int:
    return emit(k, fmt_call(k, c, 0))


@kfunc("vprintk", "vprintk_emit_wrapper", nargs=2)
def _vprintk(k: BaseKernel, c: TrapCall) -> int:
    text = formatter(k).format(k.machine.read_cstr(c.arg(0)) or b"", VaList(k, c.arg(1)))
    return emit(k, text)


def dev_prefix(k: BaseKernel, dev: int) -> bytes:
    """__dev_printk's "driver name: " (6.1: dev_driver_string(dev) dev_name(dev))."""
    if dev == 0:
        return b"(NULL device *): "
    name = k.machine.read_word(dev + 80) if k.arch.word == 8 else 0  # init_name
    if not name:
        name = k.machine.read_word(dev)  # kobj.name
    driver = k.machine.read_word(dev + 104) if k.arch.word == 8 else 0
    drv_name = k.cstring(k.machine.read_word(driver)) if driver else ""
    return f"{drv_name} {k.cstring(name)}: ".encode("utf-8", "surrogateescape")


NETDEV_REG_STATE, NETDEV_PARENT = 1256, 1400  # struct net_device: reg_state, dev.parent (6.1 amd64)
_REG_STATES = {0: " (uninitialized)", 1: "", 2: " (unregistering)", 3: " (unregistered)", 4: " (released)",
               5: " (dummy)"}  # fmt: skip


def netdev_prefix(k: BaseKernel, dev: int) -> bytes:
    """__netdev_printk's prefix (6.1): ``DRIVER PARENT NAME[ (state)]: `` for a device with a
    parent (SET_NETDEV_DEV), ``NAME[ (state)]: `` else; netdev_name() is "(unnamed
    net_device)" for an unset or ``%d`` name, netdev_reg_state() names every state but
    registered."""
    if dev == 0:
        return b"(NULL net_device): "
    name = k.cstring(dev, 16)
    if not name or "%" in name:
        name = "(unnamed net_device)"
    if k.arch.word != 8:
        return f"{name}: ".encode("utf-8", "surrogateescape")
    state = _REG_STATES.get(k.machine.read_int(dev + NETDEV_REG_STATE, 1), " (unknown)")
    parent = k.machine.read_word(dev + NETDEV_PARENT)
    head = dev_prefix(k, parent)[:-2] + b" " if parent else b""
    return head + f"{name}{state}: ".encode("utf-8", "surrogateescape")


_DEV_LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6}

for _lvl_name, _lvl in _DEV_LEVELS.items():

    def _make(level: int, lvl_name: str) -> None:
        @kfunc(f"_dev_{lvl_name}", nargs=2, varargs=True)
        def dev_msg(k: BaseKernel, c: TrapCall) -> int:
            return emit(k, fmt_call(k, c, 1), dev_prefix(k, c.arg(0)), level)

        @kfunc(f"netdev_{lvl_name}", nargs=2, varargs=True)
        def netdev_msg(k: BaseKernel, c: TrapCall) -> int:
            return emit(k, fmt_call(k, c, 1), netdev_prefix(k, c.arg(0)), level)

    _make(_lvl, _lvl_name)


@kfunc("_dev_printk", "dev_printk", nargs=3, varargs=True)
def _dev_printk(k: BaseKernel, c: TrapCall) -> int:
    level, _cont, _ = split_level(k.machine.read_cstr(c.arg(0)) or b"", DEFAULT_LOGLEVEL)
    return emit(k, fmt_call(k, c, 2), dev_prefix(k, c.arg(1)), level)


@kfunc("__warn_printk", nargs=1, varargs=True)
def _warn_printk(k: BaseKernel, c: TrapCall) -> int:
    return emit(k, fmt_call(k, c, 0), level=4)


@kfunc("__dynamic_pr_debug", "__dynamic_dev_dbg", "__dynamic_netdev_dbg", "__dynamic_ibdev_dbg", nargs=2,
       varargs=True)  # fmt: skip
def _dynamic_debug(k: BaseKernel, c: TrapCall) -> int:
    return 0  # dynamic debug sites are off by default: nothing is printed


def _store(k: BaseKernel, buf: int, size: int, text: bytes) -> None:
    if size > 0 and buf:
        out = text[: size - 1] + b"\0"
        k.machine.write(buf, out)


@kfunc("snprintf", nargs=3, varargs=True)
def _snprintf(k: BaseKernel, c: TrapCall) -> int:
    text = fmt_call(k, c, 2)
    _store(k, c.arg(0), c.arg(1), text)
    return len(text)


@kfunc("scnprintf", nargs=3, varargs=True)
def _scnprintf(k: BaseKernel, c: TrapCall) -> int:
    size = c.arg(1)
    text = fmt_call(k, c, 2)
    _store(k, c.arg(0), size, text)
    return min(len(text), size - 1) if size else 0


@kfunc("sprintf", nargs=2, varargs=True)
def _sprintf(k: BaseKernel, c: TrapCall) -> int:
    text = fmt_call(k, c, 1)
    k.machine.write(c.arg(0), text + b"\0")
    return len(text)


@kfunc("vsnprintf", "vscnprintf", nargs=4)
def _vsnprintf(k: BaseKernel, c: TrapCall) -> int:
    size = c.arg(1)
    text = formatter(k).format(k.machine.read_cstr(c.arg(2)) or b"", VaList(k, c.arg(3)))
    _store(k, c.arg(0), size, text)
    if c.name == "vscnprintf":
        return min(len(text), size - 1) if size else 0
    return len(text)


@kfunc("vsprintf", nargs=3)
def _vsprintf(k: BaseKernel, c: TrapCall) -> int:
    text = formatter(k).format(k.machine.read_cstr(c.arg(1)) or b"", VaList(k, c.arg(2)))
    k.machine.write(c.arg(0), text + b"\0")
    return len(text)


@kfunc("kasprintf", "devm_kasprintf", nargs=2, varargs=True)
def _kasprintf(k: BaseKernel, c: TrapCall) -> int:
    first = 2 if c.name == "devm_kasprintf" else 1
    return k.new_string(fmt_call(k, c, first))


@kfunc("sysfs_emit", nargs=2, varargs=True)
def _sysfs_emit(k: BaseKernel, c: TrapCall) -> int:
    text = fmt_call(k, c, 1)[:4095]
    k.machine.write(c.arg(0), text + b"\0")
    return len(text)


@kfunc("seq_printf", nargs=2, varargs=True)
def _seq_printf(k: BaseKernel, c: TrapCall) -> int:
    fmt_call(k, c, 1)
    return 0

"""Module parameters as the kernel sets them before init: kernel/params.c's parse_args over
the module's ``__param`` table (next_arg's quoting, parameq's dash = underscore, the standard
ops' kstrto* rules, arrays, copied strings, the exact error lines), and 2.4 insmod's
MODULE_PARM (``parm_NAME=TYPE`` in .modinfo, the value written into the variable).
A parameter with the module's own ops has its ``set`` run in the emulator."""

from __future__ import annotations

import errno

from lkm.emulate.base.strings import parse_bool, parse_integer
from lkm.emulate.kernel import BaseKernel
from lkm.emulate.layouts import layout_for
from lkm.emulate.module import EmulatedModule
from lkm.errors import LkmError

__all__ = [
    "INTEGER_OPS",
    "KERNEL_PARAM_OPS_FL_NOARG",
    "NOARG",
    "ParamEntry",
    "ParamError",
    "apply_params",
    "next_args",
    "set_value",
]


KERNEL_PARAM_OPS_FL_NOARG = 1

# param_ops_<type>: (size, signed, bits) for integers; other kinds by name.
INTEGER_OPS = {
    "byte": (1, False, 8), "short": (2, True, 16), "ushort": (2, False, 16), "int": (4, True, 32),
    "uint": (4, False, 32), "long": (8, True, 64), "ulong": (8, False, 64), "ullong": (8, False, 64),
    "hexint": (4, False, 32),
}  # fmt: skip
NOARG = {"bool", "invbool", "bool_enable_only"}


class ParamError(LkmError):
    """init_module(2) fails with ``errno`` because of the module's arguments."""

    errno: int

    def __init__(self, reason: str, errno_: int) -> None:
        super().__init__(reason, errno=errno_)


def next_args(text: str) -> list[tuple[str, str | None]]:
    """kernel/params.c next_arg over the whole argument string."""
    out: list[tuple[str, str | None]] = []
    s = text.lstrip()
    while s:
        quoted = in_quote = s.startswith('"')
        if quoted:
            s = s[1:]
        equals = -1
        i = 0
        while i < len(s):
            ch = s[i]
            if ch.isspace() and not in_quote:
                break
            if equals < 0 and ch == "=":
                equals = i
            if ch == '"':
                in_quote = not in_quote
            i += 1
        token, s = s[:i], s[i:].lstrip()
        if equals < 0:
            param, val = token, None
        else:
            param, val = token[:equals], token[equals + 1 :]
            if val.startswith('"'):
                val = val[1:]
                if val.endswith('"'):
                    val = val[:-1]
        if quoted and val is None and param.endswith('"'):
            param = param[:-1]
        out.append((param, val))
    return out


def apply_params(k: BaseKernel, em: EmulatedModule, args: str) -> None:
    """parse_args(mod->name, args, mod->kp, ...) or 2.4 insmod's MODULE_PARM assignment."""
    if not args.strip():
        return
    if em.file.version.user_space_link:  # insmod set them in the image
        _apply_24(k, em, args)
        return
    table = _kernel_params(k, em)
    err = 0
    doing = em.name
    for param, val in next_args(args):
        kp = next((p for p in table if p[0].replace("-", "_") == param.replace("-", "_")), None)
        if kp is None:
            k.state.printk(4, False, f"{em.name}: unknown parameter '{param}' ignored\n", None)
            continue
        ret = _set(k, em, kp, val)
        if ret == 0:
            continue
        shown = val or ""
        if kp[3] == "array":  # param_array cut the value at its commas in place
            shown = shown.split(",", 1)[0]
        if ret == -errno.ENOSPC:
            k.state.printk(3, False, f"{doing}: `{shown}' too large for parameter `{param}'\n", None)
        else:
            k.state.printk(3, False, f"{doing}: `{shown}' invalid for parameter `{param}'\n", None)
        err = ret
    if err:
        raise ParamError(f"{em.name}: invalid module parameters", -err)


ParamEntry = tuple[str, int, int, str]  # name, struct kernel_param address, its arg, ops kind


def _kernel_params(k: BaseKernel, em: EmulatedModule) -> list[ParamEntry]:
    sec = em.section_address("__param")
    if sec is None:
        return []
    lay = layout_for(k.arch.name)
    addr, size = sec
    m = k.machine
    out = []
    for kp in range(addr, addr + size, lay["param_size"]):
        name = k.cstring(m.read_word(kp))
        ops = m.read_word(kp + lay["param_ops"])
        arg = m.read_word(kp + lay["param_arg"])
        out.append((name, kp, arg, _ops_kind(k, ops)))
    return out


def _ops_kind(k: BaseKernel, ops: int) -> str:
    name = k.names.get(ops, "")
    if name.startswith("param_ops_"):
        return name[len("param_ops_") :]
    if name == "param_array_ops":
        return "array"
    return "custom"


def _set(k: BaseKernel, em: EmulatedModule, kp: ParamEntry, val: str | None) -> int:
    name, kp_addr, arg, kind = kp
    if kind == "array":
        return _set_array(k, em, name, arg, val)
    if val is None and kind not in NOARG and kind != "custom":
        return -errno.EINVAL
    if kind == "custom":
        return _set_custom(k, em, kp_addr, val)
    return set_value(k, name, kind, arg, val)


def set_value(k: BaseKernel, name: str, kind: str, arg: int, val: str | None) -> int:
    """The standard ops' set: write ``val`` parsed as ``kind`` at ``arg``; 0 or -errno."""
    m = k.machine
    raw = (val or "").encode("utf-8", "surrogateescape")
    if kind in INTEGER_OPS:
        size, signed, bits = INTEGER_OPS[kind]
        if kind in ("long", "ulong") and k.arch.word == 4:
            size, bits = 4, 32
        v = parse_integer(raw, 0, signed, bits)
        if v is None:
            return -errno.EINVAL
        m.write_int(arg, size, v)
        return 0
    if kind in NOARG:
        b = True if val is None else parse_bool(raw)
        if b is None:
            return -errno.EINVAL
        if kind == "invbool":
            b = not b
        m.write_int(arg, 1, int(b))
        return 0
    if kind == "charp":
        if len(raw) > 1024:
            k.state.printk(3, False, f"{name}: string parameter too long\n", None)
            return -errno.ENOSPC
        m.write_word(arg, k.new_string(raw))
        return 0
    if kind == "string":  # arg is a struct kparam_string {maxlen, string}
        maxlen = m.read_int(arg, 4)
        buf = m.read_word(arg + k.arch.word)
        if len(raw) + 1 > maxlen:
            k.state.printk(3, False, f"{name}: string doesn't fit in {maxlen - 1} chars.\n", None)
            return -errno.ENOSPC
        m.write(buf, raw + b"\0")
        return 0
    return -errno.EINVAL


def _set_array(k: BaseKernel, em: EmulatedModule, name: str, arr: int, val: str | None) -> int:
    """param_array_set over struct kparam_array {max, elemsize, num, ops, elem}."""
    m = k.machine
    w = k.arch.word
    maximum, elemsize = m.read_int(arr, 4), m.read_int(arr + 4, 4)
    num_ptr, ops, elem = m.read_word(arr + 8), m.read_word(arr + 8 + w), m.read_word(arr + 8 + 2 * w)
    kind = _ops_kind(k, ops)
    values = (val or "").split(",")
    count = 0
    for v in values:
        if count == maximum:
            k.state.printk(3, False, f"{name}: can only take {maximum} arguments\n", None)
            return -errno.EINVAL
        ret = set_value(k, name, kind, elem + count * elemsize, v)
        if ret:
            return ret
        count += 1
    if num_ptr:
        m.write_int(num_ptr, 4, count)
    return 0


def _set_custom(k: BaseKernel, em: EmulatedModule, kp: int, val: str | None) -> int:
    lay = layout_for(k.arch.name)
    ops = k.machine.read_word(kp + lay["param_ops"])
    setter = k.machine.read_word(ops + k.arch.word)  # struct kernel_param_ops {flags, set, get, free}
    if not setter:
        return -errno.EINVAL
    val_ptr = k.new_string(val.encode("utf-8", "surrogateescape")) if val is not None else 0
    ret = k.call(setter, (val_ptr, kp), em.name) & 0xFFFFFFFF
    return ret - (1 << 32) if ret >> 31 else ret


def _apply_24(k: BaseKernel, em: EmulatedModule, args: str) -> None:
    """2.4 insmod: NAME=VALUE for each ``parm_NAME`` declared; types b h i l s c<n>, arrays
    with commas (modutils' insmod.c process_module_arguments)."""
    decl = {key[5:]: value for key, value in em.file.modinfo if key.startswith("parm_") and
            not key.startswith("parm_desc_")}  # fmt: skip
    sizes = {"b": 1, "h": 2, "i": 4, "l": k.arch.word}
    for param, val in next_args(args):
        typ = decl.get(param)
        addr = em.symbol(param)
        if typ is None or addr is None:
            raise ParamError(f"{em.name}: symbol for parameter {param} not found", errno.ENOENT)
        letter = typ.lstrip("0123456789-")[:1]
        for i, item in enumerate((val or "").split(",")):
            if letter in sizes:
                v = parse_integer(item.encode("utf-8", "surrogateescape"), 0, True, 64)
                if v is None:
                    raise ParamError(f"{em.name}: invalid parameter {param}", errno.EINVAL)
                k.machine.write_int(addr + i * sizes[letter], sizes[letter], v)
            elif letter == "s":
                k.machine.write_word(
                    addr + i * k.arch.word, k.new_string(item.encode("utf-8", "surrogateescape"))
                )
            elif letter == "c":
                n = int(typ.split("c", 1)[1] or "0")
                k.machine.write(addr + i * n, item.encode("utf-8", "surrogateescape")[: n - 1] + b"\0")

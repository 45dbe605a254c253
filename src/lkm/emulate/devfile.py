"""Driving a driver: what the VFS does when a process opens, reads, writes, ioctls and
closes a character or misc device, calling the module's own file_operations in the emulator.

chrdev_open (fs/char_dev.c) / misc_open (drivers/char/misc.c): a struct inode with i_rdev,
a struct file whose f_op is the driver's (misc: private_data = the struct miscdevice), then
->open(inode, file).  read/write: ksys_read's copy of f_pos passed by pointer and stored back
when the call succeeds; the user buffer is mapped at the architecture's user address.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from lkm.emulate.base.devices import mkdev
from lkm.emulate.kernel import BaseKernel
from lkm.emulate.layouts import fops_for, layout_for
from lkm.errors import LkmError

__all__ = [
    "FMODE_READ",
    "FMODE_WRITE",
    "O_RDWR",
    "USER_SIZE",
    "DeviceError",
    "OpenFile",
    "dev_ioctl",
    "dev_open",
    "dev_read",
    "dev_release",
    "dev_write",
]


FMODE_READ, FMODE_WRITE = 0x1, 0x2
O_RDWR = 2
USER_SIZE = 0x10000


class DeviceError(LkmError):
    """No such device, or the driver lacks the operation."""


@dataclass(frozen=True, slots=True)
class OpenFile:
    name: str
    file: int
    inode: int
    fops: int
    module: str | None


def _op(k: BaseKernel, f: OpenFile, member: str) -> int:
    return k.machine.read_word(f.fops + fops_for(k.arch.name)[member])


def _signed(k: BaseKernel, v: int) -> int:
    bits = 8 * k.arch.word
    return v - (1 << bits) if v >> (bits - 1) else v


def dev_open(k: BaseKernel, name: str) -> tuple[OpenFile, int]:
    """Open /dev/``name`` (a char device region or misc device of that name); the open file
    and ->open's return value (0 without an open method)."""
    lay = layout_for(k.arch.name)
    m = k.machine
    misc = next((d for d in k.state.misc if d.name == name and d.fops), None)
    chrdev = k.state.chrdev_by_name(name)
    if misc is None and chrdev is None:
        raise DeviceError(f"/dev/{name}: No such device (no registered char or misc device of that name)")
    inode = k.alloc(lay["inode_size"])
    file = k.alloc(lay["file_size"])
    if misc is not None:
        fops, rdev, owner = misc.fops, mkdev(10, misc.minor), misc.module
        m.write_word(file + lay["file_private_data"], misc.address)
    else:
        assert chrdev is not None
        fops, rdev, owner = chrdev.fops, mkdev(chrdev.major, chrdev.baseminor), chrdev.module
    m.write_int(inode + lay["inode_i_rdev"], 4, rdev)
    m.write_word(file + lay["file_f_op"], fops)
    m.write_word(file + lay["file_f_inode"], inode)
    m.write_int(file + lay["file_f_flags"], 4, O_RDWR)
    m.write_int(file + lay["file_f_mode"], 4, FMODE_READ | FMODE_WRITE)
    f = OpenFile(name, file, inode, fops, owner)
    opener = _op(k, f, "open")
    ret = _signed(k, k.call(opener, (inode, file), owner)) if opener else 0
    return f, ret


def dev_read(k: BaseKernel, f: OpenFile, count: int) -> tuple[int, bytes]:
    reader = _op(k, f, "read")
    if not reader:
        if _op(k, f, "read_iter"):
            raise DeviceError(f"/dev/{f.name}: the driver reads through read_iter, not emulated here")
        return -errno.EINVAL, b""
    buf = _user_buffer(k, count)
    pos = _pos(k, f)
    ret = _signed(k, k.call(reader, (f.file, buf, count, pos), f.module))
    _store_pos(k, f, pos, ret)
    return ret, k.machine.read(buf, ret) if ret > 0 else b""


def dev_write(k: BaseKernel, f: OpenFile, data: bytes) -> int:
    writer = _op(k, f, "write")
    if not writer:
        if _op(k, f, "write_iter"):
            raise DeviceError(f"/dev/{f.name}: the driver writes through write_iter, not emulated here")
        return -errno.EINVAL
    buf = _user_buffer(k, len(data))
    k.machine.write(buf, data)
    pos = _pos(k, f)
    ret = _signed(k, k.call(writer, (f.file, buf, len(data), pos), f.module))
    _store_pos(k, f, pos, ret)
    return ret


def dev_ioctl(k: BaseKernel, f: OpenFile, cmd: int, arg: int) -> int:
    member = "unlocked_ioctl" if "unlocked_ioctl" in fops_for(k.arch.name) else "ioctl"
    fn = _op(k, f, member)
    if not fn:
        return -errno.ENOTTY
    args = (f.file, cmd, arg) if member == "unlocked_ioctl" else (f.inode, f.file, cmd, arg)
    return _signed(k, k.call(fn, args, f.module))


def dev_release(k: BaseKernel, f: OpenFile) -> int:
    fn = _op(k, f, "release")
    return _signed(k, k.call(fn, (f.inode, f.file), f.module)) if fn else 0


def _user_buffer(k: BaseKernel, size: int) -> int:
    base = k.arch.user_base
    k.machine.map(base, max(size, USER_SIZE), "user")
    return base


def _pos(k: BaseKernel, f: OpenFile) -> int:
    lay = layout_for(k.arch.name)
    slot = k.alloc(8)
    k.machine.write(slot, k.machine.read(f.file + lay["file_f_pos"], 8))
    return slot


def _store_pos(k: BaseKernel, f: OpenFile, slot: int, ret: int) -> None:
    if ret >= 0:
        lay = layout_for(k.arch.name)
        k.machine.write(f.file + lay["file_f_pos"], k.machine.read(slot, 8))
    k.free(slot)

"""Block devices: disks and queues (block/genhd.c, blk-core.c, blk-mq.c, blk-settings.c).

A disk is a zeroed struct gendisk with its request_queue and its part0 block_device, linked
as the kernel links them, the queue's limits at blk_set_default_limits' values; tag sets are
checked as blk_mq_alloc_tag_set checks them; the blk_queue_* setters apply the kernel's
rules (a physical block is never smaller than the logical one, io_min never smaller than
either, the hardware sector limit at least a page...).  device_add_disk lists the disk (a
dynamic major of 0 becomes BLOCK_EXT_MAJOR, 259, as for a disk without one).  Offsets: 6.1
amd64 (offsetof() against its headers)."""

from __future__ import annotations

from lkm.emulate.base.registry import EINVAL, err_ptr, name_at, register, unregister, zalloc
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "BDEV_DEV",
    "BDEV_DISK",
    "BDEV_NR_SECTORS",
    "BDEV_SIZE",
    "BLK_MQ_MAX_DEPTH",
    "BLOCK_EXT_MAJOR",
    "DEFAULT_LIMITS",
    "GD",
    "GD_SIZE",
    "LIM",
    "QUEUE_FLAG_FUA",
    "QUEUE_FLAG_MQ_DEFAULT",
    "QUEUE_FLAG_WC",
    "RQ",
    "RQ_SIZE",
    "TAGSET_SIZE",
    "TS",
    "alloc_disk",
]


GD_SIZE, RQ_SIZE, BDEV_SIZE, TAGSET_SIZE = 672, 968, 928, 168
GD = dict(major=0, first_minor=4, minors=8, disk_name=12, part0=64, fops=72, queue=80, private_data=88)
RQ = dict(mq_ops=80, nr_hw_queues=120, queuedata=128, queue_flags=136, disk=160, limits=448, tag_set=880)
LIM = dict(seg_boundary_mask=(8, 8), max_hw_sectors=(24, 4), max_dev_sectors=(28, 4), max_sectors=(36, 4),
           max_segment_size=(40, 4), physical_block_size=(44, 4), logical_block_size=(48, 4), io_min=(56, 4),
           io_opt=(60, 4), max_discard_sectors=(64, 4), max_write_zeroes_sectors=(76, 4),
           discard_granularity=(84, 4), max_segments=(96, 2))  # fmt: skip
BDEV_NR_SECTORS, BDEV_DEV, BDEV_DISK = 8, 36, 856
TS = dict(nr_maps=48, ops=56, nr_hw_queues=64, queue_depth=68, cmd_size=76, tags=104)
BLK_MQ_MAX_DEPTH = 10240
BLOCK_EXT_MAJOR = 259
# blk_set_default_limits (6.1)
DEFAULT_LIMITS = dict(max_segments=128, seg_boundary_mask=0xFFFFFFFF, max_segment_size=65536,
                      max_sectors=255, max_hw_sectors=255, logical_block_size=512, physical_block_size=512,
                      io_min=512)  # fmt: skip
QUEUE_FLAG_MQ_DEFAULT = (1 << 7) | (1 << 4) | (1 << 29)  # IO_STAT | SAME_COMP | NOWAIT
QUEUE_FLAG_WC, QUEUE_FLAG_FUA = 17, 18


def _lim(k: BaseKernel, q: int, field: str, value: int | None = None) -> int:
    off, size = LIM[field]
    at = q + RQ["limits"] + off
    if value is not None:
        k.machine.write_int(at, size, value & ((1 << (8 * size)) - 1))
        return value
    return k.machine.read_int(at, size)


def alloc_disk(k: BaseKernel) -> int:
    """A gendisk, its queue (default limits) and part0, linked; 0 without memory."""
    m = k.machine
    disk, q, part0 = zalloc(k, GD_SIZE), zalloc(k, RQ_SIZE), zalloc(k, BDEV_SIZE)
    if not (disk and q and part0):
        return 0
    m.write_word(disk + GD["queue"], q)
    m.write_word(disk + GD["part0"], part0)
    m.write_word(q + RQ["disk"], disk)
    m.write_word(part0 + BDEV_DISK, disk)
    for field, value in DEFAULT_LIMITS.items():
        _lim(k, q, field, value)
    return disk


@kfunc("__blk_alloc_disk", "__alloc_disk_node", "blk_alloc_disk", nargs=2)
def _blk_alloc_disk(k: BaseKernel, c: TrapCall) -> int:
    """__blk_alloc_disk(node, lkclass): a bio-based disk, NULL without memory."""
    return alloc_disk(k)


@kfunc("blk_mq_alloc_tag_set", nargs=1)
def _blk_mq_alloc_tag_set(k: BaseKernel, c: TrapCall) -> int:
    """blk_mq_alloc_tag_set(set): -EINVAL for no hardware queues, a depth of 0 or no
    queue_rq; a depth over BLK_MQ_MAX_DEPTH is clamped; nr_maps 0 becomes 1; one tags
    object per hardware queue."""
    m = k.machine
    s = c.arg(0)
    nr_hw, depth = m.read_int(s + TS["nr_hw_queues"], 4), m.read_int(s + TS["queue_depth"], 4)
    ops = m.read_word(s + TS["ops"])
    if not nr_hw or not depth or not ops or not m.read_word(ops):
        return -EINVAL
    if depth > BLK_MQ_MAX_DEPTH:
        m.write_int(s + TS["queue_depth"], 4, BLK_MQ_MAX_DEPTH)
    if not m.read_int(s + TS["nr_maps"], 4):
        m.write_int(s + TS["nr_maps"], 4, 1)
    tags = zalloc(k, 8 * nr_hw)
    if not tags:
        return -12
    for i in range(nr_hw):
        m.write_word(tags + 8 * i, zalloc(k, 0x80))
    m.write_word(s + TS["tags"], tags)
    register(k, "blk-tag-set", s)
    return 0


@kfunc("blk_mq_free_tag_set", nargs=1)
def _blk_mq_free_tag_set(k: BaseKernel, c: TrapCall) -> int:
    m = k.machine
    s = c.arg(0)
    tags = m.read_word(s + TS["tags"])
    if tags:
        for i in range(m.read_int(s + TS["nr_hw_queues"], 4)):
            k.free(m.read_word(tags + 8 * i))
        k.free(tags)
        m.write_word(s + TS["tags"], 0)
    unregister(k, "blk-tag-set", s)
    return 0


@kfunc("__blk_mq_alloc_disk", nargs=3)
def _blk_mq_alloc_disk(k: BaseKernel, c: TrapCall) -> int:
    """__blk_mq_alloc_disk(set, queuedata, lkclass): a disk whose queue runs on the tag
    set (its ops, hardware queues, queuedata, the mq default flags); ERR_PTR(-ENOMEM)."""
    m = k.machine
    disk = alloc_disk(k)
    if not disk:
        return err_ptr(k, 12)
    q = m.read_word(disk + GD["queue"])
    s = c.arg(0)
    m.write_word(q + RQ["tag_set"], s)
    m.write_word(q + RQ["mq_ops"], m.read_word(s + TS["ops"]))
    m.write_int(q + RQ["nr_hw_queues"], 4, m.read_int(s + TS["nr_hw_queues"], 4))
    m.write_word(q + RQ["queuedata"], c.arg(1))
    m.write_word(q + RQ["queue_flags"], QUEUE_FLAG_MQ_DEFAULT)
    return disk


@kfunc("device_add_disk", nargs=3)
def _device_add_disk(k: BaseKernel, c: TrapCall) -> int:
    """device_add_disk(parent, disk, groups): listed under its name; a disk without a major
    gets BLOCK_EXT_MAJOR (and -EINVAL when it also asks for minors, as the kernel's WARN_ON);
    part0's dev_t is set."""
    m = k.machine
    disk = c.arg(1)
    major, first, minors = (m.read_int(disk + GD[f], 4) for f in ("major", "first_minor", "minors"))
    if not major:
        if minors:
            return -EINVAL
        major, first = BLOCK_EXT_MAJOR, len([1 for r in k.state.registrations if r.kind == "disk"])
        m.write_int(disk + GD["major"], 4, major)
        m.write_int(disk + GD["first_minor"], 4, first)
    part0 = m.read_word(disk + GD["part0"])
    if part0:
        m.write_int(part0 + BDEV_DEV, 4, (major << 20) | first)
    return register(k, "disk", disk, name_at(k, disk + GD["disk_name"], 32))


@kfunc("del_gendisk", nargs=1)
def _del_gendisk(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "disk", c.arg(0))
    return 0


@kfunc("put_disk", nargs=1)
def _put_disk(k: BaseKernel, c: TrapCall) -> int:
    """put_disk(disk): the last reference frees the disk, its queue and part0 (NULL allowed)."""
    disk = c.arg(0)
    if disk:
        m = k.machine
        k.free(m.read_word(disk + GD["queue"]))
        k.free(m.read_word(disk + GD["part0"]))
        k.free(disk)
    return 0


@kfunc("set_capacity", nargs=2)
def _set_capacity(k: BaseKernel, c: TrapCall) -> int:
    """set_capacity(disk, sectors): part0's size."""
    part0 = k.machine.read_word(c.arg(0) + GD["part0"])
    if part0:
        k.machine.write_int(part0 + BDEV_NR_SECTORS, 8, c.arg(1))
    return 0


@kfunc("set_capacity_and_notify", nargs=2)
def _set_capacity_and_notify(k: BaseKernel, c: TrapCall) -> int:
    """True when the size changed on a disk that is up (an uevent then); false otherwise."""
    part0 = k.machine.read_word(c.arg(0) + GD["part0"])
    old = k.machine.read_int(part0 + BDEV_NR_SECTORS, 8) if part0 else 0
    _set_capacity(k, c)
    listed = c.arg(0) in [r.address for r in k.state.registrations if r.kind == "disk"]
    return int(listed and old != c.arg(1) and old != 0 and c.arg(1) != 0)


@kfunc("blk_queue_flag_set", "blk_queue_flag_clear", "blk_queue_flag_test_and_set", nargs=2)
def _blk_queue_flag(k: BaseKernel, c: TrapCall) -> int:
    """blk_queue_flag_set(flag, q) / _clear / _test_and_set (the old bit)."""
    m = k.machine
    at = c.arg(1) + RQ["queue_flags"]
    flags, bit = m.read_word(at), 1 << (c.arg(0) & 63)
    m.write_word(at, flags & ~bit if c.name == "blk_queue_flag_clear" else flags | bit)
    return int(bool(flags & bit)) if c.name.endswith("test_and_set") else 0


@kfunc("blk_queue_write_cache", nargs=3)
def _blk_queue_write_cache(k: BaseKernel, c: TrapCall) -> int:
    """blk_queue_write_cache(q, wc, fua): QUEUE_FLAG_WC / QUEUE_FLAG_FUA (fua only with wc)."""
    m = k.machine
    at = c.arg(0) + RQ["queue_flags"]
    flags = m.read_word(at)
    wc, fua = bool(c.arg(1) & 0xFF), bool(c.arg(2) & 0xFF)
    flags = flags | (1 << QUEUE_FLAG_WC) if wc else flags & ~(1 << QUEUE_FLAG_WC)
    flags = flags | (1 << QUEUE_FLAG_FUA) if fua and wc else flags & ~(1 << QUEUE_FLAG_FUA)
    m.write_word(at, flags)
    return 0


@kfunc("blk_queue_logical_block_size", nargs=2)
def _blk_queue_logical_block_size(k: BaseKernel, c: TrapCall) -> int:
    """logical = size; physical and io_min at least that; max_hw_sectors/max_sectors rounded
    down to whole logical blocks."""
    q, size = c.arg(0), c.arg(1) & 0xFFFFFFFF
    _lim(k, q, "logical_block_size", size)
    if _lim(k, q, "physical_block_size") < size:
        _lim(k, q, "physical_block_size", size)
    if _lim(k, q, "io_min") < _lim(k, q, "physical_block_size"):
        _lim(k, q, "io_min", _lim(k, q, "physical_block_size"))
    per = max(size >> 9, 1)
    for f in ("max_hw_sectors", "max_sectors"):
        _lim(k, q, f, _lim(k, q, f) // per * per)
    return 0


@kfunc("blk_queue_physical_block_size", nargs=2)
def _blk_queue_physical_block_size(k: BaseKernel, c: TrapCall) -> int:
    q, size = c.arg(0), c.arg(1) & 0xFFFFFFFF
    _lim(k, q, "physical_block_size", max(size, _lim(k, q, "logical_block_size")))
    if _lim(k, q, "io_min") < _lim(k, q, "physical_block_size"):
        _lim(k, q, "io_min", _lim(k, q, "physical_block_size"))
    return 0


@kfunc("blk_queue_io_min", "blk_limits_io_min", nargs=2)
def _blk_queue_io_min(k: BaseKernel, c: TrapCall) -> int:
    q = c.arg(0) if c.name == "blk_queue_io_min" else c.arg(0) - RQ["limits"]
    v = max(c.arg(1) & 0xFFFFFFFF, _lim(k, q, "logical_block_size"), _lim(k, q, "physical_block_size"))
    _lim(k, q, "io_min", v)
    return 0


@kfunc("blk_queue_io_opt", "blk_limits_io_opt", nargs=2)
def _blk_queue_io_opt(k: BaseKernel, c: TrapCall) -> int:
    q = c.arg(0) if c.name == "blk_queue_io_opt" else c.arg(0) - RQ["limits"]
    _lim(k, q, "io_opt", c.arg(1) & 0xFFFFFFFF)
    return 0


@kfunc("blk_queue_max_hw_sectors", nargs=2)
def _blk_queue_max_hw_sectors(k: BaseKernel, c: TrapCall) -> int:
    """At least a page (with the kernel's "set to minimum" line), max_sectors = min(it,
    BLK_DEF_MAX_SECTORS 2560, max_dev_sectors when set), in whole logical blocks."""
    q, n = c.arg(0), c.arg(1) & 0xFFFFFFFF
    if n < 8:
        n = 8
        k.state.printk(6, False, f"blk_queue_max_hw_sectors: set to minimum {n}\n", None)
    per = max(_lim(k, q, "logical_block_size") >> 9, 1)
    n = n // per * per
    _lim(k, q, "max_hw_sectors", n)
    ms = min(n, 2560)
    if _lim(k, q, "max_dev_sectors"):
        ms = min(ms, _lim(k, q, "max_dev_sectors"))
    _lim(k, q, "max_sectors", ms // per * per)
    return 0


@kfunc("blk_queue_max_segments", nargs=2)
def _blk_queue_max_segments(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(1) & 0xFFFF
    if not n:
        n = 1
        k.state.printk(6, False, f"blk_queue_max_segments: set to minimum {n}\n", None)
    _lim(k, c.arg(0), "max_segments", n)
    return 0


@kfunc("blk_queue_max_segment_size", nargs=2)
def _blk_queue_max_segment_size(k: BaseKernel, c: TrapCall) -> int:
    n = c.arg(1) & 0xFFFFFFFF
    if n < 4096:
        n = 4096
        k.state.printk(6, False, f"blk_queue_max_segment_size: set to minimum {n}\n", None)
    _lim(k, c.arg(0), "max_segment_size", n)
    return 0


@kfunc("blk_queue_max_discard_sectors", "blk_queue_max_write_zeroes_sectors", nargs=2)
def _blk_queue_max_discard(k: BaseKernel, c: TrapCall) -> int:
    field = "max_discard_sectors" if "discard" in c.name else "max_write_zeroes_sectors"
    _lim(k, c.arg(0), field, c.arg(1) & 0xFFFFFFFF)
    return 0


@kfunc("badblocks_init", nargs=2)
def _badblocks_init(k: BaseKernel, c: TrapCall) -> int:
    """badblocks_init(bb, enable): an empty table page, shift 0 (enabled) or -1; -ENOMEM
    without memory (block/badblocks.c; struct badblocks: dev, count, unacked_exist, shift
    at 16, page at 24)."""
    m = k.machine
    bb = c.arg(0)
    m.write_word(bb, 0)
    m.write_int(bb + 8, 8, 0)
    page = zalloc(k, 4096)
    m.write_word(bb + 24, page)
    m.write_int(bb + 16, 4, 0 if page and c.arg(1) & 0xFFFFFFFF else 0xFFFFFFFF)
    return 0 if page else -12


@kfunc("badblocks_exit", nargs=1)
def _badblocks_exit(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(0):
        k.free(k.machine.read_word(c.arg(0) + 24))
        k.machine.write_word(c.arg(0) + 24, 0)
    return 0

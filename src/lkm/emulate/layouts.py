"""Struct member offsets the base kernel reads and writes in module memory, per architecture.
x86_64: the Debian 6.1 amd64 kernel, measured by compiling offsetof() against its headers
(scripts/struct_offsets.sh); i386: 2.4's struct file counted by hand from include/linux/fs.h
(f_dentry stands in for f_inode); 2.4 has no cdev, kernel_param or 6.x misc layout."""

from __future__ import annotations

__all__ = ["FOPS", "FOPS_24", "FOPS_61", "I386_24", "LAYOUTS", "X86_64_61", "fops_for", "layout_for"]


# struct file_operations members in order, 6.1 (include/linux/fs.h), up to release.
FOPS_61 = (
    "owner", "llseek", "read", "write", "read_iter", "write_iter", "iopoll", "iterate", "iterate_shared",
    "poll", "unlocked_ioctl", "compat_ioctl", "mmap", "mmap_supported_flags", "open", "flush", "release",
)  # fmt: skip
# 2.4 (include/linux/fs.h of 2.4).
FOPS_24 = ("owner", "llseek", "read", "write", "readdir", "poll", "ioctl", "mmap", "open", "flush", "release")

X86_64_61: dict[str, int] = dict(
    file_f_op=40,
    file_f_pos=104,
    file_private_data=200,
    file_f_flags=64,
    file_f_mode=68,
    file_f_inode=32,
    file_size=232,
    inode_i_rdev=76,
    inode_i_cdev=584,
    inode_i_private=624,
    inode_size=632,
    misc_minor=0,
    misc_name=8,
    misc_fops=16,
    fs_name=0,
    fs_flags=8,
    cdev_ops=72,
    cdev_dev=96,
    cdev_count=100,
    cdev_size=104,
    param_size=40,
    param_ops=16,
    param_arg=32,
)

I386_24: dict[str, int] = dict(
    file_f_op=16,
    file_f_pos=32,
    file_private_data=88,
    file_f_flags=24,
    file_f_mode=28,
    file_f_inode=8,
    file_size=0x100,
    inode_i_rdev=0,
    inode_i_cdev=0,
    inode_i_private=0,
    inode_size=0x200,
    misc_minor=0,
    misc_name=4,
    misc_fops=8,
    fs_name=0,
    fs_flags=4,
    cdev_ops=0,
    cdev_dev=0,
    cdev_count=0,
    cdev_size=0x40,
    param_size=20,
    param_ops=8,
    param_arg=16,
)

LAYOUTS: dict[str, dict[str, int]] = {"x86_64": X86_64_61, "i386": I386_24}
FOPS: dict[str, dict[str, int]] = {
    "x86_64": {n: 8 * i for i, n in enumerate(FOPS_61)},
    "i386": {n: 4 * i for i, n in enumerate(FOPS_24)},
}


def layout_for(arch: str) -> dict[str, int]:
    """Member offsets ("file_f_op", "cdev_ops", ...) for ``arch``'s kernel."""
    return LAYOUTS.get(arch, X86_64_61)


def fops_for(arch: str) -> dict[str, int]:
    """struct file_operations member -> offset."""
    return FOPS.get(arch, FOPS["x86_64"])

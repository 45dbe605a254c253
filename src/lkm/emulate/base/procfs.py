"""/proc entries (fs/proc/generic.c), debugfs (fs/debugfs/inode.c) and sysfs/kobjects
(fs/sysfs, lib/kobject.c): the entries a module creates are kept as a tree of names, so a
second entry of the same name in a directory is refused (proc: NULL, debugfs:
ERR_PTR(-EEXIST), sysfs: -EEXIST) and remove_proc_entry/debugfs_remove find what they
remove.  The objects handed back (proc_dir_entry, dentry, kobject) are zeroed kernel memory
of about their size; their members are the kernel's business, not the module's."""

from __future__ import annotations

from lkm.emulate.base.registry import EEXIST, ENOENT, err_ptr, name_at, ptr_name, table, zalloc
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall
from lkm.emulate.state import Registration

__all__ = ["DENTRY_SIZE", "KOBJ_PARENT", "KOBJ_SIZE", "KSET_KOBJ", "PDE_SIZE"]


PDE_SIZE, DENTRY_SIZE, KOBJ_SIZE = 0xC0, 0xC0, 0x40
KSET_KOBJ = 0x18  # struct kset {list, list_lock, kobj}
KOBJ_PARENT = 0x18  # struct kobject {name, entry, parent}


class _Tree:
    """entries: address -> (parent address, name, kind); 0 is the root of the tree."""

    def __init__(self, k: BaseKernel, fs: str) -> None:
        self.k = k
        self.fs = fs
        self.entries = table(k, fs)

    def find(self, parent: int, name: str) -> int:
        for addr, v in self.entries.items():
            if isinstance(v, tuple) and v[0] == parent and v[1] == name and isinstance(addr, int):
                return addr
        return 0

    def add(self, parent: int, name: str, size: int, kind: str) -> int:
        obj = zalloc(self.k, size)
        if obj:
            self.entries[obj] = (parent, name, kind)
            self.k.state.registrations.append(Registration(self.fs, self.path(obj), obj, self.k.current))
        return obj

    def path(self, addr: int) -> str:
        parts = []
        while addr in self.entries:
            v = self.entries[addr]
            assert isinstance(v, tuple)
            parts.append(v[1])
            addr = v[0]
        return "/".join(reversed(parts))

    def remove(self, addr: int) -> None:
        """The entry and everything under it."""
        for child in [a for a, v in self.entries.items() if isinstance(v, tuple) and v[0] == addr]:
            assert isinstance(child, int)
            self.remove(child)
        if addr in self.entries:
            path = self.path(addr)
            del self.entries[addr]
            self.k.state.registrations = [
                r for r in self.k.state.registrations if not (r.kind == self.fs and r.name == path)
            ]


# -- /proc ---------------------------------------------------------------------------------------
def _proc_new(k: BaseKernel, name_ptr: int, parent: int, kind: str) -> int:
    """proc_register: NULL (with the kernel's warning) when the directory has that name."""
    tree = _Tree(k, "proc")
    name = name_at(k, name_ptr)
    if tree.find(parent, name):
        where = tree.path(parent) or "/proc"
        k.state.printk(4, False, f"proc_dir_entry '{where}/{name}' already registered\n", None)
        return 0
    return tree.add(parent, name, PDE_SIZE, kind)


@kfunc("proc_mkdir", nargs=2)
def _proc_mkdir(k: BaseKernel, c: TrapCall) -> int:
    """proc_mkdir(name, parent): the new directory's proc_dir_entry or NULL."""
    return _proc_new(k, c.arg(0), c.arg(1), "dir")


@kfunc("proc_mkdir_mode", "proc_mkdir_data", "_proc_mkdir", nargs=3)
def _proc_mkdir_mode(k: BaseKernel, c: TrapCall) -> int:
    """proc_mkdir_mode(name, mode, parent) / proc_mkdir_data(name, mode, parent, data)."""
    return _proc_new(k, c.arg(0), c.arg(2), "dir")


@kfunc("proc_create", "proc_create_data", "proc_create_seq_private", "proc_create_single_data",
       "proc_create_seq_data", "proc_create_net_data", "proc_create_net_single", "proc_create_net_data_write",
       "proc_create_net_single_write", "proc_create_mount_point", nargs=3)  # fmt: skip
def _proc_create(k: BaseKernel, c: TrapCall) -> int:
    """proc_create*(name, mode, parent, ...): the file's proc_dir_entry or NULL
    (proc_create_mount_point(name): a directory at the top)."""
    if c.name == "proc_create_mount_point":
        return _proc_new(k, c.arg(0), 0, "dir")
    return _proc_new(k, c.arg(0), c.arg(2), "file")


@kfunc("proc_symlink", nargs=3)
def _proc_symlink(k: BaseKernel, c: TrapCall) -> int:
    """proc_symlink(name, parent, dest)."""
    return _proc_new(k, c.arg(0), c.arg(1), "link")


@kfunc("remove_proc_entry", "remove_proc_subtree", nargs=2)
def _remove_proc_entry(k: BaseKernel, c: TrapCall) -> int:
    """remove_proc_entry(name, parent): WARN(1, "name '%s'") when there is none;
    remove_proc_subtree returns -ENOENT then."""
    tree = _Tree(k, "proc")
    name = name_at(k, c.arg(0))
    found = tree.find(c.arg(1), name)
    if not found:
        if c.name == "remove_proc_subtree":
            return -ENOENT
        k.state.printk(4, False, f"name '{name}'\n", None)
        return 0
    tree.remove(found)
    return 0


@kfunc("proc_remove", nargs=1)
def _proc_remove(k: BaseKernel, c: TrapCall) -> int:
    """proc_remove(pde): the entry and its subtree (NULL is allowed)."""
    if c.arg(0):
        _Tree(k, "proc").remove(c.arg(0))
    return 0


@kfunc("proc_set_size", "proc_set_user", nargs=2)
def _proc_set(k: BaseKernel, c: TrapCall) -> int:
    return 0  # the entry's i_size / owner: nothing reads them here


# -- debugfs -------------------------------------------------------------------------------------
def _debugfs_new(k: BaseKernel, name_ptr: int, parent: int, kind: str) -> int:
    """start_creating: ERR_PTR(-EEXIST) for a name the directory has (an ERR_PTR parent is
    passed back as it is)."""
    if parent >= (-4095) & k.arch.mask:
        return parent
    tree = _Tree(k, "debugfs")
    name = name_at(k, name_ptr)
    if tree.find(parent, name):
        return err_ptr(k, EEXIST)
    obj = tree.add(parent, name, DENTRY_SIZE, kind)
    return obj or err_ptr(k, 12)


@kfunc("debugfs_create_dir", nargs=2)
def _debugfs_create_dir(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_create_dir(name, parent): its dentry or an ERR_PTR."""
    return _debugfs_new(k, c.arg(0), c.arg(1), "dir")


@kfunc("debugfs_create_file", "debugfs_create_file_unsafe", "debugfs_create_file_size", nargs=5)
def _debugfs_create_file(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_create_file(name, mode, parent, data, fops): its dentry or an ERR_PTR."""
    return _debugfs_new(k, c.arg(0), c.arg(2), "file")


@kfunc("debugfs_create_u8", "debugfs_create_u16", "debugfs_create_u32", "debugfs_create_u64",
       "debugfs_create_x8", "debugfs_create_x16", "debugfs_create_x32", "debugfs_create_x64",
       "debugfs_create_size_t", "debugfs_create_atomic_t", "debugfs_create_bool", "debugfs_create_ulong",
       "debugfs_create_blob", "debugfs_create_regset32", "debugfs_create_u32_array", "debugfs_create_str",
       "debugfs_create_devm_seqfile", nargs=4)  # fmt: skip
def _debugfs_create_value(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_create_u32(name, mode, parent, value) & co.: a file, nothing returned
    (debugfs_create_blob returns its dentry; _devm_seqfile(dev, name, parent, read))."""
    if c.name == "debugfs_create_devm_seqfile":
        _debugfs_new(k, c.arg(1), c.arg(2), "file")
        return 0
    d = _debugfs_new(k, c.arg(0), c.arg(2), "file")
    return d if c.name == "debugfs_create_blob" else 0


@kfunc("debugfs_create_symlink", nargs=3)
def _debugfs_create_symlink(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_create_symlink(name, parent, target)."""
    return _debugfs_new(k, c.arg(0), c.arg(1), "link")


@kfunc("debugfs_lookup", nargs=2)
def _debugfs_lookup(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_lookup(name, parent): the dentry, NULL when there is none."""
    return _Tree(k, "debugfs").find(c.arg(1), name_at(k, c.arg(0)))


@kfunc("debugfs_remove", "debugfs_remove_recursive", nargs=1)
def _debugfs_remove(k: BaseKernel, c: TrapCall) -> int:
    """debugfs_remove(dentry): it and what is under it (NULL and ERR_PTRs are allowed)."""
    if c.arg(0) and c.arg(0) < (-4095) & k.arch.mask:
        _Tree(k, "debugfs").remove(c.arg(0))
    return 0


@kfunc("debugfs_lookup_and_remove", nargs=2)
def _debugfs_lookup_and_remove(k: BaseKernel, c: TrapCall) -> int:
    tree = _Tree(k, "debugfs")
    found = tree.find(c.arg(1), name_at(k, c.arg(0)))
    if found:
        tree.remove(found)
    return 0


@kfunc("debugfs_initialized", nargs=0)
def _debugfs_initialized(k: BaseKernel, c: TrapCall) -> int:
    return 1  # Debian's 6.1 mounts debugfs at boot


# -- sysfs and kobjects ----------------------------------------------------------------------------
@kfunc("kobject_create_and_add", nargs=2)
def _kobject_create_and_add(k: BaseKernel, c: TrapCall) -> int:
    """kobject_create_and_add(name, parent): NULL when the parent has that name."""
    tree = _Tree(k, "sysfs")
    name = name_at(k, c.arg(0))
    if tree.find(c.arg(1), name):
        why = "don't try to register things with the same name in the same directory."
        k.state.printk(3, False, f"kobject_add_internal failed for {name} with -EEXIST, {why}\n", None)
        return 0
    obj = tree.add(c.arg(1), name, KOBJ_SIZE, "dir")
    if obj:
        k.machine.write_word(obj, k.new_string(name.encode()))  # kobj->name
    return obj


@kfunc("kset_create_and_add", nargs=3)
def _kset_create_and_add(k: BaseKernel, c: TrapCall) -> int:
    """kset_create_and_add(name, uevent_ops, parent_kobj)."""
    tree = _Tree(k, "sysfs")
    name = name_at(k, c.arg(0))
    if tree.find(c.arg(2), name):
        return 0
    obj = tree.add(c.arg(2), name, 0x80, "dir")
    if obj:
        k.machine.write_word(obj + KSET_KOBJ, k.new_string(name.encode()))  # kset.kobj.name
    return obj


@kfunc("kobject_init_and_add", nargs=4, varargs=True)
def _kobject_init_and_add(k: BaseKernel, c: TrapCall) -> int:
    """kobject_init_and_add(kobj, ktype, parent, fmt, ...): named, listed under parent;
    -EEXIST (with the kernel's message) for a name the parent has."""
    from lkm.emulate.base.printk import fmt_call

    name = fmt_call(k, c, 3).decode("utf-8", "replace")
    return _kobject_add(k, c.arg(0), c.arg(2), name)


def _kobject_add(k: BaseKernel, kobj: int, parent: int, name: str) -> int:
    tree = _Tree(k, "sysfs")
    if tree.find(parent, name):
        why = "don't try to register things with the same name in the same directory."
        k.state.printk(3, False, f"kobject_add_internal failed for {name} with -EEXIST, {why}\n", None)
        return -EEXIST
    tree.entries[kobj] = (parent, name, "dir")
    k.machine.write_word(kobj, k.new_string(name.encode()))
    return 0


@kfunc("kset_register", nargs=1)
def _kset_register(k: BaseKernel, c: TrapCall) -> int:
    """kset_register(kset): its kobject (at 0x18, after the list and its lock) added under its
    parent with the name already set."""
    kobj = c.arg(0) + KSET_KOBJ
    name = ptr_name(k, kobj, 0)
    parent = k.machine.read_word(kobj + KOBJ_PARENT)
    if not name:
        return -22
    tree = _Tree(k, "sysfs")
    if tree.find(parent, name):
        return -EEXIST
    tree.entries[c.arg(0)] = (parent, name, "dir")
    return 0


@kfunc("kobject_put", "kset_unregister", "kobject_del", nargs=1)
def _kobject_put(k: BaseKernel, c: TrapCall) -> int:
    """The last reference of a kobject the module created goes: its directory goes."""
    if c.arg(0):
        _Tree(k, "sysfs").remove(c.arg(0))
    return 0


@kfunc("kobject_get", nargs=1)
def _kobject_get(k: BaseKernel, c: TrapCall) -> int:
    return c.arg(0)


@kfunc("kobject_uevent", "kobject_uevent_env", nargs=2)
def _kobject_uevent(k: BaseKernel, c: TrapCall) -> int:
    return 0  # no udev listens in this kernel: the event goes nowhere, successfully


@kfunc("sysfs_create_group", "sysfs_create_groups", "sysfs_create_file_ns", "sysfs_create_bin_file",
       "sysfs_create_link", "sysfs_update_group", "sysfs_merge_group", "sysfs_create_files",
       nargs=3)  # fmt: skip
def _sysfs_create(k: BaseKernel, c: TrapCall) -> int:
    """Attributes of a kobject: kept under it; a second file of the same name is -EEXIST
    (the attribute's name is the first member of struct attribute / attribute_group's name
    pointer when it has one)."""
    kobj, what = c.arg(0), c.arg(1)
    if not kobj or not what:
        return -22  # -EINVAL, as sysfs_create_group(NULL kobj)
    key = f"{c.name}@{what:#x}"
    tab = table(k, "sysfs-attrs")
    if (kobj, key) in tab:
        return -EEXIST
    tab[(kobj, key)] = k.current
    return 0


@kfunc("sysfs_remove_group", "sysfs_remove_groups", "sysfs_remove_file_ns", "sysfs_remove_bin_file",
       "sysfs_remove_link", "sysfs_unmerge_group", "sysfs_remove_files", nargs=3)  # fmt: skip
def _sysfs_remove(k: BaseKernel, c: TrapCall) -> int:
    tab = table(k, "sysfs-attrs")
    create = c.name.replace("remove", "create").replace("unmerge", "merge")
    tab.pop((c.arg(0), f"{create}@{c.arg(1):#x}"), None)
    return 0


@kfunc("sysfs_create_mount_point", nargs=2)
def _sysfs_create_mount_point(k: BaseKernel, c: TrapCall) -> int:
    """sysfs_create_mount_point(parent_kobj, name): an empty directory (/sys/kernel/config...)."""
    tree = _Tree(k, "sysfs")
    name = name_at(k, c.arg(1))
    if tree.find(c.arg(0), name):
        return -EEXIST
    return 0 if tree.add(c.arg(0), name, 8, "mount-point") else -12


@kfunc("sysfs_remove_mount_point", nargs=2)
def _sysfs_remove_mount_point(k: BaseKernel, c: TrapCall) -> int:
    tree = _Tree(k, "sysfs")
    found = tree.find(c.arg(0), name_at(k, c.arg(1)))
    if found:
        tree.remove(found)
    return 0


@kfunc("sysfs_notify", nargs=3)
def _sysfs_notify(k: BaseKernel, c: TrapCall) -> int:
    return 0  # nobody polls the attribute here

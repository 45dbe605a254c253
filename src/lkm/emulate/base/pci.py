"""What a PCI driver's probe calls (drivers/pci/pci.c, iomap.c, access.c, msi): enabling the
device, claiming and mapping its BARs, configuration space (traced as the device's accesses),
interrupt vectors (one INTx line), and device lookups over the emulated bus.  DMA: coherent
buffers and streaming mappings backed by the emulated heap, the bus address being the
physical one (no IOMMU)."""

from __future__ import annotations

from lkm.emulate.base.bus import IORESOURCE_IO, IORESOURCE_MEM, L, pci_match
from lkm.emulate.base.io import PIO_OFFSET, caller_pc, ioremap, iounmap
from lkm.emulate.hw import Access, Device, hw_of
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "EBUSY",
    "EINVAL",
    "EIO",
    "ENOMEM",
    "PCIBIOS_DEVICE_NOT_FOUND",
    "PCI_COMMAND",
    "PCI_COMMAND_IO",
    "PCI_COMMAND_MASTER",
    "PCI_COMMAND_MEMORY",
    "PCI_NUM_RESOURCES",
    "STRUCT_PAGE",
    "VMEMMAP",
    "iomap",
    "pci_device",
]


EBUSY, EINVAL, ENOMEM, EIO = 16, 22, 12, 5
PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER = 0x04, 0x1, 0x2, 0x4
PCIBIOS_DEVICE_NOT_FOUND = 0x86
PCI_NUM_RESOURCES = 6
VMEMMAP, STRUCT_PAGE = 0xFFFFEA0000000000, 64  # vmemmap_base as lkm.emulate.base.runtime boots it
VMEMMAP, STRUCT_PAGE = 0xFFFFEA0000000000, 64  # vmemmap_base as lkm.emulate.base.runtime boots it


def pci_device(k: BaseKernel, pdev: int) -> Device | None:
    return next((d for d in hw_of(k).devices if d.bus == "pci" and d.address == pdev), None)


def _bar(k: BaseKernel, pdev: int, bar: int) -> tuple[int, int, int]:
    """(start, length, flags) of resource ``bar`` of the pci_dev (0s when unset)."""
    lay = L(k)
    m = k.machine
    r = pdev + lay["pci_dev_resource"] + bar * lay["resource_size"]
    start = m.read_word(r + lay["resource_start"])
    end = m.read_word(r + lay["resource_end"])
    flags = m.read_word(r + lay["resource_flags"])
    return start, (end - start + 1) if end or start else 0, flags


# -- enabling ------------------------------------------------------------------------------------
def _command(k: BaseKernel, pdev: int, set_bits: int, clear: int = 0) -> None:
    d = pci_device(k, pdev)
    if d is None:
        return
    cmd = int.from_bytes(d.config[PCI_COMMAND : PCI_COMMAND + 2], "little")
    cmd = (cmd | set_bits) & ~clear
    d.config[PCI_COMMAND : PCI_COMMAND + 2] = cmd.to_bytes(2, "little")


@kfunc("pci_enable_device", "pcim_enable_device", nargs=1)
def _pci_enable_device(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), PCI_COMMAND_IO | PCI_COMMAND_MEMORY)
    return 0


@kfunc("pci_enable_device_mem", nargs=1)
def _pci_enable_device_mem(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), PCI_COMMAND_MEMORY)
    return 0


@kfunc("pci_enable_device_io", nargs=1)
def _pci_enable_device_io(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), PCI_COMMAND_IO)
    return 0


@kfunc("pci_disable_device", nargs=1)
def _pci_disable_device(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), 0, PCI_COMMAND_MASTER)
    return 0


@kfunc("pci_set_master", nargs=1)
def _pci_set_master(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), PCI_COMMAND_MASTER)
    return 0


@kfunc("pci_clear_master", nargs=1)
def _pci_clear_master(k: BaseKernel, c: TrapCall) -> int:
    _command(k, c.arg(0), 0, PCI_COMMAND_MASTER)
    return 0


@kfunc(
    "pci_set_mwi",
    "pci_try_set_mwi",
    "pci_save_state",
    "pci_set_power_state",
    "pci_wake_from_d3",
    "pci_enable_wake",
    "pci_disable_msi",
    "pci_disable_msix",
    "pci_free_irq_vectors",
    "pci_intx",
    "pcie_set_readrq",
    "pci_disable_link_state",
    "pci_disable_link_state_locked",
    "pci_clear_mwi",
    "pci_set_cacheline_size",
    "pci_enable_pcie_error_reporting",
    "pci_disable_pcie_error_reporting",
    "pci_prepare_to_sleep",
    "pci_back_from_sleep",
    "pci_dev_run_wake",
    "pci_ignore_hotplug",
    "pcie_capability_clear_and_set_word",
    "pcie_capability_clear_and_set_dword",
    "pci_set_dma_seg_boundary",
    "dma_set_max_seg_size",
    nargs=2,
)
def _pci_zero(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("pci_restore_state", nargs=1)
def _pci_restore_state(k: BaseKernel, c: TrapCall) -> int:
    return 0


# -- regions and mappings ------------------------------------------------------------------------
def _request(k: BaseKernel, pdev: int, bars: list[int], name: int) -> int:
    for bar in bars:
        start, length, flags = _bar(k, pdev, bar)
        if not length:
            continue
        parent_name = "ioport_resource" if flags & IORESOURCE_IO else "iomem_resource"
        parent = k.resolve(parent_name) or 0
        end = start + length - 1
        if any(p == parent and s <= end and start <= e for p, s, e, _r in k.state.regions):
            d = pci_device(k, pdev)
            what = "io" if flags & IORESOURCE_IO else "mem"
            k.state.printk(
                4,
                False,
                f"{d.driver_name if d else ''} {d.name if d else ''}: BAR {bar}: "
                f"can't reserve [{what} {start:#010x}-{end:#010x}]\n",
                None,
            )
            return -EBUSY
        res = k.alloc(64)
        k.state.regions.append((parent, start, end, res))
    return 0


def _release(k: BaseKernel, pdev: int, bars: list[int]) -> None:
    for bar in bars:
        start, length, _flags = _bar(k, pdev, bar)
        if length:
            k.state.regions = [
                r for r in k.state.regions if not (r[1] == start and r[2] == start + length - 1)
            ]


@kfunc("pci_request_regions", "pci_request_regions_exclusive", nargs=2)
def _pci_request_regions(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(0), list(range(PCI_NUM_RESOURCES)), c.arg(1))


@kfunc("pci_request_region", nargs=3)
def _pci_request_region(k: BaseKernel, c: TrapCall) -> int:
    return _request(k, c.arg(0), [c.arg(1) & 0xFFFFFFFF], c.arg(2))


@kfunc("pci_request_selected_regions", "pci_request_selected_regions_exclusive", nargs=3)
def _pci_request_selected(k: BaseKernel, c: TrapCall) -> int:
    mask = c.arg(1)
    return _request(k, c.arg(0), [i for i in range(PCI_NUM_RESOURCES) if mask >> i & 1], c.arg(2))


@kfunc("pci_release_regions", nargs=1)
def _pci_release_regions(k: BaseKernel, c: TrapCall) -> int:
    _release(k, c.arg(0), list(range(PCI_NUM_RESOURCES)))
    return 0


@kfunc("pci_release_region", nargs=2)
def _pci_release_region(k: BaseKernel, c: TrapCall) -> int:
    _release(k, c.arg(0), [c.arg(1) & 0xFFFFFFFF])
    return 0


@kfunc("pci_release_selected_regions", nargs=2)
def _pci_release_selected(k: BaseKernel, c: TrapCall) -> int:
    _release(k, c.arg(0), [i for i in range(PCI_NUM_RESOURCES) if c.arg(1) >> i & 1])
    return 0


@kfunc("pci_select_bars", nargs=2)
def _pci_select_bars(k: BaseKernel, c: TrapCall) -> int:
    flags = c.arg(1)
    return sum(1 << i for i in range(PCI_NUM_RESOURCES) if _bar(k, c.arg(0), i)[2] & flags)


def iomap(k: BaseKernel, pdev: int, bar: int, offset: int, maxlen: int) -> int:
    """pci_iomap_range: an I/O BAR as a port cookie, a memory BAR ioremapped; 0 if empty."""
    start, length, flags = _bar(k, pdev, bar)
    if not length or offset >= length:
        return 0
    length -= offset
    if maxlen and maxlen < length:
        length = maxlen
    if flags & IORESOURCE_IO:
        return PIO_OFFSET + ((start + offset) & 0xFFFF)
    if flags & IORESOURCE_MEM:
        return ioremap(k, start + offset, length)
    return 0


def _table(k: BaseKernel, pdev: int) -> int:
    hw = hw_of(k)
    d = pci_device(k, pdev)
    if d is None:
        return 0
    if "iomap_table" not in d.extra:
        d.extra["iomap_table"] = k.alloc(8 * PCI_NUM_RESOURCES)
    _ = hw
    return d.extra["iomap_table"]


@kfunc("pci_iomap", "pcim_iomap", "pci_iomap_wc", nargs=3)
def _pci_iomap(k: BaseKernel, c: TrapCall) -> int:
    addr = iomap(k, c.arg(0), c.arg(1) & 0xFFFFFFFF, 0, c.arg(2))
    if c.name == "pcim_iomap" and addr:
        t = _table(k, c.arg(0))
        if t:
            k.machine.write_word(t + 8 * (c.arg(1) & 0xFFFFFFFF), addr)
    return addr


@kfunc("pci_iomap_range", "pci_iomap_wc_range", nargs=4)
def _pci_iomap_range(k: BaseKernel, c: TrapCall) -> int:
    return iomap(k, c.arg(0), c.arg(1) & 0xFFFFFFFF, c.arg(2), c.arg(3))


@kfunc("pci_ioremap_bar", "pci_ioremap_wc_bar", nargs=2)
def _pci_ioremap_bar(k: BaseKernel, c: TrapCall) -> int:
    start, length, flags = _bar(k, c.arg(0), c.arg(1) & 0xFFFFFFFF)
    if not flags & IORESOURCE_MEM or not length:
        return 0
    return ioremap(k, start, length)


@kfunc("pci_iounmap", "pcim_iounmap", nargs=2)
def _pci_iounmap(k: BaseKernel, c: TrapCall) -> int:
    iounmap(k, c.arg(1))
    return 0


@kfunc("pcim_iomap_table", nargs=1)
def _pcim_iomap_table(k: BaseKernel, c: TrapCall) -> int:
    return _table(k, c.arg(0))


@kfunc("pcim_iomap_regions", "pcim_iomap_regions_request_all", nargs=3)
def _pcim_iomap_regions(k: BaseKernel, c: TrapCall) -> int:
    pdev, mask = c.arg(0), c.arg(1)
    bars = [i for i in range(PCI_NUM_RESOURCES) if mask >> i & 1]
    if c.name == "pcim_iomap_regions_request_all":
        ret = _request(k, pdev, list(range(PCI_NUM_RESOURCES)), c.arg(2))
    else:
        ret = _request(k, pdev, bars, c.arg(2))
    if ret:
        return ret
    t = _table(k, pdev)
    for i in bars:
        addr = iomap(k, pdev, i, 0, 0)
        if not addr:
            return -ENOMEM
        k.machine.write_word(t + 8 * i, addr)
    return 0


# -- configuration space -------------------------------------------------------------------------
def _cfg(k: BaseKernel, c: TrapCall, size: int, write: bool) -> int:
    pdev, where = c.arg(0), c.arg(1) & 0xFFFF
    d = pci_device(k, pdev)
    hw = hw_of(k)
    pc = caller_pc(k)
    if d is None or where + size > len(d.config):
        if not write:
            k.machine.write_int(c.arg(2), size, (1 << (8 * size)) - 1)
        return PCIBIOS_DEVICE_NOT_FOUND
    if write:
        value = c.arg(2) & ((1 << (8 * size)) - 1)
        d.config[where : where + size] = value.to_bytes(size, "little")
        hw.trace.append(Access("cfg-write", d.name, "config", where, where, size, value, pc))
    else:
        value = int.from_bytes(d.config[where : where + size], "little")
        k.machine.write_int(c.arg(2), size, value)
        hw.trace.append(Access("cfg-read", d.name, "config", where, where, size, value, pc))
    return 0


@kfunc("pci_read_config_byte", nargs=3)
def _rcb(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 1, False)


@kfunc("pci_read_config_word", nargs=3)
def _rcw(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 2, False)


@kfunc("pci_read_config_dword", nargs=3)
def _rcd(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 4, False)


@kfunc("pci_write_config_byte", nargs=3)
def _wcb(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 1, True)


@kfunc("pci_write_config_word", nargs=3)
def _wcw(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 2, True)


@kfunc("pci_write_config_dword", nargs=3)
def _wcd(k: BaseKernel, c: TrapCall) -> int:
    return _cfg(k, c, 4, True)


@kfunc("pcie_capability_read_word", "pcie_capability_read_dword", nargs=3)
def _pcie_cap_read(k: BaseKernel, c: TrapCall) -> int:
    """Not a PCI Express device (no capability list): the value reads 0."""
    k.machine.write_int(c.arg(2), 2 if c.name.endswith("word") and "dword" not in c.name else 4, 0)
    return 0


@kfunc("pcie_capability_write_word", "pcie_capability_write_dword", nargs=3)
def _pcie_cap_write(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("pci_find_capability", "pci_find_ext_capability", "pci_find_next_capability", nargs=2)
def _pci_find_capability(k: BaseKernel, c: TrapCall) -> int:
    return 0  # the emulated device has no capability list


# -- interrupts ----------------------------------------------------------------------------------
@kfunc("pci_alloc_irq_vectors_affinity", "pci_alloc_irq_vectors", nargs=4)
def _pci_alloc_irq_vectors(k: BaseKernel, c: TrapCall) -> int:
    minv = c.arg(1) & 0xFFFFFFFF
    return 1 if minv <= 1 else -28 & k.arch.mask  # one legacy line; -ENOSPC for more


@kfunc("pci_irq_vector", nargs=2)
def _pci_irq_vector(k: BaseKernel, c: TrapCall) -> int:
    if c.arg(1) & 0xFFFFFFFF:
        return -EINVAL & k.arch.mask
    return k.machine.read_int(c.arg(0) + L(k)["pci_dev_irq"], 4)


@kfunc("pci_enable_msi", "pci_enable_msix_range", "pci_enable_msix_exact", nargs=3)
def _pci_enable_msi(k: BaseKernel, c: TrapCall) -> int:
    return -EINVAL & k.arch.mask  # no MSI capability: drivers fall back to the INTx line


# -- lookups -------------------------------------------------------------------------------------
def _next_match(k: BaseKernel, prev: int, want: dict[str, int], cls: int | None = None) -> int:
    devs = [d for d in hw_of(k).devices if d.bus == "pci"]
    start = 0
    if prev:
        idx = next((i for i, d in enumerate(devs) if d.address == prev), -1)
        start = idx + 1
    for d in devs[start:]:
        if cls is not None:
            if d.ids.get("class", 0) == cls:
                return d.address
            continue
        if all(v == 0xFFFFFFFF or d.ids.get(key, 0) == v for key, v in want.items()):
            return d.address
    return 0


@kfunc("pci_get_device", nargs=3)
def _pci_get_device(k: BaseKernel, c: TrapCall) -> int:
    return _next_match(k, c.arg(2), {"vendor": c.arg(0) & 0xFFFFFFFF, "device": c.arg(1) & 0xFFFFFFFF})


@kfunc("pci_get_subsys", nargs=5)
def _pci_get_subsys(k: BaseKernel, c: TrapCall) -> int:
    want = {"vendor": c.arg(0), "device": c.arg(1), "subvendor": c.arg(2), "subdevice": c.arg(3)}
    return _next_match(k, c.arg(4), {a: v & 0xFFFFFFFF for a, v in want.items()})


@kfunc("pci_get_class", nargs=2)
def _pci_get_class(k: BaseKernel, c: TrapCall) -> int:
    return _next_match(k, c.arg(1), {}, c.arg(0) & 0xFFFFFF)


@kfunc("pci_get_domain_bus_and_slot", nargs=3)
def _pci_get_slot(k: BaseKernel, c: TrapCall) -> int:
    want = f"{c.arg(0) & 0xFFFF:04x}:{c.arg(1) & 0xFF:02x}:{(c.arg(2) >> 3) & 0x1F:02x}.{c.arg(2) & 7}"
    return next((d.address for d in hw_of(k).devices if d.bus == "pci" and d.name == want), 0)


@kfunc("pci_dev_present", nargs=1)
def _pci_dev_present(k: BaseKernel, c: TrapCall) -> int:
    return int(any(pci_match(k, c.arg(0), d) for d in hw_of(k).devices if d.bus == "pci"))


@kfunc("pci_match_id", nargs=2)
def _pci_match_id(k: BaseKernel, c: TrapCall) -> int:
    d = pci_device(k, c.arg(1))
    return pci_match(k, c.arg(0), d) if d is not None else 0


# -- DMA (kernel/dma/mapping.c, direct mapping) --------------------------------------------------
def _phys(k: BaseKernel, virt: int) -> int:
    return virt - k.arch.page_offset if virt >= k.arch.page_offset else virt


@kfunc("dma_set_mask", "dma_set_coherent_mask", nargs=2)
def _dma_set_mask(k: BaseKernel, c: TrapCall) -> int:
    lay = L(k)
    dev, mask = c.arg(0), c.arg(1)
    if c.name == "dma_set_mask":
        ptr = k.machine.read_word(dev + lay["device_dma_mask"])
        if ptr:
            k.machine.write_word(ptr, mask)
    else:
        k.machine.write_word(dev + lay["device_coherent_dma_mask"], mask)
    return 0


@kfunc("dma_alloc_attrs", "dmam_alloc_attrs", nargs=5)
def _dma_alloc(k: BaseKernel, c: TrapCall) -> int:
    from lkm.emulate.kernel import OutOfMemory

    size = c.arg(1)
    try:
        virt = k.alloc((size + 0xFFF) & ~0xFFF, align=0x1000)
    except OutOfMemory as exc:
        k.log_oom(size, str(exc))
        return 0
    if c.arg(2):
        k.machine.write_word(c.arg(2), _phys(k, virt))
    return virt


@kfunc("dma_free_attrs", "dmam_free_coherent", nargs=4)
def _dma_free(k: BaseKernel, c: TrapCall) -> int:
    k.free(c.arg(2))
    return 0


@kfunc("dma_map_page_attrs", nargs=6)
def _dma_map_page(k: BaseKernel, c: TrapCall) -> int:
    """virt_to_page's inverse: page -> its direct-map address (vmemmap of 64-byte pages)."""
    return _page_phys(c.arg(1)) + c.arg(2)


@kfunc(
    "dma_unmap_page_attrs",
    "dma_sync_single_for_cpu",
    "dma_sync_single_for_device",
    "dma_unmap_sg_attrs",
    "dma_sync_sg_for_cpu",
    "dma_sync_sg_for_device",
    nargs=4,
)
def _dma_unmap(k: BaseKernel, c: TrapCall) -> int:
    return 0


@kfunc("dma_map_resource", nargs=5)
def _dma_map_resource(k: BaseKernel, c: TrapCall) -> int:
    return c.arg(1)


def _page_phys(page: int) -> int:
    """page_to_phys of a struct page address (the vmemmap array of 64-byte pages)."""
    return ((page - VMEMMAP) // STRUCT_PAGE) << 12


@kfunc("dma_map_sg_attrs", "dma_map_sgtable", nargs=5)
def _dma_map_sg(k: BaseKernel, c: TrapCall) -> int:
    """Each entry's bus address is its page's physical address plus its offset (sg_next:
    SG_CHAIN links, SG_END ends).  dma_map_sgtable(dev, sgt, dir, attrs): 0, sgt->nents set."""
    lay = L(k)
    m = k.machine
    if c.name == "dma_map_sgtable":
        sgt = c.arg(1)
        sg, nents = m.read_word(sgt), m.read_int(sgt + 12, 4)  # sg_table: sgl, nents, orig_nents
    else:
        sg, nents = c.arg(1), c.arg(2) & 0xFFFFFFFF
    done = 0
    while sg and done < min(nents, 1 << 16):
        link = m.read_word(sg + lay["scatterlist_page_link"])
        if link & 1:  # SG_CHAIN
            sg = link & ~3
            continue
        phys = _page_phys(link & ~3) + m.read_int(sg + lay["scatterlist_offset"], 4)
        m.write_word(sg + lay["scatterlist_dma_address"], phys)
        m.write_int(sg + lay["scatterlist_dma_length"], 4, m.read_int(sg + lay["scatterlist_length"], 4))
        done += 1
        if link & 2:  # SG_END
            break
        sg += lay["scatterlist_size"]
    if c.name == "dma_map_sgtable":
        m.write_int(c.arg(1) + 8, 4, done)
        return 0
    return done

"""What the machine is: DMI tables (drivers/firmware/dmi_scan.c) and CPU model matching
(arch/x86/kernel/cpu/match.c), answered for the machine the corpus's guests boot on: QEMU's
i440FX PC with SeaBIOS and its default TCG CPU ("AMD QEMU Virtual CPU version 2.5+", family
0xf, model 0x6b, stepping 1), as the captured guest's dmesg shows.  A driver's quirk table
for real hardware matches nothing there; one naming QEMU matches as it would in the guest.
Offsets: 6.1 amd64, offsetof() against its headers."""

from __future__ import annotations

from lkm.emulate.base.registry import table
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "ACPI_BUS_FIND",
    "ACPI_BUS_MATCH",
    "ACPI_BUS_NAME",
    "CPU",
    "CPU_FEATURES",
    "CPU_ID_SIZE",
    "DMI",
    "DMI_ID_SIZE",
    "DMI_MATCHES",
    "DMI_MATCHES_N",
    "DMI_MATCH_SIZE",
    "DMI_OEM_STRING",
    "X86_VENDOR_AMD",
    "X86_VENDOR_ANY",
    "XFEATURE_NAMES",
]


# enum dmi_field (include/linux/mod_devicetable.h) -> QEMU i440FX/SeaBIOS's SMBIOS strings
DMI = {
    1: "SeaBIOS", 2: "1.16.2-debian-1.16.2-1", 3: "04/01/2014", 4: "0.0",
    6: "QEMU", 7: "Standard PC (i440FX + PIIX, 1996)", 8: "pc-i440fx-7.2",
    18: "QEMU", 19: "1", 20: "pc-i440fx-7.2",
}  # fmt: skip
DMI_OEM_STRING = 24
DMI_ID_SIZE, DMI_MATCHES, DMI_MATCH_SIZE, DMI_MATCHES_N = 344, 16, 80, 4  # struct dmi_system_id


def _dmi_matches(k: BaseKernel, entry: int) -> bool:
    """dmi_matches: every non-empty match of the entry holds (exact or substring)."""
    m = k.machine
    for i in range(DMI_MATCHES_N):
        at = entry + DMI_MATCHES + i * DMI_MATCH_SIZE
        head = m.read_int(at, 1)
        slot, exact = head & 0x7F, head >> 7
        if slot == 0:
            break
        want = (m.read_cstr(at + 1, DMI_MATCH_SIZE - 1) or b"").decode("latin-1")
        have = DMI.get(slot)
        if slot == DMI_OEM_STRING or have is None:
            return False
        if not (have == want if exact else want in have):
            return False
    return True


def _entries(k: BaseKernel, table_addr: int) -> list[int]:
    """A dmi_system_id table up to its terminator (matches[0].slot == DMI_NONE)."""
    out: list[int] = []
    at = table_addr
    while at and k.machine.read_int(at + DMI_MATCHES, 1) & 0x7F and len(out) < 4096:
        out.append(at)
        at += DMI_ID_SIZE
    return out


@kfunc("dmi_check_system", nargs=1)
def _dmi_check_system(k: BaseKernel, c: TrapCall) -> int:
    """dmi_check_system(list): the number of matching entries; each match's callback is
    called and a non-zero return ends the walk."""
    count = 0
    for e in _entries(k, c.arg(0)):
        if _dmi_matches(k, e):
            count += 1
            cb = k.machine.read_word(e)
            if cb and k.call(cb, (e,), k.current) & 0xFFFFFFFF:
                break
    return count


@kfunc("dmi_first_match", nargs=1)
def _dmi_first_match(k: BaseKernel, c: TrapCall) -> int:
    """dmi_first_match(list): the first matching entry, NULL when none does."""
    return next((e for e in _entries(k, c.arg(0)) if _dmi_matches(k, e)), 0)


@kfunc("dmi_get_system_info", nargs=1)
def _dmi_get_system_info(k: BaseKernel, c: TrapCall) -> int:
    """dmi_get_system_info(field): the SMBIOS string, NULL for a field the machine lacks."""
    value = DMI.get(c.arg(0) & 0xFFFFFFFF)
    if value is None:
        return 0
    strings = table(k, "dmi-strings")
    addr = strings.get(value)
    if not isinstance(addr, int):
        addr = k.new_string(value.encode())
        strings[value] = addr
    return addr


@kfunc("dmi_match", nargs=2)
def _dmi_match(k: BaseKernel, c: TrapCall) -> int:
    """dmi_match(field, str): the field is present and equal."""
    value = DMI.get(c.arg(0) & 0xFFFFFFFF)
    return int(value is not None and value == k.cstring(c.arg(1)))


@kfunc("dmi_name_in_vendors", nargs=1)
def _dmi_name_in_vendors(k: BaseKernel, c: TrapCall) -> int:
    """dmi_name_in_vendors(str): str is a substring of a vendor/product field."""
    want = k.cstring(c.arg(0))
    return int(any(want in DMI.get(f, "") for f in (6, 7, 13, 14, 18)))


@kfunc("dmi_name_in_serial", nargs=1)
def _dmi_name_in_serial(k: BaseKernel, c: TrapCall) -> int:
    return 0  # QEMU's default SMBIOS has no product serial


@kfunc("dmi_find_device", nargs=3)
def _dmi_find_device(k: BaseKernel, c: TrapCall) -> int:
    return 0  # dmi_find_device(type, name, from): QEMU's tables list no onboard devices


@kfunc("dmi_walk", nargs=2)
def _dmi_walk(k: BaseKernel, c: TrapCall) -> int:
    return -6  # -ENXIO: the raw tables are not kept (dmi_walk without dmi_available)


@kfunc("dmi_get_date", nargs=4)
def _dmi_get_date(k: BaseKernel, c: TrapCall) -> int:
    """dmi_get_date(field, &year, &month, &day): BIOS date 04/01/2014."""
    m = k.machine
    ok = (c.arg(0) & 0xFFFFFFFF) == 3
    for ptr, value in ((c.arg(1), 2014), (c.arg(2), 4), (c.arg(3), 1)):
        if ptr:
            m.write_int(ptr, 4, value if ok else 0)
    return int(ok)


@kfunc("dmi_get_bios_year", nargs=0)
def _dmi_get_bios_year(k: BaseKernel, c: TrapCall) -> int:
    return 2014


# -- CPU model matching --------------------------------------------------------------------
X86_VENDOR_AMD, X86_VENDOR_ANY = 2, 0xFFFF
CPU = {"vendor": X86_VENDOR_AMD, "family": 0xF, "model": 0x6B, "stepping": 1}
# X86_FEATURE_* bits (word * 32 + bit) of QEMU's qemu64 CPU under TCG: CPUID 1 EDX (word 0),
# 0x80000001 EDX (word 1), CPUID 1 ECX (word 4), 0x80000001 ECX (word 6).
CPU_FEATURES = frozenset(
    [b for b in (0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26)]
    + [32 + b for b in (11, 20, 29)]
    + [128 + b for b in (0, 13, 31)]
    + [192 + b for b in (0,)]
)
CPU_ID_SIZE = 24  # struct x86_cpu_id {u16 vendor, family, model, steppings, feature; ulong data}


@kfunc("x86_match_cpu", nargs=1)
def _x86_match_cpu(k: BaseKernel, c: TrapCall) -> int:
    """x86_match_cpu(match): the first entry the boot CPU matches (vendor, family, model,
    stepping mask, feature), NULL when none does; the table ends at an all-zero entry."""
    m = k.machine
    at = c.arg(0)
    for _ in range(4096):
        vendor, family, model, steppings, feature = (m.read_int(at + 2 * i, 2) for i in range(5))
        if not (vendor | family | model | feature):
            return 0
        if (
            (vendor == X86_VENDOR_ANY or vendor == CPU["vendor"])
            and (family == 0 or family == CPU["family"])
            and (model == 0 or model == CPU["model"])
            and (steppings == 0 or steppings & (1 << CPU["stepping"]))
            and (feature == 0 or feature in CPU_FEATURES)
        ):
            return at
        at += CPU_ID_SIZE
    return 0


# -- what else the machine is or is not ----------------------------------------------------------------
@kfunc("acpi_osi_is_win8", nargs=0)
def _acpi_osi_is_win8(k: BaseKernel, c: TrapCall) -> int:
    """acpi_osi_is_win8(): SeaBIOS's DSDT never asks _OSI("Windows 2012"): false."""
    return 0


@kfunc("hv_is_hyperv_initialized", nargs=0)
def _hv_is_hyperv_initialized(k: BaseKernel, c: TrapCall) -> int:
    return 0  # not a Hyper-V guest


@kfunc("kvm_para_available", nargs=0)
def _kvm_para_available(k: BaseKernel, c: TrapCall) -> int:
    return 0  # TCG: no KVM CPUID leaves


@kfunc("ec_read", "ec_write", "ec_transaction", nargs=2)
def _ec(k: BaseKernel, c: TrapCall) -> int:
    return -19  # -ENODEV: QEMU's PC has no ACPI embedded controller (drivers/acpi/ec.c's first_ec NULL)


@kfunc("cpufreq_get_current_driver", nargs=0)
def _cpufreq_get_current_driver(k: BaseKernel, c: TrapCall) -> int:
    return 0  # no cpufreq driver under TCG: NULL


@kfunc("edac_get_owner", nargs=0)
def _edac_get_owner(k: BaseKernel, c: TrapCall) -> int:
    return 0  # no EDAC driver owns the machine yet: NULL


@kfunc("drm_firmware_drivers_only", nargs=0)
def _drm_firmware_drivers_only(k: BaseKernel, c: TrapCall) -> int:
    return 0  # nomodeset not on the command line


@kfunc("fb_get_options", nargs=2)
def _fb_get_options(k: BaseKernel, c: TrapCall) -> int:
    """fb_get_options(name, &option): no video= on the command line: *option = NULL, 0
    (the driver is enabled)."""
    if c.arg(1):
        k.machine.write_word(c.arg(1), 0)
    return 0


XFEATURE_NAMES = ("x87 floating point registers", "SSE registers", "AVX registers", "MPX bounds registers",
                  "MPX CSR", "AVX-512 opmask", "AVX-512 Hi256", "AVX-512 ZMM_Hi256",
                  "Processor Trace (unused)",
                  "Protection Keys User registers", "PASID state")  # fmt: skip


@kfunc("cpu_has_xfeatures", nargs=2)
def _cpu_has_xfeatures(k: BaseKernel, c: TrapCall) -> int:
    """cpu_has_xfeatures(mask, &name): qemu64 has no XSAVE, so only x87 and SSE state exist;
    for another feature 0 and *name = the first missing one's name."""
    missing = c.arg(0) & ~0x3
    if not missing:
        return 1
    if c.arg(1):
        bit = (missing & -missing).bit_length() - 1
        name = XFEATURE_NAMES[bit] if bit < len(XFEATURE_NAMES) else "unknown xstate feature"
        strings = table(k, "xfeature-names")
        addr = strings.get(name)
        if not isinstance(addr, int):
            addr = k.new_string(name.encode())
            strings[name] = addr
        k.machine.write_word(c.arg(1), addr)
    return 0


@kfunc("nr_free_buffer_pages", nargs=0)
def _nr_free_buffer_pages(k: BaseKernel, c: TrapCall) -> int:
    """The free pages of the emulated kernel's heap (its memory budget left)."""
    used = sum(k.allocations.values())
    return max(k.memory_budget - used, 0) // 4096


# -- ACPI glue (drivers/acpi/glue.c) ---------------------------------------------------------------------
ACPI_BUS_NAME, ACPI_BUS_MATCH, ACPI_BUS_FIND = (
    16,
    24,
    32,
)  # struct acpi_bus_type: list, name, match, find_companion


@kfunc("register_acpi_bus_type", nargs=1)
def _register_acpi_bus_type(k: BaseKernel, c: TrapCall) -> int:
    """register_acpi_bus_type(type): listed with "ACPI: bus type %s registered" when it has
    match and find_companion, else -ENODEV (ACPI is on: QEMU's PC has ACPI tables)."""
    from lkm.emulate.base.registry import ptr_name, register

    m = k.machine
    t = c.arg(0)
    if not t or not m.read_word(t + ACPI_BUS_MATCH) or not m.read_word(t + ACPI_BUS_FIND):
        return -19
    name = ptr_name(k, t, ACPI_BUS_NAME)
    register(k, "acpi-bus-type", t, name)
    k.state.printk(6, False, f"ACPI: bus type {name} registered\n", None)
    return 0


@kfunc("unregister_acpi_bus_type", nargs=1)
def _unregister_acpi_bus_type(k: BaseKernel, c: TrapCall) -> int:
    """unregister_acpi_bus_type(type): -ENODEV for NULL; "ACPI: bus type %s unregistered"."""
    from lkm.emulate.base.registry import ptr_name, unregister

    if not c.arg(0):
        return -19
    unregister(k, "acpi-bus-type", c.arg(0))
    k.state.printk(6, False, f"ACPI: bus type {ptr_name(k, c.arg(0), ACPI_BUS_NAME)} unregistered\n", None)
    return 0


# -- EFI (drivers/firmware/efi/vars.c) ---------------------------------------------------------------
@kfunc("efivar_supports_writes", nargs=0)
def _efivar_supports_writes(k: BaseKernel, c: TrapCall) -> int:
    """efivar_supports_writes(): __efivars && __efivars->ops->set_variable.  SeaBIOS boots
    QEMU's PC without EFI, so no efivars ops are registered: false."""
    return 0


@kfunc("acpi_quirk_skip_acpi_ac_and_battery", nargs=0)
def _acpi_quirk_skip_acpi_ac_and_battery(k: BaseKernel, c: TrapCall) -> int:
    """acpi_quirk_skip_acpi_ac_and_battery() (drivers/acpi/x86/utils.c): true only on the
    Intel Atom tablets of its CPU/DMI quirk tables; QEMU's PC (AMD QEMU CPU, QEMU DMI strings)
    matches none of them: false."""
    return 0

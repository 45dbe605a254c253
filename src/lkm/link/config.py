"""The kernel configuration a module's layout depends on (the knobs of the kernel's .config),
and module_init_layout_section, which the layout and arm64's module_frob_arch_sections share."""

from __future__ import annotations

from lkm.record import Record

__all__ = ["KernelConfig", "is_init_section"]


class KernelConfig(Record):
    """The configuration knobs the layout depends on (from the kernel's .config).
    ``arm64_erratum_843419``: CONFIG_ARM64_ERRATUM_843419 and a CPU that needs it (Cortex-A53
    r0p0-r0p4), the kernel's ARM64_WORKAROUND_843419 capability: a property of the machine, so
    never read from a .config."""

    __slots__ = ("page_size", "strict_module_rwx", "kallsyms", "kallsyms_all", "module_unload",
                 "arm64_erratum_843419")  # fmt: skip

    def __init__(
        self,
        page_size: int = 4096,
        strict_module_rwx: bool = True,
        kallsyms: bool = True,
        kallsyms_all: bool = False,
        module_unload: bool = True,
        arm64_erratum_843419: bool = False,
    ) -> None:
        self.page_size = page_size
        self.strict_module_rwx = strict_module_rwx
        self.kallsyms = kallsyms
        self.kallsyms_all = kallsyms_all
        self.module_unload = module_unload
        self.arm64_erratum_843419 = arm64_erratum_843419

    @classmethod
    def from_config_text(cls, text: str) -> KernelConfig:
        """From a kernel .config (``CONFIG_X=y`` lines)."""
        on = {line.split("=", 1)[0] for line in text.splitlines() if line.endswith("=y")}
        page = 65536 if "CONFIG_ARM64_64K_PAGES" in on else 16384 if "CONFIG_ARM64_16K_PAGES" in on else 4096
        return cls(
            page_size=page,
            strict_module_rwx="CONFIG_STRICT_MODULE_RWX" in on,
            kallsyms="CONFIG_KALLSYMS" in on,
            kallsyms_all="CONFIG_KALLSYMS_ALL" in on,
            module_unload="CONFIG_MODULE_UNLOAD" in on,
        )


def is_init_section(name: str, config: KernelConfig) -> bool:
    """module_init_layout_section: ".init*", and ".exit*" when modules cannot be unloaded."""
    return name.startswith(".init") or (not config.module_unload and name.startswith(".exit"))

"""Kernel versions
===============

One :class:`KernelVersion` record per design of the module loader lkm models, holding every
rule that differs between them, so that code asks the record instead of testing a version:

* :data:`LINUX_2_4` -- the 2.4 design (the HOWTO's section 10): user space (modutils'
  insmod) links the object and hands the kernel an image through ``create_module`` and
  ``init_module``; ``request_module`` runs ``modprobe -s -k --``.
* :data:`LINUX_6_1` -- the in-kernel loader of 2.5.48 (Rusty Russell's module rewrite) up to
  6.3: one core and one init area per module, page-aligned boundaries inside each
  (``strict_align``), ``find_kallsyms_symbol`` bounds by the end of the text.
* :data:`LINUX_6_12` -- from 6.4 (commit ac3b43283923 "module: replace module_layout with
  module_memory"): one area per memory type; 6.12's stricter ``elf_validity_check``
  (one .modinfo, one symbol table, a well-formed ``.gnu.linkonce.this_module``).

Adding a kernel version is adding one record here and registering it (:func:`register`);
:func:`for_release` and :func:`by_name` then find it.  The layout engine
(:mod:`lkm.link.layout`), the ELF checks (:mod:`lkm.module.validate`), the symboliser's module
map (:mod:`lkm.oops.modmap`) and the model kernel's ``request_module``
(:mod:`lkm.kernel.model.kmod`) read their rules from the record.
"""

from __future__ import annotations

import errno

from lkm.record import Record

__all__ = [
    "LINUX_2_4",
    "LINUX_6_1",
    "LINUX_6_12",
    "STRUCT_MODULE_24",
    "VERSIONS",
    "KernelConfig",
    "KernelVersion",
    "KmodRules",
    "LayoutRules",
    "ValidityRules",
    "by_name",
    "for_module",
    "for_release",
    "is_init_section",
    "register",
    "unregister",
]


class LayoutRules(Record):
    """One kernel's layout: the region each mask row fills (core and init passes), and after
    which rows the running size is page-aligned (6.1's strict_align inside one region).
    ``None`` in ``init_regions`` is 6.12's MOD_INVALID (no init ro_after_init)."""

    __slots__ = ("name", "core_regions", "init_regions", "core_align_after", "init_align_after", "regions")

    def __init__(
        self,
        name: str,
        core_regions: tuple[str, ...],
        init_regions: tuple[str | None, ...],
        core_align_after: frozenset[int],
        init_align_after: frozenset[int],
        regions: tuple[str, ...],
    ) -> None:
        self.name = name
        self.core_regions = core_regions
        self.init_regions = init_regions
        self.core_align_after = core_align_after
        self.init_align_after = init_align_after
        self.regions = regions


class ValidityRules(Record):
    """What one kernel version's elf_validity_check checks beyond the common ELF rules."""

    __slots__ = ("version", "modinfo_must_be_alloc", "one_modinfo", "one_symtab", "this_module_strict")

    def __init__(
        self,
        version: str,
        modinfo_must_be_alloc: bool,  # 6.1: find_sec(".modinfo") sees only SHF_ALLOC sections
        one_modinfo: bool,  # 6.12: more than one .modinfo is rejected
        one_symtab: bool,  # 6.12: exactly one SHT_SYMTAB
        this_module_strict: bool,  # 6.12: exactly one, PROGBITS, ALLOC, sizeof(struct module)
    ) -> None:
        self.version = version
        self.modinfo_must_be_alloc = modinfo_must_be_alloc
        self.one_modinfo = one_modinfo
        self.one_symtab = one_symtab
        self.this_module_strict = this_module_strict


class KmodRules(Record):
    """One kernel design's request_module: modprobe's flags, the name limit (None: unchecked),
    whether the wait status is returned (else 0) and how the limit is reported (at most
    ``limit_message_max`` times: 2.4's static counter; None: every time)."""

    __slots__ = ("flags", "name_len", "status", "limit_errno", "limit_messages", "limit_message_max")

    def __init__(
        self,
        flags: tuple[str, ...],
        name_len: int | None,
        status: bool,
        limit_errno: int,
        limit_messages: tuple[str, ...],
        limit_message_max: int | None = None,
    ) -> None:
        self.flags = flags
        self.name_len = name_len
        self.status = status
        self.limit_errno = limit_errno
        self.limit_messages = limit_messages
        self.limit_message_max = limit_message_max


class KernelVersion(Record):
    """One module-loader design.

    ``name`` is the layout key (``linux-6.1``), ``short`` the validity key (``6.1``);
    ``since`` the first (major, minor) release with these rules; ``user_space_link`` the 2.4
    design (insmod links, the kernel copies an image); ``layout`` None there (insmod's load
    order is :func:`lkm.link.layout.layout_24`); ``regions`` how ``find_kallsyms_symbol``
    bounds a symbol ("text_end" up to 6.3, "area" from 6.4 and in 2.4's one image);
    ``angle_levels``: printk levels are ``<N>`` prefixes (2.4; KERN_SOH "\\001N" from 3.6,
    commit 04d2c8c83d0e "printk: convert the format for KERN_<LEVEL> to a 2 byte pattern");
    ``gfp_zero``: kmalloc honours __GFP_ZERO (2.6.20 on; 2.4 has no such flag)."""

    __slots__ = ("name", "short", "since", "user_space_link", "layout", "validity", "regions", "kmod",
                 "angle_levels", "gfp_zero")  # fmt: skip

    def __init__(
        self,
        name: str,
        short: str,
        since: tuple[int, int],
        user_space_link: bool,
        layout: LayoutRules | None,
        validity: ValidityRules | None,
        regions: str,
        kmod: KmodRules,
        angle_levels: bool = False,
        gfp_zero: bool = True,
    ) -> None:
        self.name = name
        self.short = short
        self.since = since
        self.user_space_link = user_space_link
        self.layout = layout
        self.validity = validity
        self.regions = regions
        self.kmod = kmod
        self.angle_levels = angle_levels
        self.gfp_zero = gfp_zero

    def __str__(self) -> str:
        return self.name


_KMOD_6 = KmodRules(
    ("-q", "--"),
    64,  # minus sizeof(long) for the machine (see lkm.kernel.model.kmod.name_limit)
    True,
    errno.ETIME,
    (
        "request_module: kmod_concurrent_max (0) close to 0 (max_modprobes: {max}), for module {name}, "
        "throttling...",
        "request_module: modprobe {name} cannot be processed, kmod busy with {max} threads for more "
        "than {timeout} seconds now",
    ),
)

# struct module of 2.4 (include/linux/module.h of 2.4.20; modutils' own copy), in order, every
# field one word: what 2.4's insmod builds (lkm.link.insmod24) and its kernel reads
# (lkm.kernel.model.struct24).
STRUCT_MODULE_24 = (
    "size_of_struct", "next", "name", "size", "usecount", "flags", "nsyms", "ndeps", "syms", "deps",
    "refs", "init", "cleanup", "ex_table_start", "ex_table_end", "persist_start", "persist_end",
    "can_unload", "runsize", "kallsyms_start", "kallsyms_end", "archdata_start", "archdata_end",
    "kernel_data",
)  # fmt: skip

LINUX_2_4 = KernelVersion(
    "linux-2.4",
    "2.4",
    (0, 0),
    True,
    None,
    None,
    "area",
    KmodRules(
        ("-s", "-k", "--"), None, False, errno.ENOMEM, ("kmod: runaway modprobe loop assumed and stopped",), 5
    ),
    angle_levels=True,
    gfp_zero=False,
)

LINUX_6_1 = KernelVersion(
    "linux-6.1",
    "6.1",
    (2, 5),
    False,
    # one core and one init region; text | ro | ro_after_init | data, each boundary
    # strict_align'ed (page-aligned with STRICT_MODULE_RWX), the init pass without row 2's.
    LayoutRules(
        "linux-6.1",
        ("core",) * 5,
        ("init",) * 5,
        frozenset({0, 1, 2, 4}),
        frozenset({0, 1, 4}),
        ("core", "init"),
    ),
    ValidityRules("6.1", True, False, False, False),
    "text_end",
    _KMOD_6,
)

LINUX_6_12 = KernelVersion(
    "linux-6.12",
    "6.12",
    (6, 4),
    False,
    # mod_mem types, each a separately allocated region; no padding inside one.
    LayoutRules(
        "linux-6.12",
        ("text", "rodata", "ro_after_init", "data", "data"),
        ("init_text", "init_rodata", None, "init_data", "init_data"),
        frozenset(),
        frozenset(),
        ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata"),
    ),
    ValidityRules("6.12", False, True, True, True),
    # 6.12 stable's find_kallsyms_symbol ("module: Fix kallsyms lookups for addresses outside
    # MOD_TEXT"): only symbols of the area holding the address, nextval that area's end
    "area",
    _KMOD_6,
)

#: Every known version by name, oldest first.
VERSIONS: dict[str, KernelVersion] = {v.name: v for v in (LINUX_2_4, LINUX_6_1, LINUX_6_12)}


def register(version: KernelVersion) -> None:
    """Make ``version`` known to :func:`by_name` and :func:`for_release`."""
    VERSIONS[version.name] = version


def unregister(name: str) -> None:
    VERSIONS.pop(name, None)


def by_name(name: str | KernelVersion) -> KernelVersion:
    """The version called ``name`` (``linux-6.1`` or ``6.1``; a record is returned as is)."""
    if isinstance(name, KernelVersion):
        return name
    v = VERSIONS.get(name) or VERSIONS.get(f"linux-{name}")
    if v is None:
        known = ", ".join(VERSIONS)
        raise ValueError(f"unknown layout rules {name!r}; known: {known}")
    return v


def for_release(release: str | None) -> KernelVersion:
    """The rules of the kernel ``release`` (``6.1.0-13-amd64``): the newest version whose
    ``since`` is not after it; a release that does not start with major.minor gets the newest."""
    newest = max(VERSIONS.values(), key=lambda v: v.since)
    mm = _major_minor(release or "")
    if mm is None:
        return newest
    return max((v for v in VERSIONS.values() if v.since <= mm), key=lambda v: v.since, default=newest)


def _major_minor(release: str) -> tuple[int, int] | None:
    """The leading ``MAJOR.MINOR`` of a release, parsed by hand: importing re would cost
    the start-up of ``lkm modinfo``, which reads every module's version record."""
    major, dot, rest = release.partition(".")
    minor = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    if not dot or not minor or not major.isdigit() or not major.isascii():
        return None
    return int(major), int(minor)


def for_module(is_24_object: bool, vermagic: str | None) -> KernelVersion:
    """The rules a module file is meant for: 2.4 objects (no .modinfo vermagic, ``kernel_version``
    in .modinfo) the 2.4 design, else by the release in its vermagic."""
    if is_24_object:
        return LINUX_2_4
    v = for_release((vermagic or "").split(" ", 1)[0])
    # a module in the 2.6+ format is never linked by 2.4's insmod
    return v if not v.user_space_link else LINUX_6_1


# -- the configuration of one kernel build ----------------------------------------------------


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

"""Kernel profiles: what a model kernel is booted from.

A profile is the part of a real kernel the module loader depends on: its release and vermagic,
its architecture and word size, where modules go (the module range) and where kmalloc memory
lives, the layout rules, and the symbols it exports (address, CRC, GPL-only, namespace).
Profiles are small gzip'ed text files (``src/lkm/kernel/profiles/*.profile.gz``) written by
``scripts/make_profiles.py``; any file in that format can be booted.

Format: ``key value`` header lines, then a ``symbols`` line, then one export per line:
``name address type crc|- G|- namespace|-`` (hex numbers, no 0x).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lkm.compress import COMPRESSIONS, decompress
from lkm.errors import LkmError
from lkm.safeio import read_bytes
from lkm.symbols.table import KernelSymbol, SymbolTable

__all__ = [
    "ARCH_FIELDS",
    "ARCH_RANGES",
    "FORMAT",
    "PROFILE_DIR",
    "Profile",
    "ProfileError",
    "load_profile",
    "parse_profile",
    "profile_from_files",
    "shipped_profiles",
]


FORMAT = "lkm-profile 1"
PROFILE_DIR = Path(__file__).parent.parent / "profiles"

# Per architecture: module range (MODULES_VADDR..MODULES_END, or 2.4's vmalloc area) and the
# direct-mapped range kmalloc memory comes from.
ARCH_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    # 2.4 i386 with 128 MiB: PAGE_OFFSET 0xc0000000, VMALLOC_START = high_memory + 8 MiB.
    "i386-2.4": {"modules": (0xC8800000, 0xFF7FE000), "kmalloc": (0xC1000000, 0xC8000000)},
    # x86_64 (KASLR layout): MODULES_VADDR = __START_KERNEL_map + 1 GiB, MODULES_END.
    "x86_64": {
        "modules": (0xFFFFFFFFC0000000, 0xFFFFFFFFFF000000),
        "kmalloc": (0xFFFF888100000000, 0xFFFF888140000000),
    },
}


class ProfileError(LkmError):
    """A profile that cannot be read."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A kernel to boot: header fields and exported symbols."""

    name: str
    fields: dict[str, str]
    symbols: list[KernelSymbol]

    @property
    def release(self) -> str:
        return self.fields["release"]

    @property
    def arch(self) -> str:
        return self.fields["arch"]

    def to_text(self) -> str:
        lines = [FORMAT, *(f"{k} {v}" for k, v in self.fields.items()), "symbols"]
        for s in self.symbols:
            crc = "-" if s.crc is None else f"{s.crc:x}"
            lines.append(
                f"{s.name} {s.address or 0:x} {s.type or 'T'} {crc} {'G' if s.gpl_only else '-'} "
                f"{s.namespace or '-'}"
            )
        return "\n".join(lines) + "\n"


def parse_profile(text: str, name: str, *, path: str | None = None) -> Profile:
    lines = text.splitlines()
    if not lines or lines[0] != FORMAT:
        raise ProfileError(f"not an lkm kernel profile (first line should be {FORMAT!r})", path=path)
    fields: dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i] != "symbols":
        key, _, value = lines[i].partition(" ")
        fields[key] = value
        i += 1
    for key in ("release", "arch", "bits", "layout", "vermagic"):
        if key not in fields:
            raise ProfileError(f"profile lacks the {key!r} field", path=path)
    if fields["bits"] not in ("32", "64") or fields["layout"] not in ("linux-2.4", "linux-6.1", "linux-6.12"):
        raise ProfileError("profile has a bad 'bits' or 'layout' field", path=path)
    ranges_ok = fields.get("range", fields["arch"]) in ARCH_RANGES
    if not ranges_ok or not fields.get("page_size", "4096").isdigit():
        raise ProfileError("profile has a bad 'range', 'arch' or 'page_size' field", path=path)
    symbols: list[KernelSymbol] = []
    for lineno, line in enumerate(lines[i + 1 :], i + 2):
        parts = line.split(" ")
        if len(parts) != 6:
            raise ProfileError(f"line {lineno}: expected 6 fields, got {len(parts)}", path=path)
        sym, addr, typ, crc, gpl, ns = parts
        try:
            int(addr, 16), None if crc == "-" else int(crc, 16)
        except ValueError:
            raise ProfileError(f"line {lineno}: address or CRC is not hexadecimal", path=path) from None
        symbols.append(
            KernelSymbol(
                sym,
                int(addr, 16),
                typ,
                None,
                True,
                gpl == "G",
                None if crc == "-" else int(crc, 16),
                None if ns == "-" else ns,
            )
        )
    return Profile(name, fields, symbols)


# Fields a profile built from symbol files gets for its architecture (today's kernels).
ARCH_FIELDS: dict[str, dict[str, str]] = {
    "x86_64": {"bits": "64", "range": "x86_64", "page_size": "4096", "kernel": "6.1", "compression": "-"},
}


def profile_from_files(
    name: str,
    release: str,
    arch: str,
    vermagic: str,
    *paths: str | os.PathLike[str],
    layout: str = "linux-6.1",
) -> Profile:
    """A profile from a kernel's symbol files (System.map, /proc/kallsyms, vmlinux or a kernel
    image for addresses, plus Module.symvers for CRCs, GPL-only and namespaces; any
    :mod:`lkm.symbols.sources` format): every symbol the kernel itself exports, with an address."""
    if arch not in ARCH_FIELDS:
        raise ProfileError(f"no module range known for {arch} (known: {', '.join(ARCH_FIELDS)})")
    kernel = "6.12" if layout == "linux-6.12" else "6.1"
    fields = {"release": release, "arch": arch, "layout": layout, "vermagic": vermagic,
              **ARCH_FIELDS[arch], "kernel": kernel}  # fmt: skip
    table = SymbolTable.from_files(*paths)
    syms = [s for s in table.exports() if s.module is None and s.address is not None]
    if not syms:
        raise ProfileError("the files give no exported symbol with an address (add Module.symvers "
                           "to an address source, or use a vmlinux/kernel image)")  # fmt: skip
    syms.sort(key=lambda s: s.name)
    return Profile(name, fields, syms)


def shipped_profiles() -> list[str]:
    """Names of the profiles that come with lkm."""
    return sorted(p.name.removesuffix(".profile.gz") for p in PROFILE_DIR.glob("*.profile.gz"))


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """A shipped profile by name (``linux-6.1-amd64``) or a profile file by path."""
    p = Path(name_or_path)
    if not p.exists() and (PROFILE_DIR / f"{name_or_path}.profile.gz").exists():
        p = PROFILE_DIR / f"{name_or_path}.profile.gz"
    try:
        raw = read_bytes(p)
    except OSError as exc:
        known = ", ".join(shipped_profiles())
        raise ProfileError(f"no such profile ({exc.strerror}); shipped: {known}", path=str(p)) from None
    if raw[:2] == b"\x1f\x8b":
        raw = decompress(raw, COMPRESSIONS[2])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"not a profile (not UTF-8 text at byte {exc.start})", path=str(p)) from None
    return parse_profile(text, p.name.removesuffix(".profile.gz"), path=str(p))

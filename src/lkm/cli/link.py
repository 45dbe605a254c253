"""``lkm link``: link a module against a kernel's symbols at kernel addresses, offline.

lkm link MODULE [symbol=value ...] --kernel FILE [--kernel FILE ...] [--layout linux-6.1|linux-6.12|linux-2.4]
         [--config FILE] [--base ADDR | --region NAME=ADDR ...] [-o OUT.elf]
         [--blob PREFIX] [--kallsyms FILE] [--vermagic STRING] [--with MODULE ...]
         [--force-modversion] [--force-vermagic] [--svg OUT.svg]
2.4 (insmod) options: [--map FILE] [--ksyms FILE] [--name NAME] [--autoclean] [--no-export]
         [--no-ksymoops] [--kallsyms24] [--persist FILE]

--kernel takes System.map, /proc/kallsyms, Module.symvers, a vmlinux or a kernel image (vmlinuz);
for linux-2.4 a /proc/ksyms copy (or System.map).  linux-2.4 links as modutils 2.4's insmod:
--blob FILE is the single image of ``insmod -O FILE`` (struct module first), --map FILE the
``insmod -m`` load map, --ksyms FILE the module's /proc/ksyms lines; --base defaults to
0x12340000 (``insmod -n``); --vermagic RELEASE checks kernel_version (--force-vermagic is -f);
--name/--autoclean/--no-export/--no-ksymoops/--kallsyms24/--persist are -o/-k/-x/-y/-S/-e.
--with links modules already in the address space first (from --base on); their exports
resolve MODULE's imports (msdos.ko --with fat.ko).
--svg OUT.svg draws the memory map: every region to scale, each section's name, address, size
and permissions (hover for details), PLT/GOT and 2.4's __insmod symbols marked, relocations
as a density strip (lkm.draw.memmap).
"""

from __future__ import annotations

import sys

from lkm.cli.getopt import UsageError
from lkm.cli.jsonout import hexaddr, line
from lkm.cli.tool import Opt, Tool
from lkm.draw.memmap import map_of_insmod24, map_of_linked, memmap_svg
from lkm.errors import LkmError
from lkm.kernels import VERSIONS
from lkm.link import link
from lkm.link.image import LinkedImage
from lkm.link.insmod24 import Insmod24Options, KernelSymbols24, link_module_24
from lkm.link.kallsyms import format_module_kallsyms, module_kallsyms
from lkm.link.layout import KernelConfig, default_layout, layout_module, sequential_bases
from lkm.link.output import linked_elf, region_blobs, write_atomic
from lkm.link.output24 import as_linked_image, format_ksyms, format_load_map
from lkm.link.resolve import check_vermagic, kernel_resolver
from lkm.module.file import ModuleFile
from lkm.safeio import read_text
from lkm.symbols.table import SymbolTable

__all__ = ["I24", "MODULE_AREA", "TOOL", "run"]


I24 = "2.4 (insmod) options"
TOOL = Tool(
    "link",
    "link a module against a kernel's symbols at kernel addresses",
    usage=["MODULE [symbol=value ...] --kernel FILE [options]"],
    description="--kernel takes System.map, /proc/kallsyms, Module.symvers, a vmlinux or a kernel image;\n"
    "for linux-2.4 a /proc/ksyms copy (or System.map).  --with links modules already in the\n"
    "address space first (from --base on); their exports resolve MODULE's imports.",
    options=[
        Opt("k", "kernel", "FILE", "the kernel's symbols; repeatable", complete="file"),
        Opt(
            "",
            "layout",
            "LAYOUT",
            "linux-6.1 (default), linux-6.12 or linux-2.4",
            complete="linux-6.1 linux-6.12 linux-2.4",
        ),
        Opt("", "config", "FILE", "the kernel's .config", complete="file"),
        Opt(
            "",
            "base",
            "ADDR",
            "place the module's regions one after another from ADDR\n"
            "(default: the start of the layout's module area, as module_alloc)",
        ),
        Opt("", "region", "NAME=ADDR", "place one region (core, init, ...) at ADDR; repeatable"),
        Opt("", "percpu-base", "ADDR", "where the kernel put the module's per-CPU area"),
        Opt("o", "output", "FILE", "write the linked ELF", complete="file"),
        Opt("", "kallsyms", "FILE", "write the module's /proc/kallsyms lines", complete="file"),
        Opt("", "vermagic", "STRING", "the kernel's version magic (checked as the kernel checks it)"),
        Opt("", "force-modversion", None, "ignore symbol versions"),
        Opt("", "force-vermagic", None, "ignore the version magic"),
        Opt("", "svg", "FILE", "also draw the module's memory map (SVG)", complete="file"),
        Opt("", "with", "MODULE", "a module already loaded; repeatable", complete="file"),
        Opt("", "json", None, 'print the summary as one "link" document (schema lkm/1)'),
        Opt("", "blob", "FILE", "the single image of `insmod -O FILE`", group=I24, complete="file"),
        Opt("", "map", "FILE", "the `insmod -m` load map", group=I24, complete="file"),
        Opt("", "ksyms", "FILE", "the module's /proc/ksyms lines", group=I24, complete="file"),
        Opt("", "name", "NAME", "module name (insmod -o)", group=I24),
        Opt("", "autoclean", None, "insmod -k", group=I24),
        Opt("", "no-export", None, "insmod -x", group=I24),
        Opt("", "no-ksymoops", None, "insmod -y", group=I24),
        Opt("", "kallsyms24", None, "insmod -S", group=I24),
        Opt("", "persist", "FILE", "insmod -e", group=I24, complete="file"),
    ],
)


# the start of the module area (MODULES_VADDR) per e_machine, for a link without --base:
# x86_64 with KASLR's 1 GiB kernel image (Debian), arm64's _PAGE_END(VA_BITS_MIN) for 48-bit VAs
MODULE_AREA = {62: 0xFFFFFFFFC0000000, 183: 0xFFFF800000000000}


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"{what}: not a number: {text!r}") from None


def run(prog: str, args: list[str]) -> int:
    err = sys.stderr.write
    try:
        opts, operands = TOOL.parse(prog, args)
        kernels: list[str] = []
        regions: dict[str, int] = {}
        layout = config = out = blob = kallsyms = vermagic = None
        base: int | None = None
        percpu = 0
        force: set[str] = set()
        with_modules: list[str] = []
        opts24: dict[str, str] = {}
        svg_out: str | None = None
        as_json = any(f == "--json" for f, _ in opts)
        for flag, val in opts:
            if flag in ("--kernel", "-k"):
                kernels.append(val)
            elif flag == "--layout":
                layout = val
            elif flag == "--config":
                config = val
            elif flag == "--base":
                base = _int(val, "--base")
            elif flag == "--percpu-base":
                percpu = _int(val, "--percpu-base")
            elif flag == "--region":
                name, eq, addr = val.partition("=")
                if not eq:
                    raise UsageError(f"--region wants NAME=ADDR, got {val!r}")
                regions[name] = _int(addr, f"--region {name}")
            elif flag in ("-o", "--output"):
                out = val
            elif flag == "--blob":
                blob = val
            elif flag == "--kallsyms":
                kallsyms = val
            elif flag == "--vermagic":
                vermagic = val
            elif flag in ("--force-modversion", "--force-vermagic"):
                force.add(flag[8:])
            elif flag == "--with":
                with_modules.append(val)
            elif flag == "--svg":
                svg_out = val
            elif flag in _OPTS_24:
                opts24[flag[2:]] = val
        if not operands or any("=" not in a for a in operands[1:]):
            raise UsageError("exactly one MODULE is needed (then 2.4 symbol=value arguments)")
        if not kernels:
            raise UsageError("--kernel FILE is needed (System.map, /proc/kallsyms, Module.symvers, vmlinux)")
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    path = operands[0]
    try:
        if _user_space_link(layout, path):
            for given, flag in ((kallsyms, "--kallsyms"), (config, "--config"), (regions, "--region")):
                if given:
                    raise UsageError(f"{flag} is not for linux-2.4 (see --ksyms, --kallsyms24, --base)")
            return _link_24(path, kernels, base, out, blob, vermagic, force, with_modules, opts24,
                            tuple(operands[1:]), svg_out, as_json)  # fmt: skip
        if operands[1:]:
            raise UsageError("symbol=value module arguments are for --layout linux-2.4")
        if opts24:
            raise UsageError(f"--{next(iter(opts24))} is for --layout linux-2.4")
        extra = (vermagic, force, with_modules, svg_out, percpu, as_json)
        return _link(path, kernels, layout, config, base, regions, out, blob, kallsyms, *extra)
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    except LkmError as exc:
        where = exc.path or path
        reason = exc.reason.split(": ", 1)[1] if exc.reason.startswith(f"{where}: ") else exc.reason
        err(f"{prog}: ERROR: {where}: {reason}\n")
        return 1
    except ValueError as exc:
        err(f"{prog}: ERROR: {path}: {exc}\n")
        return 1
    except OSError as exc:  # an output file that cannot be written
        err(f"{prog}: ERROR: {exc.filename or path}: {exc.strerror}\n")
        return 1


def _link(
    path: str,
    kernels: list[str],
    layout_name: str | None,
    config_path: str | None,
    base: int | None,
    regions: dict[str, int],
    out: str | None,
    blob: str | None,
    kallsyms: str | None,
    vermagic: str | None,
    force: set[str],
    with_modules: list[str],
    svg_out: str | None = None,
    percpu_base: int = 0,
    as_json: bool = False,
) -> int:
    mod = ModuleFile.open(path)
    rules = layout_name or default_layout(mod)
    config = KernelConfig()
    if config_path is not None:
        try:
            config = KernelConfig.from_config_text(read_text(config_path, errors="replace"))
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=config_path) from None
    table = SymbolTable.from_files(*kernels)
    warnings: list[str] = []
    if base is None and (with_modules or not regions):
        base = MODULE_AREA.get(mod.elf.e_machine)  # where module_alloc starts looking
    at = base
    if with_modules and at is None:
        raise UsageError("--with needs --base here: no default module area for this architecture")
    # Modules already in the address space (the HOWTO's msdos -> fat): linked first, one after
    # another from --base, each one's exports then available to the next, as the kernel has them.
    for other_path in with_modules:
        other = ModuleFile.open(other_path)
        if vermagic is not None:
            check_vermagic(other, vermagic, force="vermagic" in force)
        other_lay = layout_module(other.elf, layout_name or default_layout(other), config)
        assert at is not None
        other_bases, at = sequential_bases(other_lay, at, {})
        resolve = kernel_resolver(other, table, force_modversion="modversion" in force, warnings=warnings)
        other_img = link(other, resolve, config=config, bases=other_bases, layout=other_lay)
        addrs = {s.name: other_img.symbol_values[s.number] for s in other.elf.symbols() if s.name and s.shndx}
        table.add_module_exports(other.name, other.exports, addrs, reject_duplicates=True)
    if vermagic is not None:
        check_vermagic(mod, vermagic, force="vermagic" in force)
    resolve = kernel_resolver(mod, table, force_modversion="modversion" in force, warnings=warnings)
    lay = layout_module(mod.elf, rules, config)
    bases = dict(regions)
    if at is not None:  # every region one after the other from --base, page-aligned
        bases, at = sequential_bases(lay, at, bases)
    image = link(mod, resolve, config=config, bases=bases, layout=lay, percpu_base=percpu_base)
    for w in warnings:
        sys.stderr.write(f"lkm link: WARNING: {w}\n")
    outputs: dict[str, bytes] = {}
    if out is not None:
        outputs[out] = linked_elf(mod, image)
    if blob is not None:
        for region, data in region_blobs(image).items():
            outputs[f"{blob}.{region}"] = data
    if kallsyms is not None:
        text = format_module_kallsyms(mod.name, module_kallsyms(mod, image), mod.elf.elfclass)
        outputs[kallsyms] = text.encode("utf-8", "surrogateescape")
    if svg_out is not None:
        outputs[svg_out] = memmap_svg(map_of_linked(mod, image)).encode("utf-8")
    for target, data in outputs.items():
        write_atomic(target, data)
    if as_json:
        sys.stdout.write(_json(mod.name, image, list(outputs), warnings))
    elif not outputs:
        sys.stdout.write(_summary(mod.name, image))
    return 0


def _json(name: str, image: object, outputs: list[str], warnings: list[str]) -> str:
    """The link as one ``"link"`` document: regions' bases, sections' addresses, every import
    and the address it was resolved to, the files written."""

    assert isinstance(image, LinkedImage)
    sections = []
    for n, addr in sorted(image.section_addresses.items(), key=lambda kv: kv[1]):
        p = image.layout.placements[n]
        sections.append({"name": p.name, "address": hexaddr(addr), "size": p.size, "region": p.region})
    bases = image.bases.items()
    return line(
        "link",
        module=name,
        layout=str(image.layout.rules),
        relocations=image.relocations,
        regions={r: {"address": hexaddr(b), "size": image.layout.sizes.get(r, 0)} for r, b in bases},
        sections=sections,
        imports={sym: hexaddr(a) for sym, a in sorted(image.resolved.items())},
        outputs=outputs,
        warnings=warnings,
    )


def _summary(name: str, image: object) -> str:
    assert isinstance(image, LinkedImage)
    lines = [f"{name}: {image.relocations} relocations, {len(image.resolved)} imports resolved"]
    for n, addr in sorted(image.section_addresses.items(), key=lambda kv: kv[1]):
        p = image.layout.placements[n]
        lines.append(f"  {p.name:<28} {addr:#018x} {p.size:#8x}  {p.region}")
    return "\n".join(lines) + "\n"


_OPTS_24 = ("--map", "--ksyms", "--name", "--autoclean", "--no-export", "--no-ksymoops", "--kallsyms24",
            "--persist")  # fmt: skip


def _user_space_link(layout: str | None, path: str) -> bool:
    """Whether insmod links (2.4): the layout named, else the one the module is built for."""

    if layout is not None:
        version = VERSIONS.get(layout)
        return version is not None and version.user_space_link
    return ModuleFile.open(path).version.user_space_link


def _link_24(
    path: str,
    kernels: list[str],
    base: int | None,
    out: str | None,
    blob: str | None,
    release: str | None,
    force: set[str],
    with_modules: list[str],
    opts24: dict[str, str],
    args: tuple[str, ...],
    svg_out: str | None = None,
    as_json: bool = False,
) -> int:
    """linux-2.4: insmod's link (lkm.link.insmod24), modules of --with loaded first."""

    kernel = KernelSymbols24([], [], release)
    for k in kernels:
        try:
            part = KernelSymbols24.from_ksyms(read_text(k))
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=k) from None
        except LkmError as exc:
            raise LkmError(exc.reason, path=k) from None
        kernel.kernel += part.kernel
        kernel.modules += part.modules
    at = 0x12340000 if base is None else base
    for other_path in with_modules:  # newest first in the kernel's list
        other_opt = Insmod24Options(force="vermagic" in force)
        other = link_module_24(ModuleFile.open(other_path), kernel, at, other_opt)
        kernel.modules.insert(0, other.as_loaded())
        at = (at + other.size + 0xFFF) & ~0xFFF
    opt = Insmod24Options(
        name=opts24.get("name"),
        autoclean="autoclean" in opts24,
        export="no-export" not in opts24,
        ksymoops="no-ksymoops" not in opts24,
        kallsyms="kallsyms24" in opts24,
        persist=opts24.get("persist"),
        force="vermagic" in force,
        args=args,
    )
    mod = ModuleFile.open(path)
    img = link_module_24(mod, kernel, at, opt)
    for w in img.warnings:
        sys.stderr.write(f"lkm link: WARNING: {w}\n")
    outputs: dict[str, bytes] = {}
    if out is not None:
        outputs[out] = linked_elf(mod, as_linked_image(mod, img))
    if blob is not None:
        outputs[blob] = img.image
    if "map" in opts24:
        outputs[opts24["map"]] = format_load_map(img).encode("utf-8", "surrogateescape")
    if "ksyms" in opts24:
        outputs[opts24["ksyms"]] = format_ksyms(img).encode("utf-8", "surrogateescape")
    if svg_out is not None:
        outputs[svg_out] = memmap_svg(map_of_insmod24(mod, img)).encode("utf-8")
    for target, data in outputs.items():
        write_atomic(target, data)
    if as_json:
        sys.stdout.write(_json(mod.name, as_linked_image(mod, img), list(outputs), list(img.warnings)))
    elif not outputs:
        sys.stdout.write(format_load_map(img))
    return 0

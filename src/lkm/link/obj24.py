"""modutils 2.4's in-memory object (obj/obj_load.c, obj_common.c, obj_reloc.c): sections with
a load order, a 521-bucket ELF-hash symbol table whose chain order decides what insmod exports
and prints, string and symbol patches.  :mod:`lkm.link.insmod24` drives it through insmod's
steps; the details here are the ones that change bytes in the image:

* load order: an allocated section goes before the first one of lower
  :func:`load_order_prio_24` (stable), never before ``.this``;
* ``.modinfo``/``.modstring`` lose SHF_ALLOC on load; NOBITS sections become zero-filled
  PROGBITS once commons are allocated (so the ``-m`` map never shows 'B');
* symbols: new ones are pushed on the head of their hash chain, a redefinition replaces the
  entry in place (obj_add_symbol's rules), locals also go to a per-index table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from lkm.elf import ElfFile, Symbol
from lkm.elf.constants import (
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHN_COMMON,
    SHN_LORESERVE,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_NOTE,
    SHT_NULL,
    SHT_PROGBITS,
    SHT_REL,
    SHT_RELA,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_NOTYPE,
    STT_OBJECT,
)
from lkm.errors import InvalidModule
from lkm.limits import check_region_sizes

__all__ = [
    "HASH_BUCKETS",
    "SHN_HIRESERVE",
    "SHT_LOPROC",
    "ObjFile",
    "Sec",
    "Sym",
    "elf_hash",
    "load_order_prio_24",
    "ncv_compare",
    "strcmp_eq",
]

HASH_BUCKETS = 521
SHN_HIRESERVE = 0xFFFF
SHT_LOPROC = 0x70000000


def load_order_prio_24(name: str, flags: int, sh_type: int) -> int:
    """modutils 2.4.16 obj_load_order_prio of a section: higher loads first."""
    prio = 0
    if not (name.startswith(".") and len(name) == 10 and name[5:] == ".init"):
        prio |= 64
    if flags & SHF_ALLOC:
        prio |= 32
    if flags & SHF_EXECINSTR:
        prio |= 16
    if not flags & SHF_WRITE:
        prio |= 8
    if sh_type != SHT_NOBITS:
        prio |= 4
    if name == ".got":
        prio |= 2
    return prio


class Sec:
    """obj_section: the header fields insmod uses, its contents (None: nothing to copy)."""

    __slots__ = ("name", "type", "flags", "size", "align", "contents", "idx", "addr", "link", "info")

    def __init__(self, name: str, type: int, flags: int, size: int, align: int, idx: int) -> None:
        self.name = name
        self.type = type
        self.flags = flags
        self.size = size
        self.align = align
        self.contents: bytearray | None = None
        self.idx = idx
        self.addr = 0
        self.link = 0
        self.info = 0


class Sym:
    """obj_symbol.  ``secidx`` above SHN_HIRESERVE: provided by the kernel (HIRESERVE+1) or by
    loaded module i (HIRESERVE+2+i); ``got`` the GOT slot offset (i386 arch_create_got)."""

    __slots__ = ("name", "value", "size", "secidx", "info", "r_type", "got", "got_done")

    def __init__(self, name: str, value: int, size: int, secidx: int, info: int) -> None:
        self.name = name
        self.value = value
        self.size = size
        self.secidx = secidx
        self.info = info
        self.r_type = 0
        self.got: int | None = None
        self.got_done = False

    @property
    def bind(self) -> int:
        return self.info >> 4


def elf_hash(name: bytes) -> int:
    """The standard ELF hash (obj_elf_hash_n)."""
    h = 0
    for ch in name:
        h = ((h << 4) + ch) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
            h &= ~g
    return h


def _b(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def strcmp_eq(a: str, b: str) -> bool:
    return a == b


def ncv_compare(prefix: str) -> tuple[Callable[[str, str], bool], Callable[[str], int]]:
    """insmod's ncv_strcmp/ncv_symbol_hash for a module and kernel of which only one uses
    symbol versions: ``name`` equals ``name_R<prefix><8 chars>``; the hash drops the suffix."""
    cut = 10 + len(prefix)

    def suffixed(long: str, short: str) -> bool:
        n = len(short)
        return len(long) == n + cut and long[n : n + 2 + len(prefix)] == "_R" + prefix

    def equal(a: str, b: str) -> bool:
        if suffixed(b, a):
            return b.startswith(a)
        if suffixed(a, b):
            return a.startswith(b)
        return a == b

    def hash_(name: str) -> int:
        n = len(name)
        if n > cut and name[n - cut : n - cut + 2] == "_R" and name[n - 8 - len(prefix) : n - 8] == prefix:
            name = name[: n - cut]
        return elf_hash(_b(name))

    return equal, hash_


class ObjFile:
    """obj_file as obj_load builds it from an ELF relocatable object."""

    def __init__(self, elf: ElfFile, path: str | None = None) -> None:
        self.elf = elf
        self.path = path
        self.sections: list[Sec] = []
        self.load_order: list[Sec] = []
        self.search_start = 0  # index in load_order where insertion searches begin
        self.buckets: list[list[Sym]] = [[] for _ in range(HASH_BUCKETS)]
        self.local: dict[int, Sym] = {}
        self.equal: Callable[[str, str], bool] = strcmp_eq
        self.hash: Callable[[str], int] = lambda n: elf_hash(_b(n))
        self.string_patches: list[tuple[int, int, int]] = []  # (secidx, offset, .kstrtab offset)
        self.symbol_patches: list[tuple[int, int, Sym]] = []
        self.baseaddr = 0
        self._load()

    # -- obj_load --------------------------------------------------------------------------

    def _load(self) -> None:
        elf = self.elf
        for s in elf.sections:
            sec = Sec(s.name, s.type, s.flags, s.size, s.addralign, s.number)
            sec.link, sec.info = s.link, s.info
            if s.type in (SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL):
                if s.size:
                    elf.check_bounds(s)
                    sec.contents = bytearray(elf.section_bytes(s))
            elif s.type == SHT_RELA and s.size:
                raise InvalidModule("RELA relocations not supported on this architecture", path=self.path)
            elif s.type not in (SHT_NULL, SHT_NOTE, SHT_NOBITS) and s.type < SHT_LOPROC:
                raise InvalidModule(f"can't handle sections of type {s.type}", path=self.path)
            self.sections.append(sec)
        for sec in self.sections:
            # .modinfo and .modstring are contents only: the allocate bit is ignored.
            if sec.name in (".modinfo", ".modstring"):
                sec.flags &= ~SHF_ALLOC
            if sec.flags & SHF_ALLOC:
                self.insert_load_order(sec)
            if sec.type == SHT_SYMTAB:
                for y in elf.symbols(elf.sections[sec.idx])[1:]:
                    name = y.name
                    if not name and y.shndx < len(self.sections):
                        name = self.sections[y.shndx].name
                    if len(self.sections) <= y.shndx < SHN_LORESERVE or (
                        y.shndx >= SHN_LORESERVE and y.shndx not in (SHN_ABS, SHN_COMMON)
                    ):
                        # modutils indexes its section array with it unchecked (a processor-
                        # or OS-specific index too, in print_load_map); refused here
                        raise InvalidModule(
                            f"symbol {name or y.number} has invalid section index {y.shndx}", path=self.path
                        )
                    self.add_symbol(name, y.number, y.info, y.shndx, y.value, y.size)
        # Second pass: each symbol remembers the type of a relocation against it.
        for sec in self.sections:
            if sec.type != SHT_REL:
                continue
            if sec.link >= len(elf.sections) or elf.sections[sec.link].type != SHT_SYMTAB:
                raise InvalidModule(
                    f"relocation section {sec.name} has an invalid symbol table", path=self.path
                )
            if sec.info >= len(elf.sections):
                raise InvalidModule(f"relocation section {sec.name} applies to no section", path=self.path)
            syms = elf.symbols(elf.sections[sec.link])
            for r in elf.relocations(elf.sections[sec.idx]):
                if not r.sym:
                    continue
                if r.sym >= len(syms):
                    raise InvalidModule(f"Bad symbol index: {r.sym:08x} >= {len(syms):08x}", path=self.path)
                found = self.rel_symbol(syms, r.sym)
                if found is not None:
                    found.r_type = r.type

    def rel_symbol(self, syms: Sequence[Symbol], index: int) -> Sym | None:
        """obj_find_relsym: locals by their index, others by name."""
        y = syms[index]
        if y.bind == STB_LOCAL:
            return self.local.get(index)
        name = y.name or (self.sections[y.shndx].name if y.shndx < len(self.sections) else "")
        return self.find_symbol(name)

    # -- symbols ---------------------------------------------------------------------------

    def add_symbol(self, name: str, symidx: int, info: int, secidx: int, value: int, size: int) -> Sym:
        """obj_add_symbol: define, redefine or ignore as modutils rules."""
        chain = self.buckets[self.hash(name) % HASH_BUCKETS]
        n_type, n_bind = info & 0xF, info >> 4
        for i, sym in enumerate(chain):
            if not self.equal(sym.name, name):
                continue
            o_type, o_bind = sym.info & 0xF, sym.info >> 4
            if secidx == SHN_UNDEF:
                return sym
            if sym.secidx == SHN_UNDEF:
                pass
            elif n_bind == STB_GLOBAL and o_bind == STB_LOCAL:
                # A global of a local's name: the local leaves the chain (stays by index).
                sym = Sym(name, value, size, secidx, info)
                chain[i] = sym
            elif n_bind == STB_LOCAL:
                sym = Sym(name, value, size, secidx, info)
                self.local[symidx] = sym
                return sym
            elif n_bind == STB_WEAK:
                return sym
            elif o_bind == STB_WEAK:
                pass
            elif secidx == SHN_COMMON and o_type in (STT_NOTYPE, STT_OBJECT):
                return sym
            elif sym.secidx == SHN_COMMON and n_type in (STT_NOTYPE, STT_OBJECT):
                pass
            else:
                if secidx <= SHN_HIRESERVE:
                    raise InvalidModule(f"{name} multiply defined", path=self.path)
                return sym
            sym.name, sym.value, sym.size, sym.secidx, sym.info = name, value, size, secidx, info
            sym.r_type = 0
            return sym
        sym = Sym(name, value, size, secidx, info)
        chain.insert(0, sym)
        if n_bind == STB_LOCAL and symidx != -1:
            self.local[symidx] = sym
        return sym

    def find_symbol(self, name: str) -> Sym | None:
        for sym in self.buckets[self.hash(name) % HASH_BUCKETS]:
            if self.equal(sym.name, name):
                return sym
        return None

    def set_symbol_compare(self, equal: Callable[[str, str], bool], hash_: Callable[[str], int]) -> None:
        """obj_set_symbol_compare: rehash, each old chain walked head first onto new heads."""
        old = self.buckets
        self.equal, self.hash = equal, hash_
        self.buckets = [[] for _ in range(HASH_BUCKETS)]
        for chain in old:
            for sym in chain:
                self.buckets[hash_(sym.name) % HASH_BUCKETS].insert(0, sym)

    def symbols(self) -> Iterator[Sym]:
        """Every symbol in hash order (bucket 0 first, each chain from its head)."""
        for chain in self.buckets:
            yield from chain

    def final_value(self, sym: Sym | None) -> int:
        if sym is None:
            return 0
        if sym.secidx >= SHN_LORESERVE:
            return sym.value
        return (sym.value + self.sections[sym.secidx].addr) & 0xFFFFFFFF

    def is_loaded(self, secidx: int) -> bool:
        """In an allocated section or absolute/common (the test insmod uses for exports/maps)."""
        if secidx > SHN_HIRESERVE:
            return False
        if secidx >= SHN_LORESERVE:
            return True
        return secidx < len(self.sections) and bool(self.sections[secidx].flags & SHF_ALLOC)

    # -- sections --------------------------------------------------------------------------

    def find_section(self, name: str) -> Sec | None:
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def insert_load_order(self, sec: Sec) -> None:
        prio = load_order_prio_24(sec.name, sec.flags, sec.type)
        i = self.search_start
        while i < len(self.load_order):
            o = self.load_order[i]
            if load_order_prio_24(o.name, o.flags, o.type) < prio:
                break
            i += 1
        self.load_order.insert(i, sec)

    def _new_section(self, name: str, align: int, size: int, flags: int) -> Sec:
        sec = Sec(name, SHT_PROGBITS, flags | SHF_ALLOC, size, align, len(self.sections))
        if size:
            sec.contents = bytearray(size)
        self.sections.append(sec)
        return sec

    def create_alloced_section(self, name: str, align: int, size: int, flags: int = 0) -> Sec:
        sec = self._new_section(name, align, size, flags)
        self.insert_load_order(sec)
        return sec

    def create_alloced_section_first(self, name: str, align: int, size: int, flags: int) -> Sec:
        sec = self._new_section(name, align, size, flags)
        self.load_order.insert(0, sec)
        if self.search_start == 0:
            self.search_start = 1
        return sec

    def extend_section(self, sec: Sec, more: int) -> int:
        """Grow ``sec`` by ``more`` zero bytes; the offset of the new bytes."""
        old = sec.size
        sec.size += more
        if sec.contents is None:
            sec.contents = bytearray()
        sec.contents.extend(bytes(more))
        return old

    def string_patch(self, secidx: int, offset: int, string: str) -> None:
        """obj_string_patch: the string goes to the end of .kstrtab (created if missing); the
        word at ``offset`` of section ``secidx`` gets its address when relocating."""
        data = _b(string) + b"\0"
        strsec = self.find_section(".kstrtab")
        if strsec is None:
            strsec = self.create_alloced_section(".kstrtab", 1, len(data))
            at = 0
        else:
            at = self.extend_section(strsec, len(data))
        assert strsec.contents is not None
        strsec.contents[at : at + len(data)] = data
        self.string_patches.insert(0, (secidx, offset, at))

    def symbol_patch(self, secidx: int, offset: int, sym: Sym) -> None:
        self.symbol_patches.insert(0, (secidx, offset, sym))

    # -- obj_reloc.c -------------------------------------------------------------------------

    def undefined(self) -> list[str]:
        """obj_check_undefineds: weak undefined become absolute 0; the names of the others that
        a relocation uses (the unresolved ones)."""
        missing = []
        for sym in self.symbols():
            if sym.secidx != SHN_UNDEF:
                continue
            if sym.bind == STB_WEAK:
                sym.secidx, sym.value = SHN_ABS, 0
            elif sym.r_type:
                missing.append(sym.name)
        return missing

    def allocate_commons(self) -> None:
        """obj_allocate_commons: COMMON symbols by size ascending (a symbol goes before the
        first of at least its size) into the first NOBITS section, each aligned to its st_value;
        then every NOBITS section becomes zero-filled PROGBITS.  A .bss created here is, as in
        modutils, not put in the load order."""
        commons: list[Sym] = []
        for sym in self.symbols():
            if sym.secidx == SHN_COMMON:
                i = 0
                while i < len(commons) and sym.size > commons[i].size:
                    i += 1
                commons.insert(i, sym)
        if commons:
            bss = next((s for s in self.sections if s.type == SHT_NOBITS), None)
            if bss is None:
                bss = Sec(".bss", SHT_PROGBITS, 0x3, 0, 0, len(self.sections))  # SHF_WRITE|SHF_ALLOC
                self.sections.append(bss)
            size, max_align = bss.size, bss.align
            for sym in commons:
                align = sym.value
                max_align = max(max_align, align)
                if align and size & (align - 1):
                    size = (size | (align - 1)) + 1
                sym.secidx, sym.value = bss.idx, size
                size += sym.size
            bss.size, bss.align = size, max_align

        # before the zero-filled contents exist: a hostile size or alignment is refused here
        check_region_sizes({s.name: s.size for s in self.sections if s.type == SHT_NOBITS}, self.path)
        for sec in self.sections:
            if sec.type == SHT_NOBITS:
                sec.contents = bytearray(sec.size) if sec.size else None
                sec.type = SHT_PROGBITS

    def load_size(self) -> int:
        """obj_load_size: each section in load order at the running offset, aligned."""
        dot = 0
        for sec in self.load_order:
            if sec.align and dot & (sec.align - 1):
                dot = (dot | (sec.align - 1)) + 1
            sec.addr = dot
            dot += sec.size
        return dot

    def image(self, size: int) -> bytearray:
        """obj_create_image."""
        out = bytearray(size)
        for sec in self.load_order:
            if sec.contents is not None:
                at = sec.addr - self.baseaddr
                out[at : at + sec.size] = sec.contents[: sec.size]
        return out

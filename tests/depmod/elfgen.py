"""Minimal x86_64 module objects for depmod/modprobe tests, written from scratch.

A generated .ko carries what depmod and modprobe read: .modinfo, exports the way a kbuild
module has them (__ksymtab entries with PC32 relocations, __kcrctab against absolute __crc_*
symbols, names in __ksymtab_strings), undefined symbols for what it needs (weak ones
optional) and __versions CRCs.  Enough for kmod's depmod and for lkm's reader alike.
"""

from __future__ import annotations

import struct

R_X86_64_32 = 10
R_X86_64_PC32 = 2
SHN_ABS = 0xFFF1


def make_module(
    name: str,
    exports: dict[str, int] | None = None,
    needs: dict[str, int] | None = None,
    weak: tuple[str, ...] = (),
    modinfo: list[str] | None = None,
) -> bytes:
    exports = exports or {}
    needs = needs or {}
    info = [f"name={name}", "vermagic=6.1.0 SMP mod_unload modversions ", *(modinfo or [])]
    strtab = bytearray(b"\0")

    def sname(s: str) -> int:
        off = len(strtab)
        strtab.extend(s.encode() + b"\0")
        return off

    kstr = bytearray()
    kstr_off: dict[str, int] = {}
    for e in exports:
        kstr_off[e] = len(kstr)
        kstr.extend(e.encode() + b"\0")
    text = b"\xc3" * max(1, len(exports))  # one `ret` per exported function
    # section indices
    names = [
        "",
        ".text",
        ".modinfo",
        "__ksymtab_strings",
        "__ksymtab",
        ".rela__ksymtab",
        "__kcrctab",
        ".rela__kcrctab",
        "__versions",
        ".symtab",
        ".strtab",
        ".shstrtab",
    ]
    idx = {n: i for i, n in enumerate(names)}
    # symbols: locals first (null, __kstrtab_*), then globals
    syms: list[tuple[int, int, int, int, int]] = [(0, 0, 0, 0, 0)]  # name, info, shndx, value, size
    kstrtab_sym: dict[str, int] = {}
    for e in exports:
        kstrtab_sym[e] = len(syms)
        syms.append((sname("__kstrtab_" + e), 0x01, idx["__ksymtab_strings"], kstr_off[e], len(e) + 1))
    first_global = len(syms)
    func_sym: dict[str, int] = {}
    crc_sym: dict[str, int] = {}
    for i, (e, crc) in enumerate(exports.items()):
        func_sym[e] = len(syms)
        syms.append((sname(e), 0x12, idx[".text"], i, 1))
        crc_sym[e] = len(syms)
        syms.append((sname("__crc_" + e), 0x10, SHN_ABS, crc, 0))
    for n in needs:
        syms.append((sname(n), (0x20 if n in weak else 0x10), 0, 0, 0))
    symtab = b"".join(struct.pack("<IBBHQQ", n, i, 0, sh, v, sz) for n, i, sh, v, sz in syms)
    ksymtab = b"\0" * (12 * len(exports))
    rela_k = b""
    kcrctab = b"\0" * (4 * len(exports))
    rela_c = b""
    for i, e in enumerate(exports):
        rela_k += struct.pack("<QQq", 12 * i, (func_sym[e] << 32) | R_X86_64_PC32, 0)
        rela_k += struct.pack("<QQq", 12 * i + 4, (kstrtab_sym[e] << 32) | R_X86_64_PC32, 0)
        rela_c += struct.pack("<QQq", 4 * i, (crc_sym[e] << 32) | R_X86_64_32, 0)
    versions = b"".join(struct.pack("<Q56s", crc, n.encode()) for n, crc in needs.items())
    modinfo_b = b"".join(s.encode() + b"\0" for s in info)
    shstrtab = bytearray(b"\0")
    sh_name = []
    for n in names:
        if n:
            sh_name.append(len(shstrtab))
            shstrtab.extend(n.encode() + b"\0")
        else:
            sh_name.append(0)
    bodies = {
        ".text": text,
        ".modinfo": modinfo_b,
        "__ksymtab_strings": bytes(kstr),
        "__ksymtab": ksymtab,
        ".rela__ksymtab": rela_k,
        "__kcrctab": kcrctab,
        ".rela__kcrctab": rela_c,
        "__versions": versions,
        ".symtab": symtab,
        ".strtab": bytes(strtab),
        ".shstrtab": bytes(shstrtab),
    }
    out = bytearray(64)
    offsets = {}
    for n in names[1:]:
        while len(out) % 8:
            out.append(0)
        offsets[n] = len(out)
        out += bodies[n]
    while len(out) % 8:
        out.append(0)
    shoff = len(out)
    # type, flags, link, info, align, entsize
    meta = {
        ".text": (1, 6, 0, 0, 16, 0),
        ".modinfo": (1, 2, 0, 0, 1, 0),
        "__ksymtab_strings": (1, 0x32, 0, 0, 1, 1),
        "__ksymtab": (1, 2, 0, 0, 4, 0),
        ".rela__ksymtab": (4, 0x40, idx[".symtab"], idx["__ksymtab"], 8, 24),
        "__kcrctab": (1, 2, 0, 0, 4, 0),
        ".rela__kcrctab": (4, 0x40, idx[".symtab"], idx["__kcrctab"], 8, 24),
        "__versions": (1, 2, 0, 0, 32, 0),
        ".symtab": (2, 0, idx[".strtab"], first_global, 8, 24),
        ".strtab": (3, 0, 0, 0, 1, 0),
        ".shstrtab": (3, 0, 0, 0, 1, 0),
    }
    out += b"\0" * 64
    for i, n in enumerate(names[1:], 1):
        t, fl, link, inf, al, es = meta[n]
        out += struct.pack("<IIQQQQIIQQ", sh_name[i], t, fl, 0, offsets[n], len(bodies[n]), link, inf, al, es)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    out[:64] = ident + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(names), idx[".shstrtab"]
    )
    return bytes(out)

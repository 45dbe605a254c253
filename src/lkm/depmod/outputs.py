"""depmod's output files, built from the computed tree: each file (or text+index pair) by one
builder, the builders shared between two processes (they are independent), messages kept in
the order kmod emits them while writing its files one after the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lkm.depmod.config import ERROR, WARNING
from lkm.depmod.hash import SYMBOLS_BUCKETS, hash_order
from lkm.modname import path_to_modname
from lkm.safeio import read_bytes, read_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lkm.depmod.cache import DepmodCache
    from lkm.depmod.core import Module

__all__ = [
    "BUILDERS",
    "GROUPS",
    "OUTPUTS",
    "Files",
    "Messages",
    "OnDisk",
    "Tree",
    "build_alias",
    "build_builtin",
    "build_dep",
    "build_devname",
    "build_outputs",
    "build_softdep",
    "build_symbols",
    "builtin_modinfo",
    "memo_inputs",
    "output_key",
    "read_output",
    "recall_outputs",
    "underscores",
]


# The files depmod writes, in kmod's order; True for the binary indexes.
OUTPUTS: tuple[tuple[str, bool], ...] = (
    ("modules.dep", False),
    ("modules.dep.bin", True),
    ("modules.alias", False),
    ("modules.alias.bin", True),
    ("modules.softdep", False),
    ("modules.symbols", False),
    ("modules.symbols.bin", True),
    ("modules.builtin.bin", True),
    ("modules.builtin.alias.bin", True),
    ("modules.devname", False),
)

Messages = list[tuple[str, str]]
Files = dict[str, bytes]


@dataclass(slots=True, unsafe_hash=True)
class Tree:
    """What the builders read: modules in kmod's order, topological indexes, the symbols."""

    mods: list[Module]
    sort_idx: list[int]
    symbols: dict[str, tuple[Module | None, int]]
    dirname: str
    warn: bool
    binaries: bool


def _text(lines: list[str]) -> bytes:
    return "".join(lines).encode("utf-8", "surrogateescape")


def underscores(alias: str) -> str | None:
    """depmod's underscores(): '-' to '_' outside [...]; None for an unmatched bracket."""
    if "[" not in alias and "]" not in alias:
        return alias.replace("-", "_")
    out = []
    i = 0
    n = len(alias)
    while i < n:
        c = alias[i]
        if c == "-":
            out.append("_")
        elif c == "]":
            return None
        elif c == "[":
            j = alias.find("]", i)
            if j < 0:
                return None
            out.append(alias[i : j + 1])
            i = j
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _all_deps(mods: list[Module], sort_idx: list[int]) -> list[list[Module]]:
    """Each module's transitive dependencies, in topological order."""
    memo: dict[int, set[int]] = {}

    def closure(m: Module) -> set[int]:
        got = memo.get(m.idx)
        if got is None:
            got = set()
            for d in m.deps:
                got.add(d.idx)
                got |= closure(d)
            memo[m.idx] = got
        return got

    key = sort_idx.__getitem__
    return [[mods[i] for i in sorted(closure(m), key=key)] for m in mods]


def build_dep(t: Tree, msgs: Messages) -> Files:
    lines = []
    from lkm.depmod.trie import IndexBuilder  # not needed to recall outputs

    idx = IndexBuilder()
    for m, deps in zip(t.mods, _all_deps(t.mods, t.sort_idx), strict=True):
        line = m.shown_path + ":" + "".join(" " + d.shown_path for d in deps)
        lines.append(line + "\n")
        if idx.insert(m.name, line, m.idx) and t.warn:
            msgs.append((WARNING, f"duplicate module deps:\n{line}"))
    out = {"modules.dep": _text(lines)}
    if t.binaries:
        out["modules.dep.bin"] = idx.write()
    return out


def build_alias(t: Tree, msgs: Messages) -> Files:
    lines = ["# Aliases extracted from modules themselves.\n"]
    from lkm.depmod.trie import IndexBuilder  # not needed to recall outputs

    idx = IndexBuilder()
    for m in t.mods:
        for value in m.facts.aliases:
            lines.append(f"alias {value} {m.name}\n")
            norm = underscores(value)
            if norm is None:
                msgs.append((WARNING, f"Unmatched bracket in {value}"))
            elif idx.insert(norm, m.name, m.idx) and t.warn:
                msgs.append((WARNING, f"duplicate module alias:\n{norm} {m.name}"))
    out = {"modules.alias": _text(lines)}
    if t.binaries:
        out["modules.alias.bin"] = idx.write()
    return out


def build_softdep(t: Tree, msgs: Messages) -> Files:
    lines = ["# Soft dependencies extracted from modules themselves.\n"]
    for m in t.mods:
        lines.extend(f"softdep {m.name} {v}\n" for v in m.facts.softdeps)
    return {"modules.softdep": _text(lines)}


def build_symbols(t: Tree, msgs: Messages) -> Files:
    lines = ["# Aliases for symbols, used by symbol_request().\n"]
    from lkm.depmod.trie import IndexBuilder  # not needed to recall outputs

    idx = IndexBuilder()
    symbols = t.symbols
    for name in hash_order(symbols, SYMBOLS_BUCKETS):
        owner = symbols[name][0]
        if owner is None:
            continue
        lines.append(f"alias symbol:{name} {owner.name}\n")
        if idx.insert("symbol:" + name, owner.name, owner.idx) and t.warn:
            msgs.append((WARNING, f"duplicate module syms:\nsymbol:{name} {owner.name}"))
    out = {"modules.symbols": _text(lines)}
    if t.binaries:
        out["modules.symbols.bin"] = idx.write()
    return out


def build_builtin(t: Tree, msgs: Messages) -> Files:
    if not t.binaries:
        return {}
    return {
        "modules.builtin.bin": _builtin_bin(t.dirname, msgs),
        "modules.builtin.alias.bin": _builtin_alias_bin(t.dirname, msgs),
    }


def build_devname(t: Tree, msgs: Messages) -> Files:
    lines: list[str] = []
    for m in t.mods:
        devname = None
        devtype = ""
        major = minor = 0
        for value in m.facts.aliases:
            if value.startswith("devname:"):
                devname = value[len("devname:") :]
            elif value[:1] in ("c", "b"):
                dev = _major_minor(value)
                if dev is not None:
                    devtype, major, minor = dev
            if devtype and devname is not None:
                break
        if devname is not None:
            if devtype:
                lines.append(f"{m.name} {devname} {devtype}{major}:{minor}\n")
            else:
                msgs.append(
                    (
                        ERROR,
                        f"Module '{m.name}' has devname ({devname}) but lacks major and minor "
                        "information. Ignoring.",
                    )
                )
    if lines:
        lines.insert(0, "# Device nodes to trigger on-demand module loading.\n")
    return {"modules.devname": _text(lines)}


# In kmod's file order (which is its message order); the groups split them over two cores.
BUILDERS: tuple[Callable[[Tree, Messages], Files], ...] = (
    build_dep,
    build_alias,
    build_softdep,
    build_symbols,
    build_builtin,
    build_devname,
)
GROUPS = ((1, 2, 5), (0, 3, 4))


def memo_inputs(t: Tree, kernel_names: list[str], prefix: str) -> dict[int, str]:
    """Per builder (index into BUILDERS), a digest of everything it reads; builders that are
    cheaper to run than to check have none.  Lists are preceded by their lengths and no
    string holds a NUL, so two different inputs never give the same sequence of fields."""
    from lkm.depmod.cache import digest

    mods = t.mods
    flags = [t.dirname, str(t.warn), str(t.binaries)]
    dep = ["dep", *flags]
    alias = ["alias", *flags]  # the aliases, and the soft dependencies for builder 2
    syms = ["symbols", *flags, prefix, str(len(kernel_names)), *kernel_names]
    for m in mods:
        f = m.facts
        dep.append(m.name)
        dep.append(m.shown_path)
        dep.append(",".join([str(d.idx) for d in m.deps]))
        alias.append(m.name)
        alias.append(str(len(f.aliases)))
        alias.extend(f.aliases)
        alias.append(str(len(f.softdeps)))
        alias.extend(f.softdeps)
        syms.append(m.name)
        syms.append(str(len(f.exports)))
        syms.extend(f.exports)
    alias_key = digest(alias)
    return {
        0: digest(dep),
        1: alias_key,
        2: "softdep " + alias_key,
        3: digest(syms),
        4: _builtin_key(t.dirname, t.binaries, t.warn),
        5: "devname " + alias_key,
    }


OnDisk = dict[str, tuple[int, ...]]  # output name -> stat key of the checked file on disk


def read_output(path: str) -> tuple[bytes, tuple[int, ...]] | None:
    """An output file's bytes and its stat key (size, mtime, ctime, inode, device, mode,
    owner), if it is a regular file (never through a symbolic link: kmod replaces a link)."""
    import stat as st_mod

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not st_mod.S_ISREG(st.st_mode) or st.st_size > (1 << 30):
            return None
        chunks = []
        left = st.st_size + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != st.st_size:
        return None
    return data, output_key(st)


def output_key(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
        st.st_mode,
        st.st_uid,
        st.st_nlink,
    )


def _recall(
    cache: DepmodCache, i: int, key: str, dirname: str, on_disk: OnDisk | None = None
) -> tuple[Files, Messages] | None:
    """The files builder ``i`` wrote last time, if its inputs are the same and every file on
    disk is still exactly what it wrote (checked by content: its digest); ``on_disk`` gets
    the stat keys of those files."""
    from lkm.depmod.cache import bytes_digest

    memo = cache.memos.get(i)
    if memo is None or memo[0] != key:
        return None
    files: Files = {}
    keys: OnDisk = {}
    for fname, dig in memo[1]:
        got = read_output(os.path.join(dirname, fname))
        if got is None or bytes_digest(got[0]) != dig:
            return None
        files[fname], keys[fname] = got
    if on_disk is not None:
        on_disk.update(keys)
    return files, list(memo[2])


def recall_outputs(
    cache: DepmodCache, dirname: str, binaries: bool, warn: bool, on_disk: OnDisk | None = None
) -> tuple[list[tuple[str, bytes]], Messages] | None:
    """Every output file as the last run wrote it, when the caller knows that no builder's
    inputs changed since (the tree digest is the same); the built-in indexes, which read
    files of their own, are checked against their inputs here.  None if anything is missing
    or differs."""

    keys = {i: m[0] for i, m in cache.memos.items()}
    if sorted(keys) != list(range(len(BUILDERS))):
        return None
    if keys[4] != _builtin_key(dirname, binaries, warn):
        return None
    files: Files = {}
    messages: Messages = []
    for i in range(len(BUILDERS)):
        got = _recall(cache, i, keys[i], dirname, on_disk)
        if got is None:
            return None
        files.update(got[0])
        messages.extend(got[1])
    return [(name, files[name]) for name, _b in OUTPUTS if name in files], messages


def _builtin_key(dirname: str, binaries: bool, warn: bool) -> str:
    from lkm.depmod.cache import bytes_digest, digest

    builtin = ["builtin", dirname, str(warn), str(binaries)]
    for name in ("modules.builtin", "modules.builtin.modinfo"):
        try:
            with open(os.path.join(dirname, name), "rb") as fh:
                builtin.append(bytes_digest(fh.read()))
        except OSError as exc:
            builtin.append(f"error {exc.errno}")
    return digest(builtin)


def build_outputs(
    t: Tree,
    workers: int | None,
    messages: Messages,
    memo: tuple[DepmodCache, dict[int, str]] | None = None,
    on_disk: OnDisk | None = None,
) -> list[tuple[str, bytes]]:
    """Every output file in kmod's order; messages appended in kmod's order.  With ``memo``
    (the cache and each builder's input digest), a builder whose inputs and files are
    unchanged is not run, and the cache learns what the others wrote."""
    from lkm.parallel import map_chunks

    def run(groups: Sequence[tuple[int, ...]]) -> list[tuple[int, Files, Messages]]:
        out = []
        for group in groups:
            for i in group:
                msgs: Messages = []
                out.append((i, BUILDERS[i](t, msgs), msgs))
        return out

    results: list[tuple[int, Files, Messages]] = []
    todo: Sequence[tuple[int, ...]] = GROUPS
    done: set[int] = set()
    if memo is not None:
        cache, keys = memo
        for i, key in keys.items():
            got = _recall(cache, i, key, t.dirname, on_disk)
            if got is not None:
                results.append((i, *got))
        done = {r[0] for r in results}
        todo = [g for g in (tuple(i for i in group if i not in done) for group in GROUPS) if g]
    for part in map_chunks(run, todo, workers=workers, min_per_worker=1):
        results.extend(part)
    results.sort(key=lambda r: r[0])
    if memo is not None:
        from lkm.depmod.cache import bytes_digest

        cache, keys = memo
        cache.dirty = True
        cache.memos = {
            i: cache.memos[i] if i in done else (keys[i], [(n, bytes_digest(d)) for n, d in f.items()], msgs)
            for i, f, msgs in results
            if i in keys
        }
    files: Files = {}
    for _i, f, msgs in results:
        files.update(f)
        messages.extend(msgs)
    return [(name, files[name]) for name, _b in OUTPUTS if name in files]


def _major_minor(alias: str) -> tuple[str, int, int] | None:
    """sscanf(alias, "char-major-%u-%u") / "block-major-%u-%u"."""
    for prefix, kind in (("char-major-", "c"), ("block-major-", "b")):
        if alias.startswith(prefix):
            a, _, rest = alias[len(prefix) :].partition("-")
            b = rest
            j = 0
            while j < len(b) and b[j].isdigit():
                j += 1
            if a.isdigit() and j:
                return kind, int(a) & 0xFFFFFFFF, int(b[:j]) & 0xFFFFFFFF
            return None
    return None


def _builtin_bin(dirname: str, messages: list[tuple[str, str]]) -> bytes:
    path = os.path.join(dirname, "modules.builtin")
    try:
        lines = read_text(path).splitlines(keepends=True)
    except OSError as exc:
        messages.append(
            (WARNING, f"could not open modules.builtin at {dirname}: {os.strerror(exc.errno or 0)}")
        )
        return b""
    from lkm.depmod.trie import IndexBuilder  # not needed to recall outputs

    idx = IndexBuilder()
    for line in lines:
        if not line[:1].isalpha() or not line[:1].isascii():
            messages.append((ERROR, f"Invalid modules.builtin line: {line}"))
            continue
        idx.insert(path_to_modname(line.rstrip("\n")), "", 0)
    return idx.write()


def builtin_modinfo(dirname: str) -> list[tuple[str, list[tuple[str, str]]]] | None:
    """modules.builtin.modinfo as (module, [(key, value)...]) groups in file order."""
    try:
        data = read_bytes(os.path.join(dirname, "modules.builtin.modinfo"))
    except OSError:
        return None
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in data.split(b"\0"):
        if not raw:
            continue
        text = raw.decode("utf-8", "surrogateescape")
        dot = text.find(".")
        if dot < 0:
            continue
        name = text[:dot]
        k, _, v = text[dot + 1 :].partition("=")
        if not groups or groups[-1][0] != name:
            groups.append((name, []))
        groups[-1][1].append((k, v))
    return groups


def _builtin_alias_bin(dirname: str, messages: list[tuple[str, str]]) -> bytes:
    groups = builtin_modinfo(dirname)
    if groups is None:
        messages.append(
            (WARNING, f"could not open modules.builtin.modinfo at {dirname}: No such file or directory")
        )
        return b""
    if not groups:
        return b""
    from lkm.depmod.trie import IndexBuilder  # not needed to recall outputs

    idx = IndexBuilder()
    for name, info in groups:
        modname = name.replace("-", "_")
        for k, v in info:
            if k != "alias":
                continue
            norm = underscores(v)
            if norm is None:
                messages.append((WARNING, f"Unmatched bracket in {v}"))
                continue
            idx.insert(norm, modname, 0)
    return idx.write()

"""depmod's computation: modules in kmod's order, the symbol table, dependencies, their
topological order, and every output file's bytes.

Order is the whole difficulty.  kmod puts the modules listed in modules.order first (in that
order) and the rest in the iteration order of its 512-bucket name table; a module's index in
that array is its priority in the .bin files.  Exports go into a 2048-bucket table (a later
module's export replaces an earlier one's), whose iteration order is modules.symbols' order.
Dependencies are sorted by a topological index: modules nobody uses first, taken LIFO.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lkm.depmod.config import ERROR, INFO, WARNING, DepmodConfig, load_config
from lkm.depmod.hash import MODULES_BUCKETS, hash_order
from lkm.depmod.read import ModuleFacts, read_all
from lkm.depmod.scan import Candidate, search_modules
from lkm.errors import LkmError
from lkm.modname import path_to_modname
from lkm.record import Record
from lkm.safeio import read_bytes, read_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lkm.depmod.cache import DepmodCache

# Output files in the order kmod writes them; True for the binary indexes (-n skips them).
FAKE_SYMBOLS = ("__this_module", "_GLOBAL_OFFSET_TABLE_")  # put in by the kernel's loader


class DependencyCycle(LkmError):
    """Modules depend on each other in a loop; ``messages`` are kmod's report lines."""

    def __init__(self, messages: list[tuple[str, str]]) -> None:
        super().__init__(messages[-1][1] if messages else "dependency cycle")
        self.messages = messages
        # What was read (DepmodCache.save could keep it; lkm depmod writes nothing, as kmod).
        self.cache: DepmodCache | None = None


@dataclass(slots=True, unsafe_hash=True)
class DepmodOptions:
    release: str
    basedir: str | None = None
    config_paths: list[str] | None = None
    symvers: str | None = None
    system_map: str | None = None
    errsyms: bool = False
    warn_dups: bool = False
    sym_prefix: str = ""
    modules: list[str] | None = None  # explicit module files (absolute); None: the whole tree
    workers: int | None = None
    binaries: bool = True  # False (depmod -n): the text files only
    verbose: bool = False  # -v: report each dependency found (DepmodResult.shown)
    # Use and keep modules.lkm-cache (lkm.depmod.cache): read only the changed modules.
    cache: bool = False


def modules_dirname(basedir: str | None, release: str) -> str:
    return f"{basedir or ''}/lib/modules/{release}"


class Module(Record):
    __slots__ = ("name", "path", "relpath", "uncrelpath", "idx", "facts", "deps", "users", "sort_idx")

    def __init__(self, cand: Candidate, facts: ModuleFacts) -> None:
        self.name = cand.name
        self.path = cand.path
        self.relpath = cand.relpath
        self.uncrelpath = cand.uncrelpath
        self.idx = 0
        self.facts = facts
        self.deps: list[Module] = []
        self.users = 0
        self.sort_idx = 0

    @property
    def shown_path(self) -> str:
        return self.relpath if self.relpath is not None else self.path


class DepmodResult(Record):
    """The output files (name, bytes) in kmod's order, and the messages kmod would print."""

    __slots__ = ("dirname", "outputs", "messages", "modules", "shown", "read", "cache", "on_disk")

    def __init__(
        self,
        dirname: str,
        outputs: list[tuple[str, bytes]],
        messages: list[tuple[str, str]],
        modules: int,
        shown: list[str] | None = None,
        read: int | None = None,
        cache: DepmodCache | None = None,
        on_disk: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.dirname = dirname
        self.outputs = outputs
        self.messages = messages
        self.modules = modules
        self.shown = shown or []  # -v lines for stdout: '<path> needs "<symbol>": <owner path>'
        self.read = modules if read is None else read  # module files actually read (not cached)
        self.cache = cache  # to be saved by write_outputs once the files are in place
        # Outputs found on disk holding exactly these bytes (checked against the cache's
        # digests), with the stat key of the checked file: write_outputs leaves such a file in
        # place (a new mtime only) if it is still that file.
        self.on_disk = on_disk or {}


# -- symbols from the kernel ----------------------------------------------------------------


def load_symvers(path: str) -> list[tuple[str, int]]:
    """vmlinux rows of a Module.symvers: (symbol, crc)."""
    out = []
    for raw in read_bytes(path).splitlines(keepends=True):
        if True:
            parts = raw.decode("utf-8", "surrogateescape").replace("\t", " ").split()
            if len(parts) < 3 or parts[2] != "vmlinux":
                continue
            try:
                crc = int(parts[0], 16)
            except ValueError:
                continue
            out.append((parts[1], crc))
    return out


def load_system_map(path: str, prefix: str, messages: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """``__ksymtab_<sym>`` lines of a System.map."""
    out = []
    if True:
        for n, raw in enumerate(read_bytes(path).splitlines(keepends=True), 1):
            text = raw.decode("utf-8", "surrogateescape")
            line = text.rstrip("\n")
            parts = line.split(" ", 2)
            if len(parts) < 3:
                messages.append((ERROR, f"{path}:{n}: invalid line: {text}"))
                continue
            name = parts[2]
            if prefix and name.startswith(prefix):
                name = name[1:]
            if name.startswith("__ksymtab_"):
                out.append((name[len("__ksymtab_") :], 0))
    return out


# -- the computation ------------------------------------------------------------------------


def _order_modules(
    found: dict[str, Candidate],
    dirname: str,
    messages: list[tuple[str, str]],
    cache: DepmodCache | None = None,
) -> list[str]:
    """Module names in kmod's array order: modules.order first, then hash order.  With
    ``cache``, the order of the last run is used when it was computed from the same names,
    paths and modules.order."""
    order_file = os.path.join(dirname, "modules.order")
    try:
        text = read_text(order_file)
    except OSError as exc:
        messages.append(
            (WARNING, f"could not open modules.order at {dirname}: {os.strerror(exc.errno or 0)}")
        )
        return hash_order(found, MODULES_BUCKETS)
    key = ""
    if cache is not None:
        from lkm.depmod.cache import digest

        joined = "\n".join(found)
        if joined.count("\n") == len(found) - 1:  # no name holds a newline
            unc = "\n".join([c.uncrelpath or "" for c in found.values()])
            key = digest(["order", dirname, text, joined, unc, str(len(found))])
            if cache.order[0] == key:
                return cache.order[1].split("\n") if found else []
    before = len(messages)
    names = _order_text(found, text, order_file, messages)
    if key and cache is not None and len(messages) == before:
        cache.order = (key, "\n".join(names))
        cache.dirty = True
    return names


def _order_text(
    found: dict[str, Candidate], text: str, order_file: str, messages: list[tuple[str, str]]
) -> list[str]:
    names = hash_order(found, MODULES_BUCKETS)
    lines = text.split("\n")
    if lines[-1] != "":
        messages.append((ERROR, f"{order_file}:{len(lines)} corrupted line misses '\\n'"))
        return names
    by_unc = {c.uncrelpath: c.name for c in found.values() if c.uncrelpath is not None}
    total = len(lines)  # lines in the file + 1, as kmod counts
    sort_idx = dict.fromkeys(names, 1)
    for i, line in enumerate(lines[:-1], 1):
        name = by_unc.get(line)
        if name is not None:
            sort_idx[name] = i - total
    return sorted(names, key=sort_idx.__getitem__)  # stable, as glibc's merge-sort qsort


def _cycles(mods: list[Module], users: list[int]) -> list[tuple[str, str]]:
    """kmod's depmod_report_cycles: a walk from each module left with users, reporting every
    path that comes back to the walk's start; modules on a reported path, and dead ends, are
    not walked from again; then the count of modules on reported paths.  Removing a module
    from kmod's circular list of roots makes the node after it the head, so the order of the
    walks follows those removals (``mod_loop_c -> mod_loop_a -> mod_loop_b -> mod_loop_c``).

    kmod re-enters modules it has seen unless they are the start, so a cycle that does not
    pass through the start is walked forever: kmod 30 hangs, or overflows its stack (sized by
    the number of such modules) and aborts on an assertion; here the report stops there with
    a message instead.
    """
    roots = [m for i, m in enumerate(mods) if users[i] > 0]
    stack_size = len(roots)
    visited: set[int] = set()
    in_loops: set[str] = set()
    out: list[tuple[str, str]] = []

    def remove(m: Module) -> None:
        # kmod_list_remove_data() returns the node after the removed one as the list's new
        # head: the circular list of roots turns, and the next walk starts there.
        nonlocal roots
        if m in roots:
            k = roots.index(m)
            roots = roots[k + 1 :] + roots[:k]

    while roots:
        root = roots.pop(0)
        # (module, the path that led to it from the root)
        stack: list[tuple[Module, tuple[Module, ...]]] = [(root, ())]
        while stack:
            m, path = stack.pop()
            if m.idx in visited and m is root:
                in_loops.update(x.name for x in path)
                for x in path:
                    remove(x)
                names = [x.name for x in path] + [m.name]
                out.append((ERROR, "Cycle detected: " + " -> ".join(names)))
                continue
            if len(path) > len(mods):
                # the path has gone round a cycle that does not return to the root: kmod 30
                # walks it forever (printing ever longer cycles, or until its stack overflows
                # and it aborts); the report stops here instead
                out.append((ERROR, f"Cycle report stopped at {m.name}: cycles not through {root.name}"))
                out.append((ERROR, f"Found {len(in_loops)} modules in dependency cycles!"))
                return out
            visited.add(m.idx)
            if not m.deps:
                remove(m)
                continue
            for d in m.deps:
                if len(stack) >= stack_size:
                    out.append((ERROR, f"Cycle report stopped at {m.name}: cycles not through {root.name}"))
                    out.append((ERROR, f"Found {len(in_loops)} modules in dependency cycles!"))
                    return out
                stack.append((d, (*path, m)))
    out.append((ERROR, f"Found {len(in_loops)} modules in dependency cycles!"))
    return out


def _topological(mods: list[Module]) -> list[int]:
    """dep_sort_idx per module (kmod: roots taken LIFO); raises DependencyCycle."""
    n = len(mods)
    users = [m.users for m in mods]
    roots = [i for i in range(n) if users[i] == 0]
    sort_idx = [0] * n
    n_sorted = 0
    while roots:
        i = roots.pop()
        sort_idx[i] = n_sorted
        n_sorted += 1
        for d in mods[i].deps:
            users[d.idx] -= 1
            if users[d.idx] == 0:
                roots.append(d.idx)
    if n_sorted < n:
        raise DependencyCycle(_cycles(mods, users))
    return sort_idx


def depmod(opts: DepmodOptions) -> DepmodResult:
    """Compute every output of ``depmod`` for the tree ``opts`` names."""
    dirname = modules_dirname(opts.basedir, opts.release)
    messages: list[tuple[str, str]] = []
    prefix = opts.sym_prefix
    errsyms = opts.errsyms

    # Kernel symbols first: modules' exports replace them.
    symbols: dict[str, tuple[Module | None, int]] = {}
    kernel_syms: list[tuple[str, int]] | None = None
    try:
        if opts.symvers is not None:
            kernel_syms = load_symvers(opts.symvers)
        elif opts.system_map is not None:
            kernel_syms = load_system_map(opts.system_map, prefix, messages)
    except OSError as exc:
        raise LkmError(
            f"could not load {opts.symvers or opts.system_map}: {os.strerror(exc.errno or 0)}"
        ) from None
    if kernel_syms is None and errsyms:
        messages.append((WARNING, "-e needs -E or -F"))
        errsyms = False
    if kernel_syms is not None:
        for name, crc in kernel_syms:
            symbols[name[1:] if prefix and name.startswith(prefix) else name] = (None, crc)
        for name in FAKE_SYMBOLS:
            symbols[name] = (None, 0)

    # Stats the scan had to take anyway (cache keys); taken before any module is read.
    stats: dict[str, os.stat_result] | None = {} if opts.cache else None
    started_ns = _now_ns()
    if opts.modules is None:
        cfg = load_config(opts.config_paths, opts.release)
        messages.extend(cfg.messages)
        found, errors = search_modules(dirname, cfg, stats)
        if not found and errors and not os.path.isdir(dirname):
            raise LkmError(errors[0])
        messages.extend((ERROR, e) for e in errors)
    else:
        cfg = DepmodConfig()
        found = {}
        for path in opts.modules:
            if not path.startswith("/"):
                raise LkmError(f"{path}: not absolute path.")
            if not os.path.exists(path):
                raise LkmError(f"could not create module {path}: No such file or directory")
            cand = Candidate(path_to_modname(path), path, dirname)
            if cand.name in found:
                raise LkmError(f"could not add module {path}: File exists")
            found[cand.name] = cand

    cache = tree_key = None
    if opts.cache:
        from lkm.depmod.cache import CACHE_NAME, DepmodCache

        cache = DepmodCache.load(os.path.join(dirname, CACHE_NAME))
    names = _order_modules(found, dirname, messages, cache)
    cands = [found[n] for n in names]
    check_crcs = opts.symvers is not None
    paths = [c.path for c in cands]
    on_disk: dict[str, tuple[int, ...]] = {}
    if cache is not None:
        from lkm.depmod.cache import CachedRead

        cached = CachedRead(cache, paths, opts.workers, check_crcs, stats or {}, started_ns)
        n_read = cached.read
        tree_key = _tree_key(opts, cands, cached.fdigs, kernel_syms, prefix, check_crcs)
        if not (errsyms or opts.verbose) and tree_key == cache.tree:
            # Nothing any builder reads has changed: last run's files, if still on disk.
            from lkm.depmod.outputs import recall_outputs

            on_disk.clear()
            recalled = recall_outputs(cache, dirname, opts.binaries, opts.warn_dups, on_disk)
            if recalled is not None:
                for p, f in zip(paths, cached.facts, strict=True):
                    if f is not None and f.error is not None:
                        messages.append((ERROR, f"failed to load symbols from {p}: {f.error}"))
                outputs, msgs = recalled
                messages.extend(msgs)
                return DepmodResult(dirname, outputs, messages, len(cands), None, n_read, cache, on_disk)
        facts = cached.all_facts(paths, opts.workers, check_crcs)
        n_read = cached.read
    else:
        facts = read_all(paths, opts.workers, crcs=check_crcs)
        n_read = len(facts)
    mods = [Module(c, f) for c, f in zip(cands, facts, strict=True)]
    for i, m in enumerate(mods):
        m.idx = i
        if m.facts.error is not None:
            messages.append((ERROR, f"failed to load symbols from {m.path}: {m.facts.error}"))
        f = m.facts
        crcs = f.export_crcs or [0] * len(f.exports)
        for name, crc in zip(f.exports, crcs, strict=True):
            symbols[name[1:] if prefix and name.startswith(prefix) else name] = (m, crc)

    shown: list[str] | None = [] if opts.verbose else None
    _resolve_dependencies(mods, symbols, prefix, errsyms, check_crcs, messages, shown)

    try:
        sort_idx = _topological(mods)
    except DependencyCycle as exc:
        exc.messages[:0] = messages
        exc.cache = cache
        raise
    from lkm.depmod.outputs import Tree, build_outputs

    tree = Tree(mods, sort_idx, symbols, dirname, opts.warn_dups, opts.binaries)
    memo = None
    if cache is not None:
        from lkm.depmod.outputs import memo_inputs

        memo = (cache, memo_inputs(tree, [n for n, _c in kernel_syms or ()], prefix))
    on_disk.clear()
    outputs = build_outputs(tree, opts.workers, messages, memo, on_disk)
    if cache is not None and tree_key is not None and cache.tree != tree_key:
        cache.tree = tree_key
        cache.dirty = True
    return DepmodResult(dirname, outputs, messages, len(mods), shown, n_read, cache, on_disk)


def _now_ns() -> int:
    import time

    return time.time_ns()


def _tree_key(
    opts: DepmodOptions,
    cands: list[Candidate],
    fdigs: list[bytes],
    kernel_syms: list[tuple[str, int]] | None,
    prefix: str,
    crcs: bool,
) -> str:
    """A digest of everything the output builders read but modules.builtin*: the options,
    the kernel's symbols, and each module's name, path and facts, in kmod's order."""
    from lkm.depmod.cache import digest

    ks = kernel_syms or []
    parts = [
        modules_dirname(opts.basedir, opts.release),
        str(opts.warn_dups),
        str(opts.binaries),
        prefix,
        str(crcs),
        "-" if kernel_syms is None else str(len(ks)),
        *(n for n, _c in ks),
        *(str(c) for _n, c in ks),
        str(len(cands)),
        "\0".join([c.name for c in cands]),
        "\0".join([c.path for c in cands]),
        "\0".join([c.relpath or "" for c in cands]),
        b"".join(fdigs).hex(),
    ]
    return digest(parts)


def _resolve_dependencies(
    mods: list[Module],
    symbols: dict[str, tuple[Module | None, int]],
    prefix: str,
    errsyms: bool,
    check_crcs: bool,
    messages: list[tuple[str, str]],
    shown: list[str] | None = None,
) -> None:
    """Each module's direct dependencies, in the order of the first needed symbol each
    provides; every dependency counts one more user."""
    owner_idx = {name: o.idx for name, (o, _crc) in symbols.items() if o is not None}
    owner_get = owner_idx.get
    get = symbols.get
    for m in mods:
        f = m.facts
        if shown is None and not (errsyms or check_crcs or prefix or "\n." in "\n".join(("", *f.needed))):
            # The common case, done in C: the owners of the needed symbols, first seen first.
            found = dict.fromkeys(map(owner_get, f.needed))
            found.pop(None, None)
            m.deps = [mods[i] for i in found if i is not None]
        else:
            seen: set[int] = set()
            needed_crcs = f.needed_crcs or [0] * len(f.needed)
            for name, crc in zip(f.needed, needed_crcs, strict=True):
                key = name[1:] if name[:1] == "." else name  # PPC64: .foo is foo
                if prefix and key.startswith(prefix):
                    key = key[1:]
                sym = get(key)
                if sym is None:
                    if errsyms and name not in f.weak:
                        messages.append((WARNING, f"{m.path} needs unknown symbol {name}"))
                    continue
                owner, sym_crc = sym
                if check_crcs and errsyms and sym_crc != crc and name not in f.weak:
                    messages.append((WARNING, f"{m.path} disagrees about version of symbol {name}"))
                if owner is None or owner.idx in seen:
                    continue
                seen.add(owner.idx)
                m.deps.append(owner)
                if shown is not None:
                    shown.append(f'{m.path} needs "{key}": {owner.path}\n')
        for d in m.deps:
            d.users += 1


# -- output files ---------------------------------------------------------------------------


def _refresh(path: str, key: tuple[int, ...], size: int) -> bool:
    """Give an output file that already holds the bytes to write a new mtime instead of
    writing it again: only if it is still the very file whose bytes were checked (same stat
    key: inode, size, times, mode, owner, one link) and a regular file of that size.  The
    result on disk is the same as kmod's fresh file: those bytes, modified now."""
    import stat

    from lkm.depmod.outputs import output_key

    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size != size or output_key(st) != key:
            return False
        mask = os.umask(0o022)
        os.umask(mask)
        if stat.S_IMODE(st.st_mode) != 0o644 & ~mask or st.st_uid != os.geteuid():
            return False  # kmod's new file would have another mode or owner
        os.utime(path, follow_symlinks=False)
    except OSError:
        return False
    return True


def write_outputs(result: DepmodResult) -> None:
    """Write every output next to the modules as kmod's depmod does: each to a temporary file
    with a unique name in the directory (O_EXCL|O_NOFOLLOW: a planted symlink is never
    followed), fsync-ed; then each renamed over its name, so no reader ever sees a partial
    file.  On any error every temporary is removed."""
    from lkm.safeio import FileError, commit, discard, write_temp

    dirname = result.dirname
    tmps: list[tuple[str, str]] = []
    try:
        for name, data in result.outputs:
            final = os.path.join(dirname, name)
            key = result.on_disk.get(name)
            if key is not None and _refresh(final, key, len(data)):
                continue
            tmps.append((write_temp(final, data), final))
        for i, (tmp, final) in enumerate(tmps):
            commit(tmp, final)
            tmps[i] = ("", final)
    except BaseException as exc:
        for tmp, _final in tmps:
            if tmp:
                discard(tmp)
        if isinstance(exc, FileError):
            raise LkmError(f"could not write {exc.path}: {exc.reason}") from None
        raise
    if result.cache is not None:
        result.cache.save()


__all__ = [
    "INFO",
    "DependencyCycle",
    "DepmodOptions",
    "DepmodResult",
    "depmod",
    "write_outputs",
]

"""Finding modules and the order to load them in, as libkmod does for modprobe.

A lookup tries, in order, and stops at the first that finds anything: modprobe.d aliases
(fnmatch, every match), modules.dep.bin (exact name), modules.symbols.bin (``symbol:``),
install/remove commands (exact name), modules.alias.bin (wildcards), modules.builtin.bin,
modules.builtin.alias.bin.  Modules are objects cached per (name, alias), as libkmod caches
them, and the ``visited`` mark on those objects is what keeps a module from being listed
twice in one probe list (dependencies reached through a dependency line are listed again).
"""

from __future__ import annotations

from lkm.errors import LkmError
from lkm.moddir import ModulesDir
from lkm.modname import alias_normalize as normalize
from lkm.modname import path_to_modname as path_to_name
from lkm.modprobe.config import ModprobeConfig
from lkm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import re

# fnmatch and re are imported only when a pattern has a wildcard: most calls have none.


def _is_wild(pat: str) -> bool:
    return "*" in pat or "?" in pat or "[" in pat


def fnmatchcase(name: str, pat: str) -> bool:
    if not _is_wild(pat):
        return name == pat
    from fnmatch import fnmatchcase as match

    return match(name, pat)


class PatternTable:
    """fnmatch patterns in config order, matched against module names fast: literal
    patterns by dictionary, the few wildcard ones by compiled regex.  ``matches`` gives the
    indices of the matching entries, in order."""

    def __init__(self, patterns: list[str], literal: bool = False) -> None:
        """``literal``: every pattern matches only the name it spells, wildcards included."""
        self._exact: dict[str, list[int]] = {}
        self._wild: list[tuple[int, re.Pattern[str]]] = []
        for i, pat in enumerate(patterns):
            if not literal and _is_wild(pat):
                import re
                from fnmatch import translate

                self._wild.append((i, re.compile(translate(pat))))
            else:
                self._exact.setdefault(pat, []).append(i)

    def exact_names(self) -> set[str] | None:
        """The names some pattern matches, when no pattern has a wildcard (None otherwise)."""
        return None if self._wild else set(self._exact)

    def matches(self, name: str) -> list[int]:
        hits = self._exact.get(name, [])
        if self._wild:
            hits = sorted([*hits, *(i for i, rx in self._wild if rx.match(name))])
        return hits


class Mod(Record):
    """One libkmod module object."""

    __slots__ = ("name", "alias", "path", "builtin", "visited", "required", "ignorecmd", "_deps")

    def __init__(self, name: str, alias: str | None) -> None:
        self.name = name
        self.alias = alias
        self.path: str | None = None
        self.builtin = False
        self.visited = 0  # the probe-list generation that visited it (0: none)
        self.required = 0
        self.ignorecmd = False
        self._deps: list[Mod] | None = None


class Step(Record):
    """One line of --show-depends: ``insmod`` a file, run an ``install`` command, or a
    ``builtin`` module (nothing to do)."""

    __slots__ = ("kind", "mod", "options", "command")

    def __init__(self, kind: str, mod: Mod, options: str, command: str | None = None) -> None:
        self.kind = kind
        self.mod = mod
        self.options = options
        self.command = command

    def show(self) -> str:
        return show_row(self.kind, self.mod, self.options, self.command)


def show_row(kind: str, mod: Mod, options: str, command: str | None) -> str:
    """A step's --show-depends line (empty for a module that is nowhere)."""
    if kind == "insmod":
        return f"insmod {mod.path} {options}\n"
    if kind == "install":
        return f"install {command} {options}\n"
    if kind == "builtin":
        return f"builtin {mod.name}\n"
    return ""


class Resolver:
    def __init__(self, moddir: ModulesDir, config: ModprobeConfig) -> None:
        self.moddir = moddir
        self.config = config
        self._mods: dict[tuple[str, str | None], Mod] = {}
        self._deplines: dict[str, str | None] = {}
        self._gen = 0  # each probe list starts afresh, as kmod_set_modules_visited(false)
        # libkmod compares an options line's name as a string (streq), where install, remove
        # and softdep lines are fnmatch patterns: "options d* x=1" is for a module named "d*"
        self._options = PatternTable([p for p, _o in config.options], literal=True)
        self._install = PatternTable([p for p, _c in config.install])
        self._remove = PatternTable([p for p, _c in config.remove])
        self._softdeps = PatternTable([sd.name for sd in config.softdeps])
        self._aliases = PatternTable([p for p, _m in config.aliases])
        self._commands = {n for n, _c in config.install} | {n for n, _c in config.remove}
        self._found: dict[str, list[Mod]] = {}
        # Per module name: what the configuration says (pure functions of the name, asked
        # for every time a module appears in a load list).
        self._opts: dict[str, str] = {}
        self._inst: dict[str, str | None] = {}
        # show_text's insmod line without extra options, by id() of the module object (every
        # one lives in _mods as long as the resolver does; a Record's hash is of its fields)
        self._insmod_lines: dict[int, str] = {}
        self._soft: dict[str, tuple[list[Mod], list[Mod]]] = {}
        self._bypath: dict[str, Mod] = {}  # dependency path -> its module (no alias)
        self._conf: dict[str, tuple[str, str | None]] = {}  # name -> (options, install command)
        self._depidx: object = self  # modules.dep.bin once opened (self: not yet)
        # The names an options, install or softdep line may apply to (None: any, a pattern
        # has a wildcard); every other name has none of them, known without asking.
        named = [t.exact_names() for t in (self._options, self._install, self._softdeps)]
        sets = [n for n in named if n is not None]
        self._configured: set[str] | None = set().union(*sets) if len(sets) == len(named) else None

    # -- module objects -------------------------------------------------------------------

    def module(self, name: str, alias: str | None = None) -> Mod:
        key = (name, alias)
        m = self._mods.get(key)
        if m is None:
            m = self._mods[key] = Mod(name, alias)
            line = self._deplines[name] if name in self._deplines else self._depline(name)
            if line is not None:
                m.path = self._abs(line.partition(":")[0])
        return m

    def _depline(self, name: str) -> str | None:
        lines = self._deplines
        if name in lines:
            return lines[name]
        idx = self._depidx
        if idx is self:
            idx = self._depidx = self.moddir.index("modules.dep.bin")
        line = lines[name] = idx.search(name) if idx is not None else None  # type: ignore[attr-defined]
        return line

    def _abs(self, rel: str) -> str:
        return rel if rel.startswith("/") else f"{self.moddir.dirname}/{rel}"

    def dependencies(self, m: Mod) -> list[Mod]:
        """The module's dependency line, last entry first (libkmod prepends as it parses)."""
        if m._deps is None:
            line = self._depline(m.name)
            deps: list[Mod] = []
            if line is not None:
                bypath = self._bypath
                for p in line.partition(":")[2].split():
                    d = bypath.get(p)
                    if d is None:
                        d = bypath[p] = self.module(path_to_name(p))
                    deps.append(d)
                deps.reverse()
            m._deps = deps
        return m._deps

    # -- lookups --------------------------------------------------------------------------

    def lookup(self, given: str) -> list[Mod]:
        """kmod_module_new_from_lookup: every module ``given`` names (empty if none)."""
        alias = normalize(given)
        got = self._found.get(alias)
        if got is None:
            got = self._found[alias] = self._lookup(alias)
        return got

    def _lookup(self, alias: str) -> list[Mod]:
        cfg = self.config
        hits = self._aliases.matches(alias)
        if hits:
            return [self.module(cfg.aliases[i][1], alias) for i in hits]
        if self._depline(alias) is not None:
            return [self.module(alias)]
        if alias.startswith("symbol:"):
            found = self._wild("modules.symbols.bin", alias)
            if found:
                return found
        if alias in self._commands:
            return [self.module(alias)]
        found = self._wild("modules.alias.bin", alias)
        if found:
            return found
        idx = self.moddir.index("modules.builtin.bin")
        if idx is not None and idx.search(alias) is not None:
            m = self.module(alias)
            m.builtin = True
            return [m]
        found = self._wild("modules.builtin.alias.bin", alias)
        for m in found:
            m.builtin = True
        return found

    def _wild(self, index: str, alias: str) -> list[Mod]:
        idx = self.moddir.index(index)
        if idx is None:
            return []
        return [self.module(name, alias) for name in idx.search_wild(alias)]

    # -- configuration per module ---------------------------------------------------------

    def options(self, m: Mod) -> str:
        got = self._opts.get(m.name)
        if got is None:
            opts = self.config.options
            hits = self._options.matches(m.name)
            got = self._opts[m.name] = " ".join([opts[i][1] for i in hits if opts[i][1]]) if hits else ""
        return got

    def install_command(self, m: Mod) -> str | None:
        name = m.name
        if name not in self._inst:
            hits = self._install.matches(name)
            self._inst[name] = self.config.install[hits[0]][1] if hits else None
        return self._inst[name]

    def remove_command(self, m: Mod) -> str | None:
        hits = self._remove.matches(m.name)
        return self.config.remove[hits[0]][1] if hits else None

    def softdeps(self, m: Mod) -> tuple[list[Mod], list[Mod]]:
        got = self._soft.get(m.name)
        if got is not None:
            return got
        hits = self._softdeps.matches(m.name)  # only the first matching line, as module-init-tools
        if not hits:
            got = ([], [])
        else:
            sd = self.config.softdeps[hits[0]]
            pre = [x for name in sd.pre for x in self.lookup(name)]
            post = [x for name in sd.post for x in self.lookup(name)]
            got = (pre, post)
        self._soft[m.name] = got
        return got

    def blacklisted(self, m: Mod) -> bool:
        return m.name in self.config.blacklist

    def is_builtin(self, m: Mod) -> bool:
        if m.builtin:
            return True
        idx = self.moddir.index("modules.builtin.bin")
        return idx is not None and idx.search(m.name) is not None

    # -- the load list --------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The current probe list's mark: a module with ``required == generation`` is the
        module being loaded or one of its dependencies (their failures are fatal)."""
        return self._gen

    def probe_list(self, m: Mod, ignore_command: bool = False) -> list[Mod]:
        self._gen += 1
        out: list[Mod] = []
        self._probe(m, True, ignore_command, out)
        return out

    def _probe(self, m: Mod, required: bool, ignorecmd: bool, out: list[Mod]) -> None:
        gen = self._gen
        if m.visited == gen:
            return
        m.visited = gen
        deps = self.dependencies(m)
        if required:
            m.required = gen
            for d in deps:
                d.required = gen
        for d in deps:
            self._fill_softdep(d, out)
        if ignorecmd:
            out.append(m)
            m.ignorecmd = self.install_command(m) is not None
        else:
            self._fill_softdep(m, out)

    def _fill_softdep(self, m: Mod, out: list[Mod]) -> None:
        if not self.config.softdeps:  # the common case: no softdep lines at all
            out.append(m)
            m.ignorecmd = False
            return
        got = self._soft.get(m.name)
        pre, post = got if got is not None else self.softdeps(m)
        if not pre and not post:
            out.append(m)
            m.ignorecmd = False
            return
        for x in pre:
            self._probe(x, False, False, out)
        out.append(m)
        m.ignorecmd = bool(pre or post)
        for x in post:
            self._probe(x, False, False, out)

    def _plain(self, deps: list[Mod], m: Mod, ignore_command: bool) -> bool:
        """Whether no module _probe would look up soft dependencies for has any."""
        soft = self._soft
        configured = self._configured
        for x in deps if ignore_command else (*deps, m):
            if configured is not None and x.name not in configured:
                continue
            got = soft.get(x.name)
            if got is None:
                got = self.softdeps(x)
            if got[0] or got[1]:
                return False
        return True

    def plan(
        self,
        m: Mod,
        extra_options: str = "",
        *,
        blacklist_all: bool = False,
        ignore_command: bool = False,
        check_blacklist: bool = True,
    ) -> list[Step]:
        """What modprobe does to load ``m``: the steps in order (empty when the module is
        blacklisted: an alias-reached one always, any with ``blacklist_all`` (-b))."""
        if check_blacklist and (m.alias is not None or blacklist_all) and self.blacklisted(m):
            return []
        return [Step(*row) for row in self.plan_rows(m, extra_options, ignore_command)]

    def _todo(self, m: Mod, ignore_command: bool) -> list[Mod]:
        """The modules of ``m``'s probe list, in order, their marks set as probe_list sets them."""
        deps = self.dependencies(m)
        if self.config.softdeps and not self._plain(deps, m, ignore_command):
            return self.probe_list(m, ignore_command)
        # probe_list when none of these modules has soft dependencies (the common case),
        # inlined: the dependency line (each entry listed, visited or not), the module.
        self._gen += 1
        gen = m.visited = m.required = self._gen
        todo = [*deps, m]
        for d in todo:
            d.required = gen
            d.ignorecmd = False
        if ignore_command:
            m.ignorecmd = self.install_command(m) is not None
        return todo

    def _conf_of(self, x: Mod) -> tuple[str, str | None]:
        """(options, install command) of a module name, remembered."""
        c = self._conf.get(x.name)
        if c is None:
            configured = self._configured
            if configured is not None and x.name not in configured:
                c = self._conf[x.name] = ("", None)
            else:
                c = self._conf[x.name] = (self.options(x), self.install_command(x))
        return c

    def plan_rows(
        self, m: Mod, extra_options: str = "", ignore_command: bool = False
    ) -> list[tuple[str, Mod, str, str | None]]:
        """:meth:`plan`'s steps as (kind, module, options, command) tuples, the blacklist not
        looked at."""
        rows: list[tuple[str, Mod, str, str | None]] = []
        append = rows.append
        conf_of = self._conf_of
        for x in self._todo(m, ignore_command):
            conf, cmd = conf_of(x)
            # libkmod's module_options_concat: config options always followed by a space.
            opts = (conf + " " if conf else "") + (extra_options if x is m else "")
            if cmd is not None and not x.ignorecmd:
                append(("install", x, opts, cmd))
            elif x.path is None:
                append(("builtin" if self.is_builtin(x) else "none", x, opts, None))
            else:
                append(("insmod", x, opts, None))
        return rows

    def show_text(self, m: Mod, extra_options: str = "", ignore_command: bool = False) -> str:
        """--show-depends' lines for loading ``m`` (:meth:`plan_rows` rendered by
        :func:`show_row`), the blacklist not looked at.  A module's ``insmod`` line without
        extra options is made once (modprobe -a over thousands of names shows each
        dependency many times)."""
        lines = self._insmod_lines
        out = []
        for x in self._todo(m, ignore_command):
            if x is not m or not extra_options:
                text = lines.get(id(x))
                if text is not None:
                    out.append(text)
                    continue
            conf, cmd = self._conf_of(x)
            opts = (conf + " " if conf else "") + (extra_options if x is m else "")
            if cmd is not None and not x.ignorecmd:
                out.append(f"install {cmd} {opts}\n")
            elif x.path is None:
                out.append(f"builtin {x.name}\n" if self.is_builtin(x) else "")
            else:
                text = f"insmod {x.path} {opts}\n"
                if cmd is None and (x is not m or not extra_options):
                    lines[id(x)] = text  # path and options are fixed for the module object
                out.append(text)
        return "".join(out)


def options_from_args(args: list[str]) -> str:
    """modprobe's options_from_array: parameters joined by spaces, values holding a space
    (and not already quoted) put in double quotes."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and value[:1] not in ('"', "'") and " " in value:
            out.append(f'{key}="{value}"')
        else:
            out.append(a)
    return " ".join(out)


__all__ = ["LkmError", "Mod", "Resolver", "Step", "options_from_args"]

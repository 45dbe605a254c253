"""Why a module is (or would be) loaded, and why it would not be (kmod.md: modprobe's lookup
chain, modules.dep, softdeps, modprobe.d; kernel-loader.md: request_module).

:func:`why` answers for a module name or alias, over a modules directory and its modprobe.d
configuration (a :class:`lkm.modprobe.Resolver`), optionally a kernel (what is loaded and who
holds it) and the kernel's module requests (``request_module`` calls of the model kernel, or
``module_request`` trace lines):

- how the name resolves: a module's own name, a modprobe.d alias, a modules.alias pattern the
  string matches (a device's modalias), an exported symbol, an install rule, a built-in module;
- what pulls it in: the modules whose modules.dep line holds it, softdeps naming it, install
  commands that run ``modprobe`` for it, the kernel's requests that resolve to it, the loaded
  modules holding it;
- what modprobe does with it: exactly the lines ``modprobe -n -v NAME`` prints (computed by
  lkm's modprobe, the same code as ``lkm modprobe``), and its exit status;
- why it would not load: not found, blacklisted (alias lookups; any with ``-b``), an install
  command in its place, already loaded, built in, a file named in modules.dep that is missing,
  a vermagic for another kernel release.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from lkm.draw.depgraph import DepTables as Tables
from lkm.errors import LkmError
from lkm.modname import alias_normalize as normalize
from lkm.modprobe.actions import Flags, LoadedView, load_alias
from lkm.module.file import ModuleFile

if TYPE_CHECKING:
    from lkm.draw.depgraph import DepTables
    from lkm.kernel.interface import Kernel
    from lkm.modprobe.resolve import Mod, Resolver

__all__ = ["Reason", "WhyReport", "dry_run", "parse_requests", "why"]

# ftrace's module:module_request event: "module_request: %s wait=%d call_site=%pS"
_TRACE = re.compile(r"module_request: (\S+) wait=(\d+)(?: call_site=(\S+))?")


@dataclass(slots=True, unsafe_hash=True)
class Reason:
    """One finding: ``kind`` (name, alias, symbol, builtin, dependency, softdep, install,
    request_module, holder, loaded; blocks: missing, blacklist, install-rule, file-missing,
    vermagic), a sentence, and the facts behind it."""

    kind: str
    text: str
    facts: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True, unsafe_hash=True)
class WhyReport:
    query: str
    dirname: str
    modules: list[str] = field(default_factory=list, init=False)
    resolves: list[Reason] = field(default_factory=list, init=False)  # how the name finds its module(s)
    pulled_by: list[Reason] = field(default_factory=list, init=False)  # what would load it
    blocks: list[Reason] = field(default_factory=list, init=False)  # why it would not load (or not as a file)
    modprobe: list[str] = field(
        default_factory=list, init=False
    )  # what "modprobe -n -v QUERY" prints (stdout, then messages)
    modprobe_status: int = field(default=0, init=False)

    def as_json(self) -> dict[str, object]:
        def rs(lst: list[Reason]) -> list[dict[str, object]]:
            return [{"kind": r.kind, "text": r.text, **({"facts": r.facts} if r.facts else {})} for r in lst]

        return {
            "query": self.query,
            "modules_dir": self.dirname,
            "modules": self.modules,
            "resolves": rs(self.resolves),
            "pulled_by": rs(self.pulled_by),
            "blocks": rs(self.blocks),
            "modprobe_dry_run": {"output": self.modprobe, "status": self.modprobe_status},
        }

    def as_text(self) -> str:
        out = [f"{self.query}: " + (", ".join(self.modules) if self.modules else "no module")]
        for title, lst in (
            ("resolves", self.resolves),
            ("loaded because", self.pulled_by),
            ("would not load / notes", self.blocks),
        ):
            if lst:
                out.append(f"  {title}:")
                out.extend(f"    - {r.text}" for r in lst)
        if not self.pulled_by and self.modules:
            out.append("  loaded because: nothing here pulls it in; only an explicit modprobe/insmod would")
        out.append(f"  modprobe -n -v {self.query} (exit {self.modprobe_status}):")
        out.extend(f"    {line}" for line in self.modprobe or ["(nothing to do)"])
        return "\n".join(out) + "\n"


def parse_requests(text: str) -> list[tuple[str, str]]:
    """(requested name, where) pairs from a kernel log or trace: the module:module_request
    trace event, and lkm's own "request_module: NAME" log lines."""
    out = []
    for line in text.splitlines():
        m = _TRACE.search(line)
        if m:
            out.append((m.group(1), m.group(3) or "trace"))
            continue
        m2 = re.search(r"request_module\(?[:\s]+'?([^'\s)]+)", line)
        if m2 and "kmod_concurrent" not in line and "cannot be processed" not in line:
            out.append((m2.group(1), "log"))
    return out


def _alias_patterns(res: Resolver, tables: DepTables | None, name: str, query: str) -> list[str]:
    pats = tables.aliases.get(name, []) if tables is not None else []
    return [p for p in pats if fnmatchcase(query, p)]


def why(
    res: Resolver,
    query: str,
    *,
    tables: DepTables | None = None,
    kernel: Kernel | None = None,
    requests: list[tuple[str, str]] | None = None,
    blacklist_all: bool = False,
    release: str | None = None,
) -> WhyReport:
    """Why ``query`` (module name or alias) is or would be loaded; see the module doc."""
    dirname = res.moddir.dirname
    if tables is None:
        try:
            tables = Tables.from_dir(dirname)
        except Exception:
            tables = Tables("")
    rep = WhyReport(query, dirname)
    alias = normalize(query)
    found = res.lookup(query)
    rep.modules = list(dict.fromkeys(m.name for m in found))
    mods = list({m.name: m for m in reversed(found)}.values())[::-1]  # one per module, lookup order
    _resolution(res, tables, rep, alias, mods)
    if not mods:
        rep.blocks.append(
            Reason(
                "missing",
                f"'{query}' is not a module name, alias, symbol or install rule of "
                f"{dirname}: modprobe fails (Module {query} not found in directory {dirname})",
            )
        )
    for m in mods:
        _pulled_by(res, tables, rep, m, requests or [], kernel)
        if res.blacklisted(m):
            by_alias = m.alias is not None
            if by_alias or blacklist_all:
                rep.blocks.append(
                    Reason(
                        "blacklist",
                        f"{m.name} is blacklisted in modprobe.d and '{query}' "
                        + (
                            "is an alias: modprobe skips it (exit 0, nothing loaded)"
                            if by_alias
                            else "is looked up with -b: modprobe skips it"
                        ),
                        {"module": m.name},
                    )
                )
            else:
                rep.blocks.append(
                    Reason(
                        "blacklist",
                        f"{m.name} is blacklisted in modprobe.d, which only stops "
                        "alias lookups (udev, request_module) and modprobe -b; loading it by its "
                        "name still works",
                        {"module": m.name, "effective": False},
                    )
                )
        cmd = res.install_command(m)
        if cmd is not None:
            rep.blocks.append(
                Reason(
                    "install-rule",
                    f"modprobe.d 'install {m.name} {cmd}': modprobe runs this "
                    "command instead of inserting the file (modprobe -i ignores it)",
                    {"module": m.name, "command": cmd},
                )
            )
        if m.path is None and res.is_builtin(m):
            rep.blocks.append(
                Reason(
                    "builtin",
                    f"{m.name} is built into the kernel (modules.builtin): nothing to load",
                    {"module": m.name},
                )
            )
        for d in [m, *res.dependencies(m)]:
            if d.path is not None and not os.path.exists(d.path):
                rep.blocks.append(
                    Reason(
                        "file-missing",
                        f"{d.path} is in modules.dep but not on disk: the insert "
                        "fails (No such file or directory); re-run depmod",
                        {"module": d.name},
                    )
                )
        if m.path is not None and release and os.path.exists(m.path):
            _vermagic(rep, m, release)
        if kernel is not None:
            _loaded(rep, m, kernel)
    # what modprobe -n -v says
    rep.modprobe, rep.modprobe_status = dry_run(res, query, kernel, dirname, blacklist_all)
    return rep


def _resolution(res: Resolver, t: DepTables, rep: WhyReport, alias: str, mods: list[Mod]) -> None:
    cfg = res.config
    conf = [(p, target) for p, target in cfg.aliases if fnmatchcase(alias, p)]
    if conf:
        for p, target in conf:
            rep.resolves.append(
                Reason(
                    "alias",
                    f"modprobe.d 'alias {p} {target}' matches '{alias}'",
                    {"pattern": p, "module": target, "source": "modprobe.d"},
                )
            )
        return
    for m in mods:
        if m.name == alias and m.alias is None:
            where = t.paths.get(m.name) or m.path
            rep.resolves.append(
                Reason(
                    "name",
                    f"'{alias}' is the module {m.name} ({where})"
                    if where
                    else f"'{alias}' is the module {m.name}",
                    {"module": m.name, "file": where},
                )
            )
            if m.path is None and res.is_builtin(m):
                rep.resolves.append(
                    Reason("builtin", f"{m.name} is built into the kernel", {"module": m.name})
                )
        elif alias.startswith("symbol:"):
            rep.resolves.append(
                Reason(
                    "symbol",
                    f"{m.name} exports {alias[7:]} (modules.symbols)",
                    {"module": m.name, "symbol": alias[7:]},
                )
            )
        elif m.builtin:
            rep.resolves.append(
                Reason(
                    "builtin",
                    f"'{alias}' is an alias of {m.name}, built into the kernel (modules.builtin.alias)",
                    {"module": m.name},
                )
            )
        elif m.alias is None and res.install_command(m) is not None:
            rep.resolves.append(
                Reason("install", f"'{alias}' names an install rule (modprobe.d)", {"module": m.name})
            )
        else:
            pats = _alias_patterns(res, t, m.name, alias)
            text = ", ".join(f"'{p}'" for p in pats) or "an alias"
            rep.resolves.append(
                Reason(
                    "alias",
                    f"'{alias}' matches {m.name}'s alias {text} (modules.alias)",
                    {"module": m.name, "patterns": pats, "source": "modules.alias"},
                )
            )


def _pulled_by(
    res: Resolver,
    t: DepTables,
    rep: WhyReport,
    m: Mod,
    requests: list[tuple[str, str]],
    kernel: Kernel | None,
) -> None:
    users = sorted(t.users.get(m.name, []))
    if users:
        shown = ", ".join(users[:12]) + (f" and {len(users) - 12} more" if len(users) > 12 else "")
        rep.pulled_by.append(
            Reason(
                "dependency",
                f"needed by {shown} (modules.dep): loading "
                f"{'any of them' if len(users) > 1 else 'it'} loads {m.name} first",
                {"modules": users},
            )
        )
    for sd in res.config.softdeps:
        for part in ("pre", "post"):
            names = sd.pre if part == "pre" else sd.post
            if m.name in names or (m.alias is not None and m.alias in names):
                when = "before" if part == "pre" else "after"
                rep.pulled_by.append(
                    Reason(
                        "softdep",
                        f"'softdep {sd.name} {part}: ... {m.name}': modprobe "
                        f"{sd.name} loads {m.name} {when} it",
                        {"module": sd.name, "part": part},
                    )
                )
    word = re.compile(rf"(?<![\w-])(?:{re.escape(m.name)}|{re.escape(m.name.replace('_', '-'))})(?![\w-])")
    for target, cmd in res.config.install:
        if target != m.name and "modprobe" in cmd and word.search(cmd):
            rep.pulled_by.append(
                Reason(
                    "install",
                    f"'install {target} {cmd}': modprobe {target} runs a command that loads {m.name}",
                    {"module": target, "command": cmd},
                )
            )
    for name, where in requests:
        found = res.lookup(name)
        if any(f.name == m.name for f in found):
            via = f"'{name}', which resolves to {m.name}" if normalize(name) != m.name else f"'{name}'"
            rep.pulled_by.append(
                Reason(
                    "request_module",
                    f"the kernel asked for {via} (request_module, {where}): it runs modprobe -q -- {name}",
                    {"request": name, "where": where},
                )
            )


def _loaded(rep: WhyReport, m: Mod, kernel: Kernel) -> None:
    try:
        lm = kernel.module(m.name)
    except Exception:
        return
    if lm is None:
        return
    holders = list(lm.holders or ())
    rep.pulled_by.append(
        Reason(
            "loaded",
            f"{m.name} is loaded ({lm.state}, refcount {lm.refcount})"
            + (f", used by {', '.join(holders)}" if holders else ""),
            {"holders": holders, "refcount": lm.refcount},
        )
    )
    rep.blocks.append(
        Reason("loaded", f"{m.name} is already in the kernel: modprobe does nothing", {"module": m.name})
    )


def _vermagic(rep: WhyReport, m: Mod, release: str) -> None:
    assert m.path is not None
    try:
        with ModuleFile.open(m.path) as f:
            vm = f.vermagic
    except (LkmError, OSError):
        return
    built = (vm or "").split(" ", 1)[0]
    if built and built != release:
        rep.blocks.append(
            Reason(
                "vermagic",
                f"{m.name} was built for {built}, the kernel is {release}: the kernel "
                "refuses it (disagrees about version of symbol / Exec format error) unless forced",
                {"module": m.name, "vermagic": vm},
            )
        )


def dry_run(
    res: Resolver, query: str, kernel: Kernel | None, dirname: str, blacklist_all: bool = False
) -> tuple[list[str], int]:
    """What ``modprobe -n -v [-b] QUERY`` prints (stdout lines, then its messages) and exits with."""
    lines: list[str] = []
    msgs: list[str] = []

    def emit(kind: str, text: str) -> None:
        if kind == "show":
            lines.append(text.rstrip("\n"))
        else:
            msgs.append(f"modprobe: {kind}: {text}")

    flags = Flags(dry_run=True, show=True, blacklist=blacklist_all)
    rc = load_alias(res, LoadedView(kernel, res), query, "", flags, emit, dirname)
    return lines + msgs, rc

"""modprobe.d configuration as libkmod reads it (libkmod-config.c).

Directories /etc/modprobe.d, /run/modprobe.d, /usr/local/lib/modprobe.d, /lib/modprobe.d
(``*.conf``, sorted by basename, the first directory holding a basename wins), plus the
modules directory's modules.softdep; then the kernel command line (``modprobe.blacklist=``,
``module.param=value``).  Directives: alias, blacklist, options, install, remove, softdep.
"""

from __future__ import annotations

import os

from lkm.depmod.config import config_files, read_lines
from lkm.modname import alias_normalize as normalize
from lkm.record import Record
from lkm.safeio import read_text

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "LIBKMOD_BAD_KCMDLINE",
    "LIBKMOD_BAD_LINE",
    "LIBKMOD_DEPRECATED",
    "ModprobeConfig",
    "Softdep",
    "load_config",
    "parse_config",
    "parse_kcmdline",
    "underscores",
]


# libkmod reports configuration errors through its own logger, naming its source location
# (Debian's kmod 30 build); modprobe prints them verbatim.
LIBKMOD_BAD_LINE = "libkmod: ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: "
LIBKMOD_DEPRECATED = "libkmod: ERROR ../libkmod/libkmod-config.c:708 kmod_config_parse: "
DEFAULT_CONFIG_PATHS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d")


class Softdep(Record):
    __slots__ = ("name", "pre", "post")

    def __init__(self, name: str, pre: list[str], post: list[str]) -> None:
        self.name = name
        self.pre = pre
        self.post = post


class ModprobeConfig(Record):
    """Every directive in the order read; lookups take the first (or all) fnmatch hits."""

    __slots__ = ("aliases", "blacklist", "options", "install", "remove", "softdeps", "messages")

    def __init__(self) -> None:
        self.aliases: list[tuple[str, str]] = []
        self.blacklist: list[str] = []
        self.options: list[tuple[str, str]] = []
        self.install: list[tuple[str, str]] = []
        self.remove: list[tuple[str, str]] = []
        self.softdeps: list[Softdep] = []
        self.messages: list[tuple[str, str]] = []


def _split2(rest: str) -> tuple[str | None, str | None]:
    """strtok(" \\t") for one word, then the untouched rest of the line (strtok(NULL, ""))."""
    rest = rest.lstrip(" \t")
    if not rest:
        return None, None
    sp, tab = rest.find(" "), rest.find("\t")
    i = len(rest) if sp < 0 and tab < 0 else (sp if tab < 0 else tab if sp < 0 else min(sp, tab))
    word = rest[:i]
    tail = rest[i + 1 :] if i < len(rest) else ""  # strtok_r(NULL, ""): kept as it is
    return word, tail or None


def _softdep_lists(text: str) -> tuple[list[str], list[str]]:
    """kmod_config_add_softdep's word loop: words end at the first of a run of isspace();
    one whitespace at the very start stays in the first word (so ``" pre: a"`` is no
    ``pre:`` and declares nothing), a longer run is skipped."""
    pre: list[str] = []
    post: list[str] = []
    into: list[str] | None = None
    was_space = False
    p = 0
    n = len(text)
    for s in range(n + 1):
        if s < n:
            if not text[s].isspace() or text[s] in "\x1c\x1d\x1e\x1f\x85\xa0":
                was_space = False
                continue
            if was_space:
                p = s + 1
                continue
            was_space = True
            if p >= s:
                continue
        word = text[p:s]
        if word == "pre:":
            into = pre
        elif word == "post:":
            into = post
        elif (s < n or not was_space) and into is not None:
            into.append(word)
        p = s + 1
    return pre, post


def parse_config(cfg: ModprobeConfig, filename: str, lines: list[tuple[int, str]]) -> None:
    for n, line in lines:
        if not line or line[0] == "#":
            continue
        cmd, rest = _split2(line)
        if cmd is None:
            continue
        words = [w for w in (rest or "").replace("\t", " ").split(" ") if w]  # strtok(" \t")
        ok = True
        if cmd == "alias":
            ok = len(words) >= 2
            if ok:
                cfg.aliases.append((normalize(words[0]), normalize(words[1])))
        elif cmd in ("install", "remove"):
            name, command = _split2(rest or "")
            ok = name is not None and command is not None
            if ok:
                assert name is not None and command is not None
                (cfg.install if cmd == "install" else cfg.remove).append((normalize(name), command))
        elif cmd == "options":
            name, opts = _split2(rest or "")
            ok = name is not None and opts is not None
            if ok:
                assert name is not None and opts is not None
                cfg.options.append((normalize(name), opts.replace("\t", " ")))
        elif cmd == "blacklist":
            ok = bool(words)
            if ok:
                cfg.blacklist.append(normalize(words[0]))
        elif cmd == "softdep":
            name, deps = _split2(rest or "")
            ok = name is not None and deps is not None
            if ok and name is not None:
                pre, post = _softdep_lists(deps or "")
                cfg.softdeps.append(Softdep(normalize(name), pre, post))
        elif cmd in ("include", "config"):
            cfg.messages.append(
                ("RAW", f"{LIBKMOD_DEPRECATED}{filename}: command {cmd} is deprecated and not parsed anymore")
            )
        else:
            ok = False
        if not ok:
            cfg.messages.append(
                ("RAW", f"{LIBKMOD_BAD_LINE}{filename} line {n}: ignoring bad line starting with '{cmd}'")
            )


LIBKMOD_BAD_KCMDLINE = "libkmod: ERROR ../libkmod/libkmod-config.c:489 kcmdline_parse_result: "


def underscores(name: str) -> str | None:
    """kmod's underscores(): '-' becomes '_' outside [...]; None (kmod's -EINVAL) for a ']'
    outside brackets or a '[' never closed."""
    out = list(name)
    i = 0
    while i < len(out):
        c = out[i]
        if c == "-":
            out[i] = "_"
        elif c == "]":
            return None
        elif c == "[":
            j = name.find("]", i)
            if j < 0:
                return None
            i = j
        i += 1
    return "".join(out)


def parse_kcmdline(cfg: ModprobeConfig, buf: str) -> None:
    """libkmod's kernel command line parser (kmod 30's kmod_config_parse_kcmdline, step for
    step): ``mod.param[=value]`` adds options for mod, ``modprobe.blacklist=a,b`` blacklists.
    Spaces only inside a quoted value; a quote opening a word (as GRUB writes
    ``"mod.p=a b"``) is moved to the value (``p="a b"``); a module name that kmod's
    underscores() refuses (``ivrs_acpihid[14:00``) is reported and ignored."""
    state = "modname"
    quoted = False
    modname = 0
    param = value = -1
    quote_start = -1
    n = len(buf)
    i = 0
    while True:
        c = buf[i] if i < n else "\0"
        last = c in ("\0", "\n")
        if c == '"':
            quoted = not quoted
            if quoted and state == "modname" and i == modname:
                quote_start = i
                modname = i + 1
            elif state != "value":
                state = "ignore"
        elif last or c == " ":
            if quoted and state == "value":
                pass
            elif quoted:
                state = "ignore"
            elif state in ("value", "param"):
                state = "complete"
            else:
                state = "modname"
                quoted = False
                quote_start = -1
                modname = i + 1
        elif c == ".":
            if state == "modname":
                param = i + 1
                state = "param"
            elif state == "param":
                state = "ignore"
        elif c == "=":
            if state == "param":
                value = i + 1
                state = "value"
            elif state == "modname":
                state = "ignore"
        if state == "complete":
            name = buf[modname : param - 1]
            if 0 <= quote_start < modname and value > param:
                # kmod moves "modname.param=" one byte left over the quote and puts the
                # quote before the value.
                text = buf[param:value] + '"' + buf[value:i]
                val = '"' + buf[value:i]
            else:
                text = buf[param:i]
                val = buf[value:i] if value > param else ""
            _kcmdline_result(cfg, name, text, val)
            modname = i + 1
            quote_start = -1
            state = "modname"
        if last:
            break
        i += 1


def _kcmdline_result(cfg: ModprobeConfig, modname: str, param: str, value: str) -> None:
    if modname == "modprobe" and param.startswith("blacklist="):
        cfg.blacklist.extend(value.split(","))
        return
    name = underscores(modname)
    if name is None:
        cfg.messages.append(
            (
                "RAW",
                f"{LIBKMOD_BAD_KCMDLINE}Ignoring bad option on kernel command line while parsing "
                f"module name: '{modname}'",
            )
        )
    else:
        cfg.options.append((name, param))


def load_config(
    dirname: str, paths: list[str] | None = None, cmdline: str | None = "/proc/cmdline"
) -> ModprobeConfig:
    """The configuration modprobe sees for the modules directory ``dirname``."""
    cfg = ModprobeConfig()
    files = config_files(list(DEFAULT_CONFIG_PATHS if paths is None else paths))
    softdep = os.path.join(dirname, "modules.softdep")
    if os.path.isfile(softdep):
        by_name = {os.path.basename(f): f for f in files}
        by_name.setdefault("modules.softdep", softdep)
        files = [by_name[k] for k in sorted(by_name)]
    for f in files:
        try:
            lines = read_lines(f)
        except OSError:
            continue
        parse_config(cfg, f, lines)
    if cmdline is not None:
        try:
            text = read_text(cmdline)
        except OSError:
            text = None
        if text is not None:
            parse_kcmdline(cfg, text)
    return cfg

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
    i = 0
    while i < len(rest) and rest[i] not in " \t":
        i += 1
    word = rest[:i]
    tail = rest[i + 1 :] if i < len(rest) else ""  # strtok_r(NULL, ""): kept as it is
    return word, tail or None


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
            ok = len(words) >= 2
            if ok:
                pre: list[str] = []
                post: list[str] = []
                into = None
                for w in (rest or "").split()[1:]:  # the softdep list splits at isspace()
                    if w == "pre:":
                        into = pre
                    elif w == "post:":
                        into = post
                    elif into is not None:
                        into.append(w)
                cfg.softdeps.append(Softdep(normalize(words[0]), pre, post))
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


def parse_kcmdline(cfg: ModprobeConfig, buf: str) -> None:
    """libkmod's kernel command line parser: ``mod.param[=value]`` adds options for mod,
    ``modprobe.blacklist=a,b`` blacklists."""
    state = "modname"
    quoted = False
    modname_start = 0
    param_start = -1
    chars = list(buf)
    i = 0
    n = len(chars)
    while True:
        c = chars[i] if i < n else "\0"
        complete = False
        end = c in ("\0", "\n")
        if c == '"':
            quoted = not quoted
        elif end or c == " ":
            if quoted and state == "value":
                pass
            elif quoted:
                state = "ignore"
            elif state in ("value", "param"):
                complete = True
            else:
                state = "modname"
                modname_start = i + 1
        elif c == ".":
            if state == "modname":
                param_start = i + 1
                state = "param"
            elif state == "param":
                state = "ignore"
        elif c == "=":
            if state == "param":
                state = "value"
            elif state == "modname":
                state = "ignore"
        if complete:
            modname = "".join(chars[modname_start : param_start - 1])
            param = "".join(chars[param_start:i])
            if modname == "modprobe" and param.startswith("blacklist="):
                cfg.blacklist.extend(param[len("blacklist=") :].split(","))
            else:
                cfg.options.append((normalize(modname), param))
            modname_start = i + 1
            state = "modname"
        if end:
            break
        i += 1


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

"""``lkm model``: manage model kernels.

lkm model boot PROFILE [--state PATH] [--policy vmalloc|kmalloc-first] [--kmalloc-max BYTES]
               [--modules-root DIR] [--sig-enforce] [--lockdown LEVEL] [--trusted-keys IMAGE|CERT]
               [--force]
                              a new state; an existing lkm state is replaced (atomically) only
                              with --force, any other file is refused
lkm model boot --symbols FILE [--symbols FILE...] --release R --vermagic V [--arch x86_64]
               [--layout linux-6.1|linux-6.12] [--state PATH] [--policy ...]
                              a kernel from its symbol files (System.map, kallsyms, vmlinux,
                              image, plus Module.symvers)
lkm model profiles            the profiles lkm ships
lkm model request-module [--nowait] NAME [--state PATH]
                              the kernel's request_module(NAME): lkm's modprobe -q -- NAME
                              against the model; prints the kernel's return value
lkm model set modprobe=PATH|modules-root=DIR|exec=host|none [--state PATH]
                              /proc/sys/kernel/modprobe ("" disables requests), the root
                              whose lib/modules/RELEASE and modprobe.d requests use (boot:
                              --modules-root; never the host's /etc), and whether modprobe's
                              install/remove commands run on the host (default none: they
                              are recorded and reported, not run)
lkm model set sig_enforce=1|lockdown=LEVEL|trusted-keys=IMAGE-OR-CERT[,CERT...] [--state PATH]
                              module signature policy: module.sig_enforce (cannot be cleared),
                              lockdown (none|integrity|confidentiality), the builtin trusted
                              keys (from a kernel image or X.509 files; default: unknown, signers
                              of well-formed signatures are not checked)
lkm model check [--state PATH]  SQLite's quick_check and foreign_key_check, then the model's
                              own integrity (exit 1 with one line per problem)
lkm model info [--state PATH]   release, profile, modules, memory
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from lkm.cli.backend import split_backend
from lkm.cli.jsonout import emit
from lkm.cli.progress import progress
from lkm.cli.tool import BACKEND, Opt, Tool
from lkm.errors import LkmError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.profile import Profile, profile_from_files, shipped_profiles
from lkm.kernel.model.state import State, default_state_path
from lkm.safeio import read_bytes
from lkm.trust.keys import image_certificates, load_certificates

__all__ = ["TOOL", "run"]


TOOL = Tool(
    "model",
    "boot, check and inspect persistent model kernels",
    usage=[
        "boot PROFILE [options]",
        "boot --symbols FILE [--symbols FILE...] --release R --vermagic V [options]",
        "profiles",
        "request-module [--nowait] NAME",
        "set modprobe=PATH|modules-root=DIR|exec=host|none",
        "set sig_enforce=1|lockdown=LEVEL|trusted-keys=IMAGE-OR-CERT",
        "check",
        "info",
        "dmesg",
    ],
    description="boot: a kernel from a shipped profile or from its symbol files (System.map, kallsyms,\n"
    "vmlinux, image, plus Module.symvers); profiles: the profiles lkm ships; request-module: the\n"
    "kernel's request_module(NAME) (lkm's modprobe -q -- NAME against the model), prints its\n"
    'return value; set: /proc/sys/kernel/modprobe ("" disables requests) and the root whose\n'
    "lib/modules/RELEASE requests load from; check: SQLite's quick_check and foreign_key_check, then the\n"
    "state's integrity (exit 1 with one line per problem); info: release, profile, modules, memory;\n"
    "dmesg: the model's kernel log (what loading printed: taint, unknown parameters, init returns).",
    options=[
        Opt(
            "",
            "policy",
            "POLICY",
            "module memory: vmalloc (default) or kmalloc-first",
            complete="vmalloc kmalloc-first",
        ),
        Opt("", "kmalloc-max", "BYTES", "largest kmalloc allocation"),
        Opt("k", ("kernel", "symbols"), "FILE", "boot from this symbol file; repeatable", complete="file"),
        Opt("", "release", "R", "the kernel's release (uname -r)"),
        Opt("", "vermagic", "V", "the kernel's version magic"),
        Opt("", "arch", "ARCH", "x86_64 (default), i386 or arm64", complete="x86_64 i386 arm64"),
        Opt("", "layout", "LAYOUT", "linux-6.1 (default) or linux-6.12", complete="linux-6.1 linux-6.12"),
        Opt("", "modules-root", "DIR", "the root whose lib/modules/RELEASE request_module loads from"),
        Opt("", "nowait", None, "request-module: request_module_nowait"),
        Opt("", "force", None, "boot: replace an existing lkm state (atomically)"),
        Opt("", "sig-enforce", None, "boot: module.sig_enforce=1 (unsigned or badly signed modules refused)"),
        Opt(
            "",
            "lockdown",
            "LEVEL",
            "boot: lockdown none, integrity or confidentiality",
            complete="none integrity confidentiality",
        ),
        Opt(
            "",
            "trusted-keys",
            "IMAGE|CERT",
            "boot: the builtin trusted keys, from a kernel image or X.509 files",
            complete="file",
        ),
        Opt("", "json", None, "info: one JSON object (schema lkm/1)"),
        *BACKEND,
    ],
)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.kernel.model import ModelKernel


def _certificate_list(spec: str) -> bytes:
    """DER certificates back to back: from a kernel image's system_certificate_list, or from
    X.509 files (comma-separated)."""

    out = b""
    for path in spec.split(","):
        try:
            data = read_bytes(path, limit=None)
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=path) from None
        try:
            out += b"".join(c.der for c in load_certificates(data, source=path))
        except LkmError:
            out += image_certificates(data).blob
    return out


def _set_keys(k: ModelKernel, spec: str) -> None:
    k.set_trusted_keys(_certificate_list(spec))


def run(prog: str, args: list[str]) -> int:
    _model, state, args = split_backend(args)
    err = sys.stderr.write
    opts, operands = TOOL.parse(prog, args)
    o = dict(opts)
    symbol_files = [v for f, v in opts if f in ("--symbols", "--kernel", "-k")]
    if not operands:
        sys.stderr.write(TOOL.help(prog))
        return 1
    cmd = operands[0]
    try:
        if cmd == "profiles":
            sys.stdout.write("".join(f"{p}\n" for p in shipped_profiles()))
        elif cmd == "boot" and (len(operands) == 2 or symbol_files):
            kmax = int(o["--kmalloc-max"], 0) if "--kmalloc-max" in o else None
            profile: str | Profile = operands[1] if len(operands) == 2 else ""
            if symbol_files:
                if "--release" not in o or "--vermagic" not in o:
                    raise ValueError("--symbols needs --release and --vermagic")

                with progress(f"{prog}: reading kernel symbols"):
                    profile = profile_from_files(
                        "custom",
                        o["--release"],
                        o.get("--arch", "x86_64"),
                        o["--vermagic"],
                        *symbol_files,
                        layout=o.get("--layout", "linux-6.1"),
                    )
            k = ModelKernel.boot(
                profile,
                state,
                policy=o.get("--policy", "vmalloc"),
                kmalloc_max=kmax,
                modules_root=o.get("--modules-root"),
                force="--force" in o,
            )
            if "--trusted-keys" in o:
                k.set_trusted_keys(_certificate_list(o["--trusted-keys"]))
            if "--sig-enforce" in o:
                k.set_sig_enforce("1")
            if "--lockdown" in o:
                k.set_lockdown(o["--lockdown"])
            sys.stdout.write(f"booted {k.meta['profile']} ({k.release} {k.machine}) in {k.state.path}\n")
        elif cmd == "request-module" and len(operands) == 2:
            k = ModelKernel(state)
            status = k.request_module(operands[1], "--nowait" not in o)
            for kind, module, command in k.commands:
                err(f"{prog}: {kind} command for {module} not run (lkm model set exec=host): {command}\n")
            sys.stdout.write(f"{status}\n")
        elif cmd == "set" and len(operands) == 2 and "=" in operands[1]:
            key, _, value = operands[1].partition("=")
            k = ModelKernel(state)
            setters: dict[str, Callable[[str], None]] = {
                "modprobe": k.set_modprobe_path,
                "modules-root": k.set_modules_root,
                "exec": k.set_exec,
                "sig_enforce": k.set_sig_enforce,
                "lockdown": k.set_lockdown,
                "trusted-keys": functools.partial(_set_keys, k),
            }
            if key not in setters:
                raise ValueError(f"unknown setting {key!r} (known: {', '.join(setters)})")
            setters[key](value)
        elif cmd == "check":
            st = State(state or default_state_path(), readonly=True, check=False)
            problems = st.integrity()
            st.close()
            if not problems:
                problems = ModelKernel(state, readonly=True).check_integrity()
            for p in problems:
                err(f"{prog}: {p}\n")
            return 1 if problems else 0
        elif cmd == "dmesg":
            k = ModelKernel(state, readonly=True)
            sys.stdout.write("".join(f"{line}\n" for line in k.dmesg()))
        elif cmd == "info":
            k = ModelKernel(state)
            f = k.fragmentation()
            lines = [
                f"state: {k.state.path}",
                f"profile: {k.meta['profile']}",
                f"release: {k.release}",
                f"machine: {k.machine}",
                f"policy: {k.policy}",
                f"modprobe: {k.modprobe_path}",
                f"modules root: {k.modules_root or '(none)'}",
                f"exec: {'host' if k.exec_host else 'none'}",
                f"modules: {len(k.modules())}",
                f"vmalloc: {f.used} bytes in {f.areas} areas, fragmentation {f.ratio:.3f}",
            ]
            if "--json" in o:
                emit("model-info", state=k.state.path, profile=k.meta["profile"], release=k.release,
                     machine=k.machine, policy=k.policy, modprobe=k.modprobe_path,
                     modules_root=k.modules_root or "/", modules=len(k.modules()),
                     vmalloc={"used": f.used, "areas": f.areas, "fragmentation": f.ratio})  # fmt: skip
            else:
                sys.stdout.write("\n".join(lines) + "\n")
        else:
            err(f"{prog}: unknown command {' '.join(operands)!r}\n{TOOL.help(prog)}")
            return 1
    except (LkmError, ValueError) as exc:
        err(f"{prog}: ERROR: {exc}\n")
        return 1
    return 0

"""``lkm model``: manage model kernels.

lkm model boot PROFILE [--state PATH] [--policy vmalloc|kmalloc-first] [--kmalloc-max BYTES]
               [--modules-root DIR] [--force]
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
lkm model check [--state PATH]  SQLite's quick_check and foreign_key_check, then the model's
                              own integrity (exit 1 with one line per problem)
lkm model info [--state PATH]   release, profile, modules, memory
"""

from __future__ import annotations

import sys

from lkm.cli.getopt import UsageError, parse
from lkm.errors import LkmError

HELP = __doc__ or ""
LONG = ["policy=", "kmalloc-max=", "help", "symbols=", "release=", "vermagic=", "arch=", "layout=",
        "modules-root=", "nowait", "force"]  # fmt: skip


def run(prog: str, args: list[str]) -> int:
    from lkm.cli.backend import split_backend
    from lkm.kernel.model import ModelKernel
    from lkm.kernel.profile import Profile, shipped_profiles
    from lkm.kernel.state import default_state_path

    _model, state, args = split_backend(args)
    err = sys.stderr.write
    try:
        opts, operands = parse(
            args,
            "h",
            LONG,
        )
    except UsageError as exc:
        err(f"{prog}: {exc}\n")
        return 1
    o = dict(opts)
    symbol_files = [v for f, v in opts if f == "--symbols"]
    if "-h" in o or "--help" in o or not operands:
        (sys.stdout if operands or "-h" in o or "--help" in o else sys.stderr).write(HELP)
        return 0 if "-h" in o or "--help" in o else 1
    cmd = operands[0]
    try:
        if cmd == "profiles":
            sys.stdout.write("".join(f"{p}\n" for p in shipped_profiles()))
        elif cmd == "boot" and (len(operands) == 2 or symbol_files):
            kmax = int(o["--kmalloc-max"], 0) if "--kmalloc-max" in o else None
            profile: str | Profile = operands[1] if len(operands) == 2 else ""
            if symbol_files:
                from lkm.kernel.profile import profile_from_files

                if "--release" not in o or "--vermagic" not in o:
                    raise ValueError("--symbols needs --release and --vermagic")
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
            setters = {
                "modprobe": k.set_modprobe_path,
                "modules-root": k.set_modules_root,
                "exec": k.set_exec,
            }
            if key not in setters:
                raise ValueError(f"unknown setting {key!r} (known: {', '.join(setters)})")
            setters[key](value)
        elif cmd == "check":
            from lkm.kernel.state import State

            st = State(state or default_state_path(), readonly=True, check=False)
            problems = st.integrity()
            st.close()
            if not problems:
                problems = ModelKernel(state, readonly=True).check_integrity()
            for p in problems:
                err(f"{prog}: {p}\n")
            return 1 if problems else 0
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
            sys.stdout.write("\n".join(lines) + "\n")
        else:
            err(f"{prog}: unknown command {' '.join(operands)!r}\n{HELP}")
            return 1
    except (LkmError, ValueError) as exc:
        err(f"{prog}: ERROR: {exc}\n")
        return 1
    return 0

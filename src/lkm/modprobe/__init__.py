"""modprobe: find a module by name or alias and load it with its dependencies, soft
dependencies, options and install commands, as kmod's modprobe does (libkmod's rules).

``Resolver(ModulesDir(dir), load_config(dir)).lookup(name)`` gives the modules a name or
alias means; ``plan(mod, options)`` the ordered steps (insmod / install / builtin) that
``--show-depends`` prints and that loading runs through a :class:`lkm.kernel.interface.Kernel`.
:class:`Modprobe` (root, release, kernel, configs) is the one way to run it, for the CLI and
for the model kernel's request_module (which receives it injected).
"""

from __future__ import annotations

from lkm.modprobe.actions import Flags, Modprobe
from lkm.modprobe.config import ModprobeConfig, load_config
from lkm.modprobe.resolve import Mod, Resolver, Step, options_from_args

__all__ = [
    "Flags",
    "Mod",
    "Modprobe",
    "ModprobeConfig",
    "Resolver",
    "Step",
    "load_config",
    "options_from_args",
]

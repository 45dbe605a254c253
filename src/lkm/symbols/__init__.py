"""Kernel symbols.

Submodules are imported by their full path (for example :mod:`lkm.symbols.image`, which
decompresses a kernel image and recovers the kallsyms tables embedded in it); this package
file imports nothing, so that each submodule stays independent of the others.
"""

__all__: list[str] = []

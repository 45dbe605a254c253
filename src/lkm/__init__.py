"""lkm: Linux loadable kernel modules, end to end.

The library is importable piecewise and keeps its imports lazy, so that a command such as
``lkm modinfo one.ko`` starts about as fast as the interpreter itself:

- :mod:`lkm.elf` reads ELF relocatable objects (ELF32/ELF64, both byte orders) zero-copy.
- :mod:`lkm.module` gives :class:`lkm.module.ModuleFile`: .modinfo, parameters, exports,
  needed symbols, build id and signature of a ``.ko`` (plain or compressed) or a 2.4 ``.o``.
- :mod:`lkm.cli` holds the thin command-line tools over that API.
"""

__all__ = ["__version__"]


__version__ = "0.1.0"

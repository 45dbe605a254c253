"""depmod: the module dependency database kmod's tools read, computed as kmod 30 computes it.

``depmod(DepmodOptions(release, basedir=...))`` scans a modules directory (depmod.d search,
override, external and exclude rules; modules.order; modules.builtin and
modules.builtin.modinfo) and returns every output file's bytes (modules.dep, .alias,
.softdep, .symbols, .devname and the .bin tries) plus kmod's messages; ``write_outputs``
puts them in place through temporary files.  Output is byte-identical to kmod's depmod.

Names are imported on first use (PEP 562), so that modprobe's use of lkm.depmod.config
does not load the depmod computation.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lkm.depmod.core import (
        DependencyCycle,
        DepmodOptions,
        DepmodResult,
        depmod,
        modules_dirname,
        write_outputs,
    )
    from lkm.depmod.outputs import OUTPUTS
    from lkm.depmod.uptodate import up_to_date

_WHERE = {
    "OUTPUTS": "lkm.depmod.outputs",
    "DependencyCycle": "lkm.depmod.core",
    "DepmodOptions": "lkm.depmod.core",
    "DepmodResult": "lkm.depmod.core",
    "depmod": "lkm.depmod.core",
    "modules_dirname": "lkm.depmod.core",
    "write_outputs": "lkm.depmod.core",
    "up_to_date": "lkm.depmod.uptodate",
}

__all__ = [
    "OUTPUTS",
    "DependencyCycle",
    "DepmodOptions",
    "DepmodResult",
    "depmod",
    "modules_dirname",
    "up_to_date",
    "write_outputs",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        # __import__ rather than importlib.import_module: importlib (and warnings) cost a
        # millisecond of every depmod's start-up
        return getattr(__import__(_WHERE[name], fromlist=[name]), name)
    raise AttributeError(f"module 'lkm.depmod' has no attribute {name!r}")

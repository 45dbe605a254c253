"""depmod: the module dependency database kmod's tools read, computed as kmod 30 computes it.

``depmod(DepmodOptions(release, basedir=...))`` scans a modules directory (depmod.d search,
override, external and exclude rules; modules.order; modules.builtin and
modules.builtin.modinfo) and returns every output file's bytes (modules.dep, .alias,
.softdep, .symbols, .devname and the .bin tries) plus kmod's messages; ``write_outputs``
puts them in place through temporary files.  Output is byte-identical to kmod's depmod.
"""

from __future__ import annotations

from lkm.depmod.core import (
    OUTPUTS,
    DependencyCycle,
    DepmodOptions,
    DepmodResult,
    depmod,
    modules_dirname,
    write_outputs,
)
from lkm.depmod.uptodate import up_to_date

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

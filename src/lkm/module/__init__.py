"""Kernel modules as files: :class:`ModuleFile` and the data it gives.

Names are imported on first use (PEP 562) so that ``import lkm.module`` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lkm.module.file import ModuleFile
    from lkm.module.modinfo import Param24Spec, Parameter
    from lkm.module.signature import Signature
    from lkm.module.symbols import Export, NeededSymbol

_WHERE = {
    "ModuleFile": "lkm.module.file",
    "Param24Spec": "lkm.module.modinfo",
    "Parameter": "lkm.module.modinfo",
    "Signature": "lkm.module.signature",
    "Export": "lkm.module.symbols",
    "NeededSymbol": "lkm.module.symbols",
}

__all__ = ["Export", "ModuleFile", "NeededSymbol", "Param24Spec", "Parameter", "Signature"]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lkm.module' has no attribute {name!r}")

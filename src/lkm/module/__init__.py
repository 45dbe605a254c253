"""Kernel modules as files: :class:`ModuleFile` and the data it gives."""

from lkm.module.file import ModuleFile
from lkm.module.modinfo import Param24Spec, Parameter
from lkm.module.signature import Signature
from lkm.module.symbols import Export, NeededSymbol

__all__ = ["Export", "ModuleFile", "NeededSymbol", "Param24Spec", "Parameter", "Signature"]

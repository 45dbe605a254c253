"""Record: the base of lkm's small data classes on the start-up path.

``dataclasses`` and ``typing.NamedTuple`` cost several milliseconds of import time (inspect,
typing): ``python -X importtime`` puts ``import dataclasses`` at about four times everything
``lkm modinfo one.ko`` imports of lkm (best of 20 runs: 22 ms against 5.2 ms on a loaded
2-core machine); a __slots__ class with its fields listed once is as clear and loads
instantly.  Subclasses set ``__slots__`` to the field names, in order, and write a plain
``__init__``.

Where it stays: the modules the timed start-up calls import (bench/run.py: ``lkm modinfo
one.ko``, ``lkm modprobe -D``, ``lkm lsmod``: the ELF and module readers, ``lkm.kernels``,
``lkm.moddir``, ``lkm.index``, ``lkm.compress``, depmod's and modprobe's configuration,
modprobe's resolution, the kernel interface); none of them imports dataclasses.  Elsewhere a
record is a ``@dataclass(slots=True)``: ``frozen=True`` where nothing assigns its fields (mypy
checks), else ``unsafe_hash=True`` (Record's equality, hash and repr); a record whose
``asdict()``/``astuple()`` callers read adds :class:`Fields`.  Still Records off that path,
each for a reason: depmod's ``Module``, ``DepmodResult`` and ``scan.Candidate`` (built per
module in depmod's hot loop, computed fields), the emulator's ``ArchSpec`` (its ``replace``
copies by ``__slots__``), modutils' ``InsmodOptions`` (built from the CLI's untyped option
dict) and triage's ``Crash`` (built from its first sighting).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)


class Record:
    __slots__: tuple[str, ...] = ()

    def astuple(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def asdict(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Record)
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.astuple()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Fields:
    """Record's ``asdict()``/``astuple()`` for a ``@dataclass(slots=True)``: its fields in order,
    shallow (``dataclasses.asdict`` copies nested records and lists; JSON writers want them as
    they are)."""

    __slots__ = ()
    if TYPE_CHECKING:
        __dataclass_fields__: dict[str, object]

    def astuple(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)

    def asdict(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


__all__ = ["Fields", "Record", "cached"]

if TYPE_CHECKING:
    from functools import cached_property as cached
else:

    class cached:
        """``functools.cached_property`` without its per-access lock (3.11 takes an RLock on
        every first access): the value is stored in the instance ``__dict__``, which then
        shadows this non-data descriptor."""

        def __init__(self, func):
            self.func = func
            self.name = func.__name__
            self.__doc__ = func.__doc__

        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, obj, cls=None):
            if obj is None:
                return self
            value = obj.__dict__[self.name] = self.func(obj)
            return value

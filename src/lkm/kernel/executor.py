"""How a kernel runs a module's code: its init routine on load, its cleanup on unload.

The model kernel does not run code itself; it calls an :class:`Executor`.  The default one,
:class:`RecordingExecutor`, records each call and returns 0 (the routine "succeeded"); the
emulator (``lkm.emulate``) implements the same protocol by executing the linked image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Call", "Executor", "LoadedImage", "RecordingExecutor"]


@dataclass(slots=True, unsafe_hash=True)
class LoadedImage:
    """What an executor sees of a loaded module: its name, its memory (``memory`` holds the
    bytes mapped at ``base``; 6.x modules have several regions, each its own entry) and the
    kernel's symbols (name -> address) it may call back into."""

    name: str
    memory: dict[int, bytes]  # base address -> bytes mapped there
    symbols: dict[str, int] = field(default_factory=dict)


class Executor(Protocol):
    """Runs one routine of a loaded module."""

    def call(self, image: LoadedImage, address: int, args: tuple[int, ...] = ()) -> int:
        """Call the function at ``address`` with integer ``args``; return its int result
        (init routines: 0 success, negative -errno, positive is -EBUSY in 2.4)."""
        ...


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call."""

    module: str
    address: int
    args: tuple[int, ...]
    result: int


class RecordingExecutor:
    """Records every call and returns ``results.get(module, 0)`` (tests set failures)."""

    #: It never reads the module's memory: a kernel may hand it an image without it.
    needs_memory = False

    def __init__(self, results: dict[str, int] | None = None) -> None:
        self.calls: list[Call] = []
        self.results = dict(results or {})

    def call(self, image: LoadedImage, address: int, args: tuple[int, ...] = ()) -> int:
        result = self.results.get(image.name, 0)
        self.calls.append(Call(image.name, address, tuple(args), result))
        return result

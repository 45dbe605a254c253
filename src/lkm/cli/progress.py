"""Progress on stderr for long jobs (loading a tree into a model kernel, kallsyms from an image,
emulating many modules, depmod of a big tree).

Nothing is shown for a job that ends within :data:`DELAY` seconds, when stderr is not a
terminal, with ``quiet``, or with ``$LKM_PROGRESS=0``; otherwise one line, redrawn in place
about four times a second (``label: 1234/5678 (21%) 3s`` or, without a count, ``label... 3s``)
and erased when the job ends, so the job's own output and messages are untouched.  A daemon
thread draws it: the job needs no calls unless it counts (:meth:`Progress.advance`).

Ours rather than tqdm's or rich's: they cost 30 to 150 ms of start-up to import, this one
nothing beyond ``time``, and ``threading`` only when a line may be drawn.
"""

from __future__ import annotations

import os
import sys
import time

DELAY = 2.0
INTERVAL = 0.25

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from types import TracebackType
    from typing import TextIO


def enabled(stream: TextIO | None = None, *, quiet: bool = False) -> bool:
    """Whether progress is drawn on ``stream`` (default stderr)."""
    s = sys.stderr if stream is None else stream
    if quiet or os.environ.get("LKM_PROGRESS", "") in ("0", "off", "no"):
        return False
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """``with Progress("loading", total=n) as p: ... p.advance()`` -- see the module text."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        delay: float = DELAY,
        force: bool = False,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.delay = delay
        self.active = force or enabled(self.stream, quiet=quiet)
        self.drawn = False
        self._start = 0.0
        self._stop: threading.Event | None = None  # made (with threading) only when active
        self._thread: threading.Thread | None = None

    def advance(self, n: int = 1) -> None:
        self.done += n

    def line(self, now: float | None = None) -> str:
        secs = int((time.monotonic() if now is None else now) - self._start)
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            return f"{self.label}: {self.done}/{self.total} ({pct}%) {secs}s"
        if self.done:
            return f"{self.label}: {self.done} {secs}s"
        return f"{self.label}... {secs}s"

    def _run(self) -> None:
        assert self._stop is not None
        if self._stop.wait(self.delay):
            return
        while True:
            self._draw(self.line())
            if self._stop.wait(INTERVAL):
                return

    def _draw(self, text: str) -> None:
        try:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):
            if self._stop is not None:
                self._stop.set()

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.active:
            import threading

            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="lkm-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass


def progress(label: str, total: int | None = None, *, quiet: bool = False) -> Progress:
    return Progress(label, total, quiet=quiet)


__all__ = ["DELAY", "Progress", "enabled", "progress"]

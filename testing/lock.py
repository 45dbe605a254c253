"""One builder at a time for what the tests make on first use and share.

``pytest -n 2`` runs two worker processes; both may ask for the same capture, fixture build or
download at once.  :func:`build_lock` is an exclusive ``flock`` on a lock file beside the
result: the first caller builds (into a temporary, renamed into place when whole), the others
wait for the lock and then find the result and reuse it.  A lock is released when its holder
exits, however it exits, so a killed builder never blocks the next run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def build_lock(result: Path) -> Iterator[None]:
    """Hold the exclusive lock of *result* (the file ``.<name>.lock`` in its directory, made
    with the directory if needed) for the body of the ``with``."""
    result.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(result.parent / f".{result.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock

"""Ordered fan-out over forked workers, for tools that read thousands of modules in one call.

Reading modules is independent per file, so a batch is cut into contiguous chunks, one per
core; the caller's process does the first chunk while forked children do the others, and
results come back in input order, so output is identical to a sequential run.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["R", "T", "map_chunks", "workers_available"]

T = TypeVar("T")
R = TypeVar("R")


def workers_available() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _split_weighted(items: Sequence[T], weights: Sequence[int], n: int) -> list[Sequence[T]]:
    """``n`` contiguous chunks of about equal total weight (none empty)."""
    total = sum(weights) or 1
    cuts = [0]
    acc = 0
    for i, w in enumerate(weights):
        acc += w
        if len(cuts) < n and acc * n >= total * len(cuts) and i + 1 < len(items):
            cuts.append(i + 1)
    cuts.append(len(items))
    return [items[cuts[k] : cuts[k + 1]] for k in range(len(cuts) - 1) if cuts[k + 1] > cuts[k]]


def map_chunks(
    fn: Callable[[Sequence[T]], R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    min_per_worker: int = 32,
    weights: Sequence[int] | None = None,
) -> Iterator[R]:
    """``fn`` over contiguous chunks of ``items``; results yielded in chunk order.

    Chunks hold equal numbers of items, or, given ``weights`` (say file sizes), equal total
    weight, so that no worker is left with most of the work.  Falls back to one in-process
    call when there is one core, few items, or no fork.  A child's exception is re-raised in
    the caller.
    """
    n = workers_available() if workers is None else workers
    n = min(n, len(items) // min_per_worker) if min_per_worker else n
    if n <= 1 or not hasattr(os, "fork"):
        yield fn(items)
        return
    if weights is not None:
        chunks = _split_weighted(items, weights, n)
    else:
        size = -(-len(items) // n)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
    children: list[tuple[int, int]] = []
    # Objects that exist at the fork are left out of garbage collection while the children
    # run: a collection walks (and writes to) every object it tracks, so in a child it would
    # copy every page of the parent's data, and in the parent every page the child shares.
    gc.freeze()  # until the children are done; see the finally below
    for chunk in chunks[1:]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, leave without running the parent's cleanup
            os.close(r)
            status = 0
            try:
                try:
                    payload = pickle.dumps((True, fn(chunk)), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:
                    payload = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as f:
                    f.write(payload)
            except BaseException:
                status = 1
            os._exit(status)
        os.close(w)
        children.append((pid, r))
    try:
        yield fn(chunks[0])
        for pid, r in children:
            with os.fdopen(r, "rb") as f:
                data = f.read()
            os.waitpid(pid, 0)
            if not data:
                raise RuntimeError("worker process died without a result")
            ok, value = pickle.loads(data)
            if not ok:
                raise value
            yield value
        children = []
    finally:
        gc.unfreeze()
        for pid, r in children:  # early exit: reap what is left
            with contextlib.suppress(OSError):
                os.close(r)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

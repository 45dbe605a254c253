"""The ``lkm_harness`` pytest fixture: a factory of :class:`lkm.emulate.harness.Harness`
(each a fresh emulated kernel).  Enable it with ``-p lkm.emulate.pytest_plugin`` or
``pytest_plugins = ["lkm.emulate.pytest_plugin"]`` in a conftest.py::

    def test_probe(lkm_harness):
        h = lkm_harness(devices=["pci:v1234d11E8"])
        h.load("pcidemo.ko")
        assert h.devices[0].probe_result == 0

Needs lkm[run] (unicorn); without it the tests using the fixture are skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["lkm_harness"]


@pytest.fixture
def lkm_harness() -> Iterator[Callable[..., Any]]:
    try:
        from lkm.emulate.harness import Harness
    except ImportError as exc:  # pragma: no cover - lkm[run] not installed
        pytest.skip(f"lkm[run] is needed for the emulator ({exc.name})")
    made: list[Any] = []

    def factory(*args: Any, **kw: Any) -> Any:
        h = Harness(*args, **kw)
        made.append(h)
        return h

    yield factory

"""Model kernels for the tests: fresh 2.4 and 6.1 kernels in temporary state files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lkm.kernel.executor import RecordingExecutor
from lkm.kernel.model import ModelKernel


@pytest.fixture
def k24(tmp_path: Path) -> ModelKernel:
    return ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", executor=RecordingExecutor())


@pytest.fixture
def k61(tmp_path: Path) -> ModelKernel:
    return ModelKernel.boot("linux-6.1-amd64", tmp_path / "k61.db", executor=RecordingExecutor())

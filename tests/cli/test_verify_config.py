"""lkm verify finds the kernel's .config (/proc/config.gz, /boot/config-R, the build tree) or
refuses, one line, asking for --config; it never assumes a default configuration."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from lkm.cli import verify
from lkm.errors import LkmError


def test_found_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gz, boot = tmp_path / "config.gz", tmp_path / "config-R"
    gz.write_bytes(gzip.compress(b"CONFIG_KALLSYMS_ALL=y\n"))
    boot.write_text("# CONFIG_KALLSYMS_ALL is not set\n")
    monkeypatch.setattr(verify, "config_candidates", lambda r: [str(tmp_path / "none"), str(gz), str(boot)])
    cfg = verify._config(None, "R")
    assert cfg.kallsyms_all is True  # type: ignore[attr-defined]
    gz.unlink()
    assert verify._config(None, "R").kallsyms_all is False  # type: ignore[attr-defined]


def test_refuses_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "config_candidates", lambda r: [str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(LkmError, match="--config FILE"):
        verify._config(None, "R")
    with pytest.raises(LkmError, match="missing"):
        verify._config(str(tmp_path / "missing"), "R")

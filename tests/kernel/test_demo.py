"""``lkm demo`` runs the HOWTO's section 10 end to end on fresh model kernels."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from lkm.cli import main


def test_demo_walks_through_section_10() -> None:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        rc = main(["lkm", "demo"])
    text = out.getvalue()
    assert rc == 0
    for expected in (
        "fat24                   1128   0 [msdos24]",  # /proc/modules: msdos24 uses fat24
        "QM_DEPS msdos24:            ['fat24']",
        "rmmod: fat24: Device or resource busy",
        "sticky=42",
        "sticky in kernel memory after the reload: 42",
        "exporter               16384  1 importer",
        "lkm rmmod: ERROR: Module exporter is in use by: importer",
    ):
        assert expected in text, expected
    assert "Traceback" not in text

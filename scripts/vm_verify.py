#!/usr/bin/env python3
"""Full ``lkm verify`` run in QEMU guests: load COUNT corpus modules (with dependencies) into
each Debian amd64 kernel of the corpus and verify every one against the kernel's memory.

    python3 scripts/vm_verify.py [--count 200] [--tree amd64-6.1 --tree amd64-6.12]

Prints per kernel: modules verified, bytes compared, masked bytes by reason, and every layout,
byte and kallsyms difference and error (target: none).  The CI runs the same test with a
smaller sample (tests/vm/guest/guest_verify.py, LKM_VERIFY_COUNT).  Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from testing.corpus import find_tree  # noqa: E402
from testing.kbuild import build_fixtures, headers_for  # noqa: E402
from testing.vm import run_in_guest  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--tree", action="append")
    args = ap.parse_args()
    bad = 0
    for name in args.tree or ["amd64-6.1", "amd64-6.12"]:
        tree = find_tree(name)
        with tempfile.TemporaryDirectory(prefix=f"vm-verify-{name}-") as tmp:
            share = Path(tmp)
            headers = headers_for(tree.release)
            if headers is not None:
                build_fixtures(headers, share / "fixtures")
            script = (
                f"LKM_VERIFY_COUNT={args.count} python -m pytest -q -p no:cacheprovider "
                "-o python_files=guest_*.py tests/vm/guest/guest_verify.py -k corpus_sample"
            )
            rc, out = run_in_guest(tree, share, script)
            wall = (share / "wall-seconds").read_text().strip()
            report = share / f"verify-{name}.json"
            if not report.exists():
                print(f"{name}: no report (rc {rc}):\n{out[-3000:]}")
                bad += 1
                continue
            s = json.loads(report.read_text())
            diffs = sum(len(s[k]) for k in ("layout", "bytes", "kallsyms", "errors"))
            print(
                f"{name}: {s['modules']} modules verified, {s['compared']} bytes compared, "
                f"layout {len(s['layout'])}, bytes {len(s['bytes'])}, kallsyms {len(s['kallsyms'])}, "
                f"errors {len(s['errors'])}; guest wall time {wall} s"
            )
            print(f"  masked: {s['masked']}")
            for k in ("layout", "bytes", "kallsyms", "errors"):
                for line in s[k]:
                    print(f"  {k}: {line}")
            bad += diffs > 0 or rc != 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""``lkm verify --snapshot`` on captured arm64 (KASLR) and i386 guests: scripts/guest_snapshot.py
boots the corpus kernel under TCG, loads a small sample of corpus modules with busybox's insmod
and saves their memory through QMP; lkm verify (the CLI) must find no difference, and must
report a byte altered in the saved memory at its address."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testing.vm import alter_saved_byte

from support import ROOT, lkm_cmd, require

pytestmark = [pytest.mark.corpus, pytest.mark.vm]

GUESTS = {"arm64-6.1": "qemu-system-aarch64", "i386-6.1": "qemu-system-i386"}


@pytest.mark.parametrize("tree_name", list(GUESTS))
def test_snapshot_verify(tree_name: str, tmp_path: Path) -> None:
    from lkm.kernel.load import module_name
    from testing.corpus import load_trees, module_files

    require(shutil.which(GUESTS[tree_name]), f"{GUESTS[tree_name]} missing (qemu-system-arm / -x86)")
    trees = {t.name: t for t in load_trees()}
    require(tree_name in trees, f"corpus tree {tree_name} missing")
    snap = tmp_path / "snap"
    cap = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "guest_snapshot.py"), "--tree", tree_name, "--count", "12",
         "--out", str(snap)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert cap.returncode == 0, cap.stderr
    files = {module_name(str(p)): p for p in module_files(trees[tree_name])}
    names = [ln.split()[0] for ln in (snap / "proc-modules.txt").read_text().splitlines()]
    paths = [str(files[n]) for n in names if n in files]
    assert len(paths) >= 12
    r = subprocess.run(
        [*lkm_cmd(), "verify", "-q", "--snapshot", str(snap), *paths], capture_output=True, text=True
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")

    # 16 bytes of a module's .text altered in the saved memory (more than any patch site the
    # kernel may have touched there): reported, at addresses among them.
    victim = names[-1]  # loaded first: depends on nothing else in the sample
    text = next(
        int(a, 16)
        for m, s, a in (ln.split() for ln in (snap / "sections.txt").read_text().splitlines())
        if m == victim and s == ".text"
    )
    at = text + 0x40
    for i in range(16):  # a 5-byte ftrace site may hide one altered byte, not sixteen
        alter_saved_byte(snap, at + i)
    r = subprocess.run([*lkm_cmd(), "verify", "-q", "--snapshot", str(snap), str(files[victim])],
                       capture_output=True, text=True)  # fmt: skip
    reported = [int(w.strip("():"), 16) for w in r.stdout.split() if w.startswith("(0x")]
    assert r.returncode == 1 and reported and all(at <= a < at + 16 for a in reported), r.stdout
    # the same as one lkm/1 "verify" document: its byte differences are those addresses
    j = subprocess.run([*lkm_cmd(), "verify", "--json", "--snapshot", str(snap), str(files[victim])],
                       capture_output=True, text=True)  # fmt: skip
    (doc,) = [json.loads(line) for line in j.stdout.splitlines()]
    assert (j.returncode, doc["schema"], doc["kind"], doc["ok"]) == (1, "lkm/1", "verify", False)
    assert [int(b["address"], 16) for b in doc["bytes"]] == reported

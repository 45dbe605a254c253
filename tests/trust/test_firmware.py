"""Firmware an initramfs needs: names from the modules modprobe loads, and the kernel's search.

Oracles: kmod (``modprobe --show-depends`` for the module set, ``modinfo -F firmware`` for the
names) on Debian's 6.1 tree, and the firmware loader's search order written in the trust spec
(§5) for the found/missing part.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.firmware import find_firmware, firmware_report, modules_firmware

from support import corpus_tree, require

REL = "6.1.0-57-amd64"


def test_search_order_and_compressed_variants(tmp_path: Path) -> None:
    root = tmp_path
    order = [
        "custom",
        f"lib/firmware/updates/{REL}",
        "lib/firmware/updates",
        f"lib/firmware/{REL}",
        "lib/firmware",
    ]
    for d in order:
        (root / d / "v").mkdir(parents=True)
    # the plain name anywhere beats a compressed one earlier in the order
    (root / "lib/firmware/v/a.bin").write_bytes(b"x")
    (root / "custom/v/a.bin.xz").write_bytes(b"x")
    assert find_firmware("v/a.bin", REL, root=str(root), fw_path="/custom")[0] == str(
        root / "lib/firmware/v/a.bin"
    )
    # each directory in turn
    for i, d in enumerate(order):
        (root / d / "v" / "b.bin").write_bytes(b"x")
        want = root / order[0] / "v" / "b.bin"
        got, err = find_firmware("v/b.bin", REL, root=str(root), fw_path="/custom")
        assert (got, err) == (str(want), 0), i
    # .zst before .xz, both after the plain passes; without zstd support only .xz
    (root / "lib/firmware/v/c.bin.xz").write_bytes(b"x")
    (root / f"lib/firmware/{REL}/v/c.bin.zst").write_bytes(b"x")
    assert find_firmware("v/c.bin", REL, root=str(root))[0] == str(root / f"lib/firmware/{REL}/v/c.bin.zst")
    assert find_firmware("v/c.bin", REL, root=str(root), zstd=False)[0] == str(
        root / "lib/firmware/v/c.bin.xz"
    )
    # firmware_class.path empty: skipped
    assert find_firmware("v/a.bin", REL, root=str(root))[0] == str(root / "lib/firmware/v/a.bin")
    assert find_firmware("v/zzz", REL, root=str(root)) == (None, errno.ENOENT)
    assert find_firmware("../etc/passwd", REL, root=str(root)) == (None, errno.EINVAL)
    assert find_firmware("", REL, root=str(root)) == (None, errno.EINVAL)


@pytest.fixture(scope="module")
def tree61(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus 6.1 tree with kmod depmod's indexes, in a scratch root (the corpus is read-only)."""
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    require(depmod, "kmod's depmod not installed")
    src = corpus_tree("amd64-6.1") / "lib" / "modules" / REL
    root = tmp_path_factory.mktemp("fw")
    d = root / "lib" / "modules" / REL
    d.mkdir(parents=True)
    (d / "kernel").symlink_to(src / "kernel")
    for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy(src / f, d / f)
    subprocess.run([str(depmod), "-b", str(root), REL], check=True)
    return root


@pytest.mark.corpus
@pytest.mark.oracle
def test_firmware_names_equal_kmods(tree61: Path) -> None:
    modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin")
    modinfo = shutil.which("modinfo") or shutil.which("modinfo", path="/usr/sbin:/sbin")
    require(modprobe and modinfo, "kmod's modprobe/modinfo not installed")
    moddir = tree61 / "lib" / "modules" / REL
    names = [
        "iwlmvm", "amdgpu", "i915", "btusb", "r8169", "ath10k_pci", "brcmfmac", "e100", "snd_hda_intel",
        "ice", "bnx2x", "pci:v00008086d00002723sv*sd*bc*sc*i*", "usb:v0BDAp8179d*dc*dsc*dp*ic*isc*ip*in*",
    ]  # fmt: skip
    for name in names:
        r = subprocess.run([str(modprobe), "-d", str(tree61), "-S", REL, "--show-depends", name],
                           capture_output=True, text=True, check=True)  # fmt: skip
        paths = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("insmod ")]
        want: set[str] = set()
        for p in paths:
            out = subprocess.run(
                [str(modinfo), "-F", "firmware", p], capture_output=True, text=True, check=True
            )
            want |= {x for x in out.stdout.splitlines() if x}
        got, unknown = modules_firmware([name], str(moddir))
        assert not unknown
        assert set(got) == want, name
    files, _ = firmware_report(["iwlmvm"], str(moddir), REL, root=str(tree61))
    assert files and all(f.found is None for f in files)  # no firmware installed in the scratch root

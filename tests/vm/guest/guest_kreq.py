"""request_module in a real kernel, the oracle for the model's: kreq.ko's init asks for
"fs-lkmreqfs" (kreqfs.ko's alias; kreqfs needs exporter and asks for "fs-lkmnothing"),
kreqself.ko asks for itself, kreqlong.ko for a 56-byte name.  The kernel runs kmod's modprobe
(through /proc/sys/kernel/modprobe) over a kmod-depmod'ed modules root; the model kernel, with
the emulator running the same modules, must load the same modules with the same holders and
log the same request_module results.  kreqself hangs the real kernel (modprobe's insert waits
for kreqself to finish loading): the model must refuse it with EDEADLK."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from guestlib import fixture, in_guest, kmod, share

REQUESTERS = ("kreq", "kreqlong")
HANG_SECONDS = 10  # the loads before it take well under a second of guest time
OURS = ("exporter", "kreqfs", "kreqself", *REQUESTERS)
PREFIXES = tuple(f"{m}:" for m in OURS)
TAINT_LINES = ("taints kernel.", "tainting kernel")  # the loader's, once per boot: not the modules'


def _module_lines(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith(PREFIXES) and not x.endswith(TAINT_LINES)]


MODPROBE = Path("/proc/sys/kernel/modprobe")


def _modules_root(rel: str) -> Path:
    root = share() / "kreqroot"
    extra = root / "lib" / "modules" / rel / "extra"
    extra.mkdir(parents=True, exist_ok=True)
    for m in OURS:
        shutil.copyfile(fixture(m), extra / f"{m}.ko")
    assert kmod("depmod", "-b", str(root), rel).rc == 0
    return root


def _wrapper(root: Path) -> Path:
    """The kernel's usermode helper runs in the initramfs root, where the host is at /newroot
    (testing/vm.py): the helper chroots there and runs kmod's modprobe on our root."""
    w = share() / "modprobe.sh"
    w.write_text(f'#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /sbin/modprobe -d {root} "$@"\n')
    w.chmod(0o755)
    return w


def _ours(modules: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    return [(n, tuple(sorted(h))) for n, h in modules if n in OURS]


def _hangs(ko: Path) -> bool:
    """insmod ``ko`` and report whether it is still waiting after HANG_SECONDS; if so, end it
    by killing the modprobe its request started (its finit_module wait is interruptible)."""
    exe = shutil.which("insmod", path="/usr/sbin:/sbin")
    assert exe
    p = subprocess.Popen([exe, str(ko)])
    try:
        p.wait(timeout=HANG_SECONDS)
        return False
    except subprocess.TimeoutExpired:
        pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"modprobe") and b"kreqself" in argv:
            os.kill(int(pid), 9)
    p.wait(timeout=120)
    return True


def _real_run(root: Path) -> tuple[list[tuple[str, tuple[str, ...]]], list[str], bool]:
    from lkm.kernel.live import LiveKernel

    old = MODPROBE.read_text()
    subprocess.run(["dmesg", "-C"], check=True)
    MODPROBE.write_text(f"/newroot{_wrapper(root)}\n")
    try:
        for m in REQUESTERS:
            r = kmod("insmod", str(fixture(m)))
            assert r.rc == 0, r
        mods = _ours([(m.name, tuple(m.holders or ())) for m in LiveKernel().modules()])
        out = subprocess.run(["dmesg", "-t"], capture_output=True, check=True).stdout.decode()
        log = _module_lines(out.splitlines())
        hung = _hangs(fixture("kreqself"))
    finally:
        MODPROBE.write_text(old)
        for m in ("kreqfs", "exporter", "kreqself", *REQUESTERS):
            kmod("rmmod", m)
    return mods, log, hung


def test_request_module_loads_what_the_model_loads(tmp_path: Path) -> None:
    in_guest()
    from lkm.emulate.executor import for_profile
    from lkm.kernel.interface import KernelError
    from lkm.kernel.model import ModelKernel
    from lkm.kernel.model.profile import load_profile

    rel = os.uname().release
    root = _modules_root(rel)
    real_mods, real_log, real_hung = _real_run(root)
    assert ("exporter", ("kreqfs",)) in real_mods  # the request happened at all
    if load_profile("linux-6.1-amd64").fields.get("release") != rel:
        return  # no model profile of this kernel: the real run alone
    assert real_hung  # 6.1: a module requesting itself never finishes loading
    ex = for_profile("linux-6.1-amd64")
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db", executor=ex, modules_root=str(root))
    for m in REQUESTERS:
        k.finit_module(str(fixture(m)))
    model_mods = _ours([(m.name, tuple(m.holders)) for m in k.modules()])
    model_log = _module_lines(ex.kernel.state.dmesg())
    assert (model_mods, model_log) == (real_mods, real_log)
    with pytest.raises(KernelError) as info:
        k.finit_module(str(fixture("kreqself")))
    assert info.value.errno == errno.EDEADLK
    assert k.check_integrity() == []

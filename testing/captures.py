"""What the tests read besides the corpus itself, made from the corpus's own kernels on first
use and cached next to it.

- ``<corpus>/<tree>/proc-kallsyms.txt``: the tree's kernel booted in QEMU with ``nokaslr``
  prints its /proc/kallsyms (``scripts/guest_kallsyms.py``); the tree directory is replaced
  when a newer build is fetched, and the capture with it.
- ``<corpus>/oops/<tree>/``: real oops reports, %pS answers and the /proc + /sys snapshot of
  a KASLR boot with the oops fixture modules (``scripts/guest_oops.py``; its dmesg.txt says
  which build it comes from, another build's capture is made again).
- ``<corpus>/replay/<tree>/<driver>/``: a driver loaded and removed in QEMU with one of QEMU's
  device models, QEMU's trace of the device's accesses made a device trace
  (``scripts/guest_replay.py``, :func:`replay_capture`).
- the kernel profile of the corpus's own build (:func:`corpus_profile`), computed in memory
  from the capture above and the headers' Module.symvers, the way ``scripts/make_profiles.py``
  makes the shipped one.

``./scripts/test`` runs the capture scripts before pytest; the functions here make a
missing capture themselves, so that a single test run from an empty cache needs nothing else.
Each takes the capture's lock (:func:`testing.lock.build_lock`) first: of two pytest workers
(``-n 2``) asking at once, one boots the guest, the other waits and reads its result (the
scripts write a temporary and rename it into place).
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from testing.corpus import CorpusTree, corpus_dir, find_headers, find_tree, module_files
from testing.lock import build_lock

if TYPE_CHECKING:
    from lkm.emulate.kernel import SymbolSpace
    from lkm.kernel.model.profile import Profile

ROOT = Path(__file__).resolve().parent.parent
KALLSYMS_NAME = "proc-kallsyms.txt"
KALLSYMS_TIMEOUT = 420  # seconds per boot, enforced by scripts/guest_kallsyms.py
OOPS_TIMEOUT = 900  # seconds per boot, enforced by scripts/guest_oops.py
REPLAY_TIMEOUT = 600  # seconds per boot, enforced by scripts/guest_replay.py

#: The corpus tree whose kernel symbols an emulated module of an architecture binds against.
SYMBOL_TREES = {"x86_64": "amd64-6.1", "arm64": "arm64-6.1"}


class CaptureError(RuntimeError):
    """A capture is missing and the guest that makes it could not be run."""


def _run_script(script: str, args: list[str], timeout: float) -> str:
    """Run scripts/SCRIPT; the tail of its stderr (why it failed, if it did)."""
    try:
        r = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / script), *args],
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"{script} timed out after {timeout:.0f} s"
    return r.stderr.decode(errors="replace")[-2000:]


def guest_kallsyms(tree: CorpusTree) -> Path:
    """The tree's /proc/kallsyms as its kernel printed it (nokaslr); the guest is booted
    first if there is no capture."""
    path = tree.root / KALLSYMS_NAME
    if path.is_file():
        return path
    with build_lock(path):
        if not path.is_file():
            why = _run_script(
                "guest_kallsyms.py",
                ["--tree", tree.name, "--timeout", str(KALLSYMS_TIMEOUT)],
                2 * KALLSYMS_TIMEOUT + 300,
            )
            if not path.is_file():
                raise CaptureError(f"{tree.name}: no /proc/kallsyms from a QEMU guest: {why}")
    return path


def oops_is_current(out: Path, release: str) -> bool:
    """The capture in *out* is complete and its kernel was *release* (the "Linux version" line
    its dmesg.txt starts with): the corpus follows Debian's newest build, a capture of the
    previous one is made again."""
    try:
        with open(out / "dmesg.txt", "rb") as f:
            head = f.read(8192).decode("latin-1")
    except OSError:
        return False
    m = re.search(r"Linux version (\S+) ", head)
    return (out / "pcsym.txt").is_file() and m is not None and m.group(1) == release


def oops_capture(name: str) -> Path:
    """scripts/guest_oops.py's capture for the tree *name* (reports, /proc/kallsyms,
    /proc/modules, sections, pcsym's %pS answers), made first if it is missing or of
    another build."""
    out = corpus_dir() / "oops" / name
    release = find_tree(name).release
    if oops_is_current(out, release):
        return out
    with build_lock(out):
        if not oops_is_current(out, release):
            why = _run_script(
                "guest_oops.py", ["--tree", name, "--timeout", str(OOPS_TIMEOUT)], 2 * OOPS_TIMEOUT + 300
            )
            if not oops_is_current(out, release):
                raise CaptureError(f"{name}: no guest oops capture: {why}")
    return out


def replay_is_current(out: Path, release: str) -> bool:
    """*out* holds a device trace (trace.json) of this trace format and version, recorded on
    the kernel *release*."""
    from lkm.emulate.replay import FORMAT, VERSION, DeviceTrace, TraceError

    try:
        t = DeviceTrace.load(out / "trace.json")
    except TraceError:
        return False
    return t.source.get("kernel") == release and t.source.get("format") == f"{FORMAT}/{VERSION}"


def replay_capture(driver: str, tree_name: str = "amd64-6.1") -> Path:
    """scripts/guest_replay.py's recording of *driver* on the tree *tree_name* (trace.json,
    dmesg.txt, console.log, qemu-trace.log.xz), made first if missing or of another build."""
    tree = find_tree(tree_name)
    out = corpus_dir() / "replay" / tree_name / driver
    if replay_is_current(out, tree.release):
        return out
    with build_lock(out):
        if not replay_is_current(out, tree.release):
            args = ["--tree", tree_name, "--driver", driver, "--timeout", str(REPLAY_TIMEOUT)]
            why = _run_script("guest_replay.py", args, REPLAY_TIMEOUT + 300)
            if not replay_is_current(out, tree.release):
                raise CaptureError(f"{tree_name}: no QEMU recording of {driver}: {why}")
    return out


def tree_symbols(tree: CorpusTree) -> SymbolSpace | None:
    """A corpus tree's kernel symbols for the emulator: its guest /proc/kallsyms when
    captured, else the same recovered from its vmlinuz (lkm.symbols.image); None without
    either."""
    from lkm.emulate.kernel import SymbolSpace
    from lkm.symbols.table import SymbolTable

    arch = {"amd64": "x86_64"}.get(tree.arch, tree.arch)
    path = tree.root / KALLSYMS_NAME
    if not path.is_file():
        if tree.vmlinuz is None or not tree.vmlinuz.is_file():
            return None
        path = tree.vmlinuz
    return SymbolSpace(SymbolTable.from_files(path), arch)


def corpus_symbols(arch: str = "x86_64") -> SymbolSpace:
    """The guest /proc/kallsyms of the corpus's 6.1 kernel of *arch* (captured on first use)
    as the emulator's symbol space."""
    from lkm.emulate.kernel import SymbolSpace
    from lkm.symbols.table import SymbolTable

    path = guest_kallsyms(find_tree(SYMBOL_TREES[arch]))
    return SymbolSpace(SymbolTable.from_files(path), arch)


@functools.cache  # one per session and source: tests only read it
def corpus_profile(
    tree_name: str = "amd64-6.1",
    headers_name: str = "headers-6.1",
    name: str = "linux-6.1-amd64",
    *,
    addresses: str = "guest",
) -> Profile:
    """The model-kernel profile of the corpus's own build of *tree_name*: every symbol the
    kernel exports (the headers' Module.symvers: CRC, GPL-only, namespace) with its address
    and type letter from the guest's /proc/kallsyms (``addresses="guest"``, captured on first
    use) or from the kallsyms tables of its vmlinuz (``"image"``: the same, without a boot),
    the release, the vermagic its modules carry and sizeof(struct module) (fat.ko's
    .gnu.linkonce.this_module)."""
    from lkm.kernel.model.profile import profile_from_files
    from lkm.module.file import ModuleFile

    tree = find_tree(tree_name)
    headers = find_headers(headers_name)
    if headers.release != tree.release:
        raise CaptureError(f"{headers_name} is {headers.release}, {tree_name} is {tree.release}")
    sample = ModuleFile.open(next(p for p in module_files(tree) if p.name == "fat.ko"))
    this = sample.elf.section(".gnu.linkonce.this_module")
    if this is None:
        raise CaptureError(f"{tree_name}: fat.ko has no .gnu.linkonce.this_module")
    arch = {"amd64": "x86_64"}.get(tree.arch, tree.arch)
    prof = profile_from_files(name, tree.release, arch, sample.vermagic or "",
                              _addresses(tree, addresses), headers.module_symvers)  # fmt: skip
    prof.fields.update({
        "smp": "1", "struct_module_size": str(this.size),
        "uname": f"Linux model {tree.release} #1 SMP PREEMPT_DYNAMIC Debian {tree.version} {arch}",
    })  # fmt: skip
    return prof


def _addresses(tree: CorpusTree, source: str) -> Path:
    if source == "guest":
        return guest_kallsyms(tree)
    if source == "image" and tree.vmlinuz is not None:
        return tree.vmlinuz
    raise CaptureError(f"{tree.name}: no {source} to take addresses from")

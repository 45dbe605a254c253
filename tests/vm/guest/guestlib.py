"""Helpers for the tests that run inside a VM guest (testing/vm.py boots it).

kmod's tools and lkm's are both called by their tool names (lkm through links named insmod,
rmmod, lsmod), so their messages carry the same program name and can be compared byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lkm.kernel.load import module_name
from testing.corpus import CorpusTree, find_tree, module_files

TOOLS = ("insmod", "rmmod", "lsmod", "verify")
LKM_BIN = Path(os.environ.get("TMPDIR") or "/tmp") / "lkm-bin"  # the guest's tmpfs


def in_guest() -> str:
    name = os.environ.get("LKM_GUEST")
    if not name:
        pytest.skip("runs only inside a VM guest (tests/vm/test_vm.py boots one)")
    return name


def tree() -> CorpusTree:
    return find_tree(in_guest())


def share() -> Path:
    return Path(os.environ["LKM_GUEST_SHARE"])


def fixture(name: str) -> Path:
    return share() / "fixtures" / f"{name}.ko"


def corpus_module(name: str, t: CorpusTree | None = None) -> Path:
    t = t or tree()
    for p in module_files(t):
        if module_name(str(p)) == name:
            return p
    raise LookupError(f"{name} not in {t.name}")


def _lkm_bin() -> Path:
    entry = LKM_BIN / "lkm"
    if not entry.exists():
        LKM_BIN.mkdir(parents=True, exist_ok=True)
        entry.write_text(f"#!{sys.executable}\nimport sys\nfrom lkm.cli import main\nsys.exit(main())\n")
        entry.chmod(0o755)
        for tool in TOOLS:
            (LKM_BIN / tool).symlink_to(entry)
    return LKM_BIN


class Result:
    def __init__(self, r: subprocess.CompletedProcess[bytes]) -> None:
        self.rc = r.returncode
        self.out = r.stdout.decode(errors="replace")
        self.err = r.stderr.decode(errors="replace")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (self.rc, self.out, self.err) == (other.rc, other.out, other.err)

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def kmod(tool: str, *args: str) -> Result:
    exe = shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    assert exe, f"kmod's {tool} missing in the guest"
    return Result(subprocess.run([exe, *args], capture_output=True, check=False))


def lkm(tool: str, *args: str) -> Result:
    return Result(subprocess.run([str(_lkm_bin() / tool), *args], capture_output=True, check=False))


def loaded() -> list[str]:
    with open("/proc/modules") as f:
        return [line.split(" ", 1)[0] for line in f]


def unload_new(before: list[str]) -> None:
    """Remove every module loaded since *before* (newest first, repeating for dependencies)."""
    for _ in range(5):
        extra = [m for m in loaded() if m not in before]
        if not extra:
            return
        for m in extra:
            subprocess.run(["/usr/sbin/rmmod", m], capture_output=True, check=False)


# -- lkm verify over many corpus modules -----------------------------------------------------


def load_with_deps(path: Path, files: dict[str, Path], done: set[str]) -> bool:
    """Load *path* after what it depends on (kmod's insmod); False if anything failed."""
    from lkm.module.file import ModuleFile

    name = module_name(str(path))
    if name in done:
        return True
    with ModuleFile.open(path) as mod:
        deps = list(mod.depends)
    for d in deps:
        if d in files and not load_with_deps(files[d], files, done):
            return False
    if name not in loaded() and kmod("insmod", str(path)).rc != 0:
        return False
    done.add(name)
    return True


def load_sample(t: CorpusTree, count: int) -> dict[str, Path]:
    """Load about *count* corpus modules (spread evenly over the candidates) with their
    dependencies; name -> file of every module loaded."""
    files = {module_name(str(p)): p for p in module_files(t)}
    from testing.vm import candidates

    cands = candidates(t)
    done: set[str] = set()
    stride = max(1, len(cands) // (count * 2))
    for p in cands[::stride] + cands:
        if len(done) >= count:
            break
        load_with_deps(p, files, done)
    return {n: files[n] for n in done}


def verify_loaded(t: CorpusTree, modules: dict[str, Path]) -> dict[str, object]:
    """Run lkm verify's library on each module; a summary with every difference."""
    from lkm.elf.core import CoreFile
    from lkm.kernel.live import LiveKernel
    from lkm.kernel.verify import verify_module
    from lkm.link.layout import KernelConfig
    from lkm.module.file import ModuleFile
    from lkm.symbols.table import SymbolTable

    assert t.config is not None
    config = KernelConfig.from_config_text(t.config.read_text())
    kernel = LiveKernel()
    text = kernel.kallsyms()
    table = SymbolTable.from_files("/proc/kallsyms")
    core = CoreFile("/proc/kcore")
    summary: dict[str, object] = {
        "modules": 0,
        "compared": 0,
        "layout": [],
        "bytes": [],
        "kallsyms": [],
        "errors": [],
    }
    masked: dict[str, int] = {}
    order = {n: i for i, n in enumerate(reversed(loaded()))}  # load order: exporters first
    for name, path in sorted(modules.items(), key=lambda kv: order.get(kv[0], -1)):
        try:
            mod = ModuleFile.open(path)
            rep = verify_module(mod, kernel, core, table, config=config, kallsyms_text=text)
        except Exception as exc:  # every failure is a finding, reported with its module
            summary["errors"].append(f"{name}: {type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
            continue
        summary["modules"] += 1  # type: ignore[operator]
        summary["compared"] += rep.compared  # type: ignore[operator]
        for k, v in rep.masked.items():
            masked[k] = masked.get(k, 0) + v
        summary["layout"].extend(f"{name}: {x}" for x in rep.layout)  # type: ignore[attr-defined]
        summary["bytes"].extend(  # type: ignore[attr-defined]
            f"{name}: {sec}+{off:#x}: lkm {a.hex()} kernel {b.hex()}" for _, sec, off, a, b in rep.bytes
        )
        summary["kallsyms"].extend(f"{name}: {x}" for x in rep.kallsyms)  # type: ignore[attr-defined]
    summary["masked"] = masked
    core.close()
    return summary


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    """Each test unloads the modules it loaded (a test module imports this fixture to use it)."""
    tree()  # skips outside a guest
    before = loaded()
    yield
    unload_new(before)


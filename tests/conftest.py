"""Session fixtures and hooks; the helpers tests import are in support.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from support import IN_CI, ROOT, require

pytest_plugins = ["pytester"]  # tests/test_markers.py

# CI explores the same hypothesis examples every run (a landing is never blocked by a newly
# drawn case); developers' runs draw new ones and keep failures in .hypothesis/.
# No test depends on the clock: hypothesis's per-example deadline and its "too slow" health check
# are wall-time limits, and they fail on a busy machine (they did: a 20-row strategy under load).
_untimed = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", **_untimed)  # type: ignore[arg-type]
settings.register_profile("ci", derandomize=True, database=None, **_untimed)  # type: ignore[arg-type]
settings.load_profile("ci" if IN_CI else "dev")


@pytest.fixture(scope="session")
def corpus_trees():  # type: ignore[no-untyped-def]
    from testing.corpus import load_trees

    try:
        trees = load_trees()
    except Exception as exc:
        trees = []
        reason = str(exc)
    else:
        reason = "no trees in manifest"
    require(trees, f"real-module corpus missing ({reason}): run scripts/fetch_corpus.py")
    return trees


@pytest.fixture
def k24(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh 2.4.20 i386 model kernel (lkm.kernel.model) with a recording executor."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.model import ModelKernel

    return ModelKernel.boot("linux-2.4-i386", tmp_path / "k24.db", executor=RecordingExecutor())


@pytest.fixture
def k61(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh Debian 6.1 amd64 model kernel with a recording executor."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.model import ModelKernel

    return ModelKernel.boot("linux-6.1-amd64", tmp_path / "k61.db", executor=RecordingExecutor())


# --------------------------------------------------------------------------------------
# Markers: applied by fixture use, and checked by what a test actually does.
#
# corpus  reads the real-module corpus (a file under the corpus directory, the manifest
#         included, or an lkm subprocess given such a file)
# vm      boots a QEMU guest, or reads a capture only a guest makes (<tree>/proc-kallsyms.txt,
#         <corpus>/oops/): scripts/guest_*.py make them on first use
# oracle  runs Debian's kmod or GNU binutils on the host
#
# A test that does one of these without its marker fails (at teardown), so that
# `pytest -m "not corpus and not vm"` is exactly the tests that need neither.

ORACLE_TOOLS = {"modinfo", "depmod", "modprobe", "insmod", "rmmod", "lsmod", "kmod", "readelf",
                "objdump", "addr2line", "nm", "ld", "ld.bfd", "strip", "objcopy",
                "decode_stacktrace.sh"}  # fmt: skip
FIXTURE_MARKS = {"corpus_trees": "corpus"}


class _Guard:
    marks: set[str] | None = None  # the running test's markers; None outside a test
    missing: list[str] = []
    corpus = ""


def _need(mark: str, why: str) -> None:
    if _Guard.marks is not None and mark not in _Guard.marks:
        _Guard.missing.append(f"@pytest.mark.{mark} missing: {why}")


def _is_capture(path: str) -> bool:
    return path.endswith("/proc-kallsyms.txt") or path.startswith(_Guard.corpus + "oops/")


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _Guard.marks is None:
        return
    if event == "open" and isinstance(args[0], (str, Path)):
        path = os.path.abspath(args[0])
        if path.startswith(_Guard.corpus):
            _need("corpus", f"reads {path}")
            if _is_capture(path):
                _need("vm", f"reads the guest capture {path}")
    elif event == "subprocess.Popen":
        argv = [str(a) for a in (args[1] if isinstance(args[1], (list, tuple)) else [args[1]])]
        tool = os.path.basename(argv[0]) if argv else ""
        if tool in ORACLE_TOOLS or tool.endswith(("-ld", "-objdump", "-readelf")):
            _need("oracle", f"runs {tool}")
        if tool.startswith("qemu-system") or any(os.path.basename(a).startswith("guest_") for a in argv[1:2]):
            _need("vm", f"runs {' '.join(argv[:2])}")
        if any(a.startswith(_Guard.corpus) for a in argv):
            _need("corpus", f"runs {tool} on the corpus")


def pytest_configure(config: pytest.Config) -> None:
    from testing.corpus import corpus_dir

    _Guard.corpus = str(corpus_dir().resolve()) + "/"
    if not os.environ.get("LKM_CACHE_DIR"):  # lkm's derived-data cache: the tests' own, not the user's
        import atexit
        import shutil
        import tempfile

        d = tempfile.mkdtemp(prefix="lkm-test-cache-")
        os.environ["LKM_CACHE_DIR"] = d
        atexit.register(shutil.rmtree, d, True)
    if not os.environ.get("LKM_GUEST"):  # inside a guest (tests/vm/guest) everything is there
        sys.addaudithook(_audit)


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(mark)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _guests_first(items)


def _guests_first(items: list[pytest.Item]) -> None:
    """Under pytest-xdist's work stealing (``-n 2 --dist worksteal``, as ./scripts/test runs)
    the first half of the collection goes to one worker, the second half to the other, and a
    worker that runs out takes the end of the other's queue.  The modules with tests that boot
    or read QEMU guests (``vm``) go first, in their order: one worker runs the guests one after
    another, the other everything else, and no long guest boot is left to start last.  Every
    worker sorts alike, as xdist requires; the modules' own order is kept."""
    guest_modules = {getattr(item, "module", None) for item in items if item.get_closest_marker("vm")}
    items.sort(key=lambda item: getattr(item, "module", None) not in guest_modules)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _Guard.marks = {m.name for m in item.iter_markers()}
    _Guard.missing = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    if call.when != "teardown":
        return
    missing, _Guard.marks = sorted(set(_Guard.missing)), None
    report = outcome.get_result()
    if missing and report.passed:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: " + "; ".join(missing[:5])


@pytest.fixture(scope="module")
def validator():  # type: ignore[no-untyped-def]
    """The published JSON Schema (``src/lkm/data/lkm-1.schema.json``), itself checked."""
    try:
        import jsonschema  # the [test] extra's; a missing one fails in CI (require)
    except ImportError:
        require(False, "jsonschema (pip install 'lkm[test]')")
    schema = json.loads((ROOT / "src" / "lkm" / "data" / "lkm-1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)

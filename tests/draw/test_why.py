"""``lkm why`` on constructed module trees with modprobe.d rules: every claim it makes is
checked against what Debian's kmod modprobe actually does (``modprobe -n -v``,
``--show-depends``, ``-R``) in the same tree, and its record of lkm's own dry run is
compared with kmod's output byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lkm.draw.depgraph import DepTables
from lkm.moddir import ModulesDir
from lkm.modprobe import Resolver, load_config
from lkm.why import WhyReport, parse_requests, why

from support import RELEASE, kmod_tool, lkm_cmd, make_tree
from support import WHY_CONF as CONF
from support import WHY_MODS as MODS

pytestmark = pytest.mark.oracle  # runs Debian's kmod (depmod, modprobe)

# (query, -b, reason kinds that must be found, block kinds that must be found)
CASES = [
    ("core", False, {"name", "dependency"}, set()),
    ("mid", False, {"name", "dependency"}, set()),
    ("top", False, {"name"}, set()),
    ("dev:top9", False, {"alias"}, set()),
    ("pci:v0000ABCDd00001234sv0sd0bc02sc00i00", False, {"alias"}, set()),
    ("symbol:core_fn", False, {"symbol", "dependency"}, set()),
    ("helper", False, {"name", "softdep"}, set()),
    ("crypto_x", False, {"name", "softdep"}, set()),
    ("cipher-x", False, {"alias", "softdep"}, set()),
    ("withsd", False, {"name"}, set()),
    ("inner", False, {"name", "install"}, set()),
    ("wrapped", False, {"name"}, {"install-rule"}),
    ("bad", False, {"name"}, {"blacklist"}),
    ("dev:bad", False, {"alias"}, {"blacklist"}),
    ("bad", True, {"name"}, {"blacklist"}),
    ("nothing-here", False, set(), {"missing"}),
    ("dev:unknown", False, set(), {"missing"}),
    ("my-name", False, {"alias"}, set()),
    ("fs-fsmod", False, {"alias"}, set()),
    ("net-a", False, {"name"}, set()),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("why")
    make_tree(root, MODS)
    subprocess.run([kmod_tool("depmod"), "-b", str(root), RELEASE], check=True)
    conf = root / "conf"
    conf.mkdir()
    (conf / "why.conf").write_bytes(CONF)
    return root, conf


def kmod(root: Path, conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [kmod_tool("modprobe"), "-d", str(root), "-S", RELEASE, "-C", str(conf), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def report(root: Path, conf: Path, query: str, blacklist: bool = False, **kw: object) -> WhyReport:
    d = str(root / "lib" / "modules" / RELEASE)
    res = Resolver(ModulesDir(d), load_config(d, [str(conf)], cmdline=None))
    return why(res, query, blacklist_all=blacklist, **kw)  # type: ignore[arg-type]


def _loads(out: str, name: str) -> bool:
    return any(
        line.startswith("insmod ")
        and line.split()[1].rsplit("/", 1)[-1].split(".")[0].replace("-", "_") == name
        for line in out.splitlines()
    )


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("query", "blacklist", "kinds", "blocks"), CASES, ids=[f"{c[0]}{' -b' if c[1] else ''}" for c in CASES]
)
def test_why_against_kmod(
    tree: tuple[Path, Path], query: str, blacklist: bool, kinds: set[str], blocks: set[str]
) -> None:
    root, conf = tree
    rep = report(root, conf, query, blacklist)
    found = {r.kind for r in rep.resolves + rep.pulled_by}
    assert kinds <= found, (rep.as_text(), found)
    assert blocks <= {b.kind for b in rep.blocks}, rep.as_text()
    # 1. the dry run lkm why reports is what kmod's modprobe -n -v prints, and its exit status
    k = kmod(root, conf, *(["-b"] if blacklist else []), "-n", "-v", query)
    lines = [ln for ln in rep.modprobe if not ln.startswith("modprobe: ")]
    assert lines == k.stdout.splitlines()
    assert rep.modprobe_status == k.returncode
    assert [ln for ln in rep.modprobe if ln.startswith("modprobe: ")] == k.stderr.splitlines()
    # 2. every claim, checked by doing what it says with kmod
    r = kmod(root, conf, "-R", query)
    assert sorted(set(r.stdout.split())) == sorted(rep.modules)
    for reason in rep.pulled_by:
        f = reason.facts
        if reason.kind == "dependency":
            for user in f["modules"]:  # type: ignore[attr-defined]
                shown = kmod(root, conf, "--show-depends", user).stdout
                assert all(_loads(shown, m) for m in rep.modules), (user, shown)
        elif reason.kind == "softdep":
            shown = kmod(root, conf, "--show-depends", str(f["module"])).stdout
            assert all(_loads(shown, m) for m in rep.modules), shown
        elif reason.kind == "install":
            shown = kmod(root, conf, "--show-depends", str(f["module"])).stdout
            assert any(ln.startswith("install ") and rep.modules[0] in ln for ln in shown.splitlines()), shown
    for b in rep.blocks:
        if b.kind == "blacklist" and b.facts.get("effective", True):
            assert k.returncode == 0 and k.stdout == "", k.stdout
        elif b.kind == "blacklist":
            assert all(_loads(k.stdout, m) for m in rep.modules)
        elif b.kind == "missing":
            assert k.returncode == 1 and "not found" in k.stderr
        elif b.kind == "install-rule":
            assert k.stdout.startswith("install "), k.stdout
            plain = kmod(root, conf, "-i", "-n", "-v", query).stdout
            assert _loads(plain, rep.modules[0]), plain


@pytest.mark.oracle
def test_request_module_from_the_model_kernel(tree: tuple[Path, Path], tmp_path: Path) -> None:
    """The model kernel's request_module("fs-fsmod") runs modprobe; lkm why names the request,
    and kmod's modprobe -- fs-fsmod loads that module."""
    from lkm.kernel.executor import RecordingExecutor
    from lkm.kernel.model import ModelKernel

    root, conf = tree
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db", executor=RecordingExecutor())
    k.set_modules_root(str(root))
    k.request_module("fs-fsmod")
    requests = [(r.name, "model kernel") for r in k.requests]
    rep = report(root, conf, "fsmod", requests=requests)
    reqs = [r for r in rep.pulled_by if r.kind == "request_module"]
    assert reqs and reqs[0].facts["request"] == "fs-fsmod", rep.as_text()
    assert _loads(kmod(root, conf, "-n", "-v", "--", "fs-fsmod").stdout, "fsmod")
    # and the same from a trace of the module:module_request event
    trace = (
        "  modprobe-123 [000] ..... 5.1: module_request: fs-fsmod wait=1 call_site=get_fs_type+0x7f/0x140\n"
    )
    assert parse_requests(trace) == [("fs-fsmod", "get_fs_type+0x7f/0x140")]


def test_cli_text_and_json(tree: tuple[Path, Path]) -> None:
    import json

    root, conf = tree
    base = [*lkm_cmd(), "why", "-d", str(root), "-S", RELEASE, "-C", str(conf)]
    p = subprocess.run([*base, "--json", "core"], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    dep = next(r for r in data["pulled_by"] if r["kind"] == "dependency")
    tables = DepTables.from_dir(str(root / "lib" / "modules" / RELEASE))
    assert sorted(dep["facts"]["modules"]) == sorted(n for n, line in tables.lines.items() if "core" in line)
    p = subprocess.run([*base, "nothing-here"], capture_output=True, text=True, check=False)
    assert p.returncode == 1 and "not found" in p.stdout
    p = subprocess.run(
        [*lkm_cmd(), "why", "-d", str(root / "nope"), "-S", RELEASE, "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr

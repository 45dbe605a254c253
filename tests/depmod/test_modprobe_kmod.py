"""lkm modprobe --show-depends / -R against kmod's modprobe: a corpus sample (module names
and concrete device strings from alias patterns) and a modprobe.d using every directive."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from cli.kmodlink import tool_link
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testing.corpus import depmod_root

from support import CONF, MODS, RELEASE, ROOT, kmod_tool, make_tree, require

sys.path.insert(0, str(ROOT / "scripts"))
from modprobe_oracle_full import queries


def lkm_modprobe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    # through a link named modprobe, so that messages carry kmod's program name
    return subprocess.run(
        [tool_link("modprobe"), *args], capture_output=True, env={"PATH": "/usr/bin:/bin"}, check=False
    )


def same(args: list[str]) -> None:
    """stdout, stderr (bytes) and exit status of kmod's modprobe and lkm's agree."""
    modprobe = kmod_tool("modprobe")
    pk = subprocess.run([modprobe, *args], capture_output=True, check=False)
    pl = lkm_modprobe(args)
    assert (pl.stdout, pl.stderr, pl.returncode) == (pk.stdout, pk.stderr, pk.returncode), args


CASES = [
    ["a"],
    ["b"],
    ["d-e"],
    ["d_e", "p=1", "q=has space"],
    ["dev:ax"],
    ["dev:bx"],
    ["dev:Bx"],
    ["dev:b1"],
    ["my-alias"],
    ["wildcard"],
    ["f"],
    ["-b", "f"],
    ["-b", "dev:f"],
    ["dev:f"],
    ["g"],
    ["g", "x=1"],
    ["-i", "g"],
    ["nothing"],
    ["-q", "nothing"],
    ["-a", "a", "c"],
    ["-R", "dev:b1"],
    ["symbol:a_fn"],
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mp")
    make_tree(
        root,
        MODS,
        modules_builtin=b"kernel/fs/ext4/ext4.ko\n",
        modules_builtin_modinfo=b"ext4.alias=fs-ext4\0",
    )
    (root / "modprobe.d").mkdir()
    (root / "modprobe.d" / "test.conf").write_bytes(CONF)
    depmod = kmod_tool("depmod")
    subprocess.run([depmod, "-b", str(root), RELEASE], check=True, capture_output=True)
    return root


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c))
def test_directives(tree: Path, case: list[str]) -> None:
    args = ["-d", str(tree), "-S", RELEASE, "-C", str(tree / "modprobe.d")]
    if "-R" not in case:
        args.append("--show-depends")
    same(args + case)


COMMANDS = b"""install g /bin/sh -c "echo MOD=\\$MODPROBE_MODULE opts=$CMDLINE_OPTS; exit 3"
remove g /bin/echo removing $CMDLINE_OPTS
install c /bin/true
  # indented comment: a bad line to kmod
softdep a pre: c
"""
NO_KERNEL_CASES = [
    ["g", "x=1"],
    ["-r", "g"],
    ["-r", "--show-depends", "g"],
    ["-r", "--show-depends", "a"],
    ["-n", "-v", "c"],
    ["-n", "a"],
    ["-r", "ext4"],
    ["--first-time", "ext4"],
    ["ext4"],
    ["-r", "--first-time", "a"],
    ["-r", "-n", "a"],
    ["--show-depends", "-v", "a"],
    ["-r", "--remove-holders", "ext4"],
    ["-r", "nothing"],
    ["-c"],
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", NO_KERNEL_CASES, ids=lambda c: " ".join(c))
def test_commands_and_state(tree: Path, case: list[str], tmp_path: Path) -> None:
    """Paths that need no module inserted: install/remove commands run, builtin and
    not-loaded modules, -c; what kmod prints is the oracle (no module here is loaded)."""
    (tmp_path / "c.conf").write_bytes(COMMANDS)
    same(["-d", str(tree), "-S", RELEASE, "-C", str(tmp_path / "c.conf"), *case])


@pytest.mark.parametrize(
    "case",
    [
        ["--show-depends", "ext4"],
        ["--show-depends", "fs-ext4"],
        ["--show-depends", "a"],
        ["-c"],
        ["-R", "dev:c9"],
        ["-n", "-v", "-a", "a", "b"],
    ],
    ids=" ".join,
)
@pytest.mark.oracle
def test_builtin_and_default_config(tree: Path, case: list[str]) -> None:
    """The machine's own modprobe.d and kernel command line, read by both."""
    same(["-d", str(tree), "-S", RELEASE, *case])


# Every name and alias of the tree in one call (one resolver: its per-name caches and the
# probe-list generations), under CONF (exact option/install/softdep patterns) and under a
# configuration whose patterns have wildcards (every name asked of every table).
ALL_NAMES = [
    "a",
    "b",
    "d-e",
    "c",
    "f",
    "g",
    "my-alias",
    "wildcard",
    "dev:ax",
    "dev:Bx",
    "dev:de",
    "a",
    "nothing",
]
WILD_CONF = b"""options d* wild=1
options a exact=1
install [g] /bin/true
softdep ? pre: g
softdep c post: b
"""


@pytest.mark.oracle
@pytest.mark.parametrize("conf", [CONF, WILD_CONF], ids=["exact", "wildcards"])
@pytest.mark.parametrize("flags", [[], ["-i"], ["-b"]], ids=["plain", "ignore-install", "blacklist"])
def test_show_depends_many_names(tree: Path, tmp_path: Path, conf: bytes, flags: list[str]) -> None:
    (tmp_path / "t.conf").write_bytes(conf)
    same(["-d", str(tree), "-S", RELEASE, "-C", str(tmp_path), *flags, "-a", "--show-depends", *ALL_NAMES])


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", ["amd64-6.1", "amd64-6.12"])
def test_corpus_sample(name: str, corpus_trees, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trees = {t.name: t for t in corpus_trees}
    require(name in trees, f"corpus tree {name} missing")
    tree = trees[name]
    d = depmod_root(tree, tmp_path)
    subprocess.run([kmod_tool("depmod"), "-b", str(tmp_path), tree.release], check=True)
    for q in random.Random(1).sample(queries(d), 40):
        same(["-d", str(tmp_path), "-S", tree.release, "--show-depends", q])


@pytest.mark.oracle
@pytest.mark.parametrize("flag", ["--show-exports", "--show-modversions"])
def test_show_symbols_fixtures(flag: str) -> None:
    files = sorted((ROOT / "tests" / "fixtures" / "6x").glob("*.ko*")) + sorted(
        (ROOT / "tests" / "fixtures" / "24").glob("*.o")
    )
    for f in files:
        same([flag, str(f)])
    same([flag, "no-such-module"])


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", ["amd64-6.1", "amd64-6.12"])
def test_show_symbols_corpus_sample(name: str, corpus_trees) -> None:  # type: ignore[no-untyped-def]
    trees = {t.name: t for t in corpus_trees}
    require(name in trees, f"corpus tree {name} missing")
    from testing.corpus import module_files

    for f in random.Random(2).sample(module_files(trees[name]), 15):
        for flag in ("--show-exports", "--show-modversions"):
            same([flag, str(f)])


WORD = st.sampled_from(
    ["a", "b-c", "d_e", "f*", "g[-_]h", "x=1", 'y="p q"', "$CMDLINE_OPTS", "pre:", "post:", "#x"]
)
SEP = st.sampled_from([" ", "\t", "  ", " \\\n "])
DIRECTIVE = st.sampled_from(
    ["alias", "options", "install", "remove", "softdep", "blacklist", "include", "bogus", "#", "", " alias"]
)


@st.composite
def config_text(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        words = [draw(DIRECTIVE), *draw(st.lists(WORD, max_size=5))]
        text = words[0]
        for w in words[1:]:
            text += draw(SEP) + w
        lines.append(text)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\\"]))


@pytest.mark.oracle
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=config_text())
def test_config_parser_vs_kmod(tree: Path, tmp_path: Path, text: str) -> None:
    """Generated modprobe.d text, parsed by both and dumped with -c (kmod's parser is the oracle)."""
    conf = tmp_path / "gen.conf"
    conf.write_text(text)
    same(["-d", str(tree), "-S", RELEASE, "-C", str(conf), "-c"])

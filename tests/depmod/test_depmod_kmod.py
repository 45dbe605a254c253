"""lkm depmod against Debian's kmod 30 depmod on small generated trees: every output file,
every message, exit status; depmod.d rules, -e/-E/-F, cycles, unreadable modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from support import RELEASE, ROOT, copy_tree, kmod_tool, make_module, make_tree, outputs


def lkm_depmod(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "lkm", "depmod", *args], capture_output=True, text=True, env=env, check=False
    )


def both(
    tmp_path: Path, modules: dict[str, bytes], args: list[str], tail: tuple[str, ...] = (), **files: bytes
) -> tuple[Path, Path]:
    """Run kmod and lkm depmod on identical copies of one tree; assert same messages, exit
    status and output files; return both modules directories."""
    depmod = kmod_tool("depmod")
    src = tmp_path / "src"
    make_tree(src, modules, **files)
    k_root, l_root = tmp_path / "kmod", tmp_path / "lkm"
    copy_tree(src, k_root)
    copy_tree(src, l_root)
    fix = [a.replace("@ROOT@", str(k_root)) for a in args]
    pk = subprocess.run(
        [depmod, "-b", str(k_root), *fix, RELEASE, *tail], capture_output=True, text=True, check=False
    )
    fix = [a.replace("@ROOT@", str(l_root)) for a in args]
    pl = lkm_depmod(["-b", str(l_root), *fix, RELEASE, *tail])
    assert pl.stderr.replace(str(l_root), "ROOT") == pk.stderr.replace(str(k_root), "ROOT")
    assert pl.stdout.replace(str(l_root), "ROOT") == pk.stdout.replace(str(k_root), "ROOT")
    assert pl.returncode == pk.returncode
    kd, ld = k_root / "lib/modules" / RELEASE, l_root / "lib/modules" / RELEASE
    assert outputs(ld) == outputs(kd)
    return kd, ld


CHAIN = {
    "kernel/drivers/a.ko": make_module(
        "a",
        exports={"a_fn": 0x1111},
        needs={"b_fn": 0x2222, "printk": 5, "missing_fn": 9},
        modinfo=[
            "alias=pci:v00008086d*",
            "alias=foo-bar[-_]x",
            "softdep=pre: b post: c",
            "alias=devname:ax",
            "alias=char-major-10-99",
        ],
    ),
    "kernel/drivers/b-mod.ko": make_module("b_mod", exports={"b_fn": 0x2223}, needs={"c_fn": 1}),
    "kernel/lib/c.ko": make_module(
        "c",
        exports={"c_fn": 1, "shared": 7},
        needs={"weak_fn": 3},
        weak=("weak_fn",),
        modinfo=["alias=bad]x"],
    ),
    "kernel/lib/d.ko": make_module("d", exports={"shared": 8}, needs={"c_fn": 1}),
    "kernel/lib/e.ko": make_module("e", needs={"shared": 7, "a_fn": 0x1111}),
    "updates/c.ko": make_module("c", exports={"c_fn": 1}),
    "kernel/bad.ko": b"not an ELF file at all",
}
ORDER = b"kernel/lib/c.ko\nkernel/drivers/a.ko\nkernel/nothere.ko\n"
BUILTIN = b"kernel/fs/ext4/ext4.ko\nkernel/crypto/crc32c-generic.ko\n"
BUILTIN_INFO = (
    b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c_generic.alias=crypto-crc32c\0crc32c_generic.alias=crc32c\0"
)
SYMVERS = b"0x00000005\tprintk\tvmlinux\tEXPORT_SYMBOL\n0x00000001\tother\tvmlinux\tEXPORT_SYMBOL_GPL\n"
SYSTEM_MAP = b"ffffffff81000000 T printk\nffffffff82000000 r __ksymtab_printk\nbad line\n"


@pytest.mark.oracle
def test_plain_tree(tmp_path: Path) -> None:
    both(
        tmp_path,
        CHAIN,
        [],
        modules_order=ORDER,
        modules_builtin=BUILTIN,
        modules_builtin_modinfo=BUILTIN_INFO,
    )


@pytest.mark.oracle
def test_no_order_no_builtin(tmp_path: Path) -> None:
    both(tmp_path, CHAIN, [])


@pytest.mark.oracle
@pytest.mark.parametrize("extra", [["-e"], ["-e", "-w"], ["-n"], ["-e", "-n"]])
def test_symvers(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "Module.symvers").write_bytes(SYMVERS)
    both(tmp_path, CHAIN, [*extra, "-E", str(tmp_path / "Module.symvers")], modules_order=ORDER)


@pytest.mark.oracle
def test_system_map(tmp_path: Path) -> None:
    (tmp_path / "System.map").write_bytes(SYSTEM_MAP)
    both(tmp_path, CHAIN, ["-e", "-F", str(tmp_path / "System.map")], modules_order=ORDER)


@pytest.mark.oracle
def test_non_ascii_alias(tmp_path: Path) -> None:
    # Non-ASCII bytes inside a node's prefix pass kmod's check (signed chars) and are stored;
    # one that starts a branch indexes kmod's child array with a negative number (undefined
    # behaviour, a corrupt file), so there is no oracle for that case.
    mods = {"kernel/x.ko": make_module("x", modinfo=["alias=caf\u00e9*", "alias=ok"])}
    both(tmp_path, mods, [])


@pytest.mark.oracle
def test_verbose_and_prefix(tmp_path: Path) -> None:
    both(tmp_path, CHAIN, ["-v", "-P", "_"], modules_order=ORDER)


@pytest.mark.parametrize(
    "conf",
    [
        "search external updates built-in\nexternal * @EXT@\n",
        "search updates built-in\nexternal 6\\.1.* @EXT@\n",
        "search updates built-in external\nexternal * @EXT@\n",
        "external 5\\.* @EXT@\n",
    ],
)
@pytest.mark.oracle
def test_external(tmp_path: Path, conf: str) -> None:
    ext = tmp_path / "ext"
    (ext / "sub").mkdir(parents=True)
    (ext / "sub" / "c.ko").write_bytes(make_module("c", exports={"c_fn": 1, "ext_fn": 2}))
    (ext / "newmod.ko").write_bytes(make_module("newmod", needs={"ext_fn": 2}))
    (tmp_path / "ext.conf").write_text(conf.replace("@EXT@", str(ext)))
    both(tmp_path, CHAIN, ["-C", str(tmp_path / "ext.conf")])


@pytest.mark.oracle
def test_e_without_symbols(tmp_path: Path) -> None:
    both(tmp_path, CHAIN, ["-e"])


@pytest.mark.parametrize(
    "conf",
    [
        b"search updates built-in\n",
        b"search built-in updates\n",
        b"search kernel\n",
        b"override c * kernel/lib\n",
        b"override c 5\\.* kernel/lib\nbogus line\ninclude x\n",
        b"exclude updates\n",
        b"# comment\n\nsearch \\\n updates\n",
    ],
)
@pytest.mark.oracle
def test_depmod_d(tmp_path: Path, conf: bytes) -> None:
    cdir = tmp_path / "depmod.d"
    cdir.mkdir()
    (cdir / "test.conf").write_bytes(conf)
    (cdir / "ignored.txt").write_bytes(b"search kernel\n")
    both(tmp_path, CHAIN, ["-C", str(cdir)], modules_order=ORDER)


@pytest.mark.oracle
def test_cycle_writes_nothing(tmp_path: Path) -> None:
    mods = {
        "kernel/x.ko": make_module("x", exports={"x_fn": 1}, needs={"y_fn": 1}),
        "kernel/y.ko": make_module("y", exports={"y_fn": 1}, needs={"z_fn": 1}),
        "kernel/z.ko": make_module("z", exports={"z_fn": 1}, needs={"x_fn": 1}),
        "kernel/p.ko": make_module("p", exports={"p_fn": 1}, needs={"q_fn": 1}),
        "kernel/q.ko": make_module("q", exports={"q_fn": 1}, needs={"p_fn": 1, "r_fn": 1}),
        "kernel/r.ko": make_module("r", exports={"r_fn": 1}),
        "kernel/user.ko": make_module("user", needs={"x_fn": 1}),
    }
    _kd, ld = both(tmp_path, mods, [])
    assert not [n for n in outputs(ld) if n != "modules.order"]


@pytest.mark.oracle
def test_explicit_modules(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "mods", {"a.ko": CHAIN["kernel/lib/c.ko"], "b.ko": CHAIN["kernel/lib/d.ko"]})
    both(tmp_path, {}, [], (str(src / "a.ko"), str(src / "b.ko")))


@pytest.mark.oracle
def test_all_overrides_module_list(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "mods", {"a.ko": CHAIN["kernel/lib/c.ko"]})
    both(tmp_path, CHAIN, ["-a"], (str(src / "a.ko"),))


@pytest.mark.oracle
def test_missing_directory(tmp_path: Path) -> None:
    depmod = kmod_tool("depmod")
    pk = subprocess.run([depmod, "-b", str(tmp_path), "9.9"], capture_output=True, text=True, check=False)
    pl = lkm_depmod(["-b", str(tmp_path), "9.9"])
    assert (pl.returncode, pl.stderr) == (pk.returncode, pk.stderr)


def test_quick_up_to_date(tmp_path: Path) -> None:
    d = make_tree(tmp_path, {"kernel/c.ko": CHAIN["kernel/lib/c.ko"]})
    assert lkm_depmod(["-b", str(tmp_path), RELEASE]).returncode == 0
    before = (d / "modules.dep").stat().st_mtime_ns
    assert lkm_depmod(["-A", "-b", str(tmp_path), RELEASE]).returncode == 0
    assert (d / "modules.dep").stat().st_mtime_ns == before
    assert not list(d.glob("*.tmp"))


@pytest.mark.parametrize(
    "args",
    [
        ["x.y"],
        ["-A", RELEASE],
        ["-A", "9.9"],
        [RELEASE, "relative.ko"],
        [RELEASE, "/nonexistent/x.ko"],
        ["-P", "ab", RELEASE],
        ["--bogus", RELEASE],
        ["-E", "/nonexistent/Module.symvers", RELEASE],
    ],
)
@pytest.mark.oracle
def test_cli_errors(tmp_path: Path, args: list[str]) -> None:
    """Usage and input errors, always under -b (never the running system's tree)."""
    depmod = kmod_tool("depmod")
    k, lk = tmp_path / "k", tmp_path / "l"
    for root in (k, lk):
        make_tree(root, {"kernel/c.ko": CHAIN["kernel/lib/c.ko"]})
    pk = subprocess.run([depmod, "-b", str(k), *args], capture_output=True, text=True, check=False)
    pl = lkm_depmod(["-b", str(lk), *args])
    # getopt names the program as it was invoked
    k_err = pk.stderr.replace(str(k), "ROOT").replace(f"{depmod}:", "depmod:")
    assert (pl.returncode, pl.stdout, pl.stderr.replace(str(lk), "ROOT")) == (pk.returncode, pk.stdout, k_err)
    assert not list(lk.glob("lib/modules/*/*.tmp"))


@pytest.mark.oracle
def test_cycles_sharing_a_module(tmp_path: Path) -> None:
    mods = {
        "kernel/a.ko": make_module("a", {"a_fn": 1}, {"b_fn": 1}),
        "kernel/b.ko": make_module("b", {"b_fn": 1}, {"c_fn": 1}),
        "kernel/c.ko": make_module("c", {"c_fn": 1}, {"a_fn": 1, "d_fn": 1}),
        "kernel/d.ko": make_module("d", {"d_fn": 1}, {"e_fn": 1}),
        "kernel/e.ko": make_module("e", {"e_fn": 1}, {"c_fn": 1, "f_fn": 1}),
        "kernel/f.ko": make_module("f", {"f_fn": 1}),
        "kernel/s.ko": make_module("s", {"s_fn": 1}, {"s_fn": 1}),
    }
    both(tmp_path, mods, [])


@pytest.mark.oracle
def test_tangled_cycles_where_kmod_aborts(tmp_path: Path) -> None:
    """A cycle not through the walk's start overflows kmod 30's report stack (it aborts on an
    assertion); lkm reports the same cycles up to that point, then stops with exit 1."""
    mods = {
        f"kernel/m{i}.ko": make_module(f"m{i}", {f"f{i}": 1}, {f"f{(i * 3 + 1) % 7}": 1}) for i in range(7)
    }
    mods["kernel/w.ko"] = make_module("w", {"wf": 1}, {"f2": 1})
    mods["kernel/m2.ko"] = make_module("m2", {"f2": 1}, {"f5": 1, "wf": 1})
    depmod = kmod_tool("depmod")
    make_tree(tmp_path / "k", mods)
    make_tree(tmp_path / "l", mods)
    pk = subprocess.run(
        [depmod, "-b", str(tmp_path / "k"), RELEASE], capture_output=True, text=True, check=False
    )
    pl = lkm_depmod(["-b", str(tmp_path / "l"), RELEASE])
    k_lines = [x for x in pk.stderr.replace(str(tmp_path / "k"), "R").splitlines() if "Assertion" not in x]
    l_lines = pl.stderr.replace(str(tmp_path / "l"), "R").splitlines()
    assert pk.returncode != 0 and pl.returncode == 1
    assert l_lines[: len(k_lines)] == k_lines
    assert "Cycle report stopped" in l_lines[len(k_lines)]
    assert not [
        p for p in (tmp_path / "l" / "lib/modules" / RELEASE).iterdir() if p.name.startswith("modules.")
    ]


DEPMOD_WORD = st.sampled_from(
    ["updates", "kernel", "kernel/lib", "built-in", "external", "extra", "c", "*", "6\\.1.*"]
)
DEPMOD_DIRECTIVE = st.sampled_from(
    ["search", "override", "exclude", "external", "include", "make_map_files", "bad"]
)


@st.composite
def depmod_conf(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        words = [draw(DEPMOD_DIRECTIVE), *draw(st.lists(DEPMOD_WORD, max_size=4))]
        lines.append(draw(st.sampled_from([" ", "\t"])).join(words))
    return "\n".join(lines) + "\n"


@pytest.mark.oracle
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conf=depmod_conf())
@example(conf="external\t*\tupdates\tupdates\n")  # one directory a line; the rest ignored
def test_depmod_d_generated(tmp_path_factory: pytest.TempPathFactory, conf: str) -> None:
    """Generated depmod.d text (search order, overrides, excludes, externals, bad lines) and
    the tree depmod makes of it: kmod's depmod is the oracle."""
    tmp = tmp_path_factory.mktemp("gen")
    ext = tmp / "ext"
    ext.mkdir()
    (ext / "c.ko").write_bytes(make_module("c", exports={"c_fn": 1}))
    (tmp / "gen.conf").write_text(conf.replace("external ", f"external {ext} ", 1) + f"external * {ext}\n")
    both(tmp, CHAIN, ["-C", str(tmp / "gen.conf")])

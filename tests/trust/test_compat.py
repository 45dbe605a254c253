"""kABI compatibility: lkm compat's verdicts, weak-modules and the symvers diff.

Oracles: kmod's depmod -e -E (the tool RHEL's weak-modules runs) for every "needs unknown
symbol" / "disagrees about version of symbol" finding of Debian's 6.1 modules against 6.12's
Module.symvers, and the weak-modules loop rerunning depmod; Module.symvers rows compared by
hand-independent parsing (awk-like split) for the diff.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.module.file import ModuleFile
from lkm.symbols.table import KernelSymbol
from lkm.trust.compat import (
    TargetKernel,
    check_module,
    depmod_symbol_reports,
    load_symvers,
    load_target,
    symvers_diff,
    weak_modules,
)

from support import FIX6, corpus_tree, require, tree_modules


def headers_symvers(version: str) -> Path:
    found = sorted(
        (corpus_tree(f"headers-{version}") / "usr" / "src").glob("linux-headers-*-amd64/Module.symvers")
    )
    require(found, f"headers-{version}: no Module.symvers")
    return found[0]


def fixture_target(**changes: object) -> TargetKernel:
    """A target built from the fixtures' own kernel: the exports importer needs, with CRCs from
    exporter.ko and the vmlinux CRCs the fixtures were built against (their __versions)."""
    imp = ModuleFile.open(str(FIX6 / "importer.ko"))
    exp = ModuleFile.open(str(FIX6 / "exporter.ko"))
    syms = [
        KernelSymbol(n, exported=True, crc=c)
        for n, c in imp.versions
        if n not in {e.name for e in exp.exports}
    ]
    syms += [KernelSymbol(n, exported=True, crc=c) for n, c in exp.versions]
    syms += [
        KernelSymbol(
            e.name, module="exporter", exported=True, gpl_only=e.gpl, crc=e.crc, namespace=e.namespace
        )
        for e in exp.exports
    ]
    t = TargetKernel("6.1.0-56-amd64", imp.vermagic or "", syms, modules=["exporter.ko"], config={
        "CONFIG_MODVERSIONS": "y", "CONFIG_MODULE_FORCE_LOAD": "y", "CONFIG_MODULE_SIG": "y"})  # fmt: skip
    for k, v in changes.items():
        setattr(t, k, v)
    return t


def kinds(v: object) -> list[tuple[str, str]]:
    return [(r.kind, r.subject) for r in v.reasons if r.errno]  # type: ignore[attr-defined]


def test_fixture_importer_loads_on_its_own_kernel() -> None:
    v = check_module(str(FIX6 / "importer.ko"), fixture_target())
    assert v.loads, v.reasons
    assert v.needs == ["exporter"]
    assert v.taints == "OE"


def test_each_reason_with_the_kernels_errno() -> None:
    imp = str(FIX6 / "importer.ko")
    t = fixture_target()
    sym = t.exports["lkm_fixture_add"]
    t.exports["lkm_fixture_add"] = KernelSymbol(
        sym.name, module="exporter", exported=True, crc=(sym.crc or 0) ^ 1
    )
    v = check_module(imp, t)
    assert (v.errno, kinds(v)) == (errno.EINVAL, [("crc", "lkm_fixture_add")])
    assert v.reasons[-1].message == "importer: disagrees about version of symbol lkm_fixture_add"
    t = fixture_target()
    del t.exports["lkm_fixture_add"]
    v = check_module(imp, t)
    assert (v.errno, kinds(v)) == (errno.ENOENT, [("unknown_symbol", "lkm_fixture_add")])
    t = fixture_target()
    t.vermagic = "6.1.0-56-amd64 SMP mod_unload modversions "
    v = check_module(imp, t)
    assert v.errno == errno.ENOEXEC and kinds(v)[0][0] == "vermagic"
    t = fixture_target()
    t.vermagic = "9.9.9 SMP preempt mod_unload modversions "  # release skipped with modversions
    assert check_module(imp, t).loads
    t = fixture_target(modules=set())
    v = check_module(imp, t)
    assert kinds(v) == [("dependency", "exporter")]


def test_namespace_and_gpl_only() -> None:
    imp = ModuleFile.open(str(FIX6 / "importer.ko"))
    exp = ModuleFile.open(str(FIX6 / "exporter.ko"))
    ns_syms = [e.name for e in exp.exports if e.namespace]
    gpl_syms = [e.name for e in exp.exports if e.gpl and not e.namespace]
    assert ns_syms and gpl_syms and "LKM_FIXTURE" in imp.import_ns
    data = (FIX6 / "importer.ko").read_bytes()
    # a module that does not import the namespace: rename the import_ns value in .modinfo
    patched = data.replace(b"import_ns=LKM_FIXTURE", b"import_ns=LKM_FIXTURX")
    v = check_module(str(FIX6 / "importer.ko"), fixture_target(), data=patched)
    assert {s for k, s in kinds(v) if k == "namespace"} == {
        n for n in ns_syms if n in {x.name for x in imp.needed}
    }
    assert v.errno == errno.EINVAL
    # a non-GPL module: GPL-only exports are invisible (ENOENT)
    patched = data.replace(b"license=GPL\0", b"license=BSD\0")
    v = check_module(str(FIX6 / "importer.ko"), fixture_target(), data=patched)
    needed = {x.name for x in imp.needed}
    assert {s for k, s in kinds(v) if k == "gpl_only"} == {n for n in gpl_syms if n in needed} | {
        s.name
        for s in fixture_target().exports.values()
        if s.gpl_only and s.name in needed and not s.namespace
    }
    assert "P" in v.taints


def depmod_warnings(tmp: Path, release: str, mods: list[Path], symvers: Path) -> dict[str, list[str]]:
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    require(depmod, "kmod's depmod not installed")
    extra = tmp / "lib" / "modules" / release / "extra"
    if extra.exists():
        shutil.rmtree(extra)
    extra.mkdir(parents=True)
    for m in mods:
        shutil.copy(m, extra / m.name)
    r = subprocess.run([str(depmod), "-b", str(tmp), "-e", "-E", str(symvers), release],
                       capture_output=True, text=True, check=True)  # fmt: skip
    out: dict[str, list[str]] = {}
    for line in r.stderr.splitlines():
        for marker in (" needs unknown symbol ", " disagrees about version of symbol "):
            if marker in line:
                path = line.split("WARNING: ", 1)[1].split(marker)[0]
                out.setdefault(Path(path).name, []).append(marker.strip() + " " + line.split(marker)[1])
    return out


@pytest.mark.corpus
@pytest.mark.oracle
def test_61_modules_against_612_symvers_equal_depmod(tmp_path: Path) -> None:
    """Every needs-unknown / CRC finding for 200+ Debian 6.1 modules against 6.12's Module.symvers
    equals kmod depmod -e -E's, and the weak-modules loop gives the set the depmod loop gives."""
    release = "6.12.118+deb12-amd64"
    symvers = headers_symvers("6.12")
    mods = tree_modules("amd64-6.1")[::18]
    assert len(mods) >= 200
    theirs = depmod_warnings(tmp_path, release, mods, symvers)
    # depmod -E takes only Module.symvers' vmlinux rows; module exports come from the tree
    kernel = {s.name: s.crc for s in load_symvers(str(symvers)) if s.module is None}
    from lkm.module.source import read_module

    loaded = {str(m): ModuleFile.from_bytes(bytes(read_module(str(m)).data), path=str(m)) for m in mods}
    ours = {Path(p).name: why for p, why in depmod_symbol_reports(loaded, kernel).items()}
    assert {k: sorted(v) for k, v in ours.items()} == {k: sorted(v) for k, v in theirs.items()}
    assert len(ours) > 100  # most 6.1 modules do not fit 6.12
    # weak-modules: rerun depmod without the flagged modules until it flags none
    alive = list(mods)
    while True:
        flagged = depmod_warnings(tmp_path, release, alive, symvers)
        if not flagged:
            break
        alive = [m for m in alive if m.name not in flagged]
    res = weak_modules([str(m) for m in mods], [s for s in load_symvers(str(symvers)) if s.module is None])
    assert sorted(Path(p).name for p in res.compatible) == sorted(m.name for m in alive)


@pytest.mark.corpus
def test_61_modules_against_612_kernel_verdicts(tmp_path: Path) -> None:
    """lkm compat over the 6.12 tree: no 6.1 module passes the ELF check (sizeof(struct module))
    nor module_layout (its CRC changed)."""
    target = load_target(str(corpus_tree("amd64-6.12")), symvers=str(headers_symvers("6.12")))
    assert target.modversions and target.keys is not None
    mods = tree_modules("amd64-6.1")[::40]
    for m in mods:
        v = check_module(str(m), target)
        assert not v.loads
        kinds_seen = [r.kind for r in v.reasons if r.errno]
        # struct module grew from 896 to 1280 bytes: the ELF check refuses first (ENOEXEC)
        assert v.errno == errno.ENOEXEC and kinds_seen[:2] == ["elf", "module_layout"], (m, v.reasons[:3])
        assert v.reasons[0].subject == "E"  # signed by 6.1's build key: unknown to 6.12, taint E


@pytest.mark.corpus
def test_61_modules_load_on_their_own_kernel() -> None:
    target = load_target(str(corpus_tree("amd64-6.1")), symvers=str(headers_symvers("6.1")))
    mods = tree_modules("amd64-6.1")[::40]
    for m in mods:
        v = check_module(str(m), target)
        assert v.loads and "E" not in v.taints, (m, v.reasons)


@pytest.mark.corpus
def test_symvers_diff_61_612(tmp_path: Path) -> None:
    a, b = headers_symvers("6.1"), headers_symvers("6.12")

    def rows(p: Path) -> dict[str, list[str]]:
        out = {}
        for line in p.read_text().splitlines():
            cols = line.split("\t")
            out.setdefault(cols[1], cols)
        return out

    ra, rb = rows(a), rows(b)
    changes = symvers_diff(load_symvers(str(a)), load_symvers(str(b)))
    by = {}
    for c in changes:
        by.setdefault(c.change, set()).add(c.name)
    assert by["added"] == rb.keys() - ra.keys()
    assert by["removed"] == ra.keys() - rb.keys()
    both = ra.keys() & rb.keys()
    assert by["crc"] == {n for n in both if int(ra[n][0], 16) != int(rb[n][0], 16)}
    assert by.get("gpl", set()) == {n for n in both if ra[n][3] != rb[n][3]}
    assert by.get("namespace", set()) == {n for n in both if ra[n][4:5] != rb[n][4:5]}
    from lkm.cli import main

    assert main(["lkm", "compat", "diff", str(a), str(b), "--json"]) == 0


def test_modules_given_together_provide_each_others_symbols() -> None:
    """importer needs exporter's symbols: alone on a kernel without them it fails (ENOENT),
    given with exporter it loads after it (its CRCs and namespace are exporter's)."""
    from lkm.trust.compat import check_modules

    t = fixture_target()
    for name in [n for n, s in t.exports.items() if s.module == "exporter"]:
        del t.exports[name]
    alone = check_module(str(FIX6 / "importer.ko"), t)
    assert alone.errno == errno.ENOENT
    both = check_modules([str(FIX6 / "exporter.ko"), str(FIX6 / "importer.ko")], t)
    assert [v.loads for v in both] == [True, True]
    assert both[1].needs == ["exporter"]

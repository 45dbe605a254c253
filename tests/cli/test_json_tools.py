"""Every tool's ``--json`` (schema lkm/1) on fixtures: each document valid against the published
JSON Schema (lkm/data/lkm-1.schema.json), addresses hex strings, streams JSON Lines; and each
JSON view says what the tool's text says (the text being the kmod-, kernel- or
binutils-checked one), so the JSON cannot drift from it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import FIX6, ROOT, make_tree, require
from support import lkm_process as lkm

DATA = ROOT / "src" / "lkm" / "data"
OOPS = ROOT / "tests" / "data" / "oops"
REL = "6.1.0-1-amd64"


def docs(
    p: subprocess.CompletedProcess[str], kind: str | tuple[str, ...], validator: Any
) -> list[dict[str, Any]]:
    """The JSON Lines of a run, each valid lkm/1 of ``kind``."""
    assert p.returncode in (0, 1, 2), p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert out, (p.stdout, p.stderr)
    kinds = (kind,) if isinstance(kind, str) else kind
    step = max(1, len(out) // 200)  # jsonschema takes a millisecond a document: 200 spread over a stream
    for d in out[::step]:
        errors = sorted(validator.iter_errors(d), key=str)
        assert not errors, (d, errors[0])
    assert all(d["schema"] == "lkm/1" and d["kind"] in kinds for d in out)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    mods = {f"kernel/{m}.ko": (FIX6 / f"{m}.ko").read_bytes() for m in ("exporter", "importer", "chardev")}
    d = make_tree(root, mods, release=REL, modules_builtin=b"kernel/fs/ext4.ko\n")
    assert lkm("depmod", "-b", str(root), REL).returncode == 0
    (d / "modprobe.conf").write_text(
        "options importer answer=42\nblacklist chardev\ninstall dummy /bin/true\n"
    )
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    state = str(tmp_path_factory.mktemp("model") / "k.db")
    assert lkm("model", "boot", "linux-6.1-amd64", "--state", state).returncode == 0
    for m in ("exporter.ko", "importer.ko"):
        assert lkm("insmod", "--state", state, str(FIX6 / m)).returncode == 0
    return state


def test_depmod_json_is_modules_dep(tree: Path, validator: Any) -> None:
    out = docs(lkm("depmod", "-n", "--json", "-b", str(tree), REL), "depmod", validator)
    dep = (tree / "lib/modules" / REL / "modules.dep").read_text()
    want = {p.partition(":")[0]: p.partition(":")[2].split() for p in dep.splitlines()}
    assert {d["path"]: d["depends"] for d in out if not d["builtin"]} == want
    by = {d["name"]: d for d in out}
    assert by["ext4"]["builtin"] and by["ext4"]["path"] == "kernel/fs/ext4.ko"
    assert "lkmchar" in by["chardev"]["aliases"]
    assert sorted(by["exporter"]["symbols"]) == sorted(
        ln.split()[1][len("symbol:") :]
        for ln in (tree / "lib/modules" / REL / "modules.symbols").read_text().splitlines()[1:]
    )


def test_modprobe_json(tree: Path, validator: Any) -> None:
    base = ["modprobe", "-d", str(tree), "-S", REL, "-C", str(tree / "lib/modules" / REL / "modprobe.conf")]
    text = lkm(*base, "-D", "importer").stdout.splitlines()
    steps = docs(lkm(*base, "-D", "--json", "importer"), "modprobe-step", validator)
    assert [f"insmod {d['path']} {d['options']}".rstrip() for d in steps] == [t.rstrip() for t in text]
    assert steps[-1]["options"] == "answer=42" and steps[0]["module"] == "exporter"
    b = docs(lkm(*base, "-D", "--json", "ext4"), "modprobe-step", validator)
    assert [(d["action"], d["module"]) for d in b] == [("builtin", "ext4")]
    a = docs(lkm(*base, "-R", "--json", "lkmchar"), "modprobe-alias", validator)
    assert [d["module"] for d in a] == lkm(*base, "-R", "lkmchar").stdout.split()
    c = docs(lkm(*base, "-c", "--json"), "modprobe-config", validator)
    lines = [ln for ln in lkm(*base, "-c").stdout.splitlines() if ln and not ln.startswith("#")]
    assert len(c) == len(lines)
    assert {(d["directive"], d["name"]) for d in c if d["source"] == "config"} >= {
        ("options", "importer"),
        ("blacklist", "chardev"),
        ("install", "dummy"),
    }
    x = docs(
        lkm("modprobe", "--show-exports", "--json", str(FIX6 / "exporter.ko")), "export-version", validator
    )
    text = lkm("modprobe", "--show-exports", str(FIX6 / "exporter.ko")).stdout.splitlines()
    assert [f"0x{d['crc']:08x}\t{d['symbol']}" for d in x] == text


def test_model_kernel_files_json(model: str, validator: Any) -> None:
    mods = docs(lkm("proc", "--state", model, "--json", "modules"), "lsmod", validator)
    assert mods == docs(lkm("lsmod", "--state", model, "--json"), "lsmod", validator)
    text = lkm("proc", "--state", model, "kallsyms").stdout.splitlines()
    ks = docs(lkm("proc", "--state", model, "--json", "kallsyms"), "symbol", validator)
    assert len(ks) == len(text)
    for d, t in zip(ks, text, strict=True):
        a, typ, rest = t.split(" ", 2)
        name, _tab, mod = rest.partition("\t")
        assert (int(d["address"], 16), d["type"], d["name"], d["module"]) == (
            int(a, 16), typ, name, mod[1:-1] or None)  # fmt: skip
    assert docs(lkm("kallsyms", "--state", model, "--json"), "symbol", validator) == ks
    ksyms = docs(lkm("proc", "--state", model, "--json", "ksyms"), "symbol", validator)
    assert docs(lkm("ksyms", "--state", model, "--json", "-a"), "symbol", validator) == ksyms
    rows = lkm("ksyms", "--state", model, "-a", "-h").stdout.splitlines()
    assert len(rows) == len(ksyms) and all(d["exported"] for d in ksyms)
    assert {d["name"] for d in ksyms if d["module"] == "exporter"} >= {"lkm_fixture_add"}
    va = docs(lkm("proc", "--state", model, "--json", "vmallocinfo"), "vmalloc-area", validator)
    vtext = [
        ln
        for ln in lkm("proc", "--state", model, "vmallocinfo").stdout.splitlines()
        if not ln.startswith("#")
    ]
    assert [(d["start"], d["end"]) for d in va] == [tuple(ln.split()[0].split("-")) for ln in vtext]
    secs = docs(lkm("proc", "--state", model, "--json", "memory"), "section", validator)
    stext = lkm("proc", "--state", model, "memory").stdout.splitlines()
    assert [(d["module"], d["name"], int(d["address"], 16)) for d in secs] == [
        (f[0], f[1], int(f[2], 16)) for f in (ln.split() for ln in stext)
    ]


def test_link_json(tmp_path: Path, validator: Any) -> None:
    from lkm.module import ModuleFile

    mod = ModuleFile.open(FIX6 / "chardev.ko")
    names = sorted(n.name for n in mod.needed)
    ks = tmp_path / "kallsyms"
    ks.write_text("".join(f"{0xFFFFFFFF81000000 + i * 0x100:016x} T {n}\n" for i, n in enumerate(names)))
    base = ["link", str(FIX6 / "chardev.ko"), "--kernel", str(ks)]
    (d,) = docs(lkm(*base, "--json"), "link", validator)
    text = lkm(*base).stdout.splitlines()
    head = text[0].split()
    assert (d["relocations"], len(d["imports"])) == (int(head[1]), int(head[3]))
    assert [(s["name"], int(s["address"], 16), s["size"], s["region"]) for s in d["sections"]] == [
        (f[0], int(f[1], 16), int(f[2], 16), f[3]) for f in (ln.split() for ln in text[1:])
    ]
    assert d["imports"] == {n: f"0x{0xFFFFFFFF81000000 + i * 0x100:x}" for i, n in enumerate(names)}
    assert d["regions"]["core"]["address"] == "0xffffffffc0000000"  # module_alloc's start


def test_faddr2line_json(validator: Any) -> None:
    from lkm.module import ModuleFile

    mod = ModuleFile.open(FIX6 / "dwarfmod.ko")
    func = next(s for s in mod.elf.symbols() if s.name == "dwarfmod_square")
    spec = f"dwarfmod_square+0x4/{func.size:#x}"
    (d,) = docs(lkm("faddr2line", "--json", str(FIX6 / "dwarfmod.ko"), spec), "faddr2line", validator)
    text = lkm("faddr2line", str(FIX6 / "dwarfmod.ko"), spec).stdout.splitlines()
    assert text[0] == f"{d['function']}+{d['offset']:#x}/{d['size']:#x}:"
    assert text[1:] == [
        f"{'(inlined by) ' if i else ''}{f['function']} at {f['location']}" for i, f in enumerate(d["frames"])
    ]


def test_why_triage_sig_compat_firmware_json(tree: Path, tmp_path: Path, validator: Any) -> None:
    (w,) = docs(lkm("why", "-d", str(tree), "-S", REL, "--json", "exporter"), "why", validator)
    assert w["modules"] == ["exporter"]
    (t,) = docs(lkm("triage", "--json", str(OOPS)), "triage", validator)
    assert t == {**json.loads(lkm("triage", "--format", "json", str(OOPS)).stdout)}
    (s,) = docs(
        lkm(
            "sig",
            "verify",
            "--keyring",
            str(FIX6 / "signing_key.x509"),
            "--json",
            str(FIX6 / "chardev-signed.ko"),
        ),
        "sig-verify",
        validator,
    )
    assert s["modules"][0]["errno"] == 0
    a, b = tmp_path / "a.symvers", tmp_path / "b.symvers"
    a.write_text("0x00000001\tfoo\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tbar\tvmlinux\tEXPORT_SYMBOL\t\n")
    b.write_text("0x00000003\tfoo\tvmlinux\tEXPORT_SYMBOL\t\n0x00000004\tbaz\tvmlinux\tEXPORT_SYMBOL_GPL\t\n")
    ch = docs(lkm("compat", "diff", str(a), str(b), "--json"), "symvers-change", validator)
    assert sorted((d["change"], d["symbol"]) for d in ch) == sorted(
        tuple(ln.split("\t")[:2]) for ln in lkm("compat", "diff", str(a), str(b)).stdout.splitlines()
    )
    sym = tmp_path / "Module.symvers"
    exports = lkm("modprobe", "--show-exports", str(FIX6 / "exporter.ko")).stdout.splitlines()
    sym.write_text(
        "".join(f"{c}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for c, n in (ln.split("\t") for ln in exports))
    )
    (wm,) = docs(lkm("compat", "--weak-modules", "--symvers", str(sym), "--json", str(FIX6 / "importer.ko")),
                 "compat-weak", validator)  # fmt: skip
    assert set(wm["compatible"]) | set(wm["incompatible"]) == {str(FIX6 / "importer.ko")}
    # a module asking for firmware: exporter with its "license=GPL" turned into "firmware=ab"
    fw = tmp_path / "fw"
    data = (FIX6 / "exporter.ko").read_bytes()
    assert data.count(b"license=GPL\0") == 1
    make_tree(fw, {"kernel/fwmod.ko": data.replace(b"license=GPL\0", b"firmware=ab\0")}, release=REL)
    (fw / "lib/firmware").mkdir(parents=True)
    (fw / "lib/firmware/ab").write_bytes(b"x")
    fwmod = str(fw / "lib/modules" / REL / "kernel/fwmod.ko")
    f = docs(lkm("firmware", "-b", str(fw), "-S", REL, "--json", fwmod), "firmware", validator)
    assert [(d["name"], d["found"]) for d in f] == [("ab", str(fw / "lib/firmware/ab"))]


def test_btf_json(validator: Any) -> None:
    base = "/sys/kernel/btf/vmlinux"
    require(os.path.exists(base), "no /sys/kernel/btf/vmlinux on this machine")
    rows = docs(lkm("btf", "--json", "-B", base, str(FIX6 / "exporter.ko")), "btf", validator)
    assert [r["module"] for r in rows] == [str(FIX6 / "exporter.ko")]


def test_verify_json_document(validator: Any) -> None:
    """The verify document of a report with every kind of difference (a machine's memory is a
    vm test's: tests/vm/test_snapshot.py)."""
    from lkm.cli.verify import _json
    from lkm.kernel.verify import VerifyReport

    rep = VerifyReport("m")
    rep.layout.append(".text: lkm 0x0, kernel 0x10")
    rep.bytes.append((0xFFFFFFFFC0000010, ".text", 0x10, b"\x01\x02", b"\x01\x03"))
    rep.kallsyms.append("-ffffffffc0000000 t f\t[m]")
    rep.compared, rep.masked = 4096, {"alternatives": 3}
    d = json.loads(_json(rep, "/x/m.ko"))
    assert not sorted(validator.iter_errors(d), key=str)
    assert (d["ok"], d["differences"], d["bytes"][0]["address"], d["bytes"][0]["lkm"]) == (
        False, 3, "0xffffffffc0000010", "0102")  # fmt: skip


@pytest.mark.corpus
def test_kallsyms_from_image_json(corpus_trees: list[Any], validator: Any) -> None:
    tree = next((t for t in corpus_trees if t.name == "amd64-6.1"), None)
    require(tree is not None, "corpus tree amd64-6.1 missing")
    text = lkm("kallsyms", "--from-image", str(tree.vmlinuz)).stdout.splitlines()
    out = docs(lkm("kallsyms", "--from-image", str(tree.vmlinuz), "--json"), "symbol", validator)
    assert [f"{int(d['address'], 16):016x} {d['type']} {d['name']}" for d in out] == text
    assert sum(d["exported"] for d in out) > 10000


def test_every_tool_has_json() -> None:
    """The README's table: every tool takes --json (insmod/rmmod: what happened, kmod: list and
    static-nodes, demo: its steps; tests/cli/test_json_load.py checks their documents)."""
    from lkm.cli import TOOLS, all_tools

    for name in TOOLS:
        tool = all_tools()[name]
        assert any("json" in o.long for o in tool.options), name

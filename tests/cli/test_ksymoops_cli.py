"""lkm ksymoops as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import lkm_cmd, run

DATA = Path(__file__).resolve().parent.parent / "data" / "oops"


def test_no_symbols_keeps_report() -> None:
    src = DATA / "vm-6.1-null.txt"
    r = run([*lkm_cmd(), "ksymoops", "-K", "-L", str(src)])
    assert r.stdout.decode() == src.read_text()
    assert r.returncode == 0 and b"no kernel symbols" in r.stderr  # a warning, not a failure


def test_garbage_and_json() -> None:
    r = run([*lkm_cmd(), "ksymoops", "--format", "json", "-K", "-L", str(DATA / "spec-garbage.txt")])
    doc = json.loads(r.stdout)
    assert r.returncode == 3  # no report in the input
    assert doc["reports"] == [] and len(doc["lines"]) == len(
        (DATA / "spec-garbage.txt").read_text().splitlines()
    )


def test_unreadable_file_one_line_error(tmp_path: Path) -> None:
    r = run([*lkm_cmd(), "ksymoops", "-k", str(tmp_path / "missing"), str(DATA / "vm-6.1-null.txt")])
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.decode().count("\n") == 1 and "missing" in r.stderr.decode()


def test_ksyms24_module_map(tmp_path: Path) -> None:
    """2.4: the __insmod_*_S<sec>_L<len> symbols of /proc/ksyms place the module."""
    ksyms = tmp_path / "ksyms"
    ksyms.write_text(
        "c0115d00 sys_init_module_R1b7d4074\n"
        "c88a4000 __insmod_oops24_O/lib/modules/2.4.20/misc/oops24.o_M3E8A1B2C_V132116\t[oops24]\n"
        "c88a4060 __insmod_oops24_S.text_L64\t[oops24]\n"
        "c88a4060 oops24_init\t[oops24]\n"
    )
    r = run(
        [
            *lkm_cmd(),
            "ksymoops",
            "--format",
            "ksymoops",
            "-k",
            str(ksyms),
            str(DATA / "spec-i386-2.4-oops.txt"),
        ]
    )
    out = r.stdout.decode()
    assert "Trace; c0115d58 <sys_init_module+58/" in out  # ksymoops' form: hex without 0x
    assert "Trace; c88a4060 <[oops24]oops24_init+0/40>" in out


@pytest.mark.oracle
def test_ksyms24_object_match(tmp_path: Path) -> None:
    """2.4 without __insmod symbols (insmod -y): the module's object matched through a unique
    export places every symbol of the object, static ones included.  The module is loaded by
    lkm link's model of modutils 2.4.16's insmod (checked against GNU ld elsewhere): its
    /proc/ksyms lines are the input, its linked ELF says where each symbol went."""
    from support import FIX24

    kmap = tmp_path / "ksyms-kernel"
    kmap.write_text("c0118000 printk\n")
    elf = tmp_path / "fat24.elf"
    mod_ksyms = tmp_path / "fat24.ksyms"
    r = run([*lkm_cmd(), "link", str(FIX24 / "fat24.o"), "--kernel", str(kmap), "--layout", "linux-2.4",
             "--base", "0xc8800000", "--no-ksymoops", "--ksyms", str(mod_ksyms), "-o", str(elf)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    nm = {ln.split()[2]: int(ln.split()[0], 16) for ln in run(["nm", str(elf)]).stdout.decode().splitlines()}
    assert "__insmod" not in mod_ksyms.read_text() and mod_ksyms.read_text().count("[fat24]") >= 2
    ksyms = tmp_path / "ksyms"
    ksyms.write_text(mod_ksyms.read_text() + "c0118000 printk\n")
    objs = tmp_path / "objs"
    objs.mkdir()
    (objs / "fat24.o").write_bytes((FIX24 / "fat24.o").read_bytes())
    report = tmp_path / "oops.txt"
    report.write_text(
        "Unable to handle kernel NULL pointer dereference at virtual address 00000000\n"
        f"EIP:    0010:[<{nm['exit_fat24_fs']:08x}>]    Not tainted\n"
        f"Call Trace:    [<{nm['fat24_dir_empty'] + 5:08x}>] [<{nm['day_n'] + 3:08x}>]\n"
    )
    out = run(
        [*lkm_cmd(), "ksymoops", "--format", "ksymoops", "-k", str(ksyms), "-o", str(objs), str(report)]
    )
    text = out.stdout.decode()
    # exit_fat24_fs and cleanup_module share the address: the first in the symbol table wins
    assert f">>EIP; {nm['exit_fat24_fs']:08x} <[fat24]exit_fat24_fs+0/" in text
    assert "<[fat24]fat24_dir_empty+5/" in text and "<[fat24]day_n+3/" in text


@pytest.mark.oracle
def test_separate_debug_file_by_build_id(tmp_path: Path) -> None:
    """A stripped, compressed module file; its DWARF in <root>/.build-id/xx/rest.debug: the
    frame gets the line addr2line gives for the same place of the debug file."""
    import lzma
    import shutil
    import subprocess

    from lkm.module import ModuleFile

    from support import FIX6, require

    require(shutil.which("strip") and shutil.which("addr2line"), "binutils missing")
    ko = FIX6 / "dwarfmod.ko"
    bid = ModuleFile.open(ko).build_id
    assert bid is not None
    root = tmp_path / "debug"
    dbg = root / ".build-id" / bid.hex()[:2] / (bid.hex()[2:] + ".debug")
    dbg.parent.mkdir(parents=True)
    shutil.copyfile(ko, dbg)
    objs = tmp_path / "modules"
    objs.mkdir()
    stripped = tmp_path / "dwarfmod.ko"
    subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(ko)], check=True)
    (objs / "dwarfmod.ko.xz").write_bytes(lzma.compress(stripped.read_bytes(), format=lzma.FORMAT_XZ))
    report = tmp_path / "warn.txt"
    report.write_text(
        "WARNING: CPU: 0 PID: 1 at dwarfmod.c:30 dwarfmod_init+0x10/0x1f [dwarfmod]\n"
        "Call Trace:\n <TASK>\n dwarfmod_init+0x10/0x1f [dwarfmod]\n </TASK>\n"
    )
    r = run([*lkm_cmd(), "ksymoops", "-K", "-L", "-o", str(objs), "--debug-root", str(root), str(report)])
    want = subprocess.run(
        ["addr2line", "-i", "-j", ".init.text", "-e", str(ko), "0xf"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"dwarfmod_init ({' '.join(want)}) dwarfmod" in r.stdout.decode()


def test_debian_placeholder_system_map_hint(tmp_path: Path) -> None:
    """Debian's /boot/System.map-* is a one-line placeholder: say so and point to the image."""
    m = tmp_path / "System.map-6.1.0-56-amd64"
    m.write_text("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")
    r = run([*lkm_cmd(), "ksymoops", "-m", str(m), str(DATA / "vm-6.1-null.txt")])
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and "lkm kallsyms --from-image" in err


def test_truncated_code_byte(tmp_path: Path) -> None:
    """A Code: line whose last byte the console cut ("... 83 3d 854") decodes in every format."""
    text = (DATA / "vm-6.1-gpf.txt").read_text()
    lines = text.splitlines(True)
    i = next(n for n, ln in enumerate(lines) if "Code: " in ln)
    lines[i] = lines[i].rstrip("\n")[:-1] + "\n"
    src = tmp_path / "cut.txt"
    src.write_text("".join(lines))
    for fmt in ("ksymoops", "decode-stacktrace", "json"):
        r = run([*lkm_cmd(), "ksymoops", "--format", fmt, "-K", "-L", str(src)])
        assert r.returncode == 0 and r.stdout and b"Traceback" not in r.stderr, r.stderr


@pytest.mark.corpus
@pytest.mark.vm
def test_decode_stacktrace_positional_form() -> None:
    """decode_stacktrace.sh's arguments (vmlinux [base_path [modules_path]], report on stdin):
    module frames get their source lines from the modules found under modules_path."""

    from support import oops_capture, require

    if not (oops_capture("amd64-6.1") / "modules").is_dir():
        pytest.skip("no amd64-6.1 oops capture")
    cap = oops_capture("amd64-6.1")
    require((cap / "modules" / "oopsmod.ko").is_file(), "no guest modules")
    report = (DATA / "vm-6.1-gpf.txt").read_bytes()
    # any ELF file stands for vmlinux here: core-kernel frames simply keep their text
    r = run(
        [*lkm_cmd(), "ksymoops", str(cap / "modules" / "oopsmod.ko"), "auto", str(cap / "modules")],
        input=report,
    )
    assert r.returncode == 0, r.stderr
    assert b"oopsmod_write (" in r.stdout and b"oopsmod.c:78)" in r.stdout

#!/usr/bin/env python3
"""Module signature verdicts of a real kernel vs lkm's (``lkm sig verify``), in QEMU.

Boots Debian's signed 6.1 kernel (linux-image-<abi>-amd64, not -unsigned) with
``module.sig_enforce=1`` and an initramfs (busybox-static) holding, for N of its modules with no
dependencies: the module as shipped, one byte of .text changed, one byte of the signature
changed, the signature stripped, the trailer's algo field set (EBADMSG); plus lkm's unsigned
fixtures and fixtures signed with the test key.  The guest insmods each file and prints the
errno; it also prints /proc/keys.  The host compares each errno with lkm's prediction
(module_sig_check under enforcement: EKEYREJECTED for unsigned / unknown key / bad signature,
the error itself for malformed signatures, anything else means the signature passed) and the
guest's .builtin_trusted_keys with ``lkm sig keys``.

    scripts/guest_trust.py --package-dir DIR [--count 200] [--timeout 1800] [--out DIR]

DIR holds the extracted linux-image-6.1.0-N-amd64 package (boot/vmlinuz-*, lib/modules/*).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from lkm.compress import decompress, detect  # noqa: E402
from lkm.module.file import ModuleFile  # noqa: E402
from lkm.trust.keys import trusted_keys_from_image  # noqa: E402
from lkm.trust.sig import MODULE_SIG_STRING, mod_verify_sig, module_sig_check  # noqa: E402
from testing.corpus import corpus_dir  # noqa: E402
from testing.guest import boot, busybox_for, insmod_errno, make_initramfs, software_module  # noqa: E402

INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk
echo "LKM-TRUST-ENFORCE $(cat /sys/module/module/parameters/sig_enforce)"
$B grep -E 'asymmetri|keyring' /proc/keys | while read l; do echo "LKM-TRUST-KEY $l"; done
for f in $(cd /t && $B ls); do
  out=$($B insmod /t/$f 2>&1); rc=$?
  t=-; m=${{f%%@*}}
  if [ $rc = 0 ]; then t=[$(cat /sys/module/$m/taint 2>/dev/null)]; $B rmmod $m 2>/dev/null; fi
  echo "LKM-TRUST-RESULT $f $rc taint=$t $out"
done
echo "LKM-TRUST-DONE"
$B poweroff -f
"""


def plain(path: Path) -> bytes:
    data = path.read_bytes()
    comp = detect(data[:6])
    return decompress(data, comp) if comp else data


def variants(name: str, data: bytes) -> list[tuple[str, bytes]]:
    n = len(MODULE_SIG_STRING)
    sig_len = int.from_bytes(data[-n - 4 : -n], "big")
    body = len(data) - n - 12 - sig_len
    text = ModuleFile.from_bytes(data[:body]).elf.section(".text")
    at = text.offset + text.size // 2 if text is not None and text.size else body // 2
    flipped = bytearray(data)
    flipped[at] ^= 0x01
    sigbad = bytearray(data)
    sigbad[body + sig_len - 3] ^= 0x40
    params = bytearray(data)
    params[len(data) - n - 12] = 1
    idtype = bytearray(data)
    idtype[len(data) - n - 12 + 2] = 1  # PKEY_ID_X509: "not signed with expected PKCS#7 message"
    rsa = bytes.fromhex("06092a864886f70d010101")  # rsaEncryption -> sha256WithRSAEncryption
    pos = data.index(rsa, body)
    oid = data[:pos] + rsa[:-1] + b"\x0b" + data[pos + len(rsa) :]
    return [
        (f"{name}@orig.ko", data),
        (f"{name}@text.ko", bytes(flipped)),
        (f"{name}@sig.ko", bytes(sigbad)),
        (f"{name}@strip.ko", data[:body]),
        (f"{name}@params.ko", bytes(params)),
        (f"{name}@idtype.ko", bytes(idtype)),
        (f"{name}@oid.ko", oid),
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package-dir", required=True, type=Path)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--max-size", type=int, default=120_000)
    ap.add_argument("--timeout", type=float, default=2400)
    ap.add_argument("--out", type=Path, default=Path("guest-trust"))
    ap.add_argument("--no-enforce", action="store_true", help="boot without module.sig_enforce=1")
    a = ap.parse_args()
    pkg = a.package_dir
    vmlinuz = sorted((pkg / "boot").glob("vmlinuz-*"))[0]
    moddir = sorted((pkg / "lib" / "modules").iterdir())[0]
    keys = trusted_keys_from_image(str(vmlinuz))
    files: list[tuple[str, bytes]] = []
    chosen = 0
    for p in sorted(moddir.rglob("*.ko*")):
        rel = str(p.relative_to(moddir))
        if not software_module(rel, p.name):
            continue
        data = plain(p)
        if len(data) > a.max_size:
            continue
        m = ModuleFile.from_bytes(data)
        if m.depends or m.signature is None:
            continue
        files += variants(m.name, data)
        chosen += 1
        if chosen >= a.count:
            break
    fix = ROOT / "tests" / "fixtures" / "6x"
    for f in ("chardev.ko", "params.ko", "chardev-signed.ko", "chardev-signed-sha512.ko"):
        name = f.split("-")[0].split(".")[0]  # the module's own name, which rmmod needs
        files.append((f"{name}@fixture-{f.replace('.ko', '')}.ko", (fix / f).read_bytes()))
    a.out.mkdir(parents=True, exist_ok=True)
    busybox = busybox_for("amd64", corpus_dir() / "guest")
    initrd = a.out / "initramfs.cpio"
    initrd.write_bytes(make_initramfs(busybox, INIT.format(), [(f"t/{n}", d) for n, d in files]))
    console = a.out / "console.log"
    t0 = time.monotonic()
    enforce = not a.no_enforce
    append = "module.sig_enforce=1" if enforce else ""
    boot("amd64", vmlinuz, initrd, console, a.timeout, append=append, memory_mb=2048)
    took = time.monotonic() - t0
    log = console.read_text(errors="replace")
    guest: dict[str, tuple[int, str, str]] = {}
    guest_keys = []
    for line in log.splitlines():
        if line.startswith("LKM-TRUST-RESULT "):
            parts = line.split(" ", 4)
            msg = parts[4] if len(parts) > 4 else ""
            rc = int(parts[2])
            err = 0
            if rc:
                err = insmod_errno(msg)
            guest[parts[1]] = (err, msg, parts[3].removeprefix("taint="))
        elif line.startswith("LKM-TRUST-KEY "):
            guest_keys.append(line[len("LKM-TRUST-KEY ") :])
    mismatches = []
    rows = []
    sig_errors = {errno.EKEYREJECTED, errno.EBADMSG, errno.ENOKEY, errno.ENOPKG, errno.EPERM, errno.EMSGSIZE}
    for name, data in files:
        res = mod_verify_sig(data, keys.ring, kernel=keys.kernel)
        dec = module_sig_check(res, name, enforce=enforce)
        predicted = dec.errno
        got, msg, taint = guest.get(name, (None, "no result", "-"))
        seen = got if got in sig_errors else 0  # any other outcome: the signature check passed
        ok = got is not None and seen == predicted
        if ok and got == 0 and taint.startswith("["):  # loaded: taint E exactly where lkm says
            ok = ("E" in taint) == dec.taint
        lkm = errno.errorcode.get(predicted, predicted) if predicted else 0
        theirs = errno.errorcode.get(got, got) if got else got
        row = {"file": name, "lkm": lkm, "lkm_taint_E": dec.taint, "guest": theirs}
        rows.append({**row, "guest_taint": taint, "guest_msg": msg, "match": ok})
        if not ok:
            mismatches.append(rows[-1])
    ours = [k.proc_keys_description for k in keys.ring.keys]
    builtin = [k for k in guest_keys if "asymmetri" in k]
    key_match = all(any(o in g for g in builtin) for o in ours)
    summary = {
        "kernel": str(vmlinuz), "sig_enforce": enforce, "modules": chosen, "files": len(files),
        "results": len(guest), "mismatches": len(mismatches), "wall_seconds": round(took), "lkm_keys": ours,
        "guest_keys": guest_keys, "keys_match": key_match,
    }  # fmt: skip
    (a.out / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(json.dumps(summary, indent=2))
    for m in mismatches[:20]:
        print("MISMATCH", m)
    return 0 if not mismatches and len(guest) == len(files) and key_match else 1


if __name__ == "__main__":
    sys.exit(main())

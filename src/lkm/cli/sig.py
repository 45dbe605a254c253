"""``lkm sig``: module signatures as a kernel checks them (:mod:`lkm.trust.sig`).

lkm sig verify MODULE... (--kernel IMAGE | --keyring CERT...) [--kernel-version 6.1|6.12]
               [--enforce] [--json]
lkm sig keys IMAGE [--json]
lkm sig sign [-dpk] HASH KEY X509 MODULE [DEST]        (scripts/sign-file's arguments)
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any

from lkm.cli.getopt import UsageError, parse
from lkm.cli.jsonout import line
from lkm.cli.jsonout import line as json_line
from lkm.cli.tool import Opt, Tool
from lkm.errors import LkmError
from lkm.module.source import read_module
from lkm.safeio import read_bytes
from lkm.trust.keys import Keyring, keyring_from_files, trusted_keys_from_image
from lkm.trust.sig import REASONS, append_signature, mod_verify_sig, module_sig_check, sign_module

__all__ = ["COMMANDS", "TOOL", "run"]


TOOL = Tool(
    "sig",
    "module signatures as a kernel checks them: verify, keys, sign",
    usage=[
        "verify MODULE... (--kernel IMAGE | --keyring CERT...) [--kernel-version 6.1|6.12]"
        " [--enforce] [--json]",
        "keys IMAGE [--json]",
        "sign [-dpk] HASH KEY X509 MODULE [DEST]   (scripts/sign-file's arguments)",
    ],
    description="verify: mod_verify_sig against the keys a kernel image trusts (or X.509 files); keys: the\n"
    "image's builtin trusted keys (system_certificate_list); sign: as the kernel's scripts/sign-file.",
    options=[
        Opt("", "kernel", "IMAGE", "verify: trust the keys built into this kernel image", complete="file"),
        Opt(
            "",
            "keyring",
            "CERT",
            "verify: trust this X.509 certificate (DER or PEM); repeatable",
            complete="file",
        ),
        Opt(
            "",
            "kernel-version",
            "VERSION",
            "verify/keys: whose rules: 6.1 (default) or 6.12",
            complete="6.1 6.12",
        ),
        Opt("", "enforce", None, "verify: as module.sig_enforce=1 (unsigned modules refused)"),
        Opt("", "json", None, "verify/keys: JSON"),
        Opt("d", "", None, "sign: write the detached signature only (sign-file -d)"),
        Opt("p", "", None, "sign: keep the temporary PKCS#7 file (sign-file -p)"),
        Opt("k", "", None, "sign: identify the signer by subject key id (sign-file -k)"),
    ],
)

COMMANDS = ("verify", "keys", "sign")


def _err(prog: str, msg: str) -> int:
    sys.stderr.write(f"{prog}: ERROR: {msg}\n")
    return 1


def run(prog: str, args: list[str]) -> int:
    if not args or args[0] not in COMMANDS:
        TOOL.parse(
            prog, args[:1] if args and args[0].startswith("-") else []
        )  # --help, --version, bad options
        sys.stderr.write(f"{prog}: " + (f"unknown command '{args[0]}'" if args else "no command") + "\n")
        return 1
    sub, rest = args[0], args[1:]
    try:
        if sub == "verify":
            return _verify(f"{prog} verify", rest)
        if sub == "keys":
            return _keys(f"{prog} keys", rest)
        if sub == "sign":
            return _sign(f"{prog} sign", rest)
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
    except LkmError as exc:
        return _err(prog, str(exc))
    return 1


def _verify(prog: str, args: list[str]) -> int:
    opts, modules = parse(args, "", ["kernel=", "keyring=", "kernel-version=", "enforce", "json"])
    image = version = None
    certs: list[str] = []
    enforce = as_json = False
    for flag, val in opts:
        if flag == "--kernel":
            image = val
        elif flag == "--keyring":
            certs.append(val)
        elif flag == "--kernel-version":
            if val not in ("6.1", "6.12"):
                raise UsageError(f"--kernel-version must be 6.1 or 6.12, not '{val}'")
            version = val
        elif flag == "--enforce":
            enforce = True
        elif flag == "--json":
            as_json = True
    if not modules or (image is None and not certs):
        raise UsageError("need MODULE... and --kernel IMAGE or --keyring CERT")
    ring = Keyring(".builtin_trusted_keys")
    kernel = version or "6.1"
    if image is not None:
        tk = trusted_keys_from_image(image, kernel=version)
        ring, kernel = tk.ring, tk.kernel
    if certs:
        ring.keys.extend(keyring_from_files(certs).keys)
    rows: list[dict[str, Any]] = []
    status = 0
    for path in modules:
        try:
            mb = read_module(path)
        except LkmError as exc:
            sys.stderr.write(f"{prog}: ERROR: {exc}\n")
            status = 1
            continue
        res = mod_verify_sig(memoryview(mb.data), ring, kernel=kernel)
        name = os.path.basename(path).split(".", 1)[0]
        dec = module_sig_check(res, name, enforce=enforce)
        if res.errno:
            status = max(status, 2)
        rows.append(
            {
                "module": path,
                "errno": res.errno,
                "error": res.errno_name,
                "reason": REASONS.get(res.errno, os.strerror(res.errno) if res.errno else "ok"),
                "message": res.message,
                "signer": res.signer,
                "detail": res.detail,
                "load": "ok" if dec.errno == 0 else errno.errorcode.get(dec.errno, str(dec.errno)),
                "taint_E": dec.taint,
            }
        )
    if as_json:
        keys = [k.description for k in ring.keys]
        sys.stdout.write(json_line("sig-verify", kernel=kernel, keys=keys, modules=rows))
    else:
        for r in rows:
            if r["errno"] == 0:
                line = f"{r['module']}: ok ({r['signer']})"
            else:
                why = r["message"] or r["detail"]
                line = f"{r['module']}: {r['error']} ({r['reason']}{': ' + why if why else ''})"
            load = r["load"] + (" +taint E" if r["taint_E"] else "")
            sys.stdout.write(f"{line}; load: {load}\n")
    return status


def _keys(prog: str, args: list[str]) -> int:
    opts, operands = parse(args, "", ["json", "kernel-version="])
    if len(operands) != 1:
        raise UsageError("need one kernel IMAGE")
    as_json = any(f == "--json" for f, _ in opts)
    version = next((v for f, v in opts if f == "--kernel-version"), None)
    tk = trusted_keys_from_image(operands[0], kernel=version)
    if as_json:
        out = {
            "image": operands[0],
            "kernel": tk.kernel,
            "keyring": tk.ring.name,
            "keys": [
                {"description": k.description, "algo": k.key_algo, "proc_keys": k.proc_keys_description,
                 "skid": k.skid.hex() if k.skid else None, "serial": k.raw_serial.hex(),
                 "sha256": k.fingerprint()}
                for k in tk.ring.keys
            ],
            "problems": [{"offset": p.offset, "errno": p.errno, "reason": p.reason} for p in tk.problems],
        }  # fmt: skip

        sys.stdout.write(line("sig-keys", **out))
        return 0
    sys.stdout.write(tk.ring.proc_keys_header() + "\n")
    for k in tk.ring.keys:
        sys.stdout.write(f"  {k.proc_keys_description}\n")
    for p in tk.problems:
        sys.stdout.write(
            f"  Problem loading in-kernel X.509 certificate ({-p.errno}) at {p.offset:#x}: {p.reason}\n"
        )
    return 0


def _sign(prog: str, args: list[str]) -> int:
    opts, operands = parse(args, "dpk", [])
    flags = {f for f, _ in opts}
    if len(operands) not in (4, 5):
        raise UsageError("sign-file's arguments: [-dpk] HASH KEY X509 MODULE [DEST]")
    hash_name, key_path, x509_path, module = operands[:4]
    dest = operands[4] if len(operands) == 5 else module
    blobs = []
    for p in (key_path, x509_path, module):
        try:
            blobs.append(read_bytes(p, limit=None))
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=p) from None
    key, x509, data = blobs
    try:
        _signed, p7 = sign_module(data, key, x509, hash_name, use_keyid="-k" in flags)
    except LkmError as exc:
        exc.path = exc.path or key_path if "private key" in exc.reason else exc.path or x509_path
        raise
    if "-d" in flags or "-p" in flags:
        _write(module + ".p7s", p7)
    if "-d" not in flags:
        _write(dest, append_signature(data, p7))
    return 0


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.~signed~"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise LkmError(exc.strerror or "cannot write", path=path) from None

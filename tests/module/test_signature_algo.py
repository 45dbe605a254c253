"""Signature.algo of a PKCS#7 module signature: the SignerInfo's key algorithm, as OpenSSL
reads it (sign-file leaves struct module_signature's algo at 0, which once read as "DSA")."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lkm.module.file import ModuleFile
from lkm.module.signature import KEY_ALGO_OIDS, MODULE_SIG_STRING

from support import FIX6, require

pytestmark = pytest.mark.oracle


def _openssl_key_oid(der: bytes, tmp_path: Path) -> str:
    """signatureAlgorithm of the first SignerInfo, from `openssl cms -cmsout -print`."""
    src = tmp_path / "sig.der"
    src.write_bytes(der)
    out = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(src)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    tail = out.split("signatureAlgorithm:", 1)[1]
    m = re.search(r"algorithm: [^(\n]*\(([0-9.]+)\)", tail)
    assert m is not None, out
    return m.group(1)


def _sign(module: bytes, tmp_path: Path, keyspec: list[str], md: str) -> bytes:
    """module + PKCS#7 signature + struct module_signature + magic, as scripts/sign-file makes it."""
    key, cert, body = tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "m.bin"
    req = ["openssl", "req", "-new", "-x509", "-nodes", "-days", "1", "-subj", "/CN=lkm test key"]
    subprocess.run([*req, *keyspec, "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True)
    body.write_bytes(module)
    sig = subprocess.run(["openssl", "cms", "-sign", "-binary", "-noattr", "-nocerts", "-outform", "DER",
                          "-md", md, "-in", str(body), "-signer", str(cert), "-inkey", str(key)],
                         capture_output=True, check=True).stdout  # fmt: skip
    return module + sig + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(sig)) + MODULE_SIG_STRING


@pytest.mark.parametrize(
    ("keyspec", "md", "algo"),
    [
        (["-newkey", "rsa:2048"], "sha256", "RSA"),
        (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], "sha256", "ECDSA"),
        (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"], "sha384", "ECDSA"),
    ],
)
def test_algo_as_openssl_reads_it(tmp_path: Path, keyspec: list[str], md: str, algo: str) -> None:
    require(shutil.which("openssl"), "openssl missing")
    plain = (FIX6 / "chardev.ko").read_bytes()
    signed = tmp_path / "signed.ko"
    signed.write_bytes(_sign(plain, tmp_path, keyspec, md))
    with ModuleFile.open(str(signed)) as m:
        sig = m.signature
        assert sig is not None
        oid = _openssl_key_oid(sig.raw, tmp_path)
        assert sig.algo == KEY_ALGO_OIDS[oid] == algo
        assert sig.hash_algo == md and sig.signer == b"lkm test key"


def test_fixture_signatures(tmp_path: Path) -> None:
    require(shutil.which("openssl"), "openssl missing")
    for name in ("chardev-signed.ko", "chardev-signed-sha512.ko"):
        with ModuleFile.open(str(FIX6 / name)) as m:
            assert m.signature is not None
            assert m.signature.algo == KEY_ALGO_OIDS[_openssl_key_oid(m.signature.raw, tmp_path)] == "RSA"

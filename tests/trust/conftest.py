"""Shared inputs of the trust tests: corpus kernel trees, sign-file, a throwaway ECDSA key."""

from __future__ import annotations

import datetime
import glob
import shutil
import subprocess
from pathlib import Path

import pytest

from support import require


@pytest.fixture(scope="session")
def sign_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/sign-file of Debian's linux-kbuild-6.1 (from the corpus debs)."""
    from testing.corpus import corpus_dir

    installed = Path("/usr/lib/linux-kbuild-6.1/scripts/sign-file")
    if installed.is_file():
        return installed
    debs = sorted(glob.glob(str(corpus_dir() / "debs" / "linux-kbuild-6.1_*.deb")))
    require(
        debs and shutil.which("dpkg-deb"), "linux-kbuild-6.1 deb (corpus) and dpkg-deb needed for sign-file"
    )
    out = tmp_path_factory.mktemp("kbuild")
    subprocess.run(["dpkg-deb", "-x", debs[-1], str(out)], check=True)
    path = out / "usr/lib/linux-kbuild-6.1/scripts/sign-file"
    require(path.is_file(), "sign-file not in the linux-kbuild-6.1 package")
    return path


@pytest.fixture(scope="session")
def ecdsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway P-256 key and self-signed certificate (PEM key, DER cert) with a SKID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lkm test ecdsa key")])
    now = datetime.datetime(2025, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234567890)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("ecdsa")
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (d / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return d / "key.pem", d / "cert.der"

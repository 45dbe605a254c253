"""Signature verification as mod_verify_sig does it, signing as scripts/sign-file does it.

Oracles: sign-file's output bytes (Debian's linux-kbuild-6.1), ``openssl cms -verify`` on what
lkm signs, kmod's modinfo (sig_key = the serial of the certificate found in the image), and
Debian's own build: every module of its 6.1/6.12 trees carries a signature made at build time
by the key compiled into its image, which that kernel accepts.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from lkm.module.source import read_module
from lkm.trust.keys import Keyring, keyring_from_files, trusted_keys_from_image
from lkm.trust.sig import MODULE_SIG_STRING, append_signature, mod_verify_sig, module_sig_check, sign_module

from support import FIX6, RSA_CERT, RSA_KEY, require, tree_image, tree_modules

SIGNED = (FIX6 / "chardev-signed.ko").read_bytes()
UNSIGNED = (FIX6 / "chardev.ko").read_bytes()


def ring() -> Keyring:
    return keyring_from_files([str(RSA_CERT)])


def verdict(data: bytes, keys: Keyring | None = None) -> int:
    return mod_verify_sig(data, keys if keys is not None else ring()).errno


def trailer_at(data: bytes) -> tuple[int, int]:
    """(start of the PKCS#7 blob, its length) of a signed module."""
    sig_len = int.from_bytes(data[-len(MODULE_SIG_STRING) - 4 : -len(MODULE_SIG_STRING)], "big")
    end = len(data) - len(MODULE_SIG_STRING) - 12
    return end - sig_len, sig_len


def test_fixture_signatures_verify() -> None:
    assert verdict(SIGNED) == 0
    assert verdict((FIX6 / "chardev-signed-sha512.ko").read_bytes()) == 0
    assert verdict(bytes(read_module(str(FIX6 / "chardev-signed.ko.xz")).data)) == 0


def test_unsigned_and_stripped_are_enodata() -> None:
    assert verdict(UNSIGNED) == errno.ENODATA
    start, _ = trailer_at(SIGNED)
    assert verdict(SIGNED[:start]) == errno.ENODATA
    assert verdict(b"") == errno.ENODATA


def test_changed_text_byte_is_ekeyrejected() -> None:
    start, _ = trailer_at(SIGNED)
    bad = bytearray(SIGNED)
    bad[start // 2] ^= 1
    assert verdict(bytes(bad)) == errno.EKEYREJECTED


def test_changed_signature_byte_is_ekeyrejected() -> None:
    bad = bytearray(SIGNED)
    start, length = trailer_at(SIGNED)
    bad[start + length - 5] ^= 0x40  # inside the RSA signature value
    assert verdict(bytes(bad)) == errno.EKEYREJECTED


def test_unknown_key_is_enokey() -> None:
    assert verdict(SIGNED, Keyring(".builtin_trusted_keys")) == errno.ENOKEY


def test_trailer_rules() -> None:
    n = len(MODULE_SIG_STRING)
    info = len(SIGNED) - n - 12
    # id_type other than PKCS#7: ENOPKG, even with non-zero fields
    bad = bytearray(SIGNED)
    bad[info + 2] = 1
    bad[info] = 1
    assert verdict(bytes(bad)) == errno.ENOPKG
    # non-zero algo with PKCS#7: EBADMSG
    bad = bytearray(SIGNED)
    bad[info] = 1
    assert verdict(bytes(bad)) == errno.EBADMSG
    # sig_len past the start of the file: EBADMSG
    bad = bytearray(SIGNED)
    bad[info + 8 : info + 12] = (len(SIGNED)).to_bytes(4, "big")
    assert verdict(bytes(bad)) == errno.EBADMSG
    # a corrupt PKCS#7 structure: EBADMSG
    bad = bytearray(SIGNED)
    start, _ = trailer_at(SIGNED)
    bad[start + 1] ^= 0x7F
    assert verdict(bytes(bad)) == errno.EBADMSG


def test_sha256_with_rsa_signature_algorithm_is_enopkg() -> None:
    # rsaEncryption (1.2.840.113549.1.1.1) -> sha256WithRSAEncryption (...1.1.11): same length
    rsa = bytes.fromhex("06092a864886f70d010101")
    start, _ = trailer_at(SIGNED)
    pos = SIGNED.index(rsa, start)
    bad = SIGNED[:pos] + rsa[:-1] + b"\x0b" + SIGNED[pos + len(rsa) :]
    assert verdict(bad) == errno.ENOPKG


def test_sig_check_decisions() -> None:
    res = mod_verify_sig(UNSIGNED, ring())
    d = module_sig_check(res, "chardev", enforce=False)
    assert (d.errno, d.taint) == (0, True)
    assert d.messages == [
        "chardev: module verification failed: signature and/or required key missing - tainting kernel"
    ]
    d = module_sig_check(res, "chardev", enforce=True)
    assert (d.errno, d.taint, d.messages) == (
        errno.EKEYREJECTED,
        False,
        ["Loading of unsigned module is rejected"],
    )
    assert module_sig_check(res, "chardev", enforce=False, lockdown=True).errno == errno.EPERM
    ok = module_sig_check(mod_verify_sig(SIGNED, ring()), "chardev", enforce=True)
    assert (ok.errno, ok.taint, ok.sig_ok) == (0, False, True)
    bad = bytearray(SIGNED)
    bad[100] ^= 1
    rejected = module_sig_check(mod_verify_sig(bytes(bad), ring()), "chardev", enforce=False)
    assert (rejected.errno, rejected.taint) == (errno.EKEYREJECTED, False)


def test_skid_and_ecdsa_signatures(ecdsa_key: tuple[Path, Path]) -> None:
    key, cert = ecdsa_key
    keys = keyring_from_files([str(cert)])
    for keyid in (False, True):
        for h in ("sha256", "sha384", "sha512"):
            signed, _ = sign_module(UNSIGNED, key.read_bytes(), cert.read_bytes(), h, use_keyid=keyid)
            assert verdict(signed, keys) == 0
            assert verdict(signed, ring()) == errno.ENOKEY
    signed, _ = sign_module(UNSIGNED, RSA_KEY.read_bytes(), RSA_CERT.read_bytes(), "sha256")
    # the RSA signer's id is in a ring that also holds an unrelated ECDSA key: still found
    both = Keyring("r", [*keys.keys, *ring().keys])
    assert verdict(signed, both) == 0


def test_authattrs_and_attached_content_refused(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    require(openssl, "openssl not installed")
    (tmp_path / "m").write_bytes(UNSIGNED)
    for extra, want in (([], errno.EKEYREJECTED), (["-noattr", "-nodetach"], errno.EBADMSG)):
        subprocess.run(
            [str(openssl), "cms", "-sign", "-binary", "-nocerts", "-md", "sha256", "-outform", "DER",
             "-in", str(tmp_path / "m"), "-signer", str(RSA_CERT), "-inkey", str(RSA_KEY),
             "-keyform", "PEM", "-certfile", str(RSA_CERT), "-out", str(tmp_path / "p7"), *extra],
            check=True, capture_output=True,
        )  # fmt: skip
        blob = (tmp_path / "p7").read_bytes()
        assert verdict(append_signature(UNSIGNED, blob)) == want


@pytest.mark.oracle
@pytest.mark.corpus
@pytest.mark.parametrize("args", [["sha256"], ["sha512"], ["sha1"], ["-k", "sha256"], ["-k", "sha384"]])
def test_sign_matches_sign_file(sign_file: Path, tmp_path: Path, args: list[str]) -> None:
    from lkm.cli import main

    src = tmp_path / "chardev.ko"
    src.write_bytes(UNSIGNED)
    theirs, ours = tmp_path / "theirs.ko", tmp_path / "ours.ko"
    subprocess.run([str(sign_file), *args, str(RSA_KEY), str(RSA_CERT), str(src), str(theirs)], check=True)
    assert main(["lkm", "sig", "sign", *args, str(RSA_KEY), str(RSA_CERT), str(src), str(ours)]) == 0
    assert ours.read_bytes() == theirs.read_bytes()
    assert verdict(ours.read_bytes()) == 0


@pytest.mark.oracle
@pytest.mark.corpus
def test_sign_file_ecdsa_output_verifies(
    sign_file: Path, tmp_path: Path, ecdsa_key: tuple[Path, Path]
) -> None:
    """ECDSA signatures are randomised: compare verdicts, not bytes (sign-file's and ours)."""
    key, cert = ecdsa_key
    src = tmp_path / "m.ko"
    src.write_bytes(UNSIGNED)
    subprocess.run(
        [str(sign_file), "sha384", str(key), str(cert), str(src), str(tmp_path / "t.ko")], check=True
    )
    keys = keyring_from_files([str(cert)])
    assert verdict((tmp_path / "t.ko").read_bytes(), keys) == 0
    ours, _ = sign_module(UNSIGNED, key.read_bytes(), cert.read_bytes(), "sha384")
    assert len(ours) - len((tmp_path / "t.ko").read_bytes()) in range(-3, 4)  # DER r,s lengths vary


@pytest.mark.oracle
def test_openssl_cms_verifies_lkm_signatures(tmp_path: Path, ecdsa_key: tuple[Path, Path]) -> None:
    openssl = shutil.which("openssl")
    require(openssl, "openssl not installed")
    (tmp_path / "m").write_bytes(UNSIGNED)
    for key, cert in ((RSA_KEY, RSA_CERT), ecdsa_key):
        _, blob = sign_module(UNSIGNED, key.read_bytes(), cert.read_bytes(), "sha256")
        (tmp_path / "p7").write_bytes(blob)
        r = subprocess.run(
            [str(openssl), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "p7"),
             "-content", str(tmp_path / "m"), "-certfile", str(cert), "-noverify", "-out", "/dev/null"],
            capture_output=True,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        # and a changed byte makes openssl fail as the kernel does
        (tmp_path / "m2").write_bytes(UNSIGNED[:-1] + bytes([UNSIGNED[-1] ^ 1]))
        r = subprocess.run(
            [str(openssl), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "p7"),
             "-content", str(tmp_path / "m2"), "-certfile", str(cert), "-noverify", "-out", "/dev/null"],
            capture_output=True,
        )  # fmt: skip
        assert r.returncode != 0
        assert verdict(append_signature(UNSIGNED[:-1] + bytes([UNSIGNED[-1] ^ 1]), blob),
                       keyring_from_files([str(cert)])) == errno.EKEYREJECTED  # fmt: skip


@pytest.mark.corpus
@pytest.mark.parametrize("tree,other", [("amd64-6.1", "amd64-6.12"), ("amd64-6.12", "amd64-6.1")])
def test_debian_modules_verify_against_their_image(tree: str, other: str) -> None:
    """Debian signs every module at build time with the key it compiles into the image: all of a
    sample verify against their own image's builtin keys, none against the other kernel's."""
    own = trusted_keys_from_image(str(tree_image(tree)))
    foreign = trusted_keys_from_image(str(tree_image(other)))
    mods = tree_modules(tree)[::10]
    assert len(mods) > 300
    for p in mods:
        data = read_module(str(p)).data
        assert mod_verify_sig(data, own.ring, kernel=own.kernel).errno == 0, p
        assert mod_verify_sig(data, foreign.ring, kernel=own.kernel).errno == errno.ENOKEY, p


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("tree", ["amd64-6.1", "amd64-6.12"])
def test_image_key_is_kmods_signer(tree: str) -> None:
    """kmod's modinfo sig_key (the signer's serial) names the certificate lkm finds in the image."""
    modinfo = shutil.which("modinfo") or shutil.which("modinfo", path="/usr/sbin:/sbin")
    require(modinfo, "kmod's modinfo not installed")
    tk = trusted_keys_from_image(str(tree_image(tree)))
    assert [k.description.split(":")[0] for k in tk.ring.keys] == ["Build time autogenerated kernel key"]
    mod = tree_modules(tree)[0]
    out = subprocess.run(
        [str(modinfo), "-F", "sig_key", str(mod)], capture_output=True, text=True, check=True
    )
    serial = bytes.fromhex(out.stdout.strip().replace(":", ""))
    assert tk.ring.keys[0].raw_serial.lstrip(b"\0") == serial.lstrip(b"\0")
    assert tk.problems == []


# /proc/keys of Debian's signed 6.1.0-57 kernel booted in QEMU (scripts/guest_trust.py), the
# builtin key's line after the 9-column type field; the unsigned package's image is the same build.
GUEST_61_BUILTIN_KEY = (
    "Build time autogenerated kernel key: 35ec5eb42ea9fd1caf03b977c56ef26a3720f629: X509.rsa 3720f629 []"
)


@pytest.mark.corpus
def test_keys_equal_the_guests_proc_keys() -> None:
    tk = trusted_keys_from_image(str(tree_image("amd64-6.1")))
    require("6.1.0-57" in str(tree_image("amd64-6.1")), "the recorded guest line is for 6.1.0-57")
    assert [k.proc_keys_description for k in tk.ring.keys] == [GUEST_61_BUILTIN_KEY]
    assert tk.ring.proc_keys_header() == ".builtin_trusted_keys: 1"

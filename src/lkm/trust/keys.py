"""X.509 certificates as the kernel's asymmetric keys, and the keyrings they fill.

A :class:`Certificate` keeps what crypto/asymmetric_keys/x509_cert_parser.c keeps: the raw
contents of the serial INTEGER, issuer and subject Names, the SKID and AKID, the public key and
its kernel algorithm name ("rsa", "ecdsa-nist-p256", ...); its key ids are ``id[0]`` = serial ‖
issuer and ``id[1]`` = SKID, compared as raw bytes.  :class:`Keyring` finds keys by id as
``find_asymmetric_key`` does.  :func:`builtin_trusted_keys` recovers the certificates a kernel
image compiles in (``system_certificate_list``, certs/system_certificates.S) and loads them as
``load_system_certificate_list`` does.  The public-key operations are the ``cryptography``
library's.
"""

from __future__ import annotations

import base64
import errno
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from lkm.errors import LkmError
from lkm.safeio import read_bytes
from lkm.symbols.image import decompress_kernel_image, kernel_arch, recover_kallsyms
from lkm.trust.asn1 import (
    BIT_STRING,
    CONTEXT,
    INTEGER,
    OCTET_STRING,
    OID,
    UNIVERSAL,
    Asn1Error,
    children,
    der,
    oid_der,
    oid_text,
    parse_blob,
    read_tlv,
)

__all__ = [
    "CERT_SIG_ALGOS",
    "ECDSA_HASHES_61",
    "ECDSA_HASHES_612",
    "HASH_OIDS",
    "HASH_OID_OF",
    "OID_AKID",
    "OID_CN",
    "OID_EMAIL",
    "OID_O",
    "OID_SKID",
    "RSA_DIGEST_INFO_61",
    "RSA_DIGEST_INFO_612",
    "RSA_MODULUS_BITS",
    "Certificate",
    "ImageCertificates",
    "KeyError_",
    "Keyring",
    "LoadProblem",
    "TrustedKeys",
    "builtin_trusted_keys",
    "digest_info_prefix",
    "hash_digest",
    "image_certificates",
    "kernel_class",
    "keyring_from_files",
    "load_certificate_list",
    "load_certificates",
    "need_cryptography",
    "public_key_verify",
    "split_certificate_list",
    "trusted_keys_from_image",
]

OID_CN = "2.5.4.3"
OID_O = "2.5.4.10"
OID_EMAIL = "1.2.840.113549.1.9.1"
OID_SKID = "2.5.29.14"
OID_AKID = "2.5.29.35"

# Digest names as the kernel spells them, by OID, and the ``cryptography`` hash class names.
HASH_OIDS: dict[str, str] = {
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "1.2.156.10197.1.401": "sm3",
    "1.2.643.7.1.1.2.2": "streebog256",
    "1.2.643.7.1.1.2.3": "streebog512",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
}
HASH_OID_OF = {name: oid for oid, name in HASH_OIDS.items()}
_CRYPTO_HASH = {
    "md5": "MD5",
    "sha1": "SHA1",
    "sha224": "SHA224",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
    "sm3": "SM3",
    "sha3-256": "SHA3_256",
    "sha3-384": "SHA3_384",
    "sha3-512": "SHA3_512",
}
# crypto/rsa-pkcs1pad.c digest_info prefixes exist for these hashes (6.12 adds sha3-*).
RSA_DIGEST_INFO_61 = frozenset({"md5", "sha1", "rmd160", "sha224", "sha256", "sha384", "sha512"})
RSA_DIGEST_INFO_612 = RSA_DIGEST_INFO_61 | {"sha3-256", "sha3-384", "sha3-512"}
ECDSA_HASHES_61 = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})
ECDSA_HASHES_612 = ECDSA_HASHES_61 | {"sha3-256", "sha3-384", "sha3-512"}
RSA_MODULUS_BITS = frozenset({512, 1024, 1536, 2048, 3072, 4096})
_CURVES = {"secp192r1": "p192", "secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}

# X.509 signature algorithms (x509_note_sig_algo): OID -> (kernel pkey_algo, hash).
CERT_SIG_ALGOS: dict[str, tuple[str, str]] = {
    "1.2.840.113549.1.1.3": ("rsa", "md4"),
    "1.2.840.113549.1.1.4": ("rsa", "md5"),
    "1.2.840.113549.1.1.5": ("rsa", "sha1"),
    "1.2.840.113549.1.1.14": ("rsa", "sha224"),
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "2.16.840.1.101.3.4.3.14": ("rsa", "sha3-256"),
    "2.16.840.1.101.3.4.3.15": ("rsa", "sha3-384"),
    "2.16.840.1.101.3.4.3.16": ("rsa", "sha3-512"),
    "1.2.840.10045.4.1": ("ecdsa", "sha1"),
    "1.2.840.10045.4.3.1": ("ecdsa", "sha224"),
    "1.2.840.10045.4.3.2": ("ecdsa", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "sha512"),
    "2.16.840.1.101.3.4.3.10": ("ecdsa", "sha3-256"),
    "2.16.840.1.101.3.4.3.11": ("ecdsa", "sha3-384"),
    "2.16.840.1.101.3.4.3.12": ("ecdsa", "sha3-512"),
}


class KeyError_(LkmError):
    """A certificate the kernel would not load as a key, with the kernel's errno."""

    errno: int

    def __init__(self, reason: str, err: int, *, path: str | None = None) -> None:
        super().__init__(reason, path=path, errno=err)


def need_cryptography() -> None:
    """The public-key work is the ``cryptography`` library's (the ``lkm[trust]`` extra)."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise LkmError("signature checks need the 'cryptography' package: pip install 'lkm[trust]'") from None


def hash_digest(name: str, data: bytes | memoryview) -> bytes:
    """The digest of ``data`` with the kernel-named hash; :class:`LkmError` if lkm cannot compute it."""
    need_cryptography()
    from cryptography.hazmat.primitives import hashes

    cls = _CRYPTO_HASH.get(name)
    if cls is None:
        raise LkmError(
            f"lkm cannot compute the {name} digest (no implementation in the cryptography library)"
        )
    h = hashes.Hash(getattr(hashes, cls)())
    h.update(bytes(data))
    return h.finalize()


_DIGEST_SIZE = {
    "md5": 16, "sha1": 20, "rmd160": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64,
    "sha3-256": 32, "sha3-384": 48, "sha3-512": 64,
}  # fmt: skip


def digest_info_prefix(hash_name: str) -> bytes:
    """rsa-pkcs1pad.c's DigestInfo prefix: SEQUENCE{SEQUENCE{OID, NULL}, OCTET STRING header}."""
    oid = "1.3.36.3.2.1" if hash_name == "rmd160" else HASH_OID_OF[hash_name]
    n = _DIGEST_SIZE[hash_name]
    alg = der(0x30, oid_der(oid) + b"\x05\x00")
    return der(0x30, alg + der(0x04, bytes(n)))[:-n]


def public_key_verify(
    key: Certificate, sig_pkey_algo: str, hash_name: str, digest: bytes | None, signature: bytes, *,
    kernel: str = "6.1",
) -> int:  # fmt: skip
    """crypto/asymmetric_keys/public_key.c ``public_key_verify_signature``: 0 or the negative-free
    errno (EKEYREJECTED, EBADMSG, EINVAL, ENOPKG).  ``digest`` may be None when it cannot matter."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    algo = key.key_algo
    if algo != sig_pkey_algo and not (algo.startswith("ecdsa-") and sig_pkey_algo == "ecdsa"):
        return errno.EKEYREJECTED
    pub = key.public_key
    if algo == "rsa":
        assert isinstance(pub, rsa.RSAPublicKey)
        if hash_name not in (RSA_DIGEST_INFO_612 if kernel == "6.12" else RSA_DIGEST_INFO_61):
            return errno.ENOPKG  # no pkcs1pad(rsa,<hash>) template
        if pub.key_size not in RSA_MODULUS_BITS:
            return errno.EINVAL
        if len(signature) != (pub.key_size + 7) // 8:
            return errno.EINVAL
        if digest is None:
            raise LkmError(f"lkm cannot compute the {hash_name} digest")
        try:
            block = pub.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except InvalidSignature:
            return errno.EBADMSG
        prefix = digest_info_prefix(hash_name)
        if not block.startswith(prefix):
            return errno.EBADMSG
        return 0 if block[len(prefix) :] == digest else errno.EKEYREJECTED
    if algo.startswith("ecdsa-"):
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        if hash_name not in (ECDSA_HASHES_612 if kernel == "6.12" else ECDSA_HASHES_61):
            return errno.EINVAL
        if digest is None:
            raise LkmError(f"lkm cannot compute the {hash_name} digest")
        from cryptography.hazmat.primitives import hashes

        try:
            pub.verify(signature, digest, ec.ECDSA(Prehashed(getattr(hashes, _CRYPTO_HASH[hash_name])())))
        except InvalidSignature:
            return errno.EKEYREJECTED
        except ValueError:
            return errno.EBADMSG
        return 0
    return errno.ENOPKG


# --------------------------------------------------------------------------------------
# certificates


class Certificate:
    """A parsed X.509 certificate with the kernel's raw key-id material."""

    der: bytes
    raw_serial: bytes
    raw_issuer: bytes
    raw_subject: bytes
    skid: bytes | None
    akid_keyid: bytes | None
    akid_id: bytes | None
    subject_name: str
    key_algo: str
    public_key: Any
    tbs: bytes
    sig_oid: str
    sig_pkey_algo: str
    sig_hash: str
    signature: bytes
    source: str

    __slots__ = (
        "der", "raw_serial", "raw_issuer", "raw_subject", "skid", "akid_keyid", "akid_id",
        "subject_name", "key_algo", "public_key", "tbs", "sig_oid", "sig_pkey_algo", "sig_hash",
        "signature", "source",
    )  # fmt: skip

    def __init__(self, data: bytes, *, source: str = "") -> None:
        self.der = bytes(data)
        self.source = source
        self._parse()

    def _parse(self) -> None:
        d = self.der
        try:
            top = parse_blob(d)
            tbs_t, alg_t, sig_t = children(d, top)[:3]
            self.tbs = d[tbs_t.header : tbs_t.outer_end]
            parts = children(d, tbs_t)
            i = 1 if parts and parts[0].cls == CONTEXT and parts[0].tag == 0 else 0
            serial, _sigalg, issuer, _validity, subject, spki = parts[i : i + 6]
            if not serial.is_(UNIVERSAL, INTEGER):
                raise Asn1Error("X.509 serialNumber is not an INTEGER")
            self.raw_serial = d[serial.start : serial.end]
            self.raw_issuer = d[issuer.start : issuer.end]
            self.raw_subject = d[subject.start : subject.end]
            self.subject_name = _fabricate_name(d, subject)
            self.skid = None
            self.akid_keyid = None
            self.akid_id = None
            for ext_wrap in parts[i + 6 :]:
                if ext_wrap.cls == CONTEXT and ext_wrap.tag == 3:
                    for ext in children(d, children(d, ext_wrap)[0]):
                        self._extension(d, ext)
            alg = children(d, alg_t)[0]
            self.sig_oid = oid_text(d[alg.start : alg.end])
            if not sig_t.is_(UNIVERSAL, BIT_STRING) or sig_t.end <= sig_t.start:
                raise Asn1Error("X.509 signature is not a BIT STRING")
            self.signature = d[sig_t.start + 1 : sig_t.end]
            del spki
        except (Asn1Error, ValueError) as exc:
            raise KeyError_(f"malformed X.509 certificate: {exc}", errno.EBADMSG, path=self.source) from None
        self.sig_pkey_algo, self.sig_hash = CERT_SIG_ALGOS.get(self.sig_oid, ("", ""))
        self._load_key()

    def _extension(self, d: bytes, ext: Any) -> None:
        items = children(d, ext)
        oid = oid_text(d[items[0].start : items[0].end])
        value = items[-1]
        if oid == OID_SKID:
            inner = read_tlv(d, value.start, value.end)
            if inner.is_(UNIVERSAL, OCTET_STRING):
                self.skid = d[inner.start : inner.end]
        elif oid == OID_AKID:
            seq = read_tlv(d, value.start, value.end)
            serial = issuer = b""
            for c in children(d, seq):
                if c.cls == CONTEXT and c.tag == 0:
                    self.akid_keyid = d[c.start : c.end]
                elif c.cls == CONTEXT and c.tag == 1:  # GeneralNames: directoryName [4]
                    for gn in children(d, c):
                        if gn.cls == CONTEXT and gn.tag == 4:
                            name = read_tlv(d, gn.start, gn.end)
                            issuer = d[name.start : name.end]
                elif c.cls == CONTEXT and c.tag == 2:
                    serial = d[c.start : c.end]
            if serial or issuer:
                self.akid_id = serial + issuer

    def _load_key(self) -> None:
        need_cryptography()
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            cert = x509.load_der_x509_certificate(self.der)
            pub = cert.public_key()
        except (ValueError, TypeError) as exc:
            raise KeyError_(f"X.509 key not usable: {exc}", errno.ENOPKG, path=self.source) from None
        if isinstance(pub, rsa.RSAPublicKey):
            self.key_algo = "rsa"
        elif isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name in _CURVES:
            self.key_algo = "ecdsa-nist-" + _CURVES[pub.curve.name]
        else:
            raise KeyError_(
                f"unsupported public key type {type(pub).__name__}", errno.ENOPKG, path=self.source
            )
        self.public_key = pub

    # ids (asymmetric_key_generate_id): raw bytes, compared by length and content
    @property
    def id0(self) -> bytes:
        return self.raw_serial + self.raw_issuer

    @property
    def id1(self) -> bytes | None:
        return self.skid

    @property
    def self_signed_candidate(self) -> bool:
        return self.raw_subject == self.raw_issuer

    @property
    def description(self) -> str:
        """x509_key_preparse's key description: ``<subject name>: <SKID or serial in hex>``."""
        q = self.skid if self.skid is not None else self.raw_serial
        return f"{self.subject_name}: {q.hex()}"

    @property
    def proc_keys_description(self) -> str:
        """What /proc/keys and ``keyctl show`` print after the key type."""
        tail = f" {self.skid[-4:].hex()}" if self.skid else ""
        return f"{self.description}: X509.{self.key_algo}{tail} []"

    def fingerprint(self) -> str:
        return hash_digest("sha256", self.der).hex()

    def check_self_signed(self, kernel: str = "6.1") -> int:
        """x509_check_for_self_signed: errno if the certificate claims to be self-signed and its
        signature does not verify (the kernel then refuses to load it), else 0."""
        if not self.self_signed_candidate:
            return 0
        if self.akid_id is not None or self.akid_keyid is not None:
            a = self.skid is not None and self.akid_keyid == self.skid
            b = self.akid_id == self.id0
            if not a and not b:
                return 0
            if a != b and self.akid_id is not None and self.akid_keyid is not None:
                return errno.EKEYREJECTED
        if not self.sig_pkey_algo:
            return 0  # unsupported signature: loaded, marked unsupported_sig
        try:
            digest = hash_digest(self.sig_hash, self.tbs)
        except LkmError:
            return 0
        rc = public_key_verify(self, self.sig_pkey_algo, self.sig_hash, digest, self.signature, kernel=kernel)
        return 0 if rc == errno.ENOPKG else rc

    def __repr__(self) -> str:
        return f"Certificate({self.description!r})"


def _fabricate_name(d: bytes, name: Any) -> str:
    """x509_fabricate_name: from the last CN, O and emailAddress attributes of a Name."""
    cn = o = email = None
    for rdn in children(d, name):
        for atv in children(d, rdn):
            typ, value = children(d, atv)[:2]
            if not typ.is_(UNIVERSAL, OID):
                continue
            oid = oid_text(d[typ.start : typ.end])
            raw = d[value.start : value.end]
            if oid == OID_CN:
                cn = raw
            elif oid == OID_O:
                o = raw
            elif oid == OID_EMAIL:
                email = raw
    if cn and o:
        if (len(cn) >= len(o) and cn[: len(o)] == o) or (len(cn) >= 7 and len(o) >= 7 and cn[:7] == o[:7]):
            chosen = cn
        else:
            chosen = o + b": " + cn
    else:
        chosen = cn or o or email or b""
    return chosen.split(b"\0", 1)[0].decode("utf-8", "replace")


def load_certificates(data: bytes, *, source: str = "") -> list[Certificate]:
    """Every certificate in a file: DER (one) or PEM (one or more ``CERTIFICATE`` blocks)."""
    if data[:1] == b"\x30":
        return [Certificate(data, source=source)]

    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", data, re.S)
    if not blocks:
        raise LkmError("no X.509 certificate (DER or PEM) in the file", path=source or None)
    return [Certificate(base64.b64decode(b"".join(b.split())), source=source) for b in blocks]


# --------------------------------------------------------------------------------------
# keyrings


class Keyring:
    """A keyring of asymmetric keys (``.builtin_trusted_keys`` and friends)."""

    def __init__(self, name: str, keys: Iterable[Certificate] = ()) -> None:
        self.name = name
        self.keys: list[Certificate] = list(keys)

    def find(self, id0: bytes | None, id1: bytes | None = None) -> Certificate | int | None:
        """find_asymmetric_key(keyring, id_0, id_1, NULL, partial=false): the key whose id[0] or
        id[1] equals the first id given; when both ids are given the key's id[1] must then equal
        id_1 too (else EKEYREJECTED is returned, as an int).  None when nothing matches (ENOKEY)."""
        lookup = id0 if id0 is not None else id1
        if lookup is None:
            return None
        for key in self.keys:
            if lookup in (key.id0, key.id1):
                if id0 is not None and id1 is not None and key.id1 != id1:
                    return errno.EKEYREJECTED
                return key
        return None

    def __len__(self) -> int:
        return len(self.keys)

    def proc_keys_header(self) -> str:
        return f"{self.name}: {len(self.keys)}" if self.keys else f"{self.name}: empty"


class LoadProblem:
    """A certificate of the built-in list the kernel does not load (dmesg's "Problem loading")."""

    __slots__ = ("offset", "errno", "reason")

    def __init__(self, offset: int, err: int, reason: str) -> None:
        self.offset = offset
        self.errno = err
        self.reason = reason


def split_certificate_list(blob: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """x509_load_certificate_list's walk: (offset, DER) pieces and whether it stopped on a bad length."""
    out: list[tuple[int, bytes]] = []
    p = 0
    end = len(blob)
    while p < end:
        if end - p < 4:
            return out, True
        if blob[p] != 0x30 and blob[p + 1] != 0x82:  # the kernel's test, '&&' included
            return out, True
        plen = (blob[p + 2] << 8 | blob[p + 3]) + 4
        if plen > end - p:
            return out, True
        out.append((p, blob[p : p + plen]))
        p += plen
    return out, False


def load_certificate_list(
    blob: bytes, name: str = ".builtin_trusted_keys", *, kernel: str = "6.1"
) -> tuple[Keyring, list[LoadProblem]]:
    """The keyring the kernel builds from a certificate list, and the certificates it refuses."""
    ring = Keyring(name)
    problems: list[LoadProblem] = []
    pieces, bad = split_certificate_list(blob)
    for off, piece in pieces:
        try:
            cert = Certificate(piece, source=f"{name}@{off:#x}")
        except KeyError_ as exc:
            problems.append(LoadProblem(off, exc.errno, exc.reason))
            continue
        rc = cert.check_self_signed(kernel)
        if rc:
            problems.append(LoadProblem(off, rc, "self-signed certificate does not verify"))
            continue
        ring.keys.append(cert)
    if bad:
        problems.append(
            LoadProblem(len(blob), errno.EBADMSG, "Problem parsing in-kernel X.509 certificate list")
        )
    return ring, problems


class ImageCertificates:
    """The built-in certificate list of a kernel image: its bytes, the module signing cert size,
    and how they were located."""

    __slots__ = ("blob", "module_cert_size", "method")

    def __init__(self, blob: bytes, module_cert_size: int, method: str) -> None:
        self.blob = blob
        self.module_cert_size = module_cert_size
        self.method = method


def _elf_va_to_offset(kernel: bytes) -> list[tuple[int, int, int]]:
    """(vaddr, file offset, file size) of an ELF vmlinux's PT_LOAD segments."""
    if kernel[:4] != b"\x7fELF":
        return []
    is64 = kernel[4] == 2
    little = kernel[5] == 1
    e = "<" if little else ">"
    if is64:
        (phoff,) = struct.unpack_from(e + "Q", kernel, 0x20)
        phentsize, phnum = struct.unpack_from(e + "HH", kernel, 0x36)
    else:
        (phoff,) = struct.unpack_from(e + "I", kernel, 0x1C)
        phentsize, phnum = struct.unpack_from(e + "HH", kernel, 0x2A)
    segs = []
    for i in range(phnum):
        base = phoff + i * phentsize
        if is64:
            typ, _flags, off, vaddr, _paddr, filesz = struct.unpack_from(e + "IIQQQQ", kernel, base)
        else:
            typ, off, vaddr, _paddr, filesz = struct.unpack_from(e + "IIIII", kernel, base)
        if typ == 1:
            segs.append((vaddr, off, filesz))
    return segs


def _from_kallsyms(kernel: bytes) -> ImageCertificates | None:
    try:
        entries = recover_kallsyms(kernel, arch=kernel_arch(kernel))
    except LkmError:
        return None
    want = {"system_certificate_list", "system_certificate_list_size", "module_cert_size"}
    addr = {e.name: e.address for e in entries if e.name in want}
    if set(addr) != want:
        return None
    segs = _elf_va_to_offset(kernel)

    def at(va: int, size: int) -> bytes | None:
        for vaddr, off, filesz in segs:
            if vaddr <= va and va + size <= vaddr + filesz:
                return kernel[off + va - vaddr : off + va - vaddr + size]
        return None

    raw_size = at(addr["system_certificate_list_size"], 8)
    raw_mod = at(addr["module_cert_size"], 8)
    if raw_size is None or raw_mod is None:
        return None
    size = int.from_bytes(raw_size, "little")
    mod = int.from_bytes(raw_mod, "little")
    blob = at(addr["system_certificate_list"], size)
    if blob is None or mod > size:
        return None
    return ImageCertificates(blob, mod, "kallsyms")


def _heuristic(kernel: bytes) -> ImageCertificates | None:
    """Trust spec §1.6 (c): back-to-back DER certificates followed (8-aligned) by the list's size
    and then module_cert_size; the first such run that parses as certificates."""
    p = 0
    while True:
        p = kernel.find(b"\x30\x82", p)
        if p < 0 or p % 8:
            if p < 0:
                return None
            p += 1
            continue
        q = p
        n = 0
        while kernel[q : q + 2] == b"\x30\x82":
            q += (kernel[q + 2] << 8 | kernel[q + 3]) + 4
            n += 1
        if n:
            size_at = (q + 7) // 8 * 8
            size = int.from_bytes(kernel[size_at : size_at + 8], "little")
            mod_at = size_at + 8
            mod = int.from_bytes(kernel[mod_at : mod_at + 8], "little")
            if size == q - p and mod <= size:
                try:
                    Certificate(kernel[p : p + (kernel[p + 2] << 8 | kernel[p + 3]) + 4])
                except LkmError:
                    pass
                else:
                    return ImageCertificates(kernel[p:q], mod, "pattern")
        p += 1


def image_certificates(image: bytes) -> ImageCertificates:
    """The ``system_certificate_list`` of a kernel image (vmlinuz, Image, or vmlinux)."""
    kernel = decompress_kernel_image(image)
    found = _from_kallsyms(kernel) or _heuristic(kernel)
    if found is None:
        raise LkmError("no system_certificate_list found in the kernel image")
    return found


def builtin_trusted_keys(
    image: bytes, *, module_sig: bool = True, kernel: str = "6.1"
) -> tuple[Keyring, list[LoadProblem], ImageCertificates]:
    """``.builtin_trusted_keys`` as ``load_system_certificate_list`` fills it from the image
    (without CONFIG_MODULE_SIG the module signing certificate is skipped)."""
    found = image_certificates(image)
    blob = found.blob if module_sig else found.blob[found.module_cert_size :]
    ring, problems = load_certificate_list(blob, ".builtin_trusted_keys", kernel=kernel)
    return ring, problems, found


def keyring_from_files(paths: Sequence[str], name: str = ".builtin_trusted_keys") -> Keyring:
    """A keyring of the certificates in X.509 files (DER or PEM)."""
    ring = Keyring(name)
    for path in paths:
        try:
            data = read_bytes(path, limit=1 << 20)
        except OSError as exc:
            raise LkmError(exc.strerror or "cannot read", path=path) from None
        ring.keys.extend(load_certificates(data, source=path))
    return ring


def kernel_class(kernel: bytes) -> str:
    """ "6.12" for kernels 6.12 and later, else "6.1": the rule sets the trust checks know, from the
    ``Linux version`` banner of a (decompressed) kernel."""
    m = re.search(rb"Linux version (\d+)\.(\d+)", kernel)
    if m is None:
        return "6.1"
    return "6.12" if (int(m.group(1)), int(m.group(2))) >= (6, 12) else "6.1"


class TrustedKeys:
    """What a kernel trusts for modules: the keyring, the certificates it refused, the rule set."""

    __slots__ = ("ring", "problems", "kernel", "source")

    def __init__(self, ring: Keyring, problems: list[LoadProblem], kernel: str, source: str) -> None:
        self.ring = ring
        self.problems = problems
        self.kernel = kernel
        self.source = source


def trusted_keys_from_image(path: str, *, kernel: str | None = None) -> TrustedKeys:
    """``.builtin_trusted_keys`` of the kernel image at ``path``."""

    try:
        data = read_bytes(path, limit=None)
    except OSError as exc:
        raise LkmError(exc.strerror or "cannot read", path=path) from None
    try:
        vmlinux = decompress_kernel_image(data)
        cls = kernel or kernel_class(vmlinux)
        ring, problems, _found = builtin_trusted_keys(vmlinux, kernel=cls)
    except LkmError as exc:
        exc.path = exc.path or path
        raise
    return TrustedKeys(ring, problems, cls, path)

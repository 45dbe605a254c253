"""PKCS#7 (CMS SignedData) as the kernel parses and verifies it for modules, and as sign-file writes it.

The grammar is crypto/asymmetric_keys/pkcs7.asn1 with pkcs7_parser.c's actions and checks;
verification is pkcs7_verify (usage rules, digest, embedded certificates) and
pkcs7_validate_trust against a :class:`~lkm.trust.keys.Keyring`; errors carry the kernel's errno.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from lkm.errors import LkmError
from lkm.trust.asn1 import (
    CONTEXT,
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    UNIVERSAL,
    Asn1Error,
    Tlv,
    children,
    der,
    oid_der,
    oid_text,
    parse_blob,
)
from lkm.trust.keys import (
    HASH_OID_OF,
    HASH_OIDS,
    Certificate,
    KeyError_,
    Keyring,
    hash_digest,
    public_key_verify,
)

__all__ = [
    "DIGESTS_61",
    "DIGESTS_612",
    "OID_DATA",
    "OID_MS_INDIRECT",
    "OID_RSA",
    "OID_SIGNED_DATA",
    "Pkcs7",
    "Pkcs7Error",
    "SignerInfo",
    "parse_pkcs7",
    "pkcs7_for",
    "verify_pkcs7",
]

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_MS_INDIRECT = "1.3.6.1.4.1.311.2.1.4"
OID_RSA = "1.2.840.113549.1.1.1"

DIGESTS_61 = frozenset(
    {"md4", "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sm3", "streebog256", "streebog512"}
)
DIGESTS_612 = frozenset(
    {"sha1", "sha224", "sha256", "sha384", "sha512", "sm3", "streebog256", "streebog512",
     "sha3-256", "sha3-384", "sha3-512"}
)  # fmt: skip
_ECDSA_SIG = {
    "1.2.840.10045.4.1": "ecdsa",
    "1.2.840.10045.4.3.1": "ecdsa",
    "1.2.840.10045.4.3.2": "ecdsa",
    "1.2.840.10045.4.3.3": "ecdsa",
    "1.2.840.10045.4.3.4": "ecdsa",
}
_ECDSA_SHA3_SIG = {
    "2.16.840.1.101.3.4.3.10": "ecdsa",
    "2.16.840.1.101.3.4.3.11": "ecdsa",
    "2.16.840.1.101.3.4.3.12": "ecdsa",
}
_ECDSA_WITH = {
    "sha1": "1.2.840.10045.4.1",
    "sha224": "1.2.840.10045.4.3.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
    "sha3-256": "2.16.840.1.101.3.4.3.10",
    "sha3-384": "2.16.840.1.101.3.4.3.11",
    "sha3-512": "2.16.840.1.101.3.4.3.12",
}
_GOST_SIG = {"1.2.643.7.1.1.1.1": "ecrdsa", "1.2.643.7.1.1.1.2": "ecrdsa"}
_SM2_SIG = {"1.2.156.10197.1.501": "sm2"}


def _sig_algos(kernel: str) -> dict[str, str]:
    algos = {OID_RSA: "rsa", **_ECDSA_SIG, **_GOST_SIG}
    if kernel == "6.12":
        algos.update(_ECDSA_SHA3_SIG)
    else:
        algos.update(_SM2_SIG)
    return algos


class SignerInfo:
    __slots__ = ("version", "hash_algo", "pkey_algo", "signature", "key_id", "authattrs", "unsupported")

    def __init__(self) -> None:
        self.version = 0
        self.hash_algo = ""
        self.pkey_algo = ""
        self.signature = b""
        self.key_id = b""
        self.authattrs = False
        self.unsupported = False


class Pkcs7:
    """A parsed PKCS#7 message (what pkcs7_parse_message keeps)."""

    __slots__ = ("version", "data_type", "data", "certs", "signers")

    def __init__(self) -> None:
        self.version = 0
        self.data_type = ""
        self.data: bytes | None = None
        self.certs: list[Certificate] = []
        self.signers: list[SignerInfo] = []


class Pkcs7Error(LkmError):
    errno: int

    def __init__(self, reason: str, err: int) -> None:
        super().__init__(reason, errno=err)


def _choice_items(d: bytes, t: Tlv) -> list[Tlv]:
    if not (t.cls == UNIVERSAL and t.tag in (SET, SEQUENCE)):
        raise Asn1Error("expected SET OF or SEQUENCE OF")
    return children(d, t)


def parse_pkcs7(d: bytes, *, kernel: str = "6.1") -> Pkcs7:
    """pkcs7_parse_message: the grammar of pkcs7.asn1 with pkcs7_parser.c's checks, in order."""
    msg = Pkcs7()
    try:
        top = parse_blob(d)
        if not top.is_(UNIVERSAL, SEQUENCE):
            raise Asn1Error("PKCS#7 ContentInfo is not a SEQUENCE")
        items = children(d, top)
        if not items or not items[0].is_(UNIVERSAL, OID):
            raise Asn1Error("PKCS#7 contentType missing")
        if oid_text(d[items[0].start : items[0].end]) != OID_SIGNED_DATA:
            raise Pkcs7Error("Only support pkcs7_signedData type", errno.EINVAL)
        if len(items) > 1:
            if not (items[1].cls == CONTEXT and items[1].tag == 0) or len(items) > 2:
                raise Asn1Error("unexpected element after contentType")
            (sd,) = children(d, items[1])
            _signed_data(d, sd, msg, kernel)
    except Asn1Error as exc:
        raise Pkcs7Error(exc.reason, exc.errno) from None
    # pkcs7_check_authattrs
    if not msg.signers:
        raise Pkcs7Error("Inconsistently supplied authAttrs", errno.EINVAL)
    want = msg.signers[0].authattrs
    if any(s.authattrs != want for s in msg.signers):
        raise Pkcs7Error("Inconsistently supplied authAttrs", errno.EINVAL)
    return msg


def _signed_data(d: bytes, sd: Tlv, msg: Pkcs7, kernel: str) -> None:
    if not sd.is_(UNIVERSAL, SEQUENCE):
        raise Asn1Error("SignedData is not a SEQUENCE")
    items = children(d, sd)
    if len(items) < 4:
        raise Asn1Error("SignedData too short")
    version, digest_algos, content = items[:3]
    if not version.is_(UNIVERSAL, INTEGER):
        raise Asn1Error("SignedData version is not an INTEGER")
    if version.end - version.start != 1 or d[version.start] not in (1, 3):
        raise Pkcs7Error("Unsupported SignedData version", errno.EINVAL)
    msg.version = d[version.start]
    for alg in _choice_items(d, digest_algos):
        _algorithm(d, alg)
    _content_info(d, content, msg)
    rest = items[3:]
    if rest and rest[0].cls == CONTEXT and rest[0].tag in (0, 2):
        for c in children(d, rest[0]):
            try:
                msg.certs.append(Certificate(d[c.header : c.outer_end], source="PKCS#7 certificate"))
            except KeyError_ as exc:
                raise Pkcs7Error(exc.reason, exc.errno) from None
        rest = rest[1:]
    if rest and rest[0].cls == CONTEXT and rest[0].tag in (1, 3):
        rest = rest[1:]
    if len(rest) != 1:
        raise Asn1Error("SignedData: signerInfos missing or extra elements")
    for si in _choice_items(d, rest[0]):
        msg.signers.append(_signer_info(d, si, msg, kernel))


def _algorithm(d: bytes, alg: Tlv) -> str:
    if not alg.is_(UNIVERSAL, SEQUENCE):
        raise Asn1Error("AlgorithmIdentifier is not a SEQUENCE")
    parts = children(d, alg)
    if not parts or not parts[0].is_(UNIVERSAL, OID) or len(parts) > 2:
        raise Asn1Error("malformed AlgorithmIdentifier")
    return oid_text(d[parts[0].start : parts[0].end])


def _content_info(d: bytes, ci: Tlv, msg: Pkcs7) -> None:
    if not ci.is_(UNIVERSAL, SEQUENCE):
        raise Asn1Error("ContentInfo is not a SEQUENCE")
    parts = children(d, ci)
    if not parts or not parts[0].is_(UNIVERSAL, OID):
        raise Asn1Error("ContentInfo contentType missing")
    oid = oid_text(d[parts[0].start : parts[0].end])
    if len(parts) > 1:
        if not (parts[1].cls == CONTEXT and parts[1].tag == 0) or len(parts) > 2:
            raise Asn1Error("malformed ContentInfo content")
        (data,) = children(d, parts[1])
        msg.data = d[data.start : data.end]
    if oid not in (OID_DATA, OID_MS_INDIRECT):
        raise Pkcs7Error(f"Unsupported data type {oid}", errno.EINVAL)
    msg.data_type = oid


def _signer_info(d: bytes, si: Tlv, msg: Pkcs7, kernel: str) -> SignerInfo:
    if not si.is_(UNIVERSAL, SEQUENCE):
        raise Asn1Error("SignerInfo is not a SEQUENCE")
    parts = children(d, si)
    if len(parts) < 5:
        raise Asn1Error("SignerInfo too short")
    s = SignerInfo()
    version, sid, digest_alg = parts[:3]
    if not version.is_(UNIVERSAL, INTEGER) or version.end - version.start != 1:
        raise Pkcs7Error("Unsupported SignerInfo version", errno.EINVAL)
    s.version = d[version.start]
    if s.version == 1:
        if msg.version != 1:
            raise Pkcs7Error("SignerInfo version mismatch", errno.EBADMSG)
        expect_skid = False
    elif s.version == 3:
        if msg.version == 1:
            raise Pkcs7Error("SignerInfo version mismatch", errno.EBADMSG)
        expect_skid = True
    else:
        raise Pkcs7Error("Unsupported SignerInfo version", errno.EINVAL)
    raw_serial = raw_issuer = raw_skid = b""
    if sid.is_(UNIVERSAL, SEQUENCE):
        issuer, serial = children(d, sid)[:2]
        if not serial.is_(UNIVERSAL, INTEGER):
            raise Asn1Error("IssuerAndSerialNumber serial is not an INTEGER")
        raw_issuer, raw_serial = d[issuer.start : issuer.end], d[serial.start : serial.end]
    elif sid.cls == CONTEXT and sid.tag == 0 and not sid.constructed:
        raw_skid = d[sid.start : sid.end]
    else:
        raise Asn1Error("malformed SignerIdentifier")
    digest_oid = _algorithm(d, digest_alg)
    name = HASH_OIDS.get(digest_oid)
    if name is None or name not in (DIGESTS_612 if kernel == "6.12" else DIGESTS_61):
        raise Pkcs7Error(f"Unsupported digest algo: {digest_oid}", errno.ENOPKG)
    s.hash_algo = name
    rest = parts[3:]
    if rest[0].cls == CONTEXT and rest[0].tag in (0, 2):
        s.authattrs = True
        rest = rest[1:]
    if len(rest) < 2:
        raise Asn1Error("SignerInfo: signature missing")
    pkey_oid = _algorithm(d, rest[0])
    pkey = _sig_algos(kernel).get(pkey_oid)
    if pkey is None:
        raise Pkcs7Error(f"Unsupported pkey algo: {pkey_oid}", errno.ENOPKG)
    s.pkey_algo = pkey
    if not rest[1].is_(UNIVERSAL, OCTET_STRING):
        raise Asn1Error("EncryptedDigest is not an OCTET STRING")
    s.signature = d[rest[1].start : rest[1].end]
    extra = rest[2:]
    if extra and not (extra[0].cls == CONTEXT and extra[0].tag in (1, 3) and len(extra) == 1):
        raise Asn1Error("SignerInfo: unexpected trailing elements")
    if msg.data_type == OID_MS_INDIRECT and not s.authattrs:
        raise Pkcs7Error("Authenticode requires AuthAttrs", errno.EBADMSG)
    s.key_id = raw_skid if expect_skid else raw_serial + raw_issuer
    return s


# --------------------------------------------------------------------------------------
# verification


class _Digests(dict[str, "bytes | None"]):
    """The signed data's digest per hash, computed when a key needs it (None: lkm cannot)."""

    def __init__(self, data: bytes | memoryview, names: list[str]) -> None:
        super().__init__()
        self.data = data
        self.names = set(names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __missing__(self, name: str) -> bytes | None:
        try:
            value: bytes | None = hash_digest(name, self.data)
        except LkmError:
            value = None  # the kernel can; lkm only needs it if a key matches
        self[name] = value
        return value


def _signer_cert(msg: Pkcs7, s: SignerInfo) -> Certificate | None:
    """pkcs7_find_key: an embedded certificate whose issuer+serial id equals the signer id."""
    for c in msg.certs:
        if c.id0 == s.key_id:
            return c
    return None


def _pkcs7_verify(msg: Pkcs7, digests: dict[str, bytes | None], kernel: str) -> tuple[int, str]:
    """pkcs7_verify for VERIFYING_MODULE_SIGNATURE: 0, or the errno and message."""
    if msg.data_type != OID_DATA:
        return errno.EKEYREJECTED, "Invalid module sig (not pkcs7-data)"
    if any(s.authattrs for s in msg.signers):
        return errno.EKEYREJECTED, "Invalid module sig (has authattrs)"
    actual = errno.ENOPKG
    for s in msg.signers:
        if s.hash_algo not in digests:
            s.unsupported = True
            continue
        cert = _signer_cert(msg, s)
        if cert is not None:
            rc = public_key_verify(
                cert, s.pkey_algo, s.hash_algo, digests[s.hash_algo], s.signature, kernel=kernel
            )
            if rc == errno.ENOPKG:
                s.unsupported = True
                continue
            if rc:
                return rc, "PKCS#7 signature verification against the embedded certificate failed"
        actual = 0
    return actual, ""


def _validate_trust_one(
    msg: Pkcs7, s: SignerInfo, ring: Keyring, digests: dict[str, bytes | None], kernel: str
) -> tuple[int, str]:
    if s.unsupported:
        return errno.ENOPKG, ""
    # (a)/(b): the embedded chain.  sign-file never embeds certificates; a chain is followed by
    # issuer+serial only (the AKID fallback of x509_get_sig_params is not modelled).
    x509 = _signer_cert(msg, s)
    seen: set[int] = set()
    # the signed data's digest is computed only when a key is found to check it against (a
    # model booted without its keys finds none: ENOKEY, no hashing of the module)
    sig_owner_below: tuple[str, str, Callable[[], bytes | None], bytes] = (
        s.pkey_algo,
        s.hash_algo,
        lambda: digests[s.hash_algo],
        s.signature,
    )
    last: Certificate | None = None
    while x509 is not None and id(x509) not in seen:
        seen.add(id(x509))
        found = ring.find(x509.id0, x509.id1)
        if isinstance(found, Certificate):
            return _matched(found, sig_owner_below, kernel, f"embedded certificate {found.description}")
        if x509.self_signed_candidate:
            return errno.ENOKEY, "unknown self-signed certificate in the message"
        last = x509
        digest = hash_digest(x509.sig_hash, x509.tbs) if x509.sig_hash else None
        sig_owner_below = (x509.sig_pkey_algo, x509.sig_hash, _given(digest), x509.signature)
        x509 = next((c for c in msg.certs if c.id0 == x509.akid_id), None) if x509.akid_id else None
    if last is not None and (last.akid_id or last.akid_keyid):
        found = ring.find(last.akid_id, last.akid_keyid)
        if isinstance(found, Certificate):
            return _matched(found, sig_owner_below, kernel, f"root certificate's signer {found.description}")
        if isinstance(found, int):
            return found, "trusted key matched the first id only"
    found = ring.find(s.key_id, None)
    if isinstance(found, Certificate):
        sig = (s.pkey_algo, s.hash_algo, lambda: digests[s.hash_algo], s.signature)
        return _matched(found, sig, kernel, f"direct signer {found.description}")
    return errno.ENOKEY, "no trusted key matches the signer"


def _given(digest: bytes | None) -> Callable[[], bytes | None]:
    return lambda: digest


def _matched(
    key: Certificate, sig: tuple[str, str, Callable[[], bytes | None], bytes], kernel: str, how: str
) -> tuple[int, str]:
    rc = public_key_verify(key, sig[0], sig[1], sig[2](), sig[3], kernel=kernel)
    if rc:
        name = errno.errorcode.get(rc, str(rc))
        return errno.EKEYREJECTED, f"{how}: signature does not verify ({name})"
    return 0, how


def verify_pkcs7(
    data: bytes | memoryview, blob: bytes, ring: Keyring, *, kernel: str = "6.1"
) -> tuple[int, str, str]:
    """verify_pkcs7_signature for a module: (errno, kernel message, lkm detail)."""
    try:
        msg = parse_pkcs7(blob, kernel=kernel)
    except Pkcs7Error as exc:
        return exc.errno, exc.reason, "PKCS#7 parse"
    if msg.data is not None:
        return errno.EBADMSG, "PKCS#7 signature with non-detached data", ""
    digests = _Digests(data, [s.hash_algo for s in msg.signers])
    rc, why = _pkcs7_verify(msg, digests, kernel)
    if rc:
        return rc, why, "pkcs7_verify"
    cached = errno.ENOKEY
    detail = ""
    for s in msg.signers:
        rc, how = _validate_trust_one(msg, s, ring, digests, kernel)
        detail = detail or how
        if rc == errno.ENOKEY:
            continue
        if rc == errno.ENOPKG:
            cached = errno.ENOPKG if cached == errno.ENOKEY else cached
            continue
        if rc == 0:
            cached = 0
            detail = how
            continue
        return rc, "", how
    return cached, "", detail


# --------------------------------------------------------------------------------------
# signing (scripts/sign-file)


def _cert_issuer_serial(cert: Certificate) -> tuple[bytes, bytes]:
    """The issuer Name and serialNumber INTEGER elements of a certificate, as encoded in it."""
    d = cert.der
    top = parse_blob(d)
    tbs = children(d, top)[0]
    parts = children(d, tbs)
    i = 1 if parts and parts[0].cls == CONTEXT and parts[0].tag == 0 else 0
    serial, _alg, issuer = parts[i : i + 3]
    return d[issuer.header : issuer.outer_end], d[serial.header : serial.outer_end]


def pkcs7_for(
    data: bytes, key: object, cert: Certificate, hash_name: str = "sha256", *, use_keyid: bool = False
) -> bytes:
    """The detached CMS SignedData sign-file makes (OpenSSL CMS_sign with NOCERTS|BINARY|NOATTR|
    NOSMIMECAP [|USE_KEYID]) for ``data`` with a private key from ``cryptography``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    if hash_name not in HASH_OID_OF:
        raise LkmError(f"unknown hash algorithm {hash_name!r}")
    h = getattr(hashes, {"sha1": "SHA1", "sha224": "SHA224", "sha256": "SHA256", "sha384": "SHA384",
                         "sha512": "SHA512", "sha3-256": "SHA3_256", "sha3-384": "SHA3_384",
                         "sha3-512": "SHA3_512"}.get(hash_name, ""), None)  # fmt: skip
    if h is None:
        raise LkmError(f"sign-file cannot use hash {hash_name!r} here")
    digest_alg = der(0x30, oid_der(HASH_OID_OF[hash_name]))
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), h())
        sig_alg = der(0x30, oid_der(OID_RSA) + b"\x05\x00")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(data, ec.ECDSA(h()))
        sig_alg = der(0x30, oid_der(_ECDSA_WITH[hash_name]))
    else:
        raise LkmError(f"unsupported signing key type {type(key).__name__}")
    if use_keyid:
        if cert.skid is None:
            raise LkmError("the certificate has no subjectKeyIdentifier (-k needs one)")
        sid = der(0x80, cert.skid)
        version = b"\x02\x01\x03"
    else:
        issuer, serial = _cert_issuer_serial(cert)
        sid = der(0x30, issuer + serial)
        version = b"\x02\x01\x01"
    signer_info = der(0x30, version + sid + digest_alg + sig_alg + der(0x04, signature))
    signed_data = der(
        0x30,
        version + der(0x31, digest_alg) + der(0x30, oid_der(OID_DATA)) + der(0x31, signer_info),
    )
    return der(0x30, oid_der(OID_SIGNED_DATA) + der(0xA0, signed_data))

"""The appended module signature.

Layout (kernel's module_signature.h): ``[module][signer][key id][signature]
[struct module_signature: u8 algo, hash, id_type, signer_len, key_id_len, pad[3]; be32 sig_len]
["~Module signature appended~\\n"]``.  With id_type PKCS#7 (every kernel since 4.3) the signature
is a DER PKCS#7 SignedData; kmod shows its first SignerInfo: issuer CN as ``signer``, serial
number as ``sig_key``, digest algorithm as ``sig_hashalgo``, encrypted digest as ``signature``.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from lkm.errors import BadSignature

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from mmap import mmap

__all__ = [
    "DIGEST_OID_NAMES",
    "KEY_ALGO_OIDS",
    "MODULE_SIG_STRING",
    "PKEY_ALGO",
    "PKEY_HASH_ALGO",
    "PKEY_ID_PKCS7",
    "PKEY_ID_TYPE",
    "Signature",
    "module_size",
    "oid_text",
    "read_signature",
]

MODULE_SIG_STRING = b"~Module signature appended~\n"
_MODSIG = struct.Struct(">BBBBB3xI")

PKEY_ALGO = ("DSA", "RSA")
PKEY_HASH_ALGO = ("md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3")
PKEY_ID_TYPE = ("PGP", "X509", "PKCS#7")
PKEY_ID_PKCS7 = 2

# OpenSSL's long names for the digest OIDs, which is what kmod prints (OBJ_obj2txt).
DIGEST_OID_NAMES: dict[str, str] = {
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1",
    "1.3.36.3.2.1": "ripemd160",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
    "1.2.156.10197.1.401": "sm3",
}


@dataclass(frozen=True, slots=True)
class Signature:
    """An appended signature: ``id_type`` "PKCS#7", "X509" or "PGP"; ``raw`` the blob as appended
    (DER PKCS#7); ``module_size`` the bytes of the module before it."""

    id_type: str
    algo: str
    hash_algo: str
    signer: bytes
    key_id: bytes
    signature: bytes
    raw: bytes
    module_size: int

    def pkcs7(self) -> Any:
        """The whole PKCS#7 message as an ``asn1crypto.cms.ContentInfo`` (certificates,
        signed attributes, everything), for callers who need more than kmod shows."""
        from asn1crypto import cms

        return cms.ContentInfo.load(self.raw)


def _has_trailer(data: bytes | mmap) -> bool:
    n = len(MODULE_SIG_STRING)
    return len(data) >= n and bytes(data[len(data) - n :]) == MODULE_SIG_STRING


def module_size(data: bytes | mmap) -> int:
    """Length of the module proper: the file minus any appended signature (as the kernel strips it)."""
    if not _has_trailer(data):
        return len(data)
    size = len(data) - len(MODULE_SIG_STRING)
    if size < _MODSIG.size:
        return len(data)
    _a, _h, _i, signer_len, key_id_len, sig_len = _MODSIG.unpack_from(data, size - _MODSIG.size)
    rest = size - _MODSIG.size - sig_len - signer_len - key_id_len
    return rest if rest >= 0 else len(data)


def read_signature(data: bytes | mmap) -> Signature | None:
    """The signature appended to ``data``, None if unsigned; :class:`BadSignature` if damaged."""
    if not _has_trailer(data):
        return None
    size = len(data) - len(MODULE_SIG_STRING)
    if size < _MODSIG.size:
        raise BadSignature("signature trailer without room for struct module_signature")
    size -= _MODSIG.size
    algo, hsh, id_type, signer_len, key_id_len, sig_len = _MODSIG.unpack_from(data, size)
    if algo >= len(PKEY_ALGO) or hsh >= len(PKEY_HASH_ALGO) or id_type >= len(PKEY_ID_TYPE):
        raise BadSignature(f"struct module_signature has unknown algo/hash/id_type {algo}/{hsh}/{id_type}")
    if sig_len == 0 or size < sig_len + signer_len + key_id_len:
        raise BadSignature(f"signature length {sig_len} does not fit the file")
    end = size
    raw = bytes(data[end - sig_len : end])
    end -= sig_len
    key_id = bytes(data[end - key_id_len : end])
    end -= key_id_len
    signer = bytes(data[end - signer_len : end])
    end -= signer_len
    if id_type != PKEY_ID_PKCS7:
        return Signature(
            PKEY_ID_TYPE[id_type], PKEY_ALGO[algo], PKEY_HASH_ALGO[hsh], signer, key_id, raw, raw, end
        )
    # sign-file leaves struct module_signature's algo 0 for PKCS#7: the message says which
    signer, serial, digest, key_algo, enc = _parse_pkcs7_cached(raw)
    return Signature("PKCS#7", key_algo, digest, signer, serial, enc, raw, end)


# Modules signed with one key share every byte of their PKCS#7 message up to the encrypted
# digest, which is the last element.  When a message has the same length and the same bytes up
# to that point as one already parsed, its structure (all lengths included) is the same, so the
# earlier result holds with the new digest: exact, and it saves a parse per module.
_PKCS7_SEEN: list[tuple[int, bytes, tuple[bytes, bytes, str, str]]] = []


def _parse_pkcs7_cached(der: bytes) -> tuple[bytes, bytes, str, str, bytes]:
    for total, prefix, fields in _PKCS7_SEEN:
        if len(der) == total and der.startswith(prefix):
            return (*fields, der[len(prefix) :])
    signer, serial, digest, key_algo, enc = _parse_pkcs7(der)
    if enc and der.endswith(enc):
        if len(_PKCS7_SEEN) >= 8:
            _PKCS7_SEEN.pop(0)
        _PKCS7_SEEN.append((len(der), der[: len(der) - len(enc)], (signer, serial, digest, key_algo)))
    return signer, serial, digest, key_algo, enc


def _tlvs(der: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int, int]]:
    """(class, tag, contents start, contents end) of each DER element in der[start:end].

    A minimal definite-length DER walker over offsets: the hot path of reading a whole
    distribution's signatures (asn1crypto's object model costs ~200 us each; see
    :meth:`Signature.pkcs7` for the full parse).
    """
    if end is None:
        end = len(der)
    out = []
    p = start
    while p < end:
        if p + 2 > end:
            raise ValueError("truncated DER header")
        ident = der[p]
        tag = ident & 0x1F
        p += 1
        if tag == 0x1F:  # high tag number form
            tag = 0
            while True:
                if p >= end:
                    raise ValueError("truncated DER tag")
                b = der[p]
                p += 1
                tag = (tag << 7) | (b & 0x7F)
                if not b & 0x80:
                    break
        if p >= end:
            raise ValueError("truncated DER length")
        ln = der[p]
        p += 1
        if ln & 0x80:
            n = ln & 0x7F
            if n == 0 or n > 4 or p + n > end:
                raise ValueError("unsupported DER length")
            ln = int.from_bytes(der[p : p + n], "big")
            p += n
        if p + ln > end:
            raise ValueError("DER element runs past its container")
        out.append((ident >> 6, tag, p, p + ln))
        p += ln
    return out


def _one(der: bytes, start: int, end: int) -> tuple[int, int, int, int]:
    items = _tlvs(der, start, end)
    if len(items) != 1:
        raise ValueError("expected one DER element")
    return items[0]


def oid_text(contents: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's contents (ValueError when empty)."""
    arcs: list[int] = []
    v = 0
    for b in contents:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(v)
            v = 0
    if not arcs:
        raise ValueError("empty OBJECT IDENTIFIER")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(x) for x in [first, arcs[0] - 40 * first, *arcs[1:]])


_UNIVERSAL, _CONTEXT = 0, 2
_INTEGER, _OCTET_STRING, _OID, _SEQUENCE, _SET = 2, 4, 6, 16, 17
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_CN_OID_BYTES = b"\x55\x04\x03"  # 2.5.4.3


# SignerInfo's digestEncryptionAlgorithm -> the public key algorithm (the kernel's pkey_algo)
KEY_ALGO_OIDS: dict[str, str] = {
    "1.2.840.113549.1.1.1": "RSA",  # rsaEncryption
    "1.2.840.113549.1.1.5": "RSA",
    "1.2.840.113549.1.1.11": "RSA",
    "1.2.840.113549.1.1.12": "RSA",
    "1.2.840.113549.1.1.13": "RSA",
    "1.2.840.113549.1.1.14": "RSA",
    "1.2.840.10040.4.1": "DSA",
    "1.2.840.10040.4.3": "DSA",
    "1.2.840.10045.2.1": "ECDSA",
    "1.2.840.10045.4.3.2": "ECDSA",
    "1.2.840.10045.4.3.3": "ECDSA",
    "1.2.840.10045.4.3.4": "ECDSA",
    "1.2.156.10197.1.301": "SM2",
    "1.3.101.112": "Ed25519",
}


def _parse_pkcs7(der: bytes) -> tuple[bytes, bytes, str, str, bytes]:
    """(issuer CN, serial bytes, digest name, key algorithm, encrypted digest) of the first
    SignerInfo.

    Walks the DER with asn1crypto's parser and reads only the fields kmod shows (the full
    object model costs ~200 us a signature, too much for a whole distribution's modules).
    """
    try:
        _c, _t, cs, ce = _one(der, 0, len(der))
        oid, content = _tlvs(der, cs, ce)[:2]
        if oid[1] != _OID or oid_text(der[oid[2] : oid[3]]) != _OID_SIGNED_DATA:
            raise BadSignature("PKCS#7 message is not SignedData")
        sd = _one(der, content[2], content[3])
        signed = _tlvs(der, sd[2], sd[3])
        sets = [c for c in signed if c[0] == _UNIVERSAL and c[1] == _SET]
        signer_infos = _tlvs(der, sets[-1][2], sets[-1][3]) if len(sets) >= 2 else []
        if not signer_infos:
            raise BadSignature("PKCS#7 message has no SignerInfo")
        si = _tlvs(der, signer_infos[0][2], signer_infos[0][3])
        sid = si[1]
        if sid[0] != _UNIVERSAL or sid[1] != _SEQUENCE:
            raise BadSignature("PKCS#7 SignerInfo is not identified by issuer and serial")
        issuer, serial = _tlvs(der, sid[2], sid[3])[:2]
        n = int.from_bytes(der[serial[2] : serial[3]], "big", signed=True)
        serial_bytes = abs(n).to_bytes((abs(n).bit_length() + 7) // 8, "big")
        signer = _issuer_cn(der, issuer[2], issuer[3])
        alg = _tlvs(der, si[2][2], si[2][3])[0]
        digest_oid = oid_text(der[alg[2] : alg[3]])
        enc = next(der[c[2] : c[3]] for c in si[3:] if c[0] == _UNIVERSAL and c[1] == _OCTET_STRING)
        # digestEncryptionAlgorithm: the first SEQUENCE after digestAlgorithm ([0] attributes skipped)
        enc_alg = next(c for c in si[3:] if c[0] == _UNIVERSAL and c[1] == _SEQUENCE)
        key_oid = oid_text(der[slice(*_tlvs(der, enc_alg[2], enc_alg[3])[0][2:4])])
    except BadSignature:
        raise
    except (ValueError, TypeError, IndexError, StopIteration) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadSignature(f"malformed PKCS#7 signature: {why}", errno.EBADMSG) from None
    return (
        signer,
        serial_bytes,
        DIGEST_OID_NAMES.get(digest_oid, digest_oid),
        KEY_ALGO_OIDS.get(key_oid, key_oid),
        enc,
    )


def _issuer_cn(der: bytes, start: int, end: int) -> bytes:
    """kmod's x509_name_to_str: the first commonName; with none, the last entry's value."""
    last = b""
    for rdn in _tlvs(der, start, end):
        for atv in _tlvs(der, rdn[2], rdn[3]):
            typ, value = _tlvs(der, atv[2], atv[3])[:2]
            last = der[value[2] : value[3]]
            if der[typ[2] : typ[3]] == _CN_OID_BYTES:
                return last
    return last

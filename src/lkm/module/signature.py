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
from mmap import mmap

from lkm.errors import BadSignature

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


@dataclass(frozen=True)
class Signature:
    id_type: str  # "PKCS#7", "X509", "PGP"
    algo: str
    hash_algo: str
    signer: bytes
    key_id: bytes
    signature: bytes
    raw: bytes  # the signature blob as appended (DER PKCS#7 for id_type PKCS#7)
    module_size: int  # bytes of the module before the signature


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
    signer, serial, digest, enc = _parse_pkcs7(raw)
    return Signature("PKCS#7", PKEY_ALGO[algo], digest, signer, serial, enc, raw, end)


def _parse_pkcs7(der: bytes) -> tuple[bytes, bytes, str, bytes]:
    """(issuer CN, serial bytes, digest name, encrypted digest) of the first SignerInfo."""
    from asn1crypto import cms  # lazy: only signed modules pay for it

    try:
        info = cms.ContentInfo.load(der, strict=False)
        if info["content_type"].native != "signed_data":
            raise BadSignature("PKCS#7 message is not SignedData")
        signer_infos = info["content"]["signer_infos"]
        if len(signer_infos) == 0:
            raise BadSignature("PKCS#7 message has no SignerInfo")
        si = signer_infos[0]
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            raise BadSignature("PKCS#7 SignerInfo is not identified by issuer and serial")
        ias = sid.chosen
        serial = int(ias["serial_number"].native)
        serial_bytes = abs(serial).to_bytes((abs(serial).bit_length() + 7) // 8, "big")
        signer = _issuer_cn(ias["issuer"])
        oid = si["digest_algorithm"]["algorithm"].dotted
        digest = DIGEST_OID_NAMES.get(oid, oid)
        enc = bytes(si["signature"].native)
    except BadSignature:
        raise
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/... on malformed DER
        raise BadSignature(
            f"malformed PKCS#7 signature: {str(exc).splitlines()[0] if str(exc) else exc!r}", errno.EBADMSG
        ) from None
    return signer, serial_bytes, digest, enc


def _issuer_cn(name: object) -> bytes:
    """kmod's x509_name_to_str: the first commonName; with none, the last entry's value."""
    from asn1crypto import x509

    assert isinstance(name, x509.Name)
    last: bytes = b""
    for rdn in name.chosen:
        for atv in rdn:
            value = atv["value"]
            raw = value.chosen.contents if hasattr(value, "chosen") else value.contents
            last = bytes(raw)
            if atv["type"].native == "common_name":
                return last
    return last

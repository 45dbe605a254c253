"""A small BER reader with the rules of the kernel's lib/asn1_decoder.c.

The kernel parses PKCS#7 and X.509 with a table-driven BER decoder: definite and indefinite
lengths, at most 65535 bytes per blob (-EMSGSIZE), any structural fault -EBADMSG.  This reader
gives the elements of a blob as :class:`Tlv` (offsets into the blob) so that callers can keep the
raw bytes the kernel keeps (serial, issuer and subject contents, SKIDs) without re-encoding.
"""

from __future__ import annotations

import errno

from lkm.errors import LkmError
from lkm.module.signature import oid_text as decode

__all__ = ["MAX_BLOB", "Asn1Error", "Tlv", "children", "der", "oid_der", "oid_text", "parse_blob", "read_tlv"]

MAX_BLOB = 65535

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3
INTEGER, BIT_STRING, OCTET_STRING, NULL, OID, SEQUENCE, SET = 2, 3, 4, 5, 6, 16, 17


_EBADMSG = errno.EBADMSG


class Asn1Error(LkmError):
    """Malformed BER, with the errno the kernel's decoder returns."""

    errno: int

    def __init__(self, reason: str, err: int = _EBADMSG) -> None:
        super().__init__(reason, errno=err)


class Tlv:
    """One element: class, constructed flag, tag number, header start, contents [start, end)."""

    __slots__ = ("cls", "constructed", "tag", "header", "start", "end", "indefinite")

    def __init__(
        self, cls: int, constructed: bool, tag: int, header: int, start: int, end: int, indefinite: bool
    ) -> None:  # fmt: skip
        self.cls = cls
        self.constructed = constructed
        self.tag = tag
        self.header = header
        self.start = start
        self.end = end
        self.indefinite = indefinite

    @property
    def outer_end(self) -> int:
        """End of the whole element (after the end-of-contents octets when indefinite)."""
        return self.end + 2 if self.indefinite else self.end

    def is_(self, cls: int, tag: int) -> bool:
        return self.cls == cls and self.tag == tag

    def __repr__(self) -> str:
        return f"Tlv(cls={self.cls}, tag={self.tag}, {self.start}:{self.end})"


def read_tlv(data: bytes, pos: int, end: int) -> Tlv:
    """The element starting at ``pos`` (which must end by ``end``)."""
    header = pos
    if pos + 2 > end:
        raise Asn1Error("truncated ASN.1 header")
    ident = data[pos]
    pos += 1
    tag = ident & 0x1F
    if tag == 0x1F:  # the kernel's decoder does not take high tag numbers
        raise Asn1Error("ASN.1 high tag number")
    ln = data[pos]
    pos += 1
    constructed = bool(ident & 0x20)
    if ln == 0x80:
        if not constructed:
            raise Asn1Error("indefinite length on a primitive ASN.1 element")
        # Find the matching end-of-contents by walking the children.
        p = pos
        while True:
            if p + 2 > end:
                raise Asn1Error("indefinite-length ASN.1 element without end-of-contents")
            if data[p] == 0 and data[p + 1] == 0:
                return Tlv(ident >> 6, constructed, tag, header, pos, p, True)
            p = read_tlv(data, p, end).outer_end
    if ln & 0x80:
        n = ln & 0x7F
        if n > 2 or pos + n > end:  # lengths beyond 65535 cannot occur in a 64 KiB blob
            raise Asn1Error("ASN.1 length too long")
        ln = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + ln > end:
        raise Asn1Error("ASN.1 element runs past its container")
    return Tlv(ident >> 6, constructed, tag, header, pos, pos + ln, False)


def children(data: bytes, t: Tlv) -> list[Tlv]:
    """The elements inside a constructed element."""
    if not t.constructed:
        raise Asn1Error("expected a constructed ASN.1 element")
    out = []
    p = t.start
    while p < t.end:
        c = read_tlv(data, p, t.end)
        out.append(c)
        p = c.outer_end
    return out


def parse_blob(data: bytes) -> Tlv:
    """The one top-level element of a whole blob (the kernel's 64 KiB limit applies)."""
    if len(data) > MAX_BLOB:
        raise Asn1Error(f"ASN.1 blob of {len(data)} bytes exceeds 65535", errno.EMSGSIZE)
    top = read_tlv(data, 0, len(data))
    if top.outer_end != len(data):
        raise Asn1Error("trailing data after the ASN.1 element")
    return top


def oid_text(contents: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's contents (the module reader's decoder, with the
    kernel decoder's error)."""
    try:
        return decode(contents)
    except ValueError as exc:
        raise Asn1Error(str(exc)) from None


def oid_der(dotted: str) -> bytes:
    """DER encoding (tag, length, contents) of a dotted OBJECT IDENTIFIER."""
    arcs = [int(x) for x in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return der(0x06, bytes(body))


def der(tag: int, contents: bytes) -> bytes:
    """One DER element (definite length, minimal length octets)."""
    n = len(contents)
    if n < 0x80:
        ln = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        ln = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + ln + contents

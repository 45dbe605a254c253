"""Module signatures as the kernel checks them, and as scripts/sign-file makes them.

:func:`verify_module` is kernel/module/signing.c ``mod_verify_sig`` over
``verify_pkcs7_signature(.., VERIFY_USE_SECONDARY_KEYRING, VERIFYING_MODULE_SIGNATURE)``:
the trailer checks of ``mod_check_sig``, the PKCS#7 grammar of crypto/asymmetric_keys/pkcs7.asn1
with pkcs7_parser.c's actions, ``pkcs7_verify`` (usage rules, digest, embedded certificate
chain) and ``pkcs7_validate_trust`` against a :class:`~lkm.trust.keys.Keyring`.  The result is
the kernel's errno (0, ENODATA, ENOPKG, ENOKEY, EKEYREJECTED, EBADMSG, EINVAL, EMSGSIZE) with the
kernel's message.  :func:`module_sig_check` turns that into the load decision (enforcing,
lockdown, taint E).  :func:`sign_module` writes the bytes ``sign-file`` writes.
Facts: the project's trust spec (sections 1 and 2); kernel 6.1 and 6.12 rules are selected by
``kernel="6.1"|"6.12"``.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from lkm.errors import LkmError
from lkm.trust.keys import Certificate, Keyring, load_certificates, need_cryptography
from lkm.trust.pkcs7 import pkcs7_for, verify_pkcs7

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lkm.trust.keys import Keyring

__all__ = [
    "MODULE_SIG_STRING",
    "PKEY_ID_PKCS7",
    "REASONS",
    "LoadDecision",
    "SigResult",
    "append_signature",
    "check_for_load",
    "load_private_key",
    "mod_verify_sig",
    "module_sig_check",
    "sign_module",
]

MODULE_SIG_STRING = b"~Module signature appended~\n"
_MODSIG = struct.Struct(">BBBBB3xI")
PKEY_ID_PKCS7 = 2

# errno -> the kernel's reason strings (module_sig_check) and userspace strerror
REASONS = {
    errno.ENODATA: "unsigned module",
    errno.ENOPKG: "module with unsupported crypto",
    errno.ENOKEY: "module with unavailable key",
}


@dataclass(frozen=True, slots=True)
class SigResult:
    """The kernel's verdict on a module's signature: ``errno`` 0 or the error mod_verify_sig
    returns, ``message`` the kernel's log line for it ("" when it logs none), ``signer`` the key
    that verified it (its description) and ``detail`` lkm's account of the path taken."""

    errno: int
    message: str
    signer: str
    detail: str
    signed_size: int

    @property
    def ok(self) -> bool:
        return self.errno == 0

    @property
    def errno_name(self) -> str:
        return errno.errorcode.get(self.errno, str(self.errno)) if self.errno else "0"


def mod_verify_sig(
    data: bytes | memoryview, ring: Keyring | None, *, kernel: str = "6.1", mangled: bool = False
) -> SigResult:
    """module_sig_check's verification of a whole (decompressed) module file against ``ring``
    (None: an empty keyring)."""
    n = len(MODULE_SIG_STRING)
    size = len(data)
    if mangled or not (size > n and bytes(data[size - n :]) == MODULE_SIG_STRING):
        return SigResult(errno.ENODATA, "", "", "no signature marker" if not mangled else "mangled", size)
    size -= n
    if size <= _MODSIG.size:
        return SigResult(errno.EBADMSG, "", "", "no room for struct module_signature", size)
    _algo, _hsh, id_type, signer_len, key_id_len, sig_len = _MODSIG.unpack_from(data, size - _MODSIG.size)
    raw = bytes(data[size - _MODSIG.size : size - 4])
    if sig_len >= size - _MODSIG.size:
        return SigResult(errno.EBADMSG, "", "", f"sig_len {sig_len} does not fit", size)
    if id_type != PKEY_ID_PKCS7:
        return SigResult(errno.ENOPKG, "module: not signed with expected PKCS#7 message", "", "id_type", size)
    if any(raw[:2]) or signer_len or key_id_len or any(raw[5:8]):
        msg = "module: PKCS#7 signature info has unexpected non-zero params"
        return SigResult(errno.EBADMSG, msg, "", "", size)
    signed = size - _MODSIG.size - sig_len
    blob = bytes(data[signed : size - _MODSIG.size])

    if ring is None:
        ring = Keyring(".builtin_trusted_keys")
    rc, message, detail = verify_pkcs7(memoryview(data)[:signed], blob, ring, kernel=kernel)
    signer = detail.split(" ", 2)[-1] if rc == 0 else ""
    return SigResult(rc, message, signer if rc == 0 else "", detail, signed)


# --------------------------------------------------------------------------------------
# the load decision


@dataclass(frozen=True, slots=True)
class LoadDecision:
    """module_sig_check's outcome: ``errno`` 0 to go on loading, ``taint`` whether the module (and
    kernel) get taint E, ``messages`` the kernel's log lines (taint notice only on the first)."""

    errno: int
    taint: bool
    sig_ok: bool
    messages: list[str]
    result: SigResult


def module_sig_check(
    result: SigResult, name: str, *, enforce: bool, lockdown: bool = False, module_sig: bool = True,
    comm: str = "insmod",
) -> LoadDecision:  # fmt: skip
    """kernel/module/signing.c module_sig_check over a verification result."""
    if not module_sig:
        return LoadDecision(0, False, False, [], result)
    if result.errno == 0:
        return LoadDecision(0, False, True, [], result)
    reason = REASONS.get(result.errno)
    msgs = [result.message] if result.message else []
    if reason is None:
        return LoadDecision(result.errno, False, False, msgs, result)
    if enforce:
        return LoadDecision(
            errno.EKEYREJECTED, False, False, [*msgs, f"Loading of {reason} is rejected"], result
        )
    if lockdown:
        line = f"Lockdown: {comm}: {reason} is restricted; see man kernel_lockdown.7"
        return LoadDecision(errno.EPERM, False, False, [*msgs, line], result)
    taint = f"{name}: module verification failed: signature and/or required key missing - tainting kernel"
    return LoadDecision(0, True, False, [*msgs, taint], result)


def check_for_load(
    data: bytes | memoryview, ring: Keyring | None, name: str, *, kernel: str = "6.1", enforce: bool = False,
    lockdown: bool = False, module_sig: bool = True, mangled: bool = False,
) -> LoadDecision:  # fmt: skip
    """module_sig_check as load_module runs it.  ``ring`` None means the kernel's keys are not
    known (a model booted without them): a signature that is well formed but whose signer cannot
    be looked up (ENOKEY) is then taken as verified, every other verdict stands."""
    if not module_sig:
        return LoadDecision(0, False, False, [], SigResult(0, "", "", "CONFIG_MODULE_SIG off", len(data)))
    res = mod_verify_sig(data, ring, kernel=kernel, mangled=mangled)
    if ring is None and res.errno == errno.ENOKEY:
        res = SigResult(0, "", "", "trusted keys unknown: signer not checked", res.signed_size)
    return module_sig_check(res, name, enforce=enforce, lockdown=lockdown)


def append_signature(data: bytes, blob: bytes) -> bytes:
    """The module with a PKCS#7 blob appended as sign-file appends it."""
    return data + blob + _MODSIG.pack(0, 0, PKEY_ID_PKCS7, 0, 0, len(blob)) + MODULE_SIG_STRING


def load_private_key(data: bytes, password: bytes | None = None) -> object:
    """A PEM (or DER) private key, as sign-file reads ``<key>`` (passphrase from KBUILD_SIGN_PIN)."""
    need_cryptography()
    from cryptography.hazmat.primitives import serialization

    loaders: list[Callable[..., object]] = [
        serialization.load_pem_private_key,
        serialization.load_der_private_key,
    ]
    for load in loaders:
        try:
            return load(data, password)
        except (ValueError, TypeError):
            continue
    raise LkmError("cannot read the private key (PEM or DER; passphrase from KBUILD_SIGN_PIN)")


def sign_module(
    data: bytes, key_pem: bytes, cert_der: bytes, hash_name: str = "sha256", *, use_keyid: bool = False
) -> tuple[bytes, bytes]:
    """(signed module, detached PKCS#7) for ``data``, byte for byte what sign-file writes."""

    pin = os.environ.get("KBUILD_SIGN_PIN")
    key = load_private_key(key_pem, pin.encode() if pin else None)
    certs = [Certificate(cert_der)] if cert_der[:1] == b"\x30" else None
    if certs is None:
        certs = load_certificates(cert_der)
    blob = pkcs7_for(data, key, certs[0], hash_name, use_keyid=use_keyid)
    return append_signature(data, blob), blob

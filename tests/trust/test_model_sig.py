"""The model kernel's module_sig_check: which modules it refuses, and where it taints "E".

The expectations are the kernel's rules (trust spec §1.2), each one checked against lkm's
verifier whose verdicts the signature tests tie to sign-file, openssl and Debian's own build.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lkm.kernel.interface import MODULE_INIT_IGNORE_VERMAGIC, KernelError
from lkm.kernel.model import ModelKernel
from lkm.trust.sig import MODULE_SIG_STRING

from support import FIX6, RSA_CERT


def boot(tmp_path: Path, *, keys: bool = True) -> ModelKernel:
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    if keys:
        k.set_trusted_keys(RSA_CERT.read_bytes())
    return k


def taints(k: ModelKernel, name: str) -> str:
    m = k.module(name)
    assert m is not None
    return m.taints


def tampered(tmp_path: Path) -> Path:
    data = bytearray((FIX6 / "chardev-signed.ko").read_bytes())
    data[200] ^= 1
    p = tmp_path / "chardev-bad.ko"
    p.write_bytes(bytes(data))
    return p


def test_signed_by_trusted_key_no_taint(tmp_path: Path) -> None:
    k = boot(tmp_path)
    k.finit_module(str(FIX6 / "chardev-signed.ko"))
    assert "E" not in taints(k, "chardev")
    assert not k.tainted() & (1 << 13)


def test_unsigned_taints_e_when_not_enforcing(tmp_path: Path) -> None:
    k = boot(tmp_path)
    k.finit_module(str(FIX6 / "chardev.ko"))
    assert "E" in taints(k, "chardev")
    assert k.tainted() & (1 << 13)


def test_unknown_key_taints_e_or_is_rejected(tmp_path: Path) -> None:
    k = ModelKernel.boot("linux-6.1-amd64", tmp_path / "k.db")
    k.set_trusted_keys(b"")  # a kernel with an empty builtin keyring
    k.finit_module(str(FIX6 / "chardev-signed.ko"))
    assert "E" in taints(k, "chardev")
    k.delete_module("chardev")
    k.set_sig_enforce("1")
    with pytest.raises(KernelError) as exc:
        k.finit_module(str(FIX6 / "chardev-signed.ko"))
    assert exc.value.errno == errno.EKEYREJECTED
    assert "Loading of module with unavailable key is rejected" in exc.value.reason


def test_enforcing_refuses_unsigned_and_mangled(tmp_path: Path) -> None:
    k = boot(tmp_path)
    k.set_sig_enforce("y")
    with pytest.raises(KernelError) as exc:
        k.finit_module(str(FIX6 / "chardev.ko"))
    assert (exc.value.errno, exc.value.reason) == (
        errno.EKEYREJECTED,
        "Loading of unsigned module is rejected",
    )
    # --force-vermagic: the signature is not even looked at
    with pytest.raises(KernelError) as exc:
        k.finit_module(str(FIX6 / "chardev-signed.ko"), flags=MODULE_INIT_IGNORE_VERMAGIC)
    assert exc.value.errno == errno.EKEYREJECTED
    k.finit_module(str(FIX6 / "chardev-signed.ko"))
    assert "E" not in taints(k, "chardev")


def test_bad_signature_refused_even_when_not_enforcing(tmp_path: Path) -> None:
    k = boot(tmp_path)
    with pytest.raises(KernelError) as exc:
        k.finit_module(str(tampered(tmp_path)))
    assert exc.value.errno == errno.EKEYREJECTED
    data = (FIX6 / "chardev-signed.ko").read_bytes()
    info = len(data) - len(MODULE_SIG_STRING) - 12
    bad = data[:info] + b"\x01" + data[info + 1 :]  # non-zero algo field
    (tmp_path / "p.ko").write_bytes(bad)
    with pytest.raises(KernelError) as exc:
        k.finit_module(str(tmp_path / "p.ko"))
    assert exc.value.errno == errno.EBADMSG


def test_sig_enforce_is_enable_only_and_lockdown_rises(tmp_path: Path) -> None:
    k = boot(tmp_path)
    k.set_sig_enforce("0")
    k.set_sig_enforce("1")
    with pytest.raises(KernelError) as exc:
        k.set_sig_enforce("0")
    assert exc.value.errno == errno.EROFS
    k2 = boot(tmp_path / "2")
    k2.set_lockdown("integrity")
    with pytest.raises(KernelError) as exc:
        k2.finit_module(str(FIX6 / "chardev.ko"))
    assert exc.value.errno == errno.EPERM
    with pytest.raises(KernelError) as exc:
        k2.set_lockdown("none")
    assert exc.value.errno == errno.EPERM


def test_keys_unknown_accepts_well_formed_signatures(tmp_path: Path) -> None:
    k = boot(tmp_path, keys=False)
    k.finit_module(str(FIX6 / "chardev-signed.ko"))
    assert "E" not in taints(k, "chardev")


def test_no_module_sig_means_no_check(tmp_path: Path) -> None:
    k = boot(tmp_path)
    k._set_meta("sig", "0")
    k.set_sig_enforce("1")
    k.finit_module(str(FIX6 / "chardev.ko"))
    assert "E" not in taints(k, "chardev")

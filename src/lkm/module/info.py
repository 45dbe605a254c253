"""A module's information as kmod's ``kmod_module_get_info`` lists it: the .modinfo entries in
file order, then the signature's sig_id, signer, sig_key, sig_hashalgo and signature."""

from __future__ import annotations

from lkm.module.file import ModuleFile

__all__ = ["HEX_LINE_BYTES", "hex_field", "info_entries"]

HEX_LINE_BYTES = 20  # kmod breaks hex dumps after every 20th byte with ":\n\t\t"


def hex_field(data: bytes) -> str:
    """kmod's hex rendering: ``AB:CD:...`` upper case, a line break after each 20th byte."""
    h = data.hex(":").upper()
    width = 3 * HEX_LINE_BYTES  # "XX:" per byte; the last ':' of a line becomes ":\n\t\t"
    if len(h) <= width:
        return h
    return ":\n\t\t".join([h[i : i + width - 1] for i in range(0, len(h), width)])


def info_entries(mod: ModuleFile) -> list[tuple[str, str]]:
    """(key, value) pairs in kmod's order, signature fields decoded as kmod decodes them."""
    entries = list(mod.modinfo)
    sig = mod.signature
    if sig is not None:
        entries.append(("sig_id", sig.id_type))
        entries.append(("signer", sig.signer.decode("utf-8", "surrogateescape")))
        entries.append(("sig_key", hex_field(sig.key_id)))
        entries.append(("sig_hashalgo", sig.hash_algo))
        entries.append(("signature", hex_field(sig.signature)))
    return entries

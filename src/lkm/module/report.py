"""A module as one JSON-able dict: every modinfo field, typed parameters, signature, symbols."""

from __future__ import annotations

from typing import Any

from lkm.elf.constants import MACHINE_NAMES, STB_WEAK
from lkm.module.file import ModuleFile

__all__ = ["module_report"]


def module_report(mod: ModuleFile, *, exports: bool = False, imports: bool = False) -> dict[str, Any]:
    fields: dict[str, list[str]] = {}
    for k, v in mod.modinfo:
        fields.setdefault(k, []).append(v)
    params = []
    for p in mod.parameters:
        d: dict[str, Any] = {"name": p.name, "type": p.type, "description": p.description}
        if p.spec24 is not None:
            s = p.spec24
            d.update(
                type=s.describe().split(" ")[0] if s.valid else p.type,
                spec=s.spec,
                min=s.min,
                max=s.max,
                persistent=s.persistent,
                size=s.size,
                valid=s.valid,
            )
        params.append(d)
    sig = mod.signature
    doc: dict[str, Any] = {
        "name": mod.name,
        "format": "2.4" if mod.version.user_space_link else "2.6+",
        "compression": mod.compression,
        "elf_class": mod.elf.elfclass,
        "byte_order": "little" if mod.elf.little_endian else "big",
        "machine": MACHINE_NAMES.get(mod.elf.e_machine, str(mod.elf.e_machine)),
        "modinfo": [[k, v] for k, v in mod.modinfo],
        "fields": fields,
        "vermagic": mod.vermagic,
        "kernel_version": mod.kernel_version,
        "license": mod.license,
        "depends": mod.depends,
        "aliases": mod.aliases,
        "softdeps": mod.softdeps,
        "import_ns": mod.import_ns,
        "parameters": params,
        "build_id": mod.build_id.hex() if mod.build_id else None,
        "signature": None
        if sig is None
        else {
            "id_type": sig.id_type,
            "signer": sig.signer.decode("utf-8", "replace"),
            "key_id": sig.key_id.hex(),
            "hash_algo": sig.hash_algo,
            "signature": sig.signature.hex(),
            "module_size": sig.module_size,
        },
    }
    if exports:
        doc["exports"] = [
            {"name": e.name, "gpl": e.gpl, "crc": e.crc, "namespace": e.namespace} for e in mod.exports
        ]
    if imports:
        doc["imports"] = [{"name": n.name, "crc": n.crc, "weak": n.bind == STB_WEAK} for n in mod.needed]
    return doc

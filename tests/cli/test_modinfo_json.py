"""``lkm modinfo --json``: every field kmod shows, with the values kmod shows (kmod -F is the
oracle), parameters typed, exports and imports on request."""

from __future__ import annotations

import json
import subprocess

import pytest

from support import FIX6, kmod_modinfo, lkm_cmd, run

FILES = ["chardev-signed.ko", "params.ko", "exporter.ko", "importer.ko", "chardev.ko.xz"]


def _kmod_field(field: str, path: str) -> list[str]:
    out = subprocess.run([kmod_modinfo(), "-0", "-F", field, path], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.oracle
@pytest.mark.parametrize("name", FILES)
def test_json_fields_equal_kmod(name: str) -> None:
    path = str(FIX6 / name)
    proc = run([*lkm_cmd(), "modinfo", "--json", "--exports", "--imports", path])
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["filename"] == path
    for key, values in doc["fields"].items():
        if key != "parm":  # kmod's -F parm is the merged form, checked with "parameters" below
            assert values == _kmod_field(key, path), key
    kparms = [p.split(":", 1)[0] for p in _kmod_field("parm", path)]
    assert sorted(p["name"] for p in doc["parameters"]) == sorted(kparms)
    for p in doc["parameters"]:
        line = next(x for x in _kmod_field("parm", path) if x.split(":", 1)[0] == p["name"])
        if p["type"]:
            assert line.endswith(f"({p['type']})")
        if p["description"]:
            assert f":{p['description']}" in line
    if doc["signature"]:
        assert doc["signature"]["signer"] == _kmod_field("signer", path)[0]
        assert doc["signature"]["hash_algo"] == _kmod_field("sig_hashalgo", path)[0]
        kkey = _kmod_field("sig_key", path)[0].replace(":", "").lower()
        assert doc["signature"]["key_id"] == kkey
    assert isinstance(doc["exports"], list) and isinstance(doc["imports"], list)
    assert all({"name", "crc", "weak"} <= set(i) for i in doc["imports"])


def test_json_one_object_per_module() -> None:
    paths = [str(FIX6 / n) for n in FILES]
    out = run([*lkm_cmd(), "modinfo", "--json", *paths]).stdout.decode().splitlines()
    assert [json.loads(line)["filename"] for line in out] == paths

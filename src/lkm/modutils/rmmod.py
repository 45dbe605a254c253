"""modutils 2.4's rmmod as a library: unloading (one module, a stack with -r, the autoclean
reap with -a) and persistent data saved before unload (modutils-2.4.md "Persistent data").

The persist file is found from the module's ksymoops symbols: ``__insmod_<m>_P<file>`` names
it, ``__insmod_<m>_O<object>_M<mtime>_V<ver>`` the object it was loaded from (refused if that
changed since), ``__insmod_<m>_S<section>_L<len>`` where its sections went.  The values are
read from kernel memory and written as ``name=v1,v2`` lines (temporary file and rename).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time

from lkm.errors import InvalidModule, LkmError
from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.load24 import iter_strings
from lkm.kernel.model.struct24 import QM_DEPS, QM_SYMBOLS
from lkm.link.output import write_atomic
from lkm.module.file import ModuleFile
from lkm.module.modinfo import parse_param24_spec
from lkm.modutils.insmod import _symbols
from lkm.safeio import read_bytes

__all__ = ["SIZES", "RmmodError", "persistent_values", "reap", "rmmod", "save_persistent"]


SIZES = {"b": 1, "h": 2, "i": 4, "l": 4}
_O = re.compile(r"O(?P<path>.*)_M(?P<mtime>[0-9A-F]+)_V(?P<ver>-?\d+)$")


class RmmodError(LkmError):
    """rmmod's refusal or failure (modutils' wording)."""


def _ksymoops(kernel: ModelKernel, name: str) -> dict[str, str | dict[str, int]]:
    out: dict[str, str | dict[str, int]] = {}
    sections: dict[str, int] = {}
    prefix = f"__insmod_{name}_"
    for sym, value in _symbols(kernel.query_module(name, QM_SYMBOLS).data):
        if not sym.startswith(prefix):
            continue
        rest = sym[len(prefix) :]
        if rest.startswith("P"):
            out["persist"] = rest[1:]
        elif rest.startswith("O"):
            m = _O.match(rest)
            if m:
                out["object"], out["mtime"] = m["path"], m["mtime"]
        elif rest.startswith("S"):
            sec = rest[1:].rsplit("_L", 1)[0]
            sections[sec] = value
    out["sections"] = sections
    return out


def _format(values: list[bytes | int], typ: str) -> str:
    if typ == "c":
        texts = []
        for v in values:
            assert isinstance(v, bytes)
            s = v.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            texts.append(f'"{s}"')
        return ",".join(texts)
    return ",".join(str(v) for v in values)


def persistent_values(kernel: ModelKernel, name: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(persist file, [(parameter, value text)]) of a loaded module with persistent data, read
    from kernel memory; None when it has none.  Raises RmmodError if its object changed."""
    info = _ksymoops(kernel, name)
    persist = info.get("persist")
    if not isinstance(persist, str):
        return None
    obj = info.get("object")
    if not isinstance(obj, str):
        raise RmmodError(f"{name}: has persistent data but no object symbol")
    try:
        mtime = int(os.stat(obj).st_mtime)
    except OSError:
        mtime = -1
    if f"{mtime & 0xFFFFFFFF:08X}" != info.get("mtime"):
        raise RmmodError(f"Object for module {name} has changed since load")
    try:
        mod = ModuleFile.open(obj)
    except (OSError, InvalidModule) as exc:
        raise RmmodError(f"{obj}: {getattr(exc, 'reason', exc)}") from None
    sections = info["sections"]
    assert isinstance(sections, dict)
    symbols = {
        s.name: s for s in mod.elf.symbols()[1:] if s.name and s.shndx and s.shndx < len(mod.elf.sections)
    }
    out: list[tuple[str, str]] = []
    for key, spec_text in mod.modinfo:
        if not key.startswith("parm_") or key.startswith("parm_desc_"):
            continue
        spec = parse_param24_spec(spec_text)
        pname = key[5:]
        sym = symbols.get(pname)
        if not spec.persistent or sym is None:
            continue
        sec = mod.elf.sections[sym.shndx].name
        if sec not in sections:
            continue
        addr = sections[sec] + sym.value
        width = spec.size or 0 if spec.type == "c" else SIZES.get(spec.type, 4)
        raw = kernel.read_memory(addr, width * max(spec.max, 1))
        values: list[bytes | int] = []
        for k in range(max(spec.max, 1)):
            chunk = raw[k * width : (k + 1) * width]
            if spec.type == "c":
                values.append(chunk.split(b"\0", 1)[0])
            else:
                fmt = {1: "<b", 2: "<h", 4: "<i"}[width]
                values.append(struct.unpack(fmt, chunk)[0])
        out.append((pname, _format(values, spec.type)))
    return persist, out


def save_persistent(kernel: ModelKernel, name: str) -> str | None:
    """Write the module's persistent parameters to its persist file; returns the file (None
    when the module has no persistent data)."""
    found = persistent_values(kernel, name)
    if found is None:
        return None
    path, values = found
    new = dict(values)
    lines = [
        f"#% Kernel {kernel.meta.get('uname', kernel.release)}",
        f"#% Data saved {time.asctime(time.gmtime())} GMT",
    ]
    done: set[str] = set()
    try:
        old = read_bytes(path).decode("latin-1").splitlines()
    except OSError:
        old = []
    for line in old:
        if line.startswith("#%"):
            continue
        if line.startswith("#") or "=" not in line:
            lines.append(line)
            continue
        pname = line.split("=", 1)[0].strip()
        if pname in new:
            lines.append(f"{pname}={new[pname]}")
            done.add(pname)
        else:
            lines.append(f"#% Warning: parameter {pname} is not supported in this kernel")
            lines.append(line)
    lines.extend(f"{p}={v}" for p, v in values if p not in done)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_atomic(path, ("\n".join(lines) + "\n").encode("latin-1", "replace"))
    return path


def rmmod(
    kernel: ModelKernel, names: list[str], *, recursive: bool = False, persist_only: bool = False
) -> list[str]:
    """Unload ``names`` (after saving persistent data); ``recursive`` then also the modules
    each one used that are no longer needed; ``persist_only`` saves without unloading.
    Returns the persist files written.  Raises RmmodError / KernelError on the first failure."""
    saved: list[str] = []
    for name in names:
        if kernel.initstate(name) is None:
            raise KernelError("delete_module", 2, f"module {name} is not loaded")
        deps = list(iter_strings(kernel.query_module(name, QM_DEPS).data)) if recursive else []
        p = save_persistent(kernel, name)
        if p:
            saved.append(p)
        if persist_only:
            continue
        kernel.delete_module_24(name)
        for dep in deps:
            with contextlib.suppress(KernelError, RmmodError):  # still used: stays, as with -r
                saved += rmmod(kernel, [dep], recursive=True)
    return saved


def reap(kernel: ModelKernel) -> list[str]:
    """rmmod -a: persistent data of every module saved, then delete_module(NULL)."""
    saved = []
    for m in kernel.modules():
        try:
            p = save_persistent(kernel, m.name)
        except RmmodError:
            continue
        if p:
            saved.append(p)
    kernel.delete_module_24(None)
    return saved

"""Consistency of a model kernel's state, checked from the tables alone (the fault tests run
it after concurrent and killed runs): references between existing modules, memory areas
owned by existing modules and not overlapping, every loaded module with its memory and each
area inside its arena, exports unique and inside their module's memory, 2.4 modules' symbol
rows equal to the symbol table of the struct module in their memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lkm.kernel.model.state import decode_blob
from lkm.kernel.model.store import Store
from lkm.kernel.model.struct24 import LAYOUTS, cstring

if TYPE_CHECKING:
    from lkm.kernel.model import ModelKernel


__all__ = ["check"]


def check(k: ModelKernel, st: Store) -> list[str]:
    problems: list[str] = []
    # 2.4: insmod puts struct module first in the image it links (the design's record says so)
    user_space_link = k.version.user_space_link
    mods = st.all_modules()
    for user, used in st.all_refs():
        if user not in mods or used not in mods:
            problems.append(f"dangling reference {user} -> {used}")
    for table in ("areas", "memory", "msyms", "kallsyms"):
        for seq in st.seqs_in(table):
            if seq not in mods:
                problems.append(f"{table} rows of a module that does not exist (seq {seq})")
    areas: dict[int, list[tuple[int, int, int]]] = {}
    for pool, arena in k.arenas.items():
        prev_end, prev = arena.start, ""
        for start, span, size, seq in st.pool_areas(pool):
            if start < prev_end:
                problems.append(f"{pool} area {start:#x} overlaps {prev}")
            if start + span > arena.end or span < size:
                problems.append(f"{pool} area {start:#x}+{span:#x} outside its arena or smaller than {size}")
            prev_end, prev = start + span, f"{start:#x}"
            areas.setdefault(seq, []).append((start, span, size))
    for seq, (name, _design, base, _size, state) in mods.items():
        if state == "Unformed":
            problems.append(f"{name}: left half loaded")
        if seq not in areas:
            problems.append(f"{name}: loaded without memory")
        elif user_space_link and areas[seq][0][0] != base:
            problems.append(f"{name}: struct module at {base:#x} but memory at {areas[seq][0][0]:#x}")
    owners: dict[str, int] = {s.name: -1 for s in st.kernel_symbols()}
    for seq, name, address in st.all_exports():
        if name in owners:
            problems.append(
                f"export {name} of {mods.get(seq, ('?',))[0]} also exported by seq {owners[name]}"
            )
        owners[name] = seq
        in_memory = any(s <= address < s + span for s, span, _ in areas.get(seq, []))
        if seq in mods and not user_space_link and not in_memory and address:
            problems.append(f"export {name} at {address:#x} outside its module {mods[seq][0]}")
    lay = LAYOUTS[k.bits // 8]
    for seq, (name, _design, base, _size, _state) in mods.items():
        if not user_space_link:
            continue
        blob = st.memory_blob(seq)
        if blob is None:
            continue
        mem = decode_blob(blob, f"memory of {name}", k.state.path)
        sos = int.from_bytes(mem[: lay.word], "little")
        m = lay.unpack_module(mem, sos)
        want = []
        if m["nsyms"] and m["syms"] >= base:
            for i in range(m["nsyms"]):
                v, p = lay.symbol.unpack_from(mem, m["syms"] - base + i * lay.symbol.size)
                want.append((cstring(mem, p - base), v))
        have = st.module_exports(seq)
        if [tuple(r) for r in have] != want:
            problems.append(f"{name}: symbol rows differ from its struct module's table")
    return problems

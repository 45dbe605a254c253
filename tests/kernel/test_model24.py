"""The 2.4 system calls of the model kernel against 2.4.20's kernel/module.c rules
(modutils-2.4.md "Kernel side"): every call's success and error paths, with images built by
hand so each check of sys_init_module is hit on its own."""

from __future__ import annotations

import errno
import struct

import pytest

from lkm.kernel.interface import KernelError
from lkm.kernel.model import ModelKernel
from lkm.kernel.model.load24 import NoSpace, iter_strings
from lkm.kernel.model.struct24 import (
    LAYOUTS,
    MOD_AUTOCLEAN,
    MOD_INITIALIZING,
    MOD_RUNNING,
    MOD_USED_ONCE,
    MOD_VISITED,
    QM_DEPS,
    QM_INFO,
    QM_MODULES,
    QM_REFS,
    QM_SYMBOLS,
)

L = LAYOUTS[4]
SOS = L.sizeof_module  # 96


def image(base: int, modname: str, *, size: int = 512, symbols: list[tuple[int, str]] = (),
          dep_bases: list[int] = (), **fields: int) -> bytes:  # fmt: skip
    """A module image as insmod builds it: struct module, name, symbol table, strings, deps."""
    body = bytearray(size)
    at = SOS
    name_at = at
    body[at : at + len(modname) + 1] = modname.encode() + b"\0"
    at = (at + len(modname) + 1 + 3) & ~3
    syms_at = at
    at += 8 * len(symbols)
    strings = []
    for value, sname in symbols:
        strings.append((value, at))
        body[at : at + len(sname) + 1] = sname.encode() + b"\0"
        at += len(sname) + 1
    for k, (value, sat) in enumerate(strings):
        struct.pack_into("<II", body, syms_at + 8 * k, value, base + sat)
    at = (at + 3) & ~3
    deps_at = at
    for k, d in enumerate(dep_bases):
        struct.pack_into("<III", body, at + 12 * k, d, 0, 0)
    f = {"size_of_struct": SOS, "name": base + name_at, "size": size, "nsyms": len(symbols),
         "syms": base + syms_at if symbols else 0, "ndeps": len(dep_bases),
         "deps": base + deps_at if dep_bases else 0, "init": base + 0x100}  # fmt: skip
    f.update(fields)
    body[:SOS] = L.pack_module(f)
    return bytes(body)


def load(k: ModelKernel, name: str, **kw: object) -> int:
    base = k.create_module(name, int(kw.get("size", 512)))  # type: ignore[call-overload]
    k.init_module_24(name, image(base, name, **kw))  # type: ignore[arg-type]
    return base


def info(k: ModelKernel, name: str) -> tuple[int, int, int, int]:
    return L.info.unpack(k.query_module(name, QM_INFO).data)  # type: ignore[return-value]


def code(exc: pytest.ExceptionInfo[KernelError]) -> int:
    return exc.value.errno


# -- create_module -----------------------------------------------------------------------


def test_create_module_reserves_page_granular_memory(k24: ModelKernel) -> None:
    a = k24.create_module("a", 5000)
    b = k24.create_module("b", 100)
    assert a == k24.arenas["vmalloc"].start
    assert b == a + 2 * 4096 + 4096  # two pages and the guard page
    assert info(k24, "a")[2] == 0  # neither running nor initializing: "(uninitialized)"


@pytest.mark.parametrize(
    "name, size, err",
    [("", 512, errno.EINVAL), ("tiny", SOS + 4, errno.EINVAL), ("x" * 5000, 8192, errno.ENAMETOOLONG)],
)
def test_create_module_refusals(k24: ModelKernel, name: str, size: int, err: int) -> None:
    with pytest.raises(KernelError) as e:
        k24.create_module(name, size)
    assert code(e) == err
    assert k24.modules() == []


def test_create_module_exists_and_out_of_memory(k24: ModelKernel) -> None:
    k24.create_module("m", 512)
    with pytest.raises(KernelError) as e:
        k24.create_module("m", 512)
    assert code(e) == errno.EEXIST
    arena = k24.arenas["vmalloc"]
    with pytest.raises(KernelError) as e:
        k24.create_module("huge", arena.end - arena.start)
    assert code(e) == errno.ENOMEM
    assert [m.name for m in k24.modules()] == ["m"]


def test_2_4_calls_refused_on_a_modern_kernel(k61: ModelKernel) -> None:
    for call in (lambda: k61.create_module("x", 4096), lambda: k61.query_module(None, QM_MODULES),
                 k61.get_kernel_syms, lambda: k61.init_module_24("x", b"")):  # fmt: skip
        with pytest.raises(KernelError) as e:
            call()
        assert code(e) == errno.ENOSYS


# -- init_module -------------------------------------------------------------------------


def test_init_module_runs_init_then_running(k24: ModelKernel) -> None:
    base = load(k24, "m", symbols=[(0x1234, "m_sym")])
    assert k24.executor.calls[-1].address == base + 0x100  # type: ignore[attr-defined]
    addr, size, flags, usecount = info(k24, "m")
    assert (addr, size, flags, usecount) == (base, 512, MOD_RUNNING, 0)
    assert [(s.name, s.address) for s in k24.module_symbols()[0][1]] == [("m_sym", 0x1234)]
    assert k24.check_integrity() == []


def bad(k: ModelKernel, name: str, data: bytes) -> int:
    with pytest.raises(KernelError) as e:
        k.init_module_24(name, data)
    return code(e)


def test_init_module_checks_each_pointer(k24: ModelKernel) -> None:
    b = k24.create_module("m", 512)
    cases = {
        "header too small": image(b, "m", size_of_struct=L.offsets["persist_start"] - 4),
        "header too big": image(b, "m", size_of_struct=SOS + 16 * 4 + 4),
        "size grows": image(b, "m", size=1024),
        "name below struct": image(b, "m", name=b + 8),
        "syms past end": image(b, "m", nsyms=100, syms=b + 400),
        "deps past end": image(b, "m", ndeps=50, deps=b + 400),
        "init outside": image(b, "m", init=b + 4096),
        "cleanup outside": image(b, "m", cleanup=b - 4),
        "ex_table reversed": image(b, "m", ex_table_start=b + 200, ex_table_end=b + 192),
        "ex_table ragged": image(b, "m", ex_table_start=b + 200, ex_table_end=b + 204),
        "flags": image(b, "m", flags=MOD_RUNNING),
        "can_unload outside": image(b, "m", can_unload=b + 9999),
        "kallsyms reversed": image(b, "m", kallsyms_start=b + 300, kallsyms_end=b + 200),
        "archdata outside": image(b, "m", archdata_start=b + 200, archdata_end=b + 9000),
        "kernel_data": image(b, "m", kernel_data=1),
        "changed name": image(b, "n", name=b + SOS),
    }
    for why, data in cases.items():
        assert bad(k24, "m", data) == errno.EINVAL, why
    assert bad(k24, "nosuch", image(b, "m")) == errno.ENOENT
    assert bad(k24, "m", image(b, "m")[:4]) in (errno.EFAULT, errno.EINVAL)
    assert info(k24, "m")[2] == 0  # still uninitialized: every refusal left it as it was
    k24.init_module_24("m", image(b, "m"))  # and the good image goes in
    assert info(k24, "m")[2] == MOD_RUNNING


def test_init_module_dependencies(k24: ModelKernel) -> None:
    fat = load(k24, "fat", symbols=[(0xC0DE, "fat_fn")])
    b = k24.create_module("msdos", 512)
    assert bad(k24, "msdos", image(b, "msdos", dep_bases=[b])) == errno.EINVAL  # self-referential
    assert bad(k24, "msdos", image(b, "msdos", dep_bases=[0xDEAD0000])) == errno.EINVAL  # not a module
    k24.init_module_24("msdos", image(b, "msdos", dep_bases=[fat]))
    assert list(iter_strings(k24.query_module("msdos", QM_DEPS).data)) == ["fat"]
    assert list(iter_strings(k24.query_module("fat", QM_REFS).data)) == ["msdos"]
    assert info(k24, "fat")[2] == MOD_RUNNING | MOD_USED_ONCE
    with pytest.raises(KernelError) as e:
        k24.delete_module_24("fat")
    assert code(e) == errno.EBUSY
    k24.delete_module_24("msdos")
    k24.delete_module_24("fat")
    assert k24.modules() == [] and k24.check_integrity() == []


@pytest.mark.parametrize("ret, err", [(-errno.ENODEV, errno.ENODEV), (1, errno.EBUSY)])
def test_init_failure_leaves_an_uninitialized_module(k24: ModelKernel, ret: int, err: int) -> None:
    k24.executor.results["m"] = ret  # type: ignore[attr-defined]
    b = k24.create_module("m", 512)
    assert bad(k24, "m", image(b, "m")) == err
    assert info(k24, "m")[2] & (MOD_RUNNING | MOD_INITIALIZING) == 0
    assert k24.query_module("m", QM_SYMBOLS).data == b""  # MOD_CAN_QUERY false
    k24.delete_module_24("m")  # what insmod does next
    assert k24.modules() == []


# -- query_module ------------------------------------------------------------------------


def test_query_module_answers_and_enospc(k24: ModelKernel) -> None:
    load(k24, "first", symbols=[(1, "a"), (2, "bb")])
    load(k24, "second")
    assert k24.query_module(None, 0).ret == 0
    q = k24.query_module(None, QM_MODULES)
    assert (q.data, q.ret) == (b"second\0first\0", 2)
    with pytest.raises(NoSpace) as e:
        k24.query_module(None, QM_MODULES, bufsize=7)
    assert e.value.ret == len(b"second\0first\0")
    q = k24.query_module("first", QM_SYMBOLS)
    assert q.ret == 2 and q.data == struct.pack("<IIII", 1, 16, 2, 18) + b"a\0bb\0"
    with pytest.raises(NoSpace) as e:
        k24.query_module("first", QM_SYMBOLS, bufsize=17)
    assert e.value.ret == 16 + 5
    with pytest.raises(NoSpace) as e:
        k24.query_module("first", QM_INFO, bufsize=15)
    assert e.value.ret == 16
    kernel = k24.query_module(None, QM_SYMBOLS)
    assert kernel.ret == len(k24.kernel_symbols())
    for which in (QM_DEPS, QM_REFS, QM_INFO, 99):
        with pytest.raises(KernelError) as e:
            k24.query_module(None if which != 99 else "first", which)
        assert code(e) == errno.EINVAL
    with pytest.raises(KernelError) as e:
        k24.query_module("nosuch", QM_INFO)
    assert code(e) == errno.ENOENT


def test_kernel_symbols_are_versioned(k24: ModelKernel) -> None:
    names = [n for _v, n in k24.get_kernel_syms()]
    assert names[0] == "#" and "Using_Versions" in names
    printk = next(n for n in names if n.startswith("printk_R"))
    assert len(printk) == len("printk_R") + 8


# -- delete_module -----------------------------------------------------------------------


def set_flags(k: ModelKernel, name: str, add: int) -> None:
    with k.state.transaction() as db:
        db.execute("UPDATE modules SET flags = flags | ? WHERE name=?", (add, name))


def test_delete_module_in_use_and_missing(k24: ModelKernel) -> None:
    load(k24, "m")
    with k24.state.transaction() as db:
        db.execute("UPDATE modules SET usecount=1")
    with pytest.raises(KernelError) as e:
        k24.delete_module_24("m")
    assert code(e) == errno.EBUSY
    with pytest.raises(KernelError) as e:
        k24.delete_module_24("nosuch")
    assert code(e) == errno.ENOENT


def test_autoclean_reap_with_visited_second_chance(k24: ModelKernel) -> None:
    load(k24, "visited", flags=MOD_AUTOCLEAN)
    load(k24, "never_used", flags=MOD_AUTOCLEAN)
    load(k24, "plain")
    set_flags(k24, "visited", MOD_USED_ONCE | MOD_VISITED)
    k24.delete_module_24(None)  # first pass: VISITED cleared, the module stays
    assert sorted(m.name for m in k24.modules()) == ["never_used", "plain", "visited"]
    assert info(k24, "visited")[2] & MOD_VISITED == 0
    k24.delete_module_24(None)  # second pass: reaped; never used and non-autoclean stay
    assert sorted(m.name for m in k24.modules()) == ["never_used", "plain"]


def test_reap_restarts_after_freeing(k24: ModelKernel) -> None:
    """sys_delete_module(NULL) restarts its scan when it freed something, so a VISITED module
    seen before the restart loses its second chance in the same call (2.4.20's loop)."""
    load(k24, "visited", flags=MOD_AUTOCLEAN)
    load(k24, "auto", flags=MOD_AUTOCLEAN)
    set_flags(k24, "auto", MOD_USED_ONCE)
    set_flags(k24, "visited", MOD_USED_ONCE | MOD_VISITED)
    k24.delete_module_24(None)
    assert k24.modules() == []

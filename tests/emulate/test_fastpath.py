"""The emulator's fast paths keep the kernel's answers: module code returning through the x86
return thunk without Python, and sort() (lib/sort.c's heapsort calling module comparators)."""

from __future__ import annotations

import random
import struct

from lkm.emulate.kernel import BaseKernel
from lkm.emulate.module import load, run_init
from lkm.emulate.state import KernelState
from lkm.module.file import ModuleFile

from support import FIX6


def test_module_returns_run_without_kernel_calls() -> None:
    # perfloop's init calls its checksum function and printk; both functions return through
    # __x86_return_thunk (the module is built with CONFIG_RETHUNK): only printk is a call
    # into the Python kernel.
    k = BaseKernel("x86_64", None, KernelState.booted())
    em = load(k, ModuleFile.open(str(FIX6 / "perfloop.ko")))
    res = run_init(k, em)
    assert res.fault is None and res.value == 0
    assert dict(k.state.calls) == {"_printk": 1}
    assert k.machine.calls == 1


def _sorted_by_kernel(keys: list[int]) -> list[tuple[int, int]]:
    k = BaseKernel("x86_64", None, KernelState.booted())
    code = k.alloc(64)
    k.machine.write(code, bytes.fromhex("8b072b06c3"))  # cmp(a, b): return *(int *)a - *(int *)b
    base = k.alloc(8 * len(keys))
    k.machine.write(base, b"".join(struct.pack("<iI", key, i) for i, key in enumerate(keys)))
    assert k.call(k.resolve("sort") or 0, (base, len(keys), 8, code, 0)) == 0
    raw = k.machine.read(base, 8 * len(keys))
    return [struct.unpack_from("<iI", raw, 8 * i) for i in range(len(keys))]


def test_sort_orders_as_cmp_says() -> None:
    rng = random.Random(18)
    for n in (0, 1, 2, 3, 7, 8, 33, 100):
        keys = [rng.randrange(-50, 50) for _ in range(n)]
        out = _sorted_by_kernel(keys)
        assert [key for key, _ in out] == sorted(keys)
        assert sorted(out) == sorted((key, i) for i, key in enumerate(keys))  # a permutation


def test_sort_of_equal_keys_is_the_heapsorts() -> None:
    # lib/sort.c is not stable.  Worked by hand from its loop for five equal keys: building
    # the heap moves nothing (cmp >= 0 at every step of the backtrack); each extraction swaps
    # the root with the last heap element (n = 4, 3, 2, 1) and the sift-down moves nothing:
    # [0 1 2 3 4] -> [4 1 2 3 0] -> [3 1 2 4 0] -> [2 1 3 4 0] -> [1 2 3 4 0].
    out = _sorted_by_kernel([5, 5, 5, 5, 5])
    assert [i for _, i in out] == [1, 2, 3, 4, 0]

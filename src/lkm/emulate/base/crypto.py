"""The crypto API's registrations (crypto/algapi.c and the per-type files: shash.c, ahash.c,
skcipher.c, aead.c, akcipher.c, kpp.c, rng.c, scompress.c, acompress.c): an algorithm is
recorded under its cra_driver_name (an algorithm of the same driver name already registered:
-EEXIST, as crypto_check_alg/__crypto_register_alg), the batch forms register each and undo
on the first failure, unregistering one not registered is -ENOENT.  Templates likewise by
name.  crypto_has_alg finds what is registered.  Offsets: 6.1 amd64 (offsetof() against its
headers): where struct crypto_alg sits in each algorithm type and the size of each."""

from __future__ import annotations

from lkm.emulate.base.registry import EEXIST, ENOENT, name_at, register, table, unregister
from lkm.emulate.kernel import BaseKernel, kfunc
from lkm.emulate.machine import TrapCall

__all__ = [
    "CRA_DRIVER_NAME",
    "CRA_FLAGS",
    "CRA_NAME",
    "CRA_NAME_MAX",
    "CRA_PRIORITY",
    "CRA_SIZE",
    "TEMPLATE_NAME",
    "TEMPLATE_SIZE",
    "TYPES",
    "register_alg",
    "unregister_alg",
]


CRA_FLAGS, CRA_PRIORITY, CRA_NAME, CRA_DRIVER_NAME, CRA_NAME_MAX = 32, 48, 56, 184, 128
CRA_SIZE = 0x180
# algorithm type -> (offset of its struct crypto_alg base, sizeof the type)
TYPES = {
    "alg": (0, CRA_SIZE), "shash": (96, 480), "ahash": (88, 0x240), "skcipher": (64, 448), "aead": (64, 448),
    "akcipher": (80, 0x200), "kpp": (56, 0x1C0), "rng": (32, 0x1A0), "scomp": (32, 0x1A0),
    "acomp": (48, 0x1B0),
}  # fmt: skip
TEMPLATE_NAME, TEMPLATE_SIZE = 40, 168  # struct crypto_template: char name[128] at 40


def _names(k: BaseKernel, alg: int) -> tuple[str, str]:
    m = k.machine
    name = (m.read_cstr(alg + CRA_NAME, CRA_NAME_MAX) or b"").decode("latin-1")
    drv = (m.read_cstr(alg + CRA_DRIVER_NAME, CRA_NAME_MAX) or b"").decode("latin-1")
    return name, drv or name


def register_alg(k: BaseKernel, alg: int) -> int:
    """crypto_register_alg: -EINVAL without a name, -EEXIST for a driver name taken."""
    name, drv = _names(k, alg)
    if not name:
        return -22
    algs = table(k, "crypto")
    if any(isinstance(v, tuple) and v[1] == drv for v in algs.values()) or alg in algs:
        return -EEXIST
    err = register(k, "crypto-alg", alg, drv)
    if err == 0:
        algs[alg] = (name, drv)
    return err


def unregister_alg(k: BaseKernel, alg: int) -> int:
    algs = table(k, "crypto")
    if alg not in algs:
        return -ENOENT
    del algs[alg]
    unregister(k, "crypto-alg", alg)
    return 0


_TYPE_OF: dict[str, str] = {}  # kernel function -> algorithm type


def _type(name: str) -> str:
    return _TYPE_OF[name]


def _one(k: BaseKernel, c: TrapCall) -> int:
    base, _size = TYPES[_type(c.name)]
    return register_alg(k, c.arg(0) + base)


def _many(k: BaseKernel, c: TrapCall) -> int:
    """crypto_register_Xs(algs, count): each in order; on a failure the ones registered are
    unregistered again and its error returned."""
    base, size = TYPES[_type(c.name)]
    arr, count = c.arg(0), c.arg(1) & 0xFFFFFFFF
    for i in range(count):
        err = register_alg(k, arr + i * size + base)
        if err:
            for j in range(i):
                unregister_alg(k, arr + j * size + base)
            return err
    return 0


def _unregister_one(k: BaseKernel, c: TrapCall) -> int:
    base, _size = TYPES[_type(c.name)]
    err = unregister_alg(k, c.arg(0) + base)
    return err if c.name == "crypto_unregister_alg" else 0  # the typed ones return void


def _unregister_many(k: BaseKernel, c: TrapCall) -> int:
    base, size = TYPES[_type(c.name)]
    for i in range(c.arg(1) & 0xFFFFFFFF):
        unregister_alg(k, c.arg(0) + i * size + base)
    return 0


for _t in TYPES:
    _plural = _t + ("es" if _t.endswith("hash") else "s")
    for _fn, _impl, _n in ((f"crypto_register_{_t}", _one, 1),
                           (f"crypto_unregister_{_t}", _unregister_one, 1),
                           (f"crypto_register_{_plural}", _many, 2),
                           (f"crypto_unregister_{_plural}", _unregister_many, 2)):  # fmt: skip
        _TYPE_OF[_fn] = _t
        kfunc(_fn, nargs=_n)(_impl)


@kfunc("crypto_register_template", nargs=1)
def _register_template(k: BaseKernel, c: TrapCall) -> int:
    """crypto_register_template(tmpl): -EEXIST for a name taken (crypto/algapi.c)."""
    return register(k, "crypto-template", c.arg(0), name_at(k, c.arg(0) + TEMPLATE_NAME), by_name=True)


@kfunc("crypto_register_templates", nargs=2)
def _register_templates(k: BaseKernel, c: TrapCall) -> int:
    """crypto_register_templates(tmpls, count): each (struct crypto_template is 0x68 bytes
    on 6.1 amd64: name[128] at 40), undone on the first failure."""
    size = TEMPLATE_SIZE
    for i in range(c.arg(1) & 0xFFFFFFFF):
        t = c.arg(0) + i * size
        err = register(k, "crypto-template", t, name_at(k, t + TEMPLATE_NAME), by_name=True)
        if err:
            for j in range(i):
                unregister(k, "crypto-template", c.arg(0) + j * size)
            return err
    return 0


@kfunc("crypto_unregister_template", nargs=1)
def _unregister_template(k: BaseKernel, c: TrapCall) -> int:
    unregister(k, "crypto-template", c.arg(0))
    return 0


@kfunc("crypto_unregister_templates", nargs=2)
def _unregister_templates(k: BaseKernel, c: TrapCall) -> int:
    for i in range(c.arg(1) & 0xFFFFFFFF):
        unregister(k, "crypto-template", c.arg(0) + i * TEMPLATE_SIZE)
    return 0


@kfunc("crypto_has_alg", "crypto_has_ahash", "crypto_has_skcipher", "crypto_has_aead", "crypto_has_shash",
       nargs=3)  # fmt: skip
def _crypto_has_alg(k: BaseKernel, c: TrapCall) -> int:
    """crypto_has_alg(name, type, mask): an algorithm of that name or driver name is
    registered (in this kernel: by the modules loaded; the built-in ones are not listed)."""
    want = name_at(k, c.arg(0))
    return int(any(isinstance(v, tuple) and want in v for v in table(k, "crypto").values()))


@kfunc("crypto_init_queue", nargs=2)
def _crypto_init_queue(k: BaseKernel, c: TrapCall) -> int:
    """crypto_init_queue(queue, max_qlen): an empty list, backlog = &queue->list, qlen 0."""
    m = k.machine
    q = c.arg(0)
    m.write_word(q, q)
    m.write_word(q + 8, q)
    m.write_word(q + 16, q)
    m.write_int(q + 24, 4, 0)
    m.write_int(q + 28, 4, c.arg(1) & 0xFFFFFFFF)
    return 0

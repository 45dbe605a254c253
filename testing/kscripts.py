"""Scripts of the kernel source (the oracles of lkm's re-implementations), fetched on demand.

The kernel source is never part of the repository: :func:`kernel_script` takes one file out
of Debian's ``linux-source-<series>`` package (``apt-get download``, then the tarball inside
it is read as a stream and only that member is written) into a cache directory,
``$LKM_KSCRIPTS`` or ``$XDG_CACHE_HOME/lkm/kernel-scripts/<package>_<version>/`` (``~/.cache``
without it).  The corpus's
kernels are Debian's 6.1 and 6.12; ``scripts/faddr2line`` is the 6.1 series' by default.

    python -m testing.kscripts faddr2line        # fetch (about 140 MB downloaded once)
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from testing.lock import build_lock

SERIES = "6.1"


def cache_root() -> Path:
    env = os.environ.get("LKM_KSCRIPTS")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "lkm" / "kernel-scripts"


def cached(name: str, series: str = SERIES) -> Path | None:
    """The newest cached copy of ``scripts/<name>`` of linux-source-<series>, if any."""
    hits = sorted(glob.glob(str(cache_root() / f"linux-source-{series}_*" / name)))
    return Path(hits[-1]) if hits else None


def kernel_script(name: str, series: str = SERIES, *, fetch: bool = True) -> Path | None:
    """``scripts/<name>`` of Debian's linux-source-<series>: cached, else fetched with apt-get
    (None when that is not possible: no apt-get, no network, no such member)."""
    hit = cached(name, series)
    if hit is not None or not fetch:
        return hit
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    with build_lock(cache_root() / f"linux-source-{series}-{name}"):  # one download for all callers
        hit = cached(name, series)
        return hit if hit is not None else _fetch(name, series)


def _fetch(name: str, series: str) -> Path | None:
    pkg = f"linux-source-{series}"
    with tempfile.TemporaryDirectory(prefix="lkm-kscripts-") as tmp:
        r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True, check=False)
        debs = sorted(Path(tmp).glob(f"{pkg}_*.deb"))
        if r.returncode != 0 or not debs:
            return None
        deb = debs[-1]
        version = deb.name[len(pkg) + 1 :].rsplit("_", 1)[0]
        dest = cache_root() / f"{pkg}_{version}" / name
        member = f"{pkg}/scripts/{name}"
        # dpkg-deb --fsys-tarfile | (the .tar.xz inside) | that one member, streamed
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
            assert p.stdout is not None
            with tarfile.open(fileobj=p.stdout, mode="r|") as outer:
                for m in outer:
                    if not m.name.endswith(f"/{pkg}.tar.xz"):
                        continue
                    f = outer.extractfile(m)
                    if f is None:
                        return None
                    with tarfile.open(fileobj=f, mode="r|xz") as src:
                        for e in src:
                            if e.name == member and e.isfile():
                                g = src.extractfile(e)
                                if g is None:
                                    return None
                                dest.parent.mkdir(parents=True, exist_ok=True)
                                part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
                                part.write_bytes(g.read())
                                part.chmod(0o755)
                                part.replace(dest)
                                p.kill()
                                return dest
                    return None
    return None


if __name__ == "__main__":
    got = kernel_script(sys.argv[1] if len(sys.argv) > 1 else "faddr2line")
    print(got if got else "not available")
    sys.exit(0 if got else 1)

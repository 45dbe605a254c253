#!/usr/bin/env python3
"""Fetch the real-module corpus: Debian kernel image and headers packages.

For each corpus tree the newest matching package is chosen *at fetch time* from
what apt knows (``apt-cache``), downloaded with ``apt-get download`` into
``<dest>/debs/`` and extracted with ``dpkg-deb -x`` into ``<dest>/<name>/``:

    amd64-6.1     linux-image-6.1.*-amd64-unsigned        (amd64)
    amd64-6.12    linux-image-6.12.*-amd64-unsigned       (amd64)
    arm64-6.1     linux-image-6.1.*-arm64-unsigned        (arm64)
    i386-6.1      linux-image-6.1.*-686-pae-unsigned      (i386)
    headers-6.1   linux-headers-<abi>-amd64 + -common + linux-kbuild  (of amd64-6.1)
    headers-6.12  linux-headers-<abi>-amd64 + -common + linux-kbuild  (of amd64-6.12)

Cloud and PREEMPT_RT flavours are never chosen.  Foreign architectures (arm64,
i386) are added to dpkg when missing, followed by one ``apt-get update``.

Idempotent: a tree whose packages already match the manifest is left alone;
trees are extracted into a temporary directory and renamed into place, and
``<dest>/manifest.json`` is replaced atomically after every finished tree.
Absolute symbolic links inside a tree are rewritten to relative ones that stay
inside it.  Read the result with :mod:`testing.corpus`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))
sys.path.insert(0, str(_SRC.parent))  # testing/

from testing.corpus import (  # noqa: E402
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MODULE_SUFFIXES,
    CorpusTree,
    corpus_dir,
    module_files,
)

PROG = "fetch_corpus"
QUIET = False


class FetchError(Exception):
    """A fatal, user-facing error: reported as one line, exit status 1."""


def log(msg: str) -> None:
    if not QUIET:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"{PROG}: warning: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> NoReturn:
    raise FetchError(msg)


# --------------------------------------------------------------------------
# subprocesses


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


def _stop_group(child: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(timeout=wait)
            # The leader is gone; make sure nothing of its group keeps writing.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    cmd: Sequence[str], *, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        # Own process group: on interruption the whole pipeline (dpkg-deb runs tar and
        # a decompressor) is stopped before the temporary tree is removed.
        child = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        die(f"command not found: {cmd[0]} (this script needs a Debian system with apt and dpkg)")
    try:
        out, err = child.communicate()
    except BaseException:
        _stop_group(child)
        raise
    proc = subprocess.CompletedProcess(list(cmd), child.returncode, out, err)
    if check and proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("E:")] or lines
        detail = errs[-1] if errs else f"exit status {proc.returncode}"
        die(f"{' '.join(cmd[:3])} failed: {detail}")
    return proc


# --------------------------------------------------------------------------
# Debian version comparison (the dpkg algorithm, no python-apt needed)

_DIGITS = "0123456789"


def _order(c: str) -> int:
    if c in _DIGITS:
        return 0
    if c.isascii() and c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i] in _DIGITS and j < len(b) and b[j] in _DIGITS:
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i] in _DIGITS:
            return 1
        if j < len(b) and b[j] in _DIGITS:
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        epoch = int(e) if e.isdigit() else 0
    upstream, revision = v.rsplit("-", 1) if "-" in v else (v, "")
    return epoch, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 like ``dpkg --compare-versions a lt/eq/gt b``."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# --------------------------------------------------------------------------
# what to fetch


@dataclass(frozen=True)
class ImageSpec:
    name: str
    arch: str
    series: str  # "6.1", "6.12"
    flavour: str  # "amd64", "arm64", "686-pae"


@dataclass(frozen=True)
class HeadersSpec:
    name: str
    image: str  # ImageSpec.name whose ABI/version the headers must match


IMAGE_SPECS: tuple[ImageSpec, ...] = (
    ImageSpec("amd64-6.1", "amd64", "6.1", "amd64"),
    ImageSpec("amd64-6.12", "amd64", "6.12", "amd64"),
    ImageSpec("arm64-6.1", "arm64", "6.1", "arm64"),
    ImageSpec("i386-6.1", "i386", "6.1", "686-pae"),
)
HEADERS_SPECS: tuple[HeadersSpec, ...] = (
    HeadersSpec("headers-6.1", "amd64-6.1"),
    HeadersSpec("headers-6.12", "amd64-6.12"),
)
ALL_NAMES: tuple[str, ...] = tuple(s.name for s in IMAGE_SPECS) + tuple(h.name for h in HEADERS_SPECS)
EXCLUDED_FLAVOUR_PREFIXES = frozenset({"cloud", "rt"})


@dataclass(frozen=True)
class Pkg:
    package: str
    version: str
    arch: str  # the stanza's Architecture, may be "all"
    deb: str  # basename of the archive file name
    size: int
    sha256: str
    depends: str = ""

    @property
    def apt_spec(self) -> str:
        qual = "" if self.arch == "all" else f":{self.arch}"
        return f"{self.package}{qual}={self.version}"

    def to_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "version": self.version,
            "arch": self.arch,
            "deb": self.deb,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass
class Target:
    name: str
    kind: str  # "image" | "headers"
    arch: str
    release: str
    abi: str
    packages: list[Pkg] = field(default_factory=list)

    @property
    def version(self) -> str:
        return self.packages[0].version

    def key(self) -> list[tuple[str, str]]:
        return [(p.package, p.version) for p in self.packages]


def parse_stanzas(text: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                cur[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            cur[last] = value.strip()
    if cur:
        out.append(cur)
    return out


class Apt:
    """Cached ``apt-cache`` queries.

    Debian's container images disable apt's binary cache, which makes every
    ``apt-cache`` call re-parse all package lists (about a second with three
    architectures); so the calls share a private ``pkgcache.bin`` in a
    temporary directory (apt rebuilds it itself whenever the lists change).
    """

    def __init__(self) -> None:
        self._search: dict[str, list[str]] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="fetch_corpus-apt-"))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Apt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apt_cache(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        opt = f"Dir::Cache::pkgcache={self._tmp / 'pkgcache.bin'}"
        return run(["apt-cache", "-o", opt, *args], check=check)

    def search_names(self, regex: str) -> list[str]:
        if regex not in self._search:
            proc = self.apt_cache("search", "--names-only", regex)
            self._search[regex] = sorted(
                {ln.split(" - ", 1)[0].strip() for ln in proc.stdout.splitlines() if ln.strip()}
            )
        return self._search[regex]

    def show(self, names: Sequence[str], arch: str | None) -> list[Pkg]:
        """All available versions of *names* (restricted to *arch* or "all")."""
        if not names:
            return []
        args = [f"{n}:{arch}" if arch else n for n in names]
        proc = self.apt_cache("show", *args, check=False)
        wanted = set(names)
        pkgs: list[Pkg] = []
        seen: set[tuple[str, str, str]] = set()
        for st in parse_stanzas(proc.stdout):
            name, version, a = st.get("Package", ""), st.get("Version", ""), st.get("Architecture", "")
            if name not in wanted or not version:
                continue
            if arch and a not in (arch, "all"):
                continue
            k = (name, version, a)
            if k in seen:
                continue
            seen.add(k)
            size = st.get("Size", "0")
            pkgs.append(
                Pkg(
                    package=name,
                    version=version,
                    arch=a,
                    deb=os.path.basename(st.get("Filename", "")) or f"{name}_{version}_{a}.deb",
                    size=int(size) if size.isdigit() else 0,
                    sha256=st.get("SHA256", ""),
                    depends=st.get("Depends", "").replace("\n", " "),
                )
            )
        return pkgs


def newest(pkgs: Sequence[Pkg]) -> Pkg:
    best = pkgs[0]
    for p in pkgs[1:]:
        c = compare_versions(p.version, best.version)
        if c > 0 or (c == 0 and p.package > best.package):
            best = p
    return best


def resolve_image(apt: Apt, spec: ImageSpec) -> Target | None:
    series = re.escape(spec.series)
    names = apt.search_names(f"^linux-image-{series}\\.")
    pat = re.compile(rf"^linux-image-(?P<abi>{series}\.[0-9][^ ]*)-{re.escape(spec.flavour)}-unsigned$")
    cands: list[str] = []
    for n in names:
        m = pat.match(n)
        if not m:
            continue
        abi = m.group("abi")
        if abi.rsplit("-", 1)[-1] in EXCLUDED_FLAVOUR_PREFIXES:
            continue  # e.g. 6.1.0-56-cloud-amd64, 6.1.0-56-rt-amd64
        cands.append(n)
    pkgs = [p for p in apt.show(cands, spec.arch) if p.arch == spec.arch]
    if not pkgs:
        return None
    best = newest(pkgs)
    m = pat.match(best.package)
    assert m is not None
    abi = m.group("abi")
    return Target(spec.name, "image", spec.arch, f"{abi}-{spec.flavour}", abi, [best])


_DEP_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9.+-]*)")


def _dep_names(depends: str) -> list[str]:
    out: list[str] = []
    for clause in depends.split(","):
        for alt in clause.split("|"):
            m = _DEP_NAME.match(alt)
            if m:
                out.append(m.group(1))
    return out


def _pick(pkgs: Sequence[Pkg], version: str) -> Pkg | None:
    exact = [p for p in pkgs if p.version == version]
    if exact:
        return exact[0]
    return newest(pkgs) if pkgs else None


def resolve_headers(apt: Apt, spec: HeadersSpec, image: Target) -> Target:
    hdr_name = f"linux-headers-{image.release}"
    hdrs = [p for p in apt.show([hdr_name], image.arch) if p.version == image.version]
    if not hdrs:
        die(
            f"{spec.name}: no {hdr_name} version {image.version} for {image.arch}"
            f" (matching {image.packages[0].package})"
        )
    hdr = hdrs[0]
    deps = _dep_names(hdr.depends)
    common_name = next(
        (d for d in deps if d.startswith("linux-headers-") and d.endswith("-common")),
        f"linux-headers-{image.abi}-common",
    )
    kbuild_name = next((d for d in deps if d.startswith("linux-kbuild-")), None)
    if kbuild_name is None:
        die(f"{spec.name}: {hdr_name} {hdr.version} does not depend on a linux-kbuild package")
    common = _pick(apt.show([common_name], image.arch), hdr.version)
    if common is None or common.version != hdr.version:
        die(f"{spec.name}: no {common_name} version {hdr.version}")
    kbuild = _pick(
        [p for p in apt.show([kbuild_name], image.arch) if p.arch in (image.arch, "all")], hdr.version
    )
    if kbuild is None:
        die(f"{spec.name}: no {kbuild_name} package available")
    return Target(spec.name, "headers", image.arch, image.release, image.abi, [hdr, common, kbuild])


# --------------------------------------------------------------------------
# dpkg architectures and apt lists


def foreign_archs() -> set[str]:
    return set(run(["dpkg", "--print-foreign-architectures"]).stdout.split())


def native_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


_FAILED_INDEX = re.compile(r"/binary-([a-z0-9]+)/")


def _apt_update_once(archs: Sequence[str] | None) -> tuple[int, list[str]]:
    cmd = ["apt-get"]
    if archs is not None:
        # An explicit APT::Architectures list replaces dpkg's native + foreign ones.
        cmd += ["-o", "APT::Architectures="]
        for a in archs:
            cmd += ["-o", f"APT::Architectures::={a}"]
    proc = run([*cmd, "update"], check=False)
    errors = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip().startswith("E:")]
    return proc.returncode, errors


def apt_update() -> None:
    """``apt-get update``, tolerating a mirror whose index of one architecture is broken.

    apt keeps the old index files of a whole suite when any of them fails to
    download (e.g. "File has unexpected size ... Mirror sync in progress?"), so
    one broken foreign-architecture index would also hide the fresh indexes of
    the other architectures of that suite.  In that case update once without the
    broken architecture (which lands the good indexes but drops every list of
    the excluded architecture) and then once more with all of them (which
    restores the excluded architecture's lists from the suites that work and
    keeps the rest).
    """
    log("running apt-get update ...")
    rc, errors = _apt_update_once(None)
    if rc == 0:
        return
    native = native_arch()
    bad = {m.group(1) for e in errors for m in _FAILED_INDEX.finditer(e)} - {native, "all"}
    detail = (errors[0] if errors else f"exit status {rc}")[:200]
    if not bad:
        warn(f"apt-get update failed ({detail}); continuing with the lists apt has")
        return
    keep = [native, *sorted(foreign_archs() - bad)]
    warn(
        f"apt-get update could not fetch an index for {', '.join(sorted(bad))} ({detail});"
        f" updating for {', '.join(keep)} only, then again for all"
    )
    rc, errors = _apt_update_once(keep)
    if rc != 0:
        warn(f"apt-get update for {', '.join(keep)} failed too ({(errors or ['?'])[0][:200]})")
    rc, errors = _apt_update_once(None)
    if rc != 0:
        warn(
            f"{', '.join(sorted(bad))}: some package lists are older or missing;"
            " using the newest package apt knows"
        )


def ensure_archs(archs: set[str], *, dry_run: bool) -> tuple[set[str], bool]:
    """Enable the foreign *archs*; returns (archs still missing, whether any were added)."""
    native = native_arch()
    missing = {a for a in archs if a != native} - foreign_archs()
    if not missing or dry_run:
        return missing, False
    if os.geteuid() != 0:
        die(
            f"dpkg architecture(s) {', '.join(sorted(missing))} not enabled;"
            " run as root or: dpkg --add-architecture ARCH && apt-get update"
        )
    for a in sorted(missing):
        log(f"dpkg --add-architecture {a}")
        run(["dpkg", "--add-architecture", a])
    return set(), True


# --------------------------------------------------------------------------
# manifest


def read_manifest(dest: Path) -> dict[str, dict[str, object]]:
    """Existing manifest entries by name ({} if there is no usable manifest)."""
    path = dest / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        warn(f"ignoring unreadable {path}: {exc}")
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        warn(f"ignoring {path}: unknown format")
        return {}
    out: dict[str, dict[str, object]] = {}
    for key in ("trees", "headers"):
        entries = data.get(key)
        if isinstance(entries, list):
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("name"), str):
                    out[e["name"]] = e
    return out


def write_manifest(dest: Path, entries: dict[str, dict[str, object]]) -> None:
    trees = [entries[s.name] for s in IMAGE_SPECS if s.name in entries]
    headers = [entries[h.name] for h in HEADERS_SPECS if h.name in entries]
    data: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "generator": "scripts/fetch_corpus.py",
        "paths_relative_to": "the directory holding this manifest",
        "trees": trees,
        "headers": headers,
    }
    path = dest / MANIFEST_NAME
    tmp = dest / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def entry_pkgs(entry: dict[str, object]) -> list[tuple[str, str]]:
    raw = entry.get("packages")
    out: list[tuple[str, str]] = []
    if isinstance(raw, list):
        for p in raw:
            if isinstance(p, dict):
                out.append((str(p.get("package")), str(p.get("version"))))
    return out


def entry_is_current(dest: Path, entry: dict[str, object] | None, target: Target) -> bool:
    if entry is None or entry_pkgs(entry) != target.key():
        return False
    for key in ("root", "modules_dir", "module_symvers"):
        rel = entry.get(key)
        if isinstance(rel, str) and not (dest / rel).exists():
            return False
    return True


# --------------------------------------------------------------------------
# download and extract


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _deb_ok(path: Path, pkg: Pkg) -> bool:
    if not path.is_file():
        return False
    if pkg.size and path.stat().st_size != pkg.size:
        return False
    return not pkg.sha256 or sha256_file(path) == pkg.sha256


def fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def download(debs: Path, pkg: Pkg, label: str) -> Path:
    final = debs / pkg.deb
    if _deb_ok(final, pkg):
        log(f"{label}: cached {pkg.deb}")
        return final
    log(f"{label}: downloading {pkg.apt_spec} ({fmt_mb(pkg.size)})")
    tmp = debs / f".dl-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        cmd = ["apt-get"]
        if os.geteuid() == 0:
            cmd += ["-o", "APT::Sandbox::User=root"]
        run([*cmd, "download", pkg.apt_spec], cwd=tmp)
        got = sorted(tmp.glob("*.deb"))
        if len(got) != 1:
            die(f"apt-get download {pkg.apt_spec} produced {len(got)} .deb files")
        if pkg.sha256 and sha256_file(got[0]) != pkg.sha256:
            die(f"{got[0].name}: SHA256 does not match the archive's")
        os.replace(got[0], final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fix_symlinks(root: Path) -> tuple[int, int]:
    """Rewrite absolute symlinks under *root* to relative ones inside *root*.

    Returns (number of links rewritten, total bytes of regular files).
    """
    fixed = 0
    total = 0
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        for name in (*dirnames, *filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not os.path.islink(p):
                if name in filenames:
                    total += st.st_size
                continue
            target = os.readlink(p)
            if not os.path.isabs(target):
                continue
            # normpath("/" + target) clamps "/../.." at "/", so the link stays inside root.
            inside = root_s + os.path.normpath("/" + target.lstrip("/"))
            os.unlink(p)
            os.symlink(os.path.relpath(inside, dirpath), p)
            fixed += 1
    return fixed, total


def _rel(dest: Path, p: Path | None) -> str | None:
    return None if p is None else p.relative_to(dest).as_posix()


def _first_existing(*cands: Path) -> Path | None:
    return next((c for c in cands if c.exists()), None)


def describe_image(dest: Path, root: Path, target: Target) -> dict[str, object]:
    rel = target.release
    modules_dir = _first_existing(root / "lib" / "modules" / rel, root / "usr" / "lib" / "modules" / rel)
    if modules_dir is None:
        die(f"{target.name}: {target.packages[0].package} has no lib/modules/{rel}")
    boot = root / "boot"
    vmlinuz = _first_existing(
        boot / f"vmlinuz-{rel}", boot / f"vmlinux-{rel}", boot / "vmlinuz", boot / "Image"
    )
    if vmlinuz is None and boot.is_dir():
        vmlinuz = next(iter(sorted(boot.glob("vmlinu[xz]*"))), None)
    config = _first_existing(boot / f"config-{rel}")
    system_map = _first_existing(boot / f"System.map-{rel}")
    tree = CorpusTree(
        name=target.name,
        arch=target.arch,
        release=rel,
        package=target.packages[0].package,
        version=target.version,
        root=root,
        modules_dir=modules_dir,
        vmlinuz=vmlinuz,
        config=config,
        system_map=system_map,
    )
    mods = module_files(tree)
    if not mods:
        die(f"{target.name}: no modules found under {modules_dir}")
    suffixes: dict[str, int] = {}
    for m in mods:
        s = next(x for x in sorted(MODULE_SUFFIXES, key=len, reverse=True) if m.name.endswith(x))
        suffixes[s] = suffixes.get(s, 0) + 1
    return {
        **_identity(dest, root, target),
        "modules_dir": _rel(dest, modules_dir),
        "vmlinuz": _rel(dest, vmlinuz),
        "config": _rel(dest, config),
        "system_map": _rel(dest, system_map),
        "module_count": len(mods),
        "module_suffixes": suffixes,
    }


def _identity(dest: Path, root: Path, target: Target) -> dict[str, object]:
    """The manifest fields every tree has: what it is and where it lies."""
    return {
        "name": target.name,
        "arch": target.arch,
        "release": target.release,
        "abi": target.abi,
        "package": target.packages[0].package,
        "version": target.version,
        "root": _rel(dest, root),
    }


def describe_headers(dest: Path, root: Path, target: Target) -> dict[str, object]:
    rel = target.release
    kbuild_dir = root / "usr" / "src" / f"linux-headers-{rel}"
    symvers = kbuild_dir / "Module.symvers"
    if not symvers.is_file():
        die(f"{target.name}: {target.packages[0].package} has no usr/src/linux-headers-{rel}/Module.symvers")
    common = _first_existing(root / "usr" / "src" / f"linux-headers-{target.abi}-common")
    kbuild_pkg = target.packages[-1].package
    kbuild_lib = _first_existing(root / "usr" / "lib" / kbuild_pkg)
    scripts = kbuild_dir / "scripts"
    if scripts.is_symlink() and not scripts.resolve().is_relative_to(root.resolve()):
        die(f"{target.name}: {scripts} resolves outside the tree")
    if not scripts.exists():
        warn(f"{target.name}: {scripts.relative_to(dest)} does not resolve")
    return {
        **_identity(dest, root, target),
        "kbuild_dir": _rel(dest, kbuild_dir),
        "module_symvers": _rel(dest, symvers),
        "common_dir": _rel(dest, common),
        "kbuild_lib_dir": _rel(dest, kbuild_lib),
        "config": _rel(dest, _first_existing(kbuild_dir / ".config")),
        "note": "kbuild_dir/Makefile includes the -common Makefile by its absolute installed path",
    }


def fetch_target(dest: Path, target: Target, old: dict[str, object] | None) -> dict[str, object]:
    debs_dir = dest / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    files = [download(debs_dir, p, target.name) for p in target.packages]
    t1 = time.monotonic()

    final = dest / target.name
    tmp = dest / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for f in files:
            log(f"{target.name}: extracting {f.name}")
            run(["dpkg-deb", "-x", str(f), str(tmp)])
        fixed, size = fix_symlinks(tmp)
        # Validate before the tree goes live; the entry is recomputed for `final`.
        describe = describe_image if target.kind == "image" else describe_headers
        describe(dest, tmp, target)
        old_dir = dest / f".old-{target.name}-{os.getpid()}"
        if final.exists() or final.is_symlink():
            os.rename(final, old_dir)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest / f".old-{target.name}-{os.getpid()}", ignore_errors=True)
    t2 = time.monotonic()

    entry = describe(dest, final, target)
    entry["packages"] = [p.to_json() for p in target.packages]
    entry["symlinks_made_relative"] = fixed
    entry["extracted_bytes"] = size
    entry["download_bytes"] = sum(p.size for p in target.packages)
    entry["download_seconds"] = round(t1 - t0, 1)
    entry["extract_seconds"] = round(t2 - t1, 1)
    entry["fetched_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    # Drop cached .debs of the version this tree replaced.
    if old is not None:
        keep = {p.deb for p in target.packages}
        raw = old.get("packages")
        if isinstance(raw, list):
            for p in raw:
                deb = p.get("deb") if isinstance(p, dict) else None
                if isinstance(deb, str) and deb not in keep and "/" not in deb:
                    with contextlib.suppress(FileNotFoundError):
                        (debs_dir / deb).unlink()
    return entry


# --------------------------------------------------------------------------
# main


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    with open(dest / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            die(f"another fetch_corpus run holds {dest / '.lock'}")
        yield


def clean_leftovers(dest: Path) -> None:
    """Remove what an interrupted run may have left (never a live tree)."""
    for pat in (".tmp-*", ".old-*", f".{MANIFEST_NAME}.*.tmp", "debs/.dl-*"):
        for p in dest.glob(pat):
            log(f"removing leftover {p.relative_to(dest)}")
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def parse_only(value: str | None) -> list[str]:
    if value is None:
        return list(ALL_NAMES)
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in ALL_NAMES]
    if bad or not names:
        die(f"--only: unknown tree {', '.join(bad) or '(empty)'}; known: {', '.join(ALL_NAMES)}")
    return [n for n in ALL_NAMES if n in names]


def resolve(
    apt: Apt, selected: list[str], unresolvable_archs: set[str]
) -> tuple[dict[str, Target], list[str]]:
    """Targets for *selected* names; also the names that could not be resolved."""
    images: dict[str, Target | None] = {}
    specs = {s.name: s for s in IMAGE_SPECS}
    hspecs = {h.name: h for h in HEADERS_SPECS}
    need_images = {n for n in selected if n in specs} | {hspecs[n].image for n in selected if n in hspecs}
    for name in sorted(need_images):
        spec = specs[name]
        images[name] = None if spec.arch in unresolvable_archs else resolve_image(apt, spec)
    targets: dict[str, Target] = {}
    missing: list[str] = []
    for name in selected:
        if name in specs:
            t = images[name]
        else:
            img = images[hspecs[name].image]
            t = None if img is None else resolve_headers(apt, hspecs[name], img)
        if t is None:
            missing.append(name)
        else:
            targets[name] = t
    return targets, missing


def describe_target(t: Target) -> str:
    pk = ", ".join(f"{p.apt_spec}" for p in t.packages)
    return f"{t.name:<13} {t.release:<22} {pk} [{fmt_mb(sum(p.size for p in t.packages))}]"


def main(argv: Sequence[str] | None = None) -> int:
    global QUIET
    ap = argparse.ArgumentParser(
        prog="fetch_corpus.py",
        description="Download and extract Debian kernel packages into the lkm module corpus.",
    )
    ap.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="corpus directory (default: $LKM_CORPUS, else $XDG_CACHE_HOME/lkm/corpus, else ~/.cache/...)",
    )
    ap.add_argument("--only", metavar="NAME[,NAME]", help=f"fetch only these trees ({', '.join(ALL_NAMES)})")
    ap.add_argument(
        "--list", action="store_true", help="print what would be fetched and exit (changes nothing)"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    args = ap.parse_args(argv)
    QUIET = bool(args.quiet)

    dest: Path = (args.dest if args.dest is not None else corpus_dir()).expanduser().absolute()
    selected = parse_only(args.only)
    specs = {s.name: s for s in IMAGE_SPECS}
    hspecs = {h.name: h for h in HEADERS_SPECS}
    archs = {specs[n].arch if n in specs else specs[hspecs[n].image].arch for n in selected}

    still_missing, added = ensure_archs(archs, dry_run=args.list)
    updated = False
    if added:
        apt_update()
        updated = True

    with Apt() as apt:
        targets, missing = resolve(apt, selected, still_missing)
    if missing and not updated and not args.list:
        log(f"apt knows no candidates for {', '.join(missing)}; refreshing the package lists")
        apt_update()
        with Apt() as apt:
            targets, missing = resolve(apt, selected, still_missing)

    old = read_manifest(dest)
    if args.list:
        for name in selected:
            if name in targets:
                t = targets[name]
                state = (
                    "up to date"
                    if entry_is_current(dest, old.get(name), t)
                    else (f"update from {old[name].get('version')}" if name in old else "fetch")
                )
                print(f"{describe_target(t)}  {state}")
            else:
                arch = specs[name].arch if name in specs else specs[hspecs[name].image].arch
                why = (
                    f"architecture {arch} not enabled in dpkg (a real run adds it)"
                    if arch in still_missing
                    else "no candidate package known to apt"
                )
                print(f"{name:<13} unresolved: {why}")
        print(f"destination: {dest}")
        return 0

    if missing:
        die(
            f"no candidate package for {', '.join(missing)}"
            " (are Debian bookworm and bookworm-security in apt's sources?)"
        )

    dest.mkdir(parents=True, exist_ok=True)
    with locked(dest):
        clean_leftovers(dest)
        old = read_manifest(dest)
        # Keep entries of trees not selected this time, if they still exist.
        entries = {
            n: e
            for n, e in old.items()
            if n in ALL_NAMES and isinstance(e.get("root"), str) and (dest / str(e["root"])).is_dir()
        }
        t_start = time.monotonic()
        changed = False
        for name in selected:
            t = targets[name]
            if entry_is_current(dest, old.get(name), t):
                log(f"{name}: up to date ({t.packages[0].package} {t.version})")
                continue
            log(f"{name}: fetching {describe_target(t)}")
            entries[name] = fetch_target(dest, t, old.get(name))
            e = entries[name]
            log(f"{name}: done in {e['download_seconds']}s download + {e['extract_seconds']}s extract")
            write_manifest(dest, entries)
            changed = True
        if changed or not (dest / MANIFEST_NAME).exists() or set(entries) != set(old):
            write_manifest(dest, entries)
        log(f"corpus at {dest} ready ({time.monotonic() - t_start:.1f}s)")
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    # SIGTERM/SIGHUP clean up like Ctrl-C: no half-extracted tree is left behind.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        sys.exit(main())
    except FetchError as exc:
        print(f"{PROG}: ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: ERROR: interrupted", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"{PROG}: ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        print(f"{PROG}: ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)

#!/usr/bin/env bash
# Shared set-up for a fresh Debian machine: system packages and the project's virtualenv.
# Sourced by scripts/demo and scripts/test; idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_pkgs=()
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# The VM tests (tests/vm): QEMU (TCG), Debian's static busybox for the guest's initramfs, cpio,
# and kbuild's needs for building fixture modules against the corpus's linux-headers (make,
# the kernel's gcc-12, pahole for BTF); the pictures' browser tests (chromium) and layout
# (Graphviz dot); elfutils' debuginfod server for lkm's debuginfod client; openssl and bpftool,
# the signature and BTF oracles; LLVM's addr2line, the second line-table oracle; gdb (and
# gdb-multiarch for arm64) opens `kallsyms --elf` files.
for tool in modinfo:kmod readelf:binutils xz:xz-utils zstd:zstd gzip:gzip \
            aarch64-linux-gnu-ld:binutils-aarch64-linux-gnu \
            qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm \
            busybox:busybox-static cpio:cpio make:make \
            gcc-12:gcc-12 pahole:dwarves chromium:chromium dot:graphviz debuginfod:debuginfod \
            openssl:openssl bpftool:bpftool llvm-addr2line:llvm gdb:gdb gdb-multiarch:gdb-multiarch; do
  command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || [ -x "/sbin/${tool%%:*}" ] || need_pkgs+=("${tool#*:}")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${LKM_EXTRAS:-}" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import lkm' # fail here, not later, if the install did not work
export PATH="$VENV/bin:/usr/sbin:/sbin:$PATH"

#!/usr/bin/env bash
# Print the struct offsets lkm.emulate.layouts uses, measured by compiling offsetof() against
# the 6.1 headers with kbuild (needs linux-headers-6.1.0-*-amd64 as fixtures/build.sh installs).
# Usage: bash scripts/struct_offsets.sh [KBUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kdir=${1:-$(ls -d /usr/src/linux-headers-6.1.*-amd64 | tail -1)}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$here/struct_offsets.c" "$tmp/off.c"; echo 'obj-m := off.o' > "$tmp/Kbuild"
make -s -C "$kdir" M="$tmp" modules >/dev/null
PYTHONPATH="$here/../src" python3 - "$tmp/off.ko" <<'PY'
import struct, sys
from lkm.module.file import ModuleFile
e = ModuleFile.open(sys.argv[1]).elf
s = next(x for x in e.symbols() if x.name == "lkm_offsets")
d = e.section_bytes(e.sections[s.shndx])[s.value : s.value + s.size]
print(list(struct.unpack(f"<{s.size // 8}Q", d)))
PY

"""depmod -A: is modules.dep newer than every module file of the tree?"""

from __future__ import annotations

import os

from lkm.depmod.scan import KMOD_EXTS, SKIPPED_DIRS


def up_to_date(dirname: str) -> bool:
    """True if no module file under ``dirname`` is newer than its modules.dep (kmod compares
    whole seconds).  A missing modules.dep or directory means: not up to date."""
    try:
        mtime = int(os.stat(os.path.join(dirname, "modules.dep")).st_mtime)
    except OSError:
        return False
    stack = [dirname]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name in SKIPPED_DIRS:
                continue
            try:
                if e.is_dir():
                    stack.append(e.path)
                elif e.name.endswith(KMOD_EXTS) and int(e.stat().st_mtime) > mtime:
                    return False
            except OSError:
                continue
    return True

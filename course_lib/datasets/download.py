"""Download a file with a checksum, and unpack an archive without letting it write outside a folder.

A download streams into a temporary file beside its destination, is checked against its SHA-256
and only then renamed into place, so an interrupted or corrupt download never leaves a file that
looks complete. An existing file is reused when its checksum matches and never replaced silently.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ..notebook import require_online

__all__ = ["ChecksumError", "sha256sum", "download", "extract_archive"]

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A file's SHA-256 differs from the expected one."""


def sha256sum(path) -> str:
    """The hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(sha256: str) -> str:
    sha = str(sha256).strip().lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return sha


def download(url: str, dest, sha256: str, *, progress: bool = False) -> Path:
    """Download `url` to the file `dest` and verify its SHA-256 (64 hex digits).

    Returns `dest` as a Path. If `dest` exists with the right checksum nothing is downloaded; if it
    exists with another content a ChecksumError is raised and the file is left untouched. On a
    checksum mismatch after downloading, the temporary file is removed and ChecksumError raised.
    Offline, it stops at once with course_lib.notebook.OfflineError.
    """
    sha = _check_sha256(sha256)
    dest = Path(dest)
    if dest.exists():
        found = sha256sum(dest)
        if found != sha:
            raise ChecksumError(
                f"{dest} exists but its SHA-256 is {found}, not {sha}; move it away to download again"
            )
        return dest
    require_online(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _bar(total, dest.name) if progress else None
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        found = digest.hexdigest()
        if found != sha:
            raise ChecksumError(f"{url}: SHA-256 {found} does not match the expected {sha}")
        os.replace(tmp, dest)  # atomic on one file system: readers never see half a file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _bar(total, name):
    from ..notebook import progress

    return progress(total=total, desc=name, unit="B", unit_scale=True)


def _inside(root: Path, name: str) -> bool:
    if not name or os.path.isabs(name) or name.startswith(("/", "\\")):
        return False
    target = (root / name).resolve()
    return target == root or root in target.parents


def _check_tar(tar: tarfile.TarFile, root: Path) -> None:
    for m in tar.getmembers():
        if not _inside(root, m.name):
            raise ValueError(f"archive entry {m.name!r} would be written outside {root}")
        if m.issym() or m.islnk():
            # A link's target is resolved from the link's own folder (symlink) or the root (hard link).
            base = (root / m.name).parent if m.issym() else root
            link = m.linkname
            if os.path.isabs(link) or not _inside(root, os.path.relpath(base / link, root)):
                raise ValueError(f"archive link {m.name!r} -> {link!r} points outside {root}")
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"archive entry {m.name!r} is not a file or folder")


def extract_archive(path, dest) -> Path:
    """Extract the .zip, .tar, .tar.gz/.tgz, .tar.bz2 or .tar.xz archive `path` into folder `dest`.

    Every entry is checked before anything is written: an absolute path, a '..' that climbs out of
    `dest`, or a link pointing outside it raises ValueError and nothing is extracted.
    Returns `dest` as a Path.
    """
    path, dest = Path(path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if not _inside(root, info.filename) or is_link:
                    raise ValueError(f"archive entry {info.filename!r} would be written outside {root}")
            zf.extractall(root)
        return dest
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            _check_tar(tar, root)
            tar.extractall(root, **_tar_filter())
        return dest
    raise ValueError(f"path must be a zip or tar archive, got {path}")


def _tar_filter() -> dict:
    # Python >= 3.12 (and patched 3.8+) takes a filter; 'data' also strips setuid bits and devices.
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

"""Download a file with a checksum, and unpack an archive without letting it write outside a folder.

A download streams into a temporary file beside its destination, is checked against its
checksum (SHA-256, or MD5 where that is what the publisher gives) and only then renamed into
place, so an interrupted or corrupt download never leaves a file that looks complete. An
existing file is reused when its checksum matches, offline too, and never replaced silently.

An archive is extracted into a temporary folder that is renamed into place as the last step, so
its destination is either absent or complete. Entries that would land outside the destination,
links of any kind (the course's data sets hold none) and special files are refused before
anything is written; a truncated or corrupt archive is reported as such, naming the file.

$COURSE_MIRROR (e.g. http://127.0.0.1:8000) redirects every address: `mirrored` maps
https://host/path to $COURSE_MIRROR/host/path, so one folder tree can serve all the files.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from ..notebook import MIRROR_ENV, require_online
from ._atomic import clean_stale, publish_dir, remove, temp_path

__all__ = ["ChecksumError", "sha256sum", "file_digest", "parse_checksum", "mirrored", "download",
           "download_remote", "extract_archive", "fetch_pretrained"]

CHUNK = 1 << 20
_HEX_LENGTHS = {"sha256": 64, "md5": 32}


class ChecksumError(RuntimeError):
    """A file's checksum differs from the expected one."""


def file_digest(path, algorithm: str = "sha256") -> str:
    """The hex digest ("sha256" or "md5") of the file at `path`."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256sum(path) -> str:
    """The hex SHA-256 of the file at `path`."""
    return file_digest(path, "sha256")


def parse_checksum(checksum: str) -> tuple[str, str]:
    """("sha256" | "md5", lower-case hex) from "sha256:<64 hex>", "md5:<32 hex>" or bare hex
    (64 digits: SHA-256, 32 digits: MD5). Anything else raises ValueError."""
    text = str(checksum).strip().lower()
    algo, sep, hexdigest = text.partition(":")
    if not sep:
        algo, hexdigest = {64: "sha256", 32: "md5"}.get(len(text), "?"), text
    n = _HEX_LENGTHS.get(algo)
    if n is None or len(hexdigest) != n or any(c not in "0123456789abcdef" for c in hexdigest):
        raise ValueError("checksum must be a sha256 (64 hex digits, or 'sha256:<hex>') or, where only that "
                         f"is published, an md5 (32 hex digits, or 'md5:<hex>'), got {checksum!r}")
    return algo, hexdigest


def mirrored(url: str) -> str:
    """`url` as fetched: unchanged, or $COURSE_MIRROR/<host>/<path> when COURSE_MIRROR is set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror}/{parts.hostname}{parts.path}"


def download(url: str, dest, checksum: str, *, progress: bool = False, hint: str = "") -> Path:
    """Download `url` to the file `dest` and verify it against `checksum` (see parse_checksum:
    SHA-256, or MD5 where only that is published).

    Returns `dest` as a Path. If `dest` exists with the right checksum nothing is downloaded and
    no network is needed; if it exists with another content a ChecksumError is raised and the
    file is left untouched. On a mismatch after downloading, the temporary file is removed and
    ChecksumError raised (with `hint` appended: what to do). Offline, it stops at once with
    course_lib.notebook.OfflineError. Temporaries left by a killed run are removed first.
    """
    algo, expected = parse_checksum(checksum)
    dest = Path(dest)
    name = f"{algo.upper().replace('SHA256', 'SHA-256')}"
    if dest.exists():
        found = file_digest(dest, algo)
        if found != expected:
            raise ChecksumError(f"{dest} exists but its {name} is {found}, not {expected}; "
                                f"move it away to download again{hint}")
        return dest
    require_online(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    tmp = temp_path(dest, ".part")
    try:
        digest, size, total = hashlib.new(algo), 0, None
        try:
            with open(tmp, "xb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = _bar(total, dest.name) if progress else None
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise OSError(f"cannot download {url} to {dest}: {err}") from err
        if total is not None and size != total:
            raise OSError(f"the download of {url} stopped after {size} of {total} bytes; run again to retry")
        found = digest.hexdigest()
        if found != expected:
            raise ChecksumError(f"{url}: {name} {found} does not match the expected {expected}{hint}")
        os.replace(tmp, dest)  # atomic on one file system: readers never see half a file
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_remote(remote, folder, checksum: str | None = None, *, progress: bool = True) -> Path:
    """Download a course_lib.datasets.sources.Remote into `folder` (as folder/remote.name), verified.

    checksum: overrides the recorded one (as does the environment variable remote.env). With no
    checksum at all, ValueError says how to supply one. The address goes through `mirrored`.
    """
    from .sources import checksum_of

    value = checksum_of(remote, checksum)
    how = (f" set the environment variable {remote.env} to the SHA-256 (or the MD5 the publisher gives) "
           f"of a copy of {remote.name} you trust") if remote.env else ""
    if value is None:
        raise ValueError(f"no checksum is recorded for {remote.name}, so it cannot be verified:{how}")
    hint = f". If your copy comes from another source with other bytes,{how}" if how else ""
    return download(mirrored(remote.url), Path(folder) / remote.name, value, progress=progress, hint=hint)


def fetch_pretrained(weights, what: str = "pretrained weights"):
    """Make sure the file of torchvision pretrained `weights` (a WeightsEnum member, e.g.
    torchvision.models.VGG16_Weights.IMAGENET1K_V1) is in torch's hub cache; return `weights`,
    for the torchvision builder (`vgg16(weights=fetch_pretrained(...))`), which then reads the
    cached file without the network.

    Downloaded once, through $COURSE_MIRROR when set, and checked against the SHA-256 prefix in
    the file name (torch.hub's rule). Already cached: no network needed. Offline and not cached:
    OfflineError at once, saying `what` is missing. Every course function that loads pretrained
    weights goes through here.
    """
    import re

    import torch

    name = os.path.basename(urllib.parse.urlsplit(weights.url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return weights
    size = weights.meta.get("_file_size")
    require_online(f"{what} ({name}" + (f", about {size:.0f} MB)" if size else ")"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    prefix = re.search(r"-([a-f0-9]+)\.", name)
    torch.hub.download_url_to_file(mirrored(weights.url), str(cached), prefix.group(1) if prefix else None,
                                   progress=True)
    return weights


def _bar(total, name):
    from ..notebook import progress

    return progress(total=total, desc=name, unit="B", unit_scale=True)


def _inside(root: Path, name: str) -> bool:
    if not name or os.path.isabs(name) or name.startswith(("/", "\\")):
        return False
    target = (root / name).resolve()
    return target == root or root in target.parents


def _check_tar(tar: tarfile.TarFile, root: Path, path: Path) -> None:
    for m in tar.getmembers():
        if not _inside(root, m.name):
            raise ValueError(f"{path}: archive entry {m.name!r} would be written outside {root}")
        if m.issym() or m.islnk():
            # Links are refused outright: a chain of them can reach outside the folder even when
            # each one looks harmless, and the course's data sets contain none.
            raise ValueError(f"{path}: archive entry {m.name!r} is a link (-> {m.linkname!r}); "
                             "links are refused")
        if not (m.isfile() or m.isdir()):
            raise ValueError(f"{path}: archive entry {m.name!r} is not a file or folder")


def _check_zip(zf: zipfile.ZipFile, root: Path, path: Path) -> None:
    for info in zf.infolist():
        if not _inside(root, info.filename):
            raise ValueError(f"{path}: archive entry {info.filename!r} would be written outside {root}")
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:
            raise ValueError(f"{path}: archive entry {info.filename!r} is a link; links are refused")
        if mode not in (0, 0o100000, 0o040000):
            raise ValueError(f"{path}: archive entry {info.filename!r} is not a file or folder")


def _kind(path: Path) -> str | None:
    """"zip", "tar" or None, from the first bytes (a truncated archive keeps its header)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[257:262] == b"ustar":
        return "tar"
    return None


def _tar_filter() -> dict:
    # Python >= 3.12 (and patched 3.8+) takes a filter; 'data' also strips setuid bits and devices.
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _unpack(path: Path, kind: str, out: Path) -> None:
    root = out.resolve()
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            _check_zip(zf, root, path)
            zf.extractall(root)
    else:
        with tarfile.open(path) as tar:
            _check_tar(tar, root, path)
            tar.extractall(root, **_tar_filter())


def extract_archive(path, dest, member: str | None = None) -> Path:
    """Extract the .zip, .tar, .tar.gz/.tgz, .tar.bz2 or .tar.xz archive `path` so that folder
    `dest` holds its contents, or with `member` (e.g. "PennFudanPed") the contents of that folder
    of the archive.

    The archive is unpacked into a temporary sibling of `dest` that is renamed to `dest` as the last
    step: `dest` is either absent or complete, even if the run is killed. `dest` must be absent or an
    empty folder (FileExistsError otherwise); if a concurrent run completes it first, that copy is
    kept. Before anything is written, an absolute path, a '..' that climbs out, a link (symbolic or
    hard) or a special file raises ValueError. A truncated or corrupt archive (bad CRC, cut short)
    raises ValueError naming it, and leaves nothing behind. Returns `dest` as a Path.
    """
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise FileNotFoundError(f"no archive at {path}")
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not empty; move it away to extract {path.name} again")
    kind = _kind(path)
    if kind is None:
        raise ValueError(f"path must be a zip or tar archive, got {path}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    tmp = temp_path(dest)
    try:
        tmp.mkdir()
        try:
            _unpack(path, kind, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
            if isinstance(err, OSError) and not _corrupt_os_error(err):
                raise
            raise ValueError(f"{path} is a truncated or corrupt {kind} archive ({err}); "
                             "delete it and download it again") from err
        src = tmp / member if member else tmp
        if member and not src.is_dir():
            raise ValueError(f"{path}: the archive has no folder {member!r}")
        publish_dir(src, dest)
    finally:
        remove(tmp)
    return dest


def _corrupt_os_error(err: OSError) -> bool:
    # gzip / bz2 / lzma report a damaged stream as a plain OSError or a subclass of it, without errno.
    return err.errno is None or type(err).__name__ in ("BadGzipFile",)

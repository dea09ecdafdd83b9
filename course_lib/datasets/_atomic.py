"""Temporary names and publishing by rename, for every file or folder course_lib writes to the cache.

A writer builds its output under a temporary sibling name, `.<name>.<pid>-<8 hex>.tmp` (or
`.part` for downloads), and renames it into place as its last step, so the final name is either
absent or complete. Temporaries carry the writer's process id: `clean_stale` removes only those
whose process is gone, or that are older than STALE_SECONDS, never the one a concurrent run is
still writing.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

__all__ = ["STALE_SECONDS", "temp_path", "clean_stale", "publish_dir", "remove"]

STALE_SECONDS = 6 * 3600
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?:tmp|part)$")
# Names earlier versions of the course used: shapes' folders, MP5's files, the source detector's
# .pt (<stem>.<pid>.part, no dot in front) and downloads (mkstemp, no pid: judged by age alone).
_LEGACY = (re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$"),
           re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$"),
           re.compile(r"^(?P<stem>[^.].*)\.(?P<pid>\d+)\.part$"),
           re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.part$"))


def temp_path(path, suffix: str = ".tmp") -> Path:
    """A fresh temporary sibling of `path`: `.<name>.<pid>-<8 hex><suffix>` (suffix ".tmp" or ".part")."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove(path: Path) -> None:
    """Remove a file, link or folder tree; nothing if it is absent."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(path) -> list[Path]:
    """Remove the temporaries of `path` (see temp_path) left by runs that were killed.

    A temporary is stale when the process named in it is gone, or when it is older than
    STALE_SECONDS (its id may since have been reused). Returns the paths removed.
    """
    path = Path(path)
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in siblings:
        pid = _owner(p.name, path)
        if pid is None:
            continue
        try:
            age = now - p.lstat().st_mtime
        except FileNotFoundError:
            continue
        if age < STALE_SECONDS and (pid == 0 or _alive(pid)):
            continue
        remove(p)
        removed.append(p)
    return removed


def _owner(name: str, path: Path) -> int | None:
    """The pid in a temporary name of `path` (0 when the name carries none), or None if `name` is
    not one of its temporaries."""
    m = _TEMP.match(name)
    if m is not None:
        return int(m["pid"]) if m["name"] == path.name else None
    for pattern in _LEGACY:
        m = pattern.match(name)
        if m is None:
            continue
        d = m.groupdict()
        if d.get("name", None) == path.name or d.get("stem", None) == path.stem:
            return int(d["pid"]) if d.get("pid") else 0
    return None


def publish_dir(tmp, dest) -> bool:
    """Rename the complete folder `tmp` to `dest` (absent, or an empty folder it replaces).

    Returns True when `tmp` is now `dest`; False when `dest` was filled meanwhile (by a concurrent
    writer): `tmp` is then removed and the existing `dest` kept. Other errors propagate.
    """
    tmp, dest = Path(tmp), Path(dest)
    try:
        os.rename(tmp, dest)
        return True
    except OSError:
        if dest.is_dir() and any(dest.iterdir()):
            remove(tmp)
            return False
        raise

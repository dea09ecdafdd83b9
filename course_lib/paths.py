"""Where the course keeps the files it generates or downloads."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data cache, an absolute path: $COURSE_DATA, else the repository's data/ folder, else
    ~/.cache/course_lib. Created if missing.

    COURSE_DATA may start with ~ (expanded to the home folder). A relative COURSE_DATA is resolved
    once, against the working directory of the first call, and written back to the environment as
    an absolute path, so the cache does not move when a lesson changes directory afterwards (and
    child processes inherit the same folder). A COURSE_DATA that is a file, or a
    folder that cannot be created or written, raises NotADirectoryError / PermissionError naming
    COURSE_DATA. A checkout has `_config.yml` beside `course_lib/`; an installed package (as on
    Colab) has not.
    """
    env = os.environ.get("COURSE_DATA", "").strip()
    if env:
        path = Path(env).expanduser().absolute()
        if str(path) != env:
            os.environ["COURSE_DATA"] = str(path)
    elif (REPO_ROOT / "_config.yml").is_file():
        path = REPO_ROOT / "data"
    else:
        path = Path.home() / ".cache" / "course_lib"
    what = f"COURSE_DATA={env!r} ({path})" if env else f"the data cache {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{what} is a file, not a folder: point COURSE_DATA at a folder") from None
    except NotADirectoryError:
        raise NotADirectoryError(f"{what}: a part of this path is a file, not a folder; point "
                                 "COURSE_DATA at a folder") from None
    except PermissionError:
        raise PermissionError(f"{what} cannot be created: no permission; point COURSE_DATA at a "
                              "folder you can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} is not writable; point COURSE_DATA at a folder you can write")
    return path

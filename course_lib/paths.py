"""Where the course keeps the files it generates or downloads."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data cache: $COURSE_DATA, else the repository's data/ folder, else ~/.cache/course_lib.

    A checkout has `_config.yml` beside `course_lib/`; an installed package (as on Colab) has not.
    """
    env = os.environ.get("COURSE_DATA")
    if env:
        path = Path(env)
    elif (REPO_ROOT / "_config.yml").is_file():
        path = REPO_ROOT / "data"
    else:
        path = Path.home() / ".cache" / "course_lib"
    path.mkdir(parents=True, exist_ok=True)
    return path

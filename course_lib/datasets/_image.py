"""Reading image files so that every failure names the file (truncated, corrupt, not an image)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["open_image", "read_image"]

_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def open_image(path, mode: str = "RGB") -> Image.Image:
    """The image file at `path`, fully decoded and converted to `mode` (None: as stored), as a PIL image.

    A missing, truncated or corrupt file raises ValueError naming it (PIL alone says only
    "image file is truncated").
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode) if mode else im.copy()
    except _ERRORS as err:
        raise ValueError(f"cannot read the image {path}: missing, truncated, corrupt or not an image ({err})") from err


def read_image(path, what: str = "image") -> np.ndarray:
    """Read an image file: what="image" -> (H, W, 3) uint8 RGB; what="mask" -> (H, W) ids as stored.

    An unreadable or corrupt file raises ValueError naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            # Masks are palette or grey images whose *indices* are the ids: never convert them.
            return np.asarray(im.convert("RGB") if what == "image" else im)
    except _ERRORS as err:
        raise ValueError(f"cannot read the {what} {path}: corrupt or not an image ({err})") from err

"""WIDER FACE (Yang et al., 2016): the official annotation format, and the validation split on disk.

The official archives unpack to

    root/WIDER_val/images/<event>/<name>.jpg          e.g. 0--Parade/0_Parade_marchingband_1_20.jpg
    root/wider_face_split/wider_face_val_bbx_gt.txt   (and _train_, and the test file list)

and wider_face_<split>_bbx_gt.txt repeats, per image: its path under images/, the number of
faces K, then K lines `x y w h blur expression illumination invalid occlusion pose` (`xywh`
pixels, then the six attributes in that order, as the readme of the annotations says). An image
with no face has K = 0 followed by one line of ten zeros, which is not a face.

Only the validation images (WIDER_val.zip, about 345 MB) and the annotations
(wider_face_split.zip, about 3.6 MB) are downloaded, each with course_lib's verified download;
the training and test images are never fetched.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .sources import remote

__all__ = ["COLUMNS", "VAL_IMAGES", "ANNOTATIONS", "read_annotations", "wider_face", "read_split"]

COLUMNS = ("x", "y", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose")
VAL_IMAGES = remote("WIDER_val.zip")
ANNOTATIONS = remote("wider_face_split.zip")


def read_annotations(path) -> list[tuple[str, np.ndarray]]:
    """Parse a wider_face_<split>_bbx_gt.txt file.

    Returns [(image path under images/, faces (K, 10) int64 in COLUMNS order)], in file order; an
    image with no face has K = 0 (the line of zeros after its "0" is skipped). A malformed file
    raises ValueError naming the file and the line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the WIDER FACE annotations {path}: {err}") from err
    out, i = [], 0

    def fail(n: int, what: str):
        raise ValueError(f"{path}, line {n + 1}: {what}")

    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if not name.lower().endswith(".jpg"):
            fail(i, f"expected an image path ending in .jpg, got {name!r}")
        if i + 1 >= len(lines) or not lines[i + 1].strip().isdigit():
            fail(i + 1, f"expected the number of faces of {name}")
        k = int(lines[i + 1])
        rows = max(k, 1)  # K = 0 is followed by one placeholder line of zeros
        block = lines[i + 2:i + 2 + rows]
        if len(block) < rows:
            fail(len(lines) - 1, f"{name} announces {k} faces, the file ends before")
        faces = []
        for j, line in enumerate(block):
            try:
                row = [int(v) for v in line.split()]
            except ValueError:
                fail(i + 2 + j, f"a face of {name} must be 10 integers, got {line.strip()!r}")
            if len(row) != len(COLUMNS):
                fail(i + 2 + j, f"a face of {name} must be 10 integers, got {len(row)}")
            faces.append(row)
        out.append((name, np.array(faces[:k], dtype=np.int64).reshape(k, len(COLUMNS))))
        i += 2 + rows
    return out


def wider_face(root=None, split: str = "val") -> Path:
    """Download (once, verified) and extract the WIDER FACE validation images and the annotations.

    root: where to keep them (default data_dir()/"wider_face"); split: only "val" is downloaded.
    Returns root, holding WIDER_val/images/ and wider_face_split/. Archives already downloaded
    and verified are used offline; extraction is atomic (see download.extract_archive). Offline
    without the archives: OfflineError at once. The recorded checksums are MD5s of the official
    archives; if your copy differs, the error names the environment variable to set.
    """
    from ..notebook import require_online
    from ..paths import data_dir
    from .download import download_remote, extract_archive

    if split != "val":
        raise ValueError(f"split must be 'val' (only the validation images are downloaded), got {split!r}")
    root = Path(root) if root is not None else data_dir() / "wider_face"
    for remote_file, folder in ((ANNOTATIONS, "wider_face_split"), (VAL_IMAGES, "WIDER_val")):
        if (root / folder).is_dir():
            continue
        if not (root / remote_file.name).is_file():
            require_online(f"WIDER FACE ({remote_file.name}, about {remote_file.size_mb:g} MB)")
        download_remote(remote_file, root)
        extract_archive(root / remote_file.name, root / folder, member=folder)
    return root


def read_split(root, split: str = "val"):
    """Iterate over (PIL RGB image, faces (K, 10) int64 in COLUMNS order) of a WIDER FACE copy on
    disk (root as wider_face returns it), in annotation-file order, images read lazily. An
    unreadable image raises ValueError naming the file."""
    from ._image import open_image

    root = Path(root)
    ann = root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"
    images = root / f"WIDER_{split}" / "images"
    if not ann.is_file() or not images.is_dir():
        raise FileNotFoundError(f"no WIDER FACE {split} split under {root}: expected {ann} and {images}/")
    for name, faces in read_annotations(ann):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{ann}: image path {name!r} must stay inside {images}")
        yield open_image(images / name), faces

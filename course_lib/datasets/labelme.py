"""LabelMe annotations: polygons drawn on your own photos -> instance masks -> boxes.

A LabelMe file (one per image, written by the `labelme` tool) is JSON:
    {"imagePath": "photo.jpg", "imageHeight": H, "imageWidth": W,
     "shapes": [{"label": "mug", "points": [[x, y], ...], "shape_type": "polygon"}, ...]}
Points are pixel coordinates (x right, y down, continuous: pixel (i, j) covers x in [j, j+1)).
Polygons and rectangles are read; a pixel belongs to a shape when its centre lies inside.

What the labelme tool writes, and how it is read:
- labels that start with "__" (labelme's `__ignore__`, `__background__`) are not objects: skipped;
- shapes that share a `group_id` and a label are the parts of one object: their masks are
  merged into one mask and one box;
- `imageData` (the image embedded as base64, labelme's default) is used when present, so the
  JSON file alone is enough, whatever `imagePath` says; otherwise `imagePath` is read, relative
  to the JSON file (an absolute imagePath is refused: a data set must not read files from
  anywhere on the machine);
- a polygon with a NaN or infinite vertex raises ValueError; a shape that covers no pixel
  centre (outside the image, collinear, a sliver) is skipped with a warning that names the
  file and the shape, never returned as an empty box.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

from ._image import read_image
from .pennfudan import boxes_from_masks, to_sample

__all__ = ["polygon_mask", "read_labelme", "load_image", "write_labelme", "LabelMeDataset"]

SHAPE_TYPES = ("polygon", "rectangle")


def polygon_mask(points, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon: points (P, 2) `x, y` pixels, P >= 3. Returns (height, width) bool.

    Even-odd rule at pixel centres; the loop runs over the polygon's edges, not over pixels.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"points must be (P >= 3, 2) x, y pixels, got shape {pts.shape}")
    v, u = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), bool)
    for (x1, y1), (x2, y2) in zip(pts, np.roll(pts, -1, axis=0)):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        inside ^= crosses & (u < x1 + (v - y1) * (x2 - x1) / (y2 - y1))
    return inside


def _shape_points(shape: dict, where: str) -> np.ndarray:
    kind = shape.get("shape_type") or "polygon"
    if kind not in SHAPE_TYPES:
        raise ValueError(f"{where}: shape_type must be one of {SHAPE_TYPES}, got {kind!r}")
    try:
        pts = np.asarray(shape.get("points", []), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: points must be a list of [x, y] numbers ({err})") from err
    if not np.isfinite(pts).all():
        raise ValueError(f"{where}: points must be finite, got a NaN or infinite vertex")
    if kind == "rectangle":
        if pts.shape != (2, 2):
            raise ValueError(f"{where}: a rectangle needs 2 corner points, got shape {pts.shape}")
        (x1, y1), (x2, y2) = pts.min(0), pts.max(0)
        pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return pts


def read_labelme(path, class_names) -> dict:
    """Read one LabelMe JSON file (see the module docstring for what is skipped and merged).

    class_names: the object classes in order; label "name" gets index class_names.index(name) + 1
    (0 is the background, torchvision's convention). An unknown label raises ValueError.
    Returns dict(image_path Path (resolved beside the JSON), image_data bytes or None (the
    embedded image file, decoded from base64), height, width, masks (K, H, W) bool, boxes (K, 4)
    float32 `xyxy` pixels (tight around each mask), labels (K,) int64).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read LabelMe file {path}: {err}") from err
    try:
        h, w = int(doc["imageHeight"]), int(doc["imageWidth"])
        shapes = list(doc["shapes"])
        image_name = str(doc["imagePath"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: a LabelMe file needs imagePath, imageHeight, imageWidth and shapes") from err
    if h < 1 or w < 1:
        raise ValueError(f"{path}: imageHeight and imageWidth must be positive, got {h}, {w}")
    if os.path.isabs(image_name) or image_name.startswith(("/", "\\")) or (len(image_name) > 1 and image_name[1] == ":"):
        raise ValueError(f"{path}: imagePath must be relative to the JSON file, got the absolute {image_name!r}")
    image_data = _image_data(doc.get("imageData"), path)
    image_path = path.parent / image_name
    if image_data is None and image_path.resolve() == path.resolve():
        raise ValueError(f"{path}: imagePath points at this JSON file and imageData is empty: no image")
    names = list(class_names)
    groups: dict = {}  # (label, group_id or a unique key) -> (label index, mask)
    for j, s in enumerate(shapes):
        label = s.get("label") if isinstance(s, dict) else None
        if isinstance(label, str) and label.startswith("__"):
            continue
        if label not in names:
            raise ValueError(f"{path}: shape {j} has label {label!r}, not one of class_names {names}")
        mask = polygon_mask(_shape_points(s, f"{path} shape {j}"), h, w)
        if not mask.any():
            warnings.warn(f"{path}: shape {j} ({label}) covers no pixel of the {w} x {h} image "
                          "(outside it, collinear or too thin): skipped", stacklevel=2)
            continue
        gid = s.get("group_id")
        key = (label, gid) if gid is not None else (label, "shape", j)
        if key in groups:
            groups[key][1] |= mask
        else:
            groups[key] = [names.index(label) + 1, mask]
    masks = np.array([m for _, m in groups.values()], dtype=bool).reshape(len(groups), h, w)
    labels = np.array([c for c, _ in groups.values()], dtype=np.int64)
    return dict(image_path=image_path, image_data=image_data, height=h, width=w, masks=masks,
                boxes=boxes_from_masks(masks), labels=labels)


def _image_data(data, path: Path) -> bytes | None:
    if data in (None, ""):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (TypeError, ValueError, binascii.Error) as err:
        raise ValueError(f"{path}: imageData is not valid base64 ({err})") from err


def load_image(ann: dict, where) -> np.ndarray:
    """The image of a read_labelme result: (H, W, 3) uint8 RGB, from imageData when embedded,
    else from image_path. Errors name `where` (the JSON file) or the image file."""
    if ann["image_data"] is None:
        return read_image(ann["image_path"], "image")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(ann["image_data"])) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read the image embedded in {where} (imageData): {err}") from err


def write_labelme(path, image, shapes) -> Path:
    """Write an image and its LabelMe JSON file, as the `labelme` tool saves them.

    path: the JSON file to write, ending in ".json" (anything else raises ValueError, so an image
    is never overwritten by its annotations); the image goes beside it as a PNG of the same stem.
    image: (H, W, 3) uint8. shapes: list of dict(label str, points (P, 2) `x, y` pixels), and
    optionally shape_type "polygon" (the default) or "rectangle" (two corners), group_id.
    Both files are written to temporary names and renamed into place, the JSON last.
    Returns the JSON path; `read_labelme` reads it back.
    """
    from PIL import Image

    from ._atomic import temp_path

    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"path must be the .json file to write (the image goes beside it as .png), got {path}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_path = path.with_suffix(".png")
    doc = {"version": "5.0.1", "flags": {}, "imagePath": image_path.name, "imageData": None,
           "imageHeight": int(image.shape[0]), "imageWidth": int(image.shape[1]),
           "shapes": [{"label": str(s["label"]), "points": np.asarray(s["points"], float).tolist(),
                       "group_id": s.get("group_id"), "shape_type": s.get("shape_type", "polygon"), "flags": {}}
                      for s in shapes]}
    for target, write in ((image_path, lambda f: Image.fromarray(image).save(f, format="PNG")),
                          (path, lambda f: f.write_text(json.dumps(doc, indent=1)))):
        tmp = temp_path(target)
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return path


class LabelMeDataset:
    """A folder of images with LabelMe JSON files, as (image, target) pairs like PennFudanDataset.

    root: folder with *.json beside their images. class_names: the object classes (no background).
    Item i: (image float32 (3, H, W) in [0, 1], dict(boxes (K, 4) `xyxy` px, labels (K,) 1..,
    masks (K, H, W) uint8, image_id, area, iscrowd)).
    """

    def __init__(self, root, class_names, transforms=None):
        self.root = Path(root)
        self.files = sorted(self.root.glob("*.json"))
        self.class_names = tuple(class_names)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> tuple[np.ndarray, dict]:
        """Item i without transforms, as NumPy: image (H, W, 3) uint8 and boxes / labels / masks."""
        ann = read_labelme(self.files[i], self.class_names)
        image = load_image(ann, self.files[i])
        if image.shape[:2] != (ann["height"], ann["width"]):
            raise ValueError(f"{self.files[i]}: image is {image.shape[:2]}, "
                             f"the file says {(ann['height'], ann['width'])}")
        return image, {k: ann[k] for k in ("boxes", "labels", "masks")}

    def __getitem__(self, i: int):
        image, t = self.load(i)
        return to_sample(image, t, i, self.transforms)

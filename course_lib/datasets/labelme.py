"""LabelMe annotations: polygons drawn on your own photos -> instance masks -> boxes.

A LabelMe file (one per image, written by the `labelme` tool) is JSON:
    {"imagePath": "photo.jpg", "imageHeight": H, "imageWidth": W,
     "shapes": [{"label": "mug", "points": [[x, y], ...], "shape_type": "polygon"}, ...]}
Points are pixel coordinates (x right, y down, continuous: pixel (i, j) covers x in [j, j+1)).
Polygons and rectangles are read; a pixel belongs to a shape when its centre lies inside.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .pennfudan import boxes_from_masks, read_image, to_sample

__all__ = ["polygon_mask", "read_labelme", "write_labelme", "LabelMeDataset"]

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
    pts = np.asarray(shape.get("points", []), dtype=np.float64)
    if kind == "rectangle":
        if pts.shape != (2, 2):
            raise ValueError(f"{where}: a rectangle needs 2 corner points, got shape {pts.shape}")
        (x1, y1), (x2, y2) = pts.min(0), pts.max(0)
        pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return pts


def read_labelme(path, class_names) -> dict:
    """Read one LabelMe JSON file.

    class_names: the object classes in order; label "name" gets index class_names.index(name) + 1
    (0 is the background, torchvision's convention). An unknown label raises ValueError.
    Returns dict(image_path Path (resolved beside the JSON), height, width, masks (K, H, W) bool,
    boxes (K, 4) float32 `xyxy` pixels (tight around each mask), labels (K,) int64).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read LabelMe file {path}: {err}") from err
    try:
        h, w = int(doc["imageHeight"]), int(doc["imageWidth"])
        shapes = list(doc["shapes"])
        image_path = path.parent / doc["imagePath"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: a LabelMe file needs imagePath, imageHeight, imageWidth and shapes") from err
    names = list(class_names)
    masks, labels = [], []
    for j, s in enumerate(shapes):
        label = s.get("label")
        if label not in names:
            raise ValueError(f"{path}: shape {j} has label {label!r}, not one of class_names {names}")
        masks.append(polygon_mask(_shape_points(s, f"{path} shape {j}"), h, w))
        labels.append(names.index(label) + 1)
    masks = np.array(masks, dtype=bool).reshape(len(masks), h, w)
    return dict(image_path=image_path, height=h, width=w, masks=masks,
                boxes=boxes_from_masks(masks), labels=np.array(labels, dtype=np.int64))


def write_labelme(path, image, shapes) -> Path:
    """Write an image and its LabelMe JSON file, as the `labelme` tool saves them.

    path: the JSON file to write; the image goes beside it as a PNG of the same stem.
    image: (H, W, 3) uint8. shapes: list of dict(label str, points (P, 2) `x, y` pixels), and
    optionally shape_type "polygon" (the default) or "rectangle" (two corners).
    Returns the JSON path; `read_labelme` reads it back.
    """
    from PIL import Image

    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_path = path.with_suffix(".png")
    Image.fromarray(image).save(image_path)
    doc = {"version": "5.0.1", "flags": {}, "imagePath": image_path.name, "imageData": None,
           "imageHeight": int(image.shape[0]), "imageWidth": int(image.shape[1]),
           "shapes": [{"label": str(s["label"]), "points": np.asarray(s["points"], float).tolist(),
                       "group_id": None, "shape_type": s.get("shape_type", "polygon"), "flags": {}}
                      for s in shapes]}
    path.write_text(json.dumps(doc, indent=1))
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
        image = read_image(ann["image_path"], "image")
        if image.shape[:2] != (ann["height"], ann["width"]):
            raise ValueError(f"{self.files[i]}: image is {image.shape[:2]}, "
                             f"the file says {(ann['height'], ann['width'])}")
        return image, {k: ann[k] for k in ("boxes", "labels", "masks")}

    def __getitem__(self, i: int):
        image, t = self.load(i)
        return to_sample(image, t, i, self.transforms)

"""Synthetic face images, drawn procedurally and deterministically from a seed.

Each image shows a few cartoon faces (skin-toned ellipse, hair, eyes, brows, mouth) of varied
sizes, aspect ratios and skin tones on a cluttered background.

Axes: images are (H, W, 3) uint8 arrays indexed [y, x, channel]. Face rectangles are rows
[x_centre, y_centre, w, h, blur, expression, illumination, occlusion, pose, invalid] in pixels
(`cxcywh` then WIDER FACE's six attribute numbers), where w, h is the box of the face ellipse.
"""
from __future__ import annotations

import numpy as np

from ..boxes import box_convert, box_iou

__all__ = ["SKIN_TONES", "draw_image", "make_faces"]

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 150], [224, 172, 105], [198, 134, 66],
                       [141, 85, 36], [92, 58, 32]], dtype=np.float64)
HAIR = np.array([[20, 15, 10], [70, 40, 20], [150, 100, 50], [220, 190, 120], [120, 120, 120]], dtype=np.float64)


def _ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour) -> None:
    """Paint a filled axis-aligned ellipse onto img (H, W, 3) float, in place (clipped to the image)."""
    h, w = img.shape[:2]
    x0, x1 = max(int(cx - rx), 0), min(int(np.ceil(cx + rx)) + 1, w)
    y0, y1 = max(int(cy - ry), 0), min(int(np.ceil(cy + ry)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    inside = ((xx - cx) / max(rx, 0.5)) ** 2 + ((yy - cy) / max(ry, 0.5)) ** 2 <= 1
    img[y0:y1, x0:x1][inside] = colour


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colour gradient with random rectangles and blobs (clutter), (size, size, 3) float."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (np.linspace(0, 1, size)[:, None] * np.cos(rng.uniform(0, np.pi))
         + np.linspace(0, 1, size)[None, :] * np.sin(rng.uniform(0, np.pi)))
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    img = c0 + (c1 - c0) * t[..., None]
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(8, size // 2, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    for _ in range(rng.integers(1, 5)):
        _ellipse(img, *rng.uniform(0, size, 2), *rng.uniform(4, 30, 2), rng.uniform(0, 255, 3))
    return img


def _face(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """Draw one face whose ellipse has box (cx, cy, w, h); return its 6 attribute numbers."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.1)
    dark = rng.random() < 0.2
    shade = 0.6 if dark else 1.0
    _ellipse(img, cx, cy - 0.12 * h, 0.56 * w, 0.45 * h, HAIR[rng.integers(len(HAIR))] * shade)
    _ellipse(img, cx, cy, w / 2, h / 2, np.clip(skin * shade, 0, 255))
    eye_y, dx = cy - 0.08 * h, 0.2 * w
    for side in (-1, 1):
        _ellipse(img, cx + side * dx, eye_y, 0.1 * w, 0.06 * h, np.array([250, 250, 250]) * shade)
        _ellipse(img, cx + side * dx, eye_y, 0.045 * w, 0.045 * h, np.array([40, 30, 60]) * shade)
        _ellipse(img, cx + side * dx, eye_y - 0.1 * h, 0.12 * w, 0.02 * h + 0.5, HAIR[0] * shade)
    open_mouth = rng.random() < 0.3
    _ellipse(img, cx, cy + 0.25 * h, rng.uniform(0.12, 0.2) * w, (0.07 if open_mouth else 0.025) * h + 0.5,
             np.array([170, 40, 50]) * shade)
    return np.array([0, open_mouth, dark, 0, 0, 0], dtype=np.float64)


def _place(rng: np.random.Generator, n: int, centre_box, sizes) -> np.ndarray:
    """Up to n non-overlapping face boxes (K, 4) `cxcywh`, centres inside centre_box (x0, y0, x1, y1)."""
    boxes = np.zeros((0, 4))
    for _ in range(20 * n):
        if len(boxes) == n:
            break
        w = np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1])))
        cand = np.array([[rng.uniform(centre_box[0], centre_box[2]), rng.uniform(centre_box[1], centre_box[3]),
                          w, w * rng.uniform(1.1, 1.45)]])
        # Hair reaches above the face box, so demand a margin between faces.
        grown = box_convert(cand * [1, 1, 1.3, 1.5], "cxcywh", "xyxy")
        if len(boxes) == 0 or box_iou(grown, box_convert(boxes * [1, 1, 1.3, 1.5], "cxcywh", "xyxy")).max() == 0:
            boxes = np.concatenate([boxes, cand])
    return boxes


def draw_image(rng: np.random.Generator, size: int = 224, max_faces: int = 4,
               centre_box=(40, 40, 184, 184), sizes=(16, 100)) -> tuple[np.ndarray, np.ndarray]:
    """One image with 1..max_faces faces of width in `sizes` (pixels), centres inside centre_box.

    Returns image (size, size, 3) uint8 and rects (K, 10) float32 (see the module docstring).
    """
    img = _background(rng, size)
    boxes = _place(rng, int(rng.integers(1, max_faces + 1)), centre_box, sizes)
    attrs = [_face(img, rng, *b) for b in boxes]
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    rects = np.concatenate([boxes, np.array(attrs).reshape(len(boxes), 6)], axis=1)
    return img, rects.astype(np.float32)


def make_faces(n: int, seed: int = 0, size: int = 224, max_faces: int = 4, max_rects: int = 10,
               **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """n images from `seed` (the same seed gives the same data).

    Returns images (n, size, size, 3) uint8 and rects (n, max_rects, 10) float32, zero rows unused.
    kwargs go to draw_image (centre_box, sizes).
    """
    if n < 0 or max_faces > max_rects:
        raise ValueError(f"n must be >= 0 and max_faces <= max_rects, got n={n}, max_faces={max_faces}")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    rects = np.zeros((n, max_rects, 10), dtype=np.float32)
    for i in range(n):
        images[i], r = draw_image(rng, size, max_faces, **kwargs)
        rects[i, :len(r)] = r
    return images, rects

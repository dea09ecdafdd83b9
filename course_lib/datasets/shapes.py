"""A deterministic synthetic detection data set: coloured shapes on cluttered backgrounds.

Each image holds `min_objects` to `max_objects` shapes, from about 10 px to about 70% of the
image, in random colours (the colour never gives the class away), rotations and mild aspect
changes, overlapping and partly occluding one another, on a textured background (gradients,
smooth noise, stripes, faint blobs and lines). Every shape's annotation is its VISIBLE part:
a boolean instance mask and the `xyxy` pixel box around that mask. A shape is only kept if at
least 40% of it stays visible and its visible box is at least 6 px wide and high, so every
shape in an image is annotated (placements that would break this are redrawn).

`style="plain"` draws an easier variant for the lessons that train detectors from scratch on
two CPU cores: a smooth background (a gradient and faint noise, no stripes, blobs or lines) and
shapes from 16% of the image side upwards.

Sample `i` of `make_shapes(n, seed=s)` is drawn from `np.random.default_rng([s, i])` alone, so
any subset or split is reproducible. `write_shapes_voc` caches a train/test set on disk in the
Pascal VOC layout that `course_lib.datasets.voc` reads.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

SHAPES = (
    "circle", "square", "triangle", "star", "cross", "ring",
    "hexagon", "diamond", "crescent", "arrow", "heart",
)
SOURCE_CLASSES = SHAPES[:6]
TARGET_CLASSES = SHAPES[6:9]

MIN_VISIBLE = 0.4  # fraction of a shape's own area that must stay visible
MIN_BOX = 6  # px, smallest visible box side
MIN_SIZE = 10.0  # px, smallest shape diameter
MAX_SIZE = 0.7  # largest shape diameter, as a fraction of the image side
SUPERSAMPLE = 2  # sub-pixels per pixel side, for anti-aliased edges
TEST_OFFSET = 1_000_000  # sample index of the first test image in `write_shapes_voc`
PLAIN_MIN_SIZE = 0.16  # smallest shape diameter in the "plain" style, as a fraction of the side
STYLES = ("cluttered", "plain")
GENERATOR_VERSION = 2  # part of the cache key: bump when the drawing changes
META_FILE = "shapes_meta.json"


def _regular(n: int, phase: float = np.pi / 2) -> np.ndarray:
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _cross(w: float) -> np.ndarray:
    e = np.sqrt(1 - w * w) * 0.97
    q = [(w, w), (e, w), (e, -w), (w, -w), (w, -e), (-w, -e), (-w, -w), (-e, -w), (-e, w), (-w, w), (-w, e), (w, e)]
    return np.array(q)


_ARROW = np.array([(-0.95, 0.17), (0.2, 0.17), (0.2, 0.55), (0.95, 0.0), (0.2, -0.55), (0.2, -0.17), (-0.95, -0.17)])


def _in_polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd rule over all points at once; the loop runs over the polygon's few edges."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), bool)
    for (x1, y1), (x2, y2) in zip(verts, np.roll(verts, -1, 0)):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_at = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < x_at)
    return inside


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray, p: float) -> np.ndarray:
    """Inside test for shape `name` in its local frame (shape within the unit disk, v up).

    p: a per-object random number in [0, 1) that varies the shape a little (ring width, ...).
    """
    r2 = u * u + v * v
    if name == "circle":
        return r2 <= 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.7
    if name == "triangle":
        return _in_polygon(u, v, _regular(3))
    if name == "star":
        return _in_polygon(u, v, _star(5, 0.4 + 0.1 * p))
    if name == "cross":
        return _in_polygon(u, v, _cross(0.24 + 0.1 * p))
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= (0.5 + 0.12 * p) ** 2)
    if name == "hexagon":
        return _in_polygon(u, v, _regular(6, 0.0))
    if name == "diamond":
        return np.abs(u) / 0.58 + np.abs(v) <= 1.0
    if name == "crescent":
        d = 0.35 + 0.2 * p
        return (r2 <= 1.0) & ((u - d) ** 2 + v * v > 0.85**2)
    if name == "arrow":
        return _in_polygon(u, v, _ARROW)
    if name == "heart":
        x, y = 1.35 * u, 1.35 * v + 0.12
        return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0
    raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")


# Rotation range (degrees, +-) per shape: upright-ish where full rotation would turn one
# class into another (a square at 45 degrees is a diamond) or make it hard to name.
_ROTATION = {"square": 20, "diamond": 20, "cross": 30, "heart": 30}


def _upsample(grid: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of `grid` along `axis` to `n` samples (end points kept)."""
    pos = np.linspace(0, grid.shape[axis] - 1, n, dtype=np.float32)
    i0 = np.minimum(pos.astype(np.int64), grid.shape[axis] - 2)
    f = (pos - i0).reshape([-1 if d == axis else 1 for d in range(grid.ndim)])
    return np.take(grid, i0, axis) * (1 - f) + np.take(grid, i0 + 1, axis) * f


def _smooth_noise(rng, h: int, w: int, cells: int, amp: float) -> np.ndarray:
    """(h, w, 3) noise: a (cells, cells, 3) normal grid upsampled bilinearly."""
    grid = rng.normal(0, amp, (cells, cells, 3)).astype(np.float32)
    return _upsample(_upsample(grid, h, 0), w, 1)


def _background(rng: np.random.Generator, h: int, w: int, clutter: bool = True) -> np.ndarray:
    """A float32 (h, w, 3) background in [0, 1]: a gradient and smooth noise, plus (clutter=True)
    finer noise, stripes, blobs and lines."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    a = rng.uniform(0, 2 * np.pi)
    t = xx * np.cos(a) + yy * np.sin(a)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    c0, c1 = rng.uniform(0.1, 0.9, (2, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    img += _smooth_noise(rng, h, w, int(rng.integers(3, 6)), 0.15 if clutter else 0.06)
    if not clutter:
        return img.astype(np.float32)
    img += _smooth_noise(rng, h, w, int(rng.integers(8, 16)), 0.08)
    if rng.random() < 0.6:  # stripes
        a, period = rng.uniform(0, np.pi), rng.uniform(5, 25)
        wave = np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period + rng.uniform(0, 6.3))
        img += (rng.uniform(0.03, 0.1) * rng.choice([-1.0, 1.0], 3)).astype(np.float32) * wave[..., None]
    for _ in range(rng.integers(1, 5)):  # faint soft blobs
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.3, 2) * w
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        alpha = (rng.uniform(0.1, 0.3) * np.exp(-d))[..., None]
        img += (rng.uniform(0, 1, 3).astype(np.float32) - img) * alpha
    for _ in range(rng.integers(0, 5)):  # faint lines right across the image
        a, off = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5) * max(h, w)
        dist = np.abs((xx - w / 2) * np.sin(a) - (yy - h / 2) * np.cos(a) - off)
        alpha = (rng.uniform(0.1, 0.3) * np.clip(rng.uniform(0.5, 2) - dist + 0.5, 0, 1))[..., None]
        img += (rng.uniform(0, 1, 3).astype(np.float32) - img) * alpha
    return img.astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def _render(rng, name, cx, cy, size, h, w):
    """Coverage (fraction of sub-pixels inside) of one shape on its padded crop.

    Returns (coverage (ny, nx) float32, full_area in px, crop origin (x0, y0)).
    """
    half = 0.6 * size + 1
    x0, y0 = int(np.floor(cx - half)), int(np.floor(cy - half))
    nx, ny = int(np.ceil(cx + half)) - x0, int(np.ceil(cy + half)) - y0
    s = SUPERSAMPLE
    xs = x0 + (np.arange(nx * s) + 0.5) / s
    ys = y0 + (np.arange(ny * s) + 0.5) / s
    dx = (xs[None, :] - cx) / (size / 2)
    dy = (cy - ys[:, None]) / (size / 2)  # v points up
    rot = _ROTATION.get(name, 180)
    a = np.deg2rad(rng.uniform(-rot, rot))
    stretch = np.exp(rng.uniform(-0.12, 0.12))
    u = (dx * np.cos(a) + dy * np.sin(a)) * stretch
    v = (-dx * np.sin(a) + dy * np.cos(a)) / stretch
    inside = _shape_mask(name, u, v, rng.random())
    coverage = inside.reshape(ny, s, nx, s).mean((1, 3), dtype=np.float32)
    return coverage, int((coverage >= 0.5).sum()), (x0, y0)


def _masks_boxes(owner: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Visible masks (k, H, W) and their `xyxy` pixel boxes (k, 4) from an owner map (-1 = none)."""
    h, w = owner.shape
    masks = owner[None] == np.arange(k)[:, None, None]
    cols, rows = masks.any(1), masks.any(2)
    boxes = np.stack(
        [cols.argmax(1), rows.argmax(1), w - cols[:, ::-1].argmax(1), h - rows[:, ::-1].argmax(1)], 1
    ).astype(np.float32)
    boxes[~cols.any(1)] = 0
    return masks, boxes


def _check_args(image_size, classes, min_objects, max_objects, style="cluttered"):
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if not 32 <= int(image_size) <= 1024:
        raise ValueError(f"image_size must be an int in 32..1024 (the course uses 128..224), got {image_size}")
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or len(classes) == 0:
        raise ValueError(f"classes must be a non-empty sequence of names from {SHAPES}, got {tuple(classes)}")
    if not 1 <= min_objects <= max_objects <= 20:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 20, got {min_objects}, {max_objects}")


def draw_scene(rng: np.random.Generator, image_size: int = 128, classes=SOURCE_CLASSES,
               min_objects: int = 1, max_objects: int = 6, style: str = "cluttered") -> dict:
    """Draw one image with its annotations.

    rng: the only source of randomness; image_size: the side H = W in pixels; style: "cluttered"
    (textured background, shapes from 10 px) or "plain" (smooth background, shapes from
    PLAIN_MIN_SIZE of the side).
    Returns a dict: "image" uint8 (H, W, 3); "boxes" float32 (K, 4) `xyxy` pixels around each
    shape's visible part (x2, y2 exclusive: a one-pixel box is [x, y, x + 1, y + 1]);
    "labels" int64 (K,) indices into `classes`; "masks" bool (K, H, W) visible instance masks
    (later shapes occlude earlier ones), with min_objects <= K <= max_objects.
    """
    _check_args(image_size, classes, min_objects, max_objects, style)
    h = w = int(image_size)
    img = _background(rng, h, w, clutter=style == "cluttered")
    min_size = MIN_SIZE if style == "cluttered" else max(MIN_SIZE, PLAIN_MIN_SIZE * w)
    owner = np.full((h, w), -1, np.int16)
    areas, labels = [], []
    target = int(rng.integers(min_objects, max_objects + 1))
    fails = 0
    while len(labels) < target:
        if fails > 400:
            raise RuntimeError("could not place the requested number of shapes; lower min_objects")
        k = len(labels)
        cls = int(rng.integers(len(classes)))
        hi = max(min_size, MAX_SIZE * w * 0.9 ** fails)  # shrink after failed placements
        size = float(np.exp(rng.uniform(np.log(min_size), np.log(hi))))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        cov, area, (x0, y0) = _render(rng, classes[cls], cx, cy, size, h, w)
        # the part of the crop inside the image
        ix0, iy0 = max(x0, 0), max(y0, 0)
        ix1, iy1 = min(x0 + cov.shape[1], w), min(y0 + cov.shape[0], h)
        if ix1 <= ix0 or iy1 <= iy0:
            fails += 1
            continue
        cov = cov[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        new_owner = owner.copy()
        new_owner[iy0:iy1, ix0:ix1][cov >= 0.5] = k
        counts = np.bincount(new_owner[new_owner >= 0], minlength=k + 1)
        _, boxes = _masks_boxes(new_owner, k + 1)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        if (counts < MIN_VISIBLE * np.array(areas + [area])).any() or (sides < MIN_BOX).any():
            fails += 1
            continue
        # a random colour that stands out from the background under the shape
        region = img[iy0:iy1, ix0:ix1]
        under = region[cov >= 0.5].mean(0)
        colours = [_hsv_to_rgb(rng.random(), rng.uniform(0.3, 1), rng.uniform(0.3, 1)) for _ in range(4)]
        colour = max(colours, key=lambda c: np.abs(c - under).sum())
        shade = 1 + 0.25 * np.linspace(-1, 1, cov.shape[1])[None, :, None] * rng.choice([-1, 1])
        alpha = cov[..., None]
        region[:] = region * (1 - alpha) + np.clip(colour * shade, 0, 1) * alpha
        owner, fails = new_owner, 0
        areas.append(area)
        labels.append(cls)
    img += rng.normal(0, rng.uniform(0.01, 0.04), img.shape).astype(np.float32)
    masks, boxes = _masks_boxes(owner, len(labels))
    return {
        "image": np.clip(np.rint(img * 255), 0, 255).astype(np.uint8),
        "boxes": boxes,
        "labels": np.array(labels, np.int64),
        "masks": masks,
    }


def _sample(seed: int, index: int, image_size, classes, min_objects, max_objects, style="cluttered") -> dict:
    rng = np.random.default_rng([int(seed), int(index)])
    return draw_scene(rng, image_size, classes, min_objects, max_objects, style)


def make_shapes(n: int, image_size: int = 128, classes=SOURCE_CLASSES, seed: int = 0,
                min_objects: int = 1, max_objects: int = 6, style: str = "cluttered") -> list[dict]:
    """`n` samples of `draw_scene` (see there for the dict); sample i uses default_rng([seed, i]) only."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_sample(seed, i, image_size, tuple(classes), min_objects, max_objects, style) for i in range(n)]


def split_indices(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n): (train_idx, test_idx), both sorted int64 arrays.

    The test part has round(n * test_fraction) indices.
    """
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]).astype(np.int64), np.sort(perm[:n_test]).astype(np.int64)


# ---- the on-disk cache in Pascal VOC layout ---------------------------------------------------

def _meta(n_train, n_test, image_size, classes, seed, max_objects, style) -> dict:
    return {"generator": "course_lib.datasets.shapes", "version": GENERATOR_VERSION,
            "n_train": int(n_train), "n_test": int(n_test), "image_size": int(image_size),
            "classes": list(classes), "seed": int(seed), "max_objects": int(max_objects), "style": style,
            "image_format": "jpg, quality 95"}


def _default_root(meta: dict) -> Path:
    from course_lib.paths import data_dir

    n_train, n_test, image_size, seed = meta["n_train"], meta["n_test"], meta["image_size"], meta["seed"]
    extra = f"{','.join(meta['classes'])}:{meta['max_objects']}:{meta['style']}"
    key = hashlib.sha1(f"v{GENERATOR_VERSION}:{extra}".encode()).hexdigest()[:8]
    return data_dir() / f"shapes_voc_{image_size}_{seed}_{n_train}_{n_test}_{key}"


def _read_meta(root: Path) -> dict | None:
    try:
        return json.loads((root / META_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _check_existing(root: Path, meta: dict) -> bool:
    """True if `root` already holds this set; False if it is absent or empty; raise otherwise."""
    if not root.exists():
        return False
    if root.is_dir() and not any(root.iterdir()):
        return False
    found = _read_meta(root)
    if found is None:
        raise FileExistsError(
            f"{root} exists but is not a shapes data set made by course_lib (no {META_FILE}); "
            "it is left untouched. Pass another root, or move that folder away."
        )
    if found != meta:
        raise FileExistsError(
            f"{root} holds a shapes data set made with other parameters ({found}); it is left "
            "untouched. Pass another root, or delete that folder to regenerate it."
        )
    return True


def _write_set(tmp: Path, meta: dict, folder: str) -> None:
    from PIL import Image

    from .voc import write_voc_xml

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (tmp / sub).mkdir(parents=True)
    classes = tuple(meta["classes"])
    size = meta["image_size"]
    for split, n, offset in (("train", meta["n_train"], 0), ("test", meta["n_test"], TEST_OFFSET)):
        ids = [f"{split}_{j:06d}" for j in range(n)]
        for j, image_id in enumerate(ids):
            s = _sample(meta["seed"], offset + j, size, classes, 1, meta["max_objects"], meta["style"])
            Image.fromarray(s["image"]).save(tmp / "JPEGImages" / f"{image_id}.jpg", quality=95)
            names = [classes[c] for c in s["labels"]]
            write_voc_xml(tmp / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", (size, size),
                          s["boxes"], names, folder=folder)
        (tmp / "ImageSets/Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))  # last: marks the set complete


def write_shapes_voc(root=None, n_train: int = 300, n_test: int = 100, image_size: int = 128,
                     classes=SOURCE_CLASSES, seed: int = 0, max_objects: int = 6,
                     style: str = "cluttered") -> Path:
    """Write (or reuse) a train/test shapes set in Pascal VOC layout; return its folder.

    Layout: JPEGImages/<id>.jpg (JPEG, quality 95), Annotations/<id>.xml (VOC boxes: 1-based
    inclusive pixel indices, see `voc.read_voc_xml`), ImageSets/Main/train.txt and test.txt,
    and shapes_meta.json. Train image j is sample j of `make_shapes(..., seed=seed)`; test image
    j is sample TEST_OFFSET + j, so the test set does not change with n_train. Images hold 1 to
    max_objects shapes drawn in `style` (see `draw_scene`).
    root: default data_dir()/shapes_voc_{image_size}_{seed}_{n_train}_{n_test}_{hash of classes,
    max_objects and style}.
    The set is built in a temporary sibling folder and renamed into place, so `root` is either
    absent or complete. A `root` that exists without our meta file (or with other parameters)
    is never overwritten: FileExistsError.
    """
    classes = tuple(classes)
    _check_args(image_size, classes, 1, max_objects, style)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    meta = _meta(n_train, n_test, image_size, classes, seed, max_objects, style)
    root = Path(root) if root is not None else _default_root(meta)
    if _check_existing(root, meta):
        return root
    from ._atomic import clean_stale, remove, temp_path

    root.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(root)  # the temporaries of killed runs, never a live one
    tmp = temp_path(root)
    try:
        _write_set(tmp, meta, root.name)  # <folder>: the final name, not the temporary one
        if root.exists():  # an empty folder (checked above) that we may replace
            root.rmdir()
        os.rename(tmp, root)
    except OSError:
        if _read_meta(root) != meta:  # not a concurrent writer that finished first
            raise
    finally:
        remove(tmp)
    return root


def load_shapes_voc(split: str = "train", root=None, n_train: int = 300, n_test: int = 100,
                    image_size: int = 128, classes=SOURCE_CLASSES, seed: int = 0, max_objects: int = 6,
                    style: str = "cluttered", transforms=None):
    """`write_shapes_voc(...)` if needed, then read `split` ("train" or "test") back as a
    `voc.VOCDetection` with class_names = classes (boxes `xyxy` pixels)."""
    from .voc import VOCDetection

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = write_shapes_voc(root, n_train, n_test, image_size, classes, seed, max_objects, style)
    return VOCDetection(folder, split, class_names=tuple(classes), transforms=transforms)

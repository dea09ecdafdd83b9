"""The MP5 face-detection data in HDF5: build it (synthetic or WIDER FACE) and read it back.

Three files in one folder (data_dir()/mp5/<profile>/):
    data.hdf5            features (N, 8, 8, 512) float32  VGG16-layout features: the 14x14 map
                                                          after pool4 of a 224x224 image, cropped
                                                          to its central 8x8
                         rects    (N, 10, 10) float32     up to 10 faces per image, rows
                                                          [x_centre, y_centre, w, h, blur,
                                                          expression, illumination, occlusion,
                                                          pose, invalid], zero rows unused
                         targets  (N, 8, 8, 9, 5) float32 [tx, ty, tw, th, p] per anchor
                         anchors  (8, 8, 9, 4) float32    [x_centre, y_centre, w, h]
    images.hdf5          images   (N, 224, 224, 3) uint8
    weights_initial.hdf5 W1 (3, 3, 512, 128), W2 (1, 1, 128, 9, 5) float32, small random values

Axes: every array is indexed [image, y, x, ...] like the images, i.e. axis 1 is y (rows, step
16 px) and axis 2 is x (columns). Box numbers are pixels of the 224x224 image, `cxcywh`.
Feature cell (i, j) is cell (i + 3, j + 3) of the 14x14 map, centred at pixel
(x, y) = (16 (j + 3) + 8, 16 (i + 3) + 8), i.e. 56..168.

Targets: p = 1 where IoU(anchor, face) >= 0.7, and at each face's best anchor(s); then
(tx, ty, tw, th) = ((x - xa) / wa, (y - ya) / ha, log(w / wa), log(h / ha)) for the matched face;
zero elsewhere. The first n_train images (attribute `n_train` of data.hdf5) are for training,
the rest are held out.

Profiles: `quick` draws synthetic faces (course_lib.datasets.faces) and uses a VGG16-layout
extractor with seeded random weights, offline; `full` reads the WIDER FACE validation split
(course_lib.datasets.wider: only its images, about 345 MB, and the annotations, about 3.6 MB)
and uses ImageNet VGG16 weights, online.

The files are a cache: each is written to a temporary name and renamed into place, and `load`
checks what it reads (shapes, finite numbers). A cache file that cannot be read or fails the
checks is named in a one-line message and rebuilt; a file there that this module did not write
(no HDF5 signature, or no mark of ours) is never replaced unless build(overwrite=True).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import notebook
from ..anchors import anchor_base
from ..boxes import box_convert, box_iou
from ..coding import encode
from ..matching import label_anchors
from ..paths import data_dir
from .faces import make_faces

__all__ = ["MP5Profile", "PROFILES", "FILES", "make_anchors", "make_targets", "vgg16_body", "vgg_features",
           "initial_weights", "wider_samples", "read_wider", "build", "load"]

FILES = ("data.hdf5", "images.hdf5", "weights_initial.hdf5")
GRID, CROP, STRIDE, SIZE = 8, 3, 16, 224
MARK = "course_lib.datasets.mp5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class MP5Profile:
    """What lesson 1 changes between `quick` and `full`: data source, sizes and training."""

    name: str
    source: str            # "synthetic" or "wider"
    n_images: int
    n_train: int
    backbone: str          # "random" (seeded) or "imagenet"
    seed: int = 0
    anchor_scales: tuple = (1.5, 3.0, 6.0)   # x stride 16: 24, 48, 96 px
    anchor_ratios: tuple = (1.0, 1.3, 1.7)   # height / width: faces are taller than wide
    train_steps: int = 300
    learning_rate: float = 3e-3


PROFILES = {
    "quick": MP5Profile("quick", "synthetic", n_images=64, n_train=48, backbone="random"),
    "full": MP5Profile("full", "wider", n_images=200, n_train=150, backbone="imagenet", train_steps=1000),
}


def make_anchors(scales=(1.5, 3.0, 6.0), ratios=(0.5, 1.0, 2.0)) -> np.ndarray:
    """The (8, 8, A, 4) `cxcywh` anchors of the cropped grid, A = len(scales) * len(ratios).

    Anchor a at cell (i, j) is centred at (16 (j + 3) + 8, 16 (i + 3) + 8); order of a as in
    course_lib.anchors.anchor_base (ratio-major, then scale).
    """
    base = box_convert(anchor_base(STRIDE, scales, ratios), "xyxy", "cxcywh")
    centres = STRIDE * (np.arange(GRID) + CROP) + STRIDE / 2
    anchors = np.zeros((GRID, GRID, len(base), 4))
    anchors[..., 0] = centres[None, :, None]
    anchors[..., 1] = centres[:, None, None]
    anchors[..., 2:] = base[:, 2:]
    return anchors.astype(np.float32)


def make_targets(rects, anchors, pos_threshold: float = 0.7) -> np.ndarray:
    """Targets (N, 8, 8, A, 5) float32 from rects (N, R, >=4) `cxcywh` and anchors (8, 8, A, 4)."""
    rects, anchors = np.asarray(rects, dtype=np.float64), np.asarray(anchors, dtype=np.float64)
    if rects.ndim != 3 or rects.shape[-1] < 4 or anchors.ndim != 4 or anchors.shape[-1] != 4:
        raise ValueError(f"rects must be (N, R, >=4) and anchors (N1, N2, A, 4), got {rects.shape}, {anchors.shape}")
    a = box_convert(anchors.reshape(-1, 4), "cxcywh", "xyxy")
    targets = np.zeros((len(rects), a.shape[0], 5))
    for n, r in enumerate(rects):
        faces = box_convert(r[r[:, 2] > 0, :4], "cxcywh", "xyxy")
        if len(faces) == 0:
            continue
        labels, gt = label_anchors(box_iou(faces, a), pos_threshold, pos_threshold)
        pos = labels == 1
        targets[n, pos, :4] = encode(faces[gt[pos]], a[pos])
        targets[n, pos, 4] = 1
    return targets.reshape((len(rects),) + anchors.shape[:3] + (5,)).astype(np.float32)


def vgg16_body(backbone: str = "random", seed: int = 0) -> torch.nn.Sequential:
    """VGG16's layers conv1_1 .. pool4 (stride 16, 512 channels), in eval mode.

    backbone: "random" (torchvision's VGG16 init, seeded) or "imagenet" (the ImageNet weights,
    through course_lib.datasets.download.fetch_pretrained: downloaded once, about 528 MB).
    """
    import torchvision

    if backbone == "imagenet":
        from .download import fetch_pretrained

        weights = fetch_pretrained(torchvision.models.VGG16_Weights.IMAGENET1K_V1, "the ImageNet VGG16 weights")
        net = torchvision.models.vgg16(weights=weights)
    elif backbone == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torchvision.models.vgg16(weights=None)
    else:
        raise ValueError(f"backbone must be 'random' or 'imagenet', got {backbone!r}")
    return net.features[:24].eval()  # conv1_1 .. pool4: stride 16, 512 channels


def vgg_features(images, backbone: str = "random", seed: int = 0, batch: int = 16) -> np.ndarray:
    """VGG16 features up to and including pool4, cropped to the central 8x8.

    images: (N, 224, 224, 3) uint8 [y, x, rgb]; backbone: "random" (torchvision's VGG16 init,
    seeded) or "imagenet" (downloads the ImageNet weights), see vgg16_body. Returns (N, 8, 8, 512)
    float32.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"images must have shape (N, 224, 224, 3), got {images.shape}")
    body = vgg16_body(backbone, seed)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 255
            f = body((x - mean) / std)[:, :, CROP:CROP + GRID, CROP:CROP + GRID]
            out.append(f.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, GRID, GRID, 512), np.float32)


def initial_weights(seed: int = 0, C: int = 512, D: int = 128, A: int = 9, scale: float = 0.01):
    """Small random W1 (3, 3, C, D) and W2 (1, 1, D, A, 5), float32, N(0, scale^2)."""
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0, scale, (3, 3, C, D)).astype(np.float32)
    W2 = rng.normal(0, scale, (1, 1, D, A, 5)).astype(np.float32)
    return W1, W2


def wider_samples(samples, n: int, max_rects: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """224x224 crops with faces from WIDER FACE samples, as (images, rects).

    samples: iterable of (PIL image, faces (K, 10)) with the columns of wider_face_*_bbx_gt.txt:
    x, y, w, h (`xywh` pixels), blur, expression, illumination, invalid, occlusion, pose (the
    WIDER FACE readme; course_lib.datasets.wider.read_split yields them); rects store the
    attributes as blur, expression, illumination, occlusion, pose, invalid. Each crop is a square
    around the image's largest valid face, 4x its size (at least 224 px, at most the image),
    resized to 224. Returns images (M, 224, 224, 3) uint8 and rects (M, max_rects, 10) float32,
    M <= n; images without a valid face are skipped, faces whose centre leaves the crop are
    dropped, the largest max_rects kept.
    """
    to_rects = [4, 5, 6, 8, 9, 7]  # file columns of blur, expr., illum., occlusion, pose, invalid
    images, rects = [], []
    for img, faces in samples:
        if len(images) == n:
            break
        faces = np.asarray(faces, dtype=np.float64).reshape(-1, 10)
        box, att = faces[:, :4], faces[:, to_rects]
        ok = (box[:, 2] >= 1) & (box[:, 3] >= 1) & (att[:, 5] == 0)
        if not ok.any():
            continue
        box, att = box[ok], att[ok]
        W, H = img.size
        big = int(np.argmax(box[:, 2] * box[:, 3]))
        side = float(np.clip(4 * box[big, 2:].max(), min(SIZE, W, H), min(W, H)))
        cx, cy = box[big, :2] + box[big, 2:] / 2
        x0, y0 = np.clip(cx - side / 2, 0, W - side), np.clip(cy - side / 2, 0, H - side)
        crop = img.convert("RGB").resize((SIZE, SIZE), box=(x0, y0, x0 + side, y0 + side))
        c = box_convert(box, "xywh", "cxcywh")
        c = (c - [x0, y0, 0, 0]) * (SIZE / side)
        keep = (c[:, 0] >= 0) & (c[:, 0] < SIZE) & (c[:, 1] >= 0) & (c[:, 1] < SIZE)
        order = np.argsort(-(c[:, 2] * c[:, 3]) * keep, kind="stable")[:max_rects]
        order = order[keep[order]]
        r = np.zeros((max_rects, 10), np.float32)
        r[:len(order), :4], r[:len(order), 4:] = c[order], att[order]
        images.append(np.asarray(crop, dtype=np.uint8))
        rects.append(r)
    if not images:
        return np.zeros((0, SIZE, SIZE, 3), np.uint8), np.zeros((0, max_rects, 10), np.float32)
    return np.stack(images), np.stack(rects)


def read_wider(root: str | Path, n: int, split: str = "val") -> tuple[np.ndarray, np.ndarray]:
    """The first n usable crops (see wider_samples) of a WIDER FACE copy already on disk.

    root: the folder holding WIDER_<split>/images/ and wider_face_split/ as the official archives
    unpack (or root/widerface/ holding them, as torchvision lays them out).
    """
    from . import wider

    root = Path(root)
    if not (root / "wider_face_split").is_dir() and (root / "widerface").is_dir():
        root = root / "widerface"
    return wider_samples(wider.read_split(root, split), n)


def _wider(root: Path, n: int):
    from . import wider

    return read_wider(wider.wider_face(root), n)


def _config(profile: MP5Profile) -> str:
    """What the files depend on (not the training settings), as the key of the cache."""
    fields = {k: v for k, v in asdict(profile).items() if k not in ("train_steps", "learning_rate")}
    return json.dumps(fields, sort_keys=True)


def _state(path: Path, config: str) -> str:
    """"absent", "ours" (built with `config`), "stale" (ours, another config), "corrupt" (an HDF5
    file that cannot be read) or "foreign" (not HDF5, or HDF5 without our mark)."""
    if not path.exists():
        return "absent"
    try:
        with open(path, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return "foreign"
        with h5py.File(path, "r") as f:
            mark = f.attrs.get(MARK)
    except OSError:
        return "corrupt"
    if mark is None:
        return "foreign"
    return "ours" if mark == config else "stale"


def _write(path: Path, config: str, arrays: dict, attrs: dict | None = None) -> None:
    """Write arrays to an HDF5 file atomically (temporary file, then rename)."""
    from ._atomic import clean_stale, temp_path

    clean_stale(path)
    tmp = temp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
            f.attrs[MARK] = config
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _profile(profile) -> MP5Profile:
    return PROFILES[profile] if isinstance(profile, str) else profile


def _root(p: MP5Profile, root) -> Path:
    return Path(root) if root is not None else data_dir() / "mp5" / p.name


def build(profile: str | MP5Profile = "quick", root: str | Path | None = None, overwrite: bool = False,
          rebuild: bool = False) -> Path:
    """Build the three MP5 files of a profile (or reuse them if already built); return their folder.

    root: where to write (default data_dir()/mp5/<profile name>). The same profile always gives
    the same files. A file there that this builder did not write is never replaced unless
    overwrite=True (FileExistsError otherwise); one of ours that cannot be read (truncated) is
    rebuilt after a one-line message. rebuild=True writes the files again even if they look
    complete (what `load` does when they fail its checks).
    """
    p = _profile(profile)
    if p.n_train >= p.n_images or p.n_train < 1:
        raise ValueError(f"need 1 <= n_train < n_images, got {p.n_train}, {p.n_images}")
    root = _root(p, root)
    root.mkdir(parents=True, exist_ok=True)
    config = _config(p)
    paths = [root / name for name in FILES]
    states = [_state(q, config) for q in paths]
    if all(s == "ours" for s in states) and not rebuild:
        return root
    foreign = [q.name for q, s in zip(paths, states) if s == "foreign"]
    if foreign and not overwrite:
        raise FileExistsError(f"{root} holds {foreign}, not written by {MARK}; move them away or pass overwrite=True")
    corrupt = [q.name for q, s in zip(paths, states) if s == "corrupt"]
    if corrupt:
        print(f"course_lib: {', '.join(corrupt)} in {root} cannot be read (truncated or corrupt); rebuilding")
    if p.source == "synthetic":
        images, rects = make_faces(p.n_images, seed=p.seed, centre_box=(40, 40, 184, 184))
    elif p.source == "wider":
        images, rects = _wider(data_dir() / "wider_face", p.n_images)
    else:
        raise ValueError(f"profile.source must be 'synthetic' or 'wider', got {p.source!r}")
    features = vgg_features(images, p.backbone, seed=p.seed)
    anchors = make_anchors(p.anchor_scales, p.anchor_ratios)
    W1, W2 = initial_weights(p.seed, A=anchors.shape[2])
    data = {"features": features, "rects": rects, "targets": make_targets(rects, anchors), "anchors": anchors}
    _write(paths[0], config, data, {"n_train": min(p.n_train, len(images) - 1)})
    _write(paths[1], config, {"images": images})
    _write(paths[2], config, {"W1": W1, "W2": W2})
    return root


def _read(root: Path) -> dict:
    """Read and check the three files; ValueError naming the file when something is off."""
    out = {}
    for name in FILES:
        path = root / name
        try:
            with h5py.File(path, "r") as f:
                arrays = {k: f[k][()] for k in f.keys()}
                if "n_train" in f.attrs:
                    out["n_train"] = int(f.attrs["n_train"])
        except (OSError, KeyError, RuntimeError) as err:
            raise ValueError(f"{path} cannot be read ({err})") from err
        for k, a in arrays.items():
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise ValueError(f"{path}: {k} holds NaN or infinite values")
        out.update(arrays)
    expected = {"features": ("data.hdf5", 4), "rects": ("data.hdf5", 3), "targets": ("data.hdf5", 5),
                "anchors": ("data.hdf5", 4), "images": ("images.hdf5", 4), "W1": ("weights_initial.hdf5", 4),
                "W2": ("weights_initial.hdf5", 5)}
    for k, (name, ndim) in expected.items():
        if k not in out or out[k].ndim != ndim:
            raise ValueError(f"{root / name}: {k} is missing or not {ndim}-dimensional")
    n = len(out["features"])
    if {len(out["rects"]), len(out["targets"]), len(out["images"])} != {n} or not 1 <= out.get("n_train", 0) < n:
        raise ValueError(f"{root / 'data.hdf5'}: the arrays disagree on the number of images, or n_train is off")
    return out


def load(profile: str | MP5Profile = "quick", root: str | Path | None = None) -> dict:
    """Build if needed, then read everything: a dict of the arrays above plus 'n_train' (int).

    A cache that fails to load (unreadable, NaN or infinite numbers, wrong shapes) is named in a
    one-line message and rebuilt once.
    """
    p = _profile(profile)
    root = build(p, root)
    try:
        return _read(root)
    except ValueError as err:
        print(f"course_lib: the MP5 cache cannot be loaded ({err}); rebuilding it")
    return _read(build(p, root, rebuild=True))

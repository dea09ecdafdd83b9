"""The Penn-Fudan pedestrian layout: a folder of images and a folder of instance-id masks.

    root/PNGImages/<name>.png        RGB image (H, W, 3)
    root/PedMasks/<name>_mask.png    (H, W) integers: 0 background, 1..K one id per object
    root/classes.json                optional: {"classes": [...], "labels": {"<name>": {"<id>": class}}}

Real Penn-Fudan has one class (person) and no classes.json: every instance is then class 1.
A data set of your own written by `write_pennfudan_layout` stores the class of each instance id
in classes.json, so the same reader serves both. Boxes are derived from the masks (`xyxy`
pixels, continuous: a one-pixel object at column x spans x..x+1).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._image import read_image
from .sources import remote as _remote

__all__ = [
    "PENNFUDAN_URL", "PENNFUDAN_CHECKSUM", "PennFudanDataset", "read_image", "to_sample", "masks_from_ids", "boxes_from_masks",
    "train_transforms", "eval_transforms", "collate", "write_pennfudan_layout", "split", "pennfudan_root", "pennfudan",
]

_REMOTE = _remote("PennFudanPed.zip")
PENNFUDAN_URL = _REMOTE.url
# The MD5 of the official PennFudanPed.zip (about 54 MB); see course_lib.datasets.sources for its source.
PENNFUDAN_CHECKSUM = _REMOTE.checksum
CLASSES_FILE = "classes.json"
PERSON = ("__background__", "person")


def masks_from_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an instance-id image into binary masks.

    ids: (H, W) integers, 0 = background. Returns (instance ids (K,) ascending, masks (K, H, W)
    bool); K = 0 for an all-background image.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be an (H, W) instance-id image, got shape {ids.shape}")
    obj = np.unique(ids)
    obj = obj[obj != 0]
    return obj, ids[None] == obj[:, None, None]


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes around binary masks.

    masks: (K, H, W) bool. Returns (K, 4) float32 `xyxy` pixels, continuous (x2 = last column + 1);
    an empty mask gives [0, 0, 0, 0].
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    k, h, w = masks.shape
    cols, rows = masks.any(axis=1), masks.any(axis=2)  # (K, W), (K, H)
    x1 = np.where(cols.any(1), cols.argmax(1), 0)
    x2 = np.where(cols.any(1), w - cols[:, ::-1].argmax(1), 0)
    y1 = np.where(rows.any(1), rows.argmax(1), 0)
    y2 = np.where(rows.any(1), h - rows[:, ::-1].argmax(1), 0)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32).reshape(k, 4)


class PennFudanDataset(torch.utils.data.Dataset):
    """Images and instance masks in the Penn-Fudan layout, as torchvision detection samples.

    root: the folder holding PNGImages/ and PedMasks/. transforms: None or a callable
    (image, target) -> (image, target) working on torchvision tv_tensors (see `train_transforms`).
    indices: optional subset (positions in the sorted list of names).
    Item i is (image float32 (3, H, W) in [0, 1], target) with target = dict(boxes (K, 4) float32
    `xyxy` pixels, labels (K,) int64 (1.. ; 0 is background), masks (K, H, W) uint8,
    image_id int, area (K,) float32 (box area), iscrowd (K,) int64).
    """

    def __init__(self, root, transforms=None, indices=None):
        self.root = Path(root)
        img_dir, mask_dir = self.root / "PNGImages", self.root / "PedMasks"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise ValueError(f"root must hold PNGImages/ and PedMasks/, got {self.root}")
        names = sorted(p.stem for p in img_dir.glob("*.png"))
        missing = [n for n in names if not (mask_dir / f"{n}_mask.png").is_file()]
        if missing:
            raise ValueError(f"no mask PedMasks/{missing[0]}_mask.png for image {missing[0]}.png")
        self.names = names if indices is None else [names[i] for i in indices]
        self.transforms = transforms
        meta = self._read_classes()
        self.classes = tuple(meta.get("classes", PERSON))
        self._labels = meta.get("labels", {})

    def _read_classes(self) -> dict:
        path = self.root / CLASSES_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> tuple[np.ndarray, dict]:
        """Item i without transforms, as NumPy: image (H, W, 3) uint8 and the target arrays."""
        name = self.names[i]
        image = read_image(self.root / "PNGImages" / f"{name}.png", "image")
        ids = read_image(self.root / "PedMasks" / f"{name}_mask.png", "mask")
        if ids.ndim == 3:
            raise ValueError(f"mask of {name} must be a one-channel id image, got {ids.shape}")
        if ids.shape != image.shape[:2]:
            raise ValueError(f"mask of {name} is {ids.shape}, image is {image.shape[:2]}")
        obj, masks = masks_from_ids(ids)
        per_id = self._labels.get(name, {})
        labels = np.array([int(per_id.get(str(o), 1)) for o in obj], dtype=np.int64)
        boxes = boxes_from_masks(masks)
        return image, dict(boxes=boxes, labels=labels, masks=masks)

    def __getitem__(self, i: int):
        image, t = self.load(i)
        return to_sample(image, t, i, self.transforms)


def to_sample(image: np.ndarray, target: dict, image_id: int, transforms=None):
    """NumPy image (H, W, 3) uint8 and dict(boxes (K, 4) `xyxy` px, labels (K,), masks (K, H, W))
    -> (image float32 (3, H, W) in [0, 1], torchvision target dict with tv_tensors), after
    `transforms` (a callable (image, target) -> (image, target)) when given."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    h, w = image.shape[:2]
    boxes = target["boxes"]
    out = dict(
        boxes=tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(h, w)),
        labels=torch.from_numpy(target["labels"]),
        masks=tv_tensors.Mask(torch.from_numpy(target["masks"].astype(np.uint8))),
        image_id=image_id,
        area=torch.from_numpy((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
        iscrowd=torch.zeros(len(boxes), dtype=torch.int64),
    )
    img = tv_tensors.Image(torch.from_numpy(np.array(image)).permute(2, 0, 1))
    if transforms is not None:
        img, out = transforms(img, out)
    if not img.is_floating_point():
        img = F.to_dtype(img, torch.float32, scale=True)
    return img, out


def train_transforms(jitter: float = 0.2):
    """Joint image + target augmentation: horizontal flip (boxes and masks follow) and colour jitter.

    Works on (tv_tensors.Image uint8, target dict); returns a float32 image in [0, 1].
    """
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
        v2.ToDtype(torch.float32, scale=True),
        v2.SanitizeBoundingBoxes(min_size=1.0),
    ])


def eval_transforms():
    """No augmentation: only the conversion to a float32 image in [0, 1]."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True)])


def collate(batch):
    """Detection collate: a list of (image, target) -> (tuple of images, tuple of targets)."""
    return tuple(zip(*batch))


def write_pennfudan_layout(root, samples, class_names=None, prefix="Image", exist_ok: bool = False) -> Path:
    """Write samples to `root` in the Penn-Fudan layout, plus classes.json for their classes.

    samples: iterable of dict(image (H, W, 3) uint8, labels (K,) int 0-based, masks (K, H, W) bool,
    non-overlapping); K <= 255. class_names: names of the 0-based classes (stored with
    "__background__" first, so label l is written as l + 1, torchvision's convention).
    Files are named <prefix><00000>.png. Returns root as a Path.

    The set is written to a temporary sibling folder renamed to `root` as the last step, so `root`
    is absent or complete, and two processes writing it at once never read each other's half-written
    files. `root` must be absent or an empty folder; if it already holds a data set (classes.json),
    exist_ok=True returns it untouched (also when a concurrent writer finishes first), and
    exist_ok=False raises FileExistsError.
    """
    from ._atomic import clean_stale, publish_dir, remove, temp_path

    root = Path(root)
    if (root / CLASSES_FILE).is_file() and exist_ok:
        return root
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):
        raise FileExistsError(f"{root} is not empty; write the data set to a new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(root)
    tmp = temp_path(root)
    try:
        (tmp / "PNGImages").mkdir(parents=True)
        (tmp / "PedMasks").mkdir()
        labels_out = {}
        for n, s in enumerate(samples):
            masks = np.asarray(s["masks"], dtype=bool)
            image = np.asarray(s["image"])
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"samples[{n}]['image'] must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
            if masks.ndim != 3 or masks.shape[1:] != image.shape[:2] or len(masks) > 255:
                raise ValueError(f"samples[{n}]['masks'] must be (K<=255, H, W) bool, got {masks.shape}")
            ids = (masks * np.arange(1, len(masks) + 1, dtype=np.uint8)[:, None, None]).max(0, initial=0)
            name = f"{prefix}{n:05d}"
            Image.fromarray(image).save(tmp / "PNGImages" / f"{name}.png")
            Image.fromarray(ids.astype(np.uint8), mode="L").save(tmp / "PedMasks" / f"{name}_mask.png")
            labels_out[name] = {str(k + 1): int(c) + 1 for k, c in enumerate(np.asarray(s["labels"]))}
        meta = {"labels": labels_out}
        if class_names is not None:
            meta["classes"] = ["__background__", *class_names]
        (tmp / CLASSES_FILE).write_text(json.dumps(meta, indent=1))
        if not publish_dir(tmp, root) and not exist_ok:
            raise FileExistsError(f"{root} was written by another process meanwhile; it is kept")
    finally:
        remove(tmp)
    return root


def split(n: int, n_test: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded random split of range(n): (train indices, test indices), both sorted, len n_test test."""
    if not 0 <= n_test <= n:
        raise ValueError(f"n_test must be in 0..{n}, got {n_test}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_test:]), sorted(perm[:n_test])


def _complete(folder: Path, archive: Path) -> bool:
    """True when `folder` holds a whole extraction: every image has its mask and the other way
    round, and (when the archive is still there) every file of the archive is present."""
    images = {p.stem for p in (folder / "PNGImages").glob("*.png")}
    masks = {p.name[: -len("_mask.png")] for p in (folder / "PedMasks").glob("*_mask.png")}
    if not images or images != masks:
        return False
    if archive.is_file():
        import zipfile

        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except zipfile.BadZipFile:
            return True  # judged on the folder alone; the archive is checked when it is needed
        return all((folder.parent / n).is_file() for n in names if n.startswith(folder.name + "/"))
    return True


def pennfudan_root(root=None, checksum: str | None = None) -> Path:
    """Real Penn-Fudan on disk: download with a checksum (once), extract safely; return the folder
    root/PennFudanPed holding PNGImages/ and PedMasks/.

    root: where to keep it (default course_lib.paths.data_dir()): root/PennFudanPed.zip and
    root/PennFudanPed/. checksum: of the archive, SHA-256 or MD5 (default: $PENNFUDAN_SHA256,
    which may hold either, else PENNFUDAN_CHECKSUM).

    An archive already downloaded and verified is used without the network; the folder is
    extracted into a temporary name and renamed into place, so a killed run never leaves a folder
    that looks complete (one left by an older, interrupted extraction is detected, removed and
    extracted again). Offline without the archive, it stops at once with OfflineError.
    """
    from ..notebook import require_online
    from ..paths import data_dir
    from ._atomic import remove, temp_path
    from .download import download_remote, extract_archive

    root = Path(root) if root is not None else data_dir()
    folder, archive = root / "PennFudanPed", root / _REMOTE.name
    if folder.exists() and not _complete(folder, archive):
        print(f"course_lib: {folder} is incomplete (an interrupted extraction); extracting it again")
        stale = temp_path(folder)
        os.rename(folder, stale)
        remove(stale)
    if not folder.exists():
        if not archive.is_file():
            require_online(f"the Penn-Fudan data set ({_REMOTE.name}, about {_REMOTE.size_mb:.0f} MB)")
        download_remote(_REMOTE, root, checksum)
        extract_archive(archive, folder, member="PennFudanPed")
    return folder


def pennfudan(root=None, n_test: int = 50, seed: int = 0, checksum: str | None = None):
    """Real Penn-Fudan (170 images), split 120 / 50: (train, test) PennFudanDataset with train /
    eval transforms. root, checksum: see pennfudan_root, which downloads and extracts it once."""
    folder = pennfudan_root(root, checksum)
    n = len(list((folder / "PNGImages").glob("*.png")))
    train_idx, test_idx = split(n, n_test, seed)
    return (PennFudanDataset(folder, train_transforms(), train_idx),
            PennFudanDataset(folder, eval_transforms(), test_idx))

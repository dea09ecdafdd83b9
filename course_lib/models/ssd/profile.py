"""What changes between the `quick` and `full` runs of lesson 2, and the data as in-memory tensors.

quick: the synthetic shapes (course_lib.datasets.shapes) at 128 px, a small CNN pretrained on other
shape images (pretrain.py). full: Pascal VOC 2007 at 224 px, an ImageNet ResNet-34. The heads and
the lesson code are the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["SSDProfile", "QUICK", "FULL", "get_profile", "DetectionTensors", "stack_detection", "load_split"]


@dataclass(frozen=True)
class SSDProfile:
    """data: 'shapes' or 'voc2007'; image_size: pixels per side; backbone: 'small' or 'resnet34'
    (pretrain.pretrained_backbone); epochs: {training name: epochs} for 'single', 'multilabel'
    (heads on the frozen backbone), 'grid', 'multi' (BCE) and 'focal' (the same model and start
    as 'multi', with the focal loss; equal epochs make the comparison fair);
    batch_size, lr: of every training; threshold: the IoU above which an anchor is positive (the SSD
    paper uses 0.5; the fastai course's 0.4 gives the coarse 4x4 / 2x2 / 1x1 grids about twice the
    positives per object); head_width, dropout: channels and dropout of the heads' conv blocks
    (no dropout in quick: its short trainings underfit, and dropout slows them down);
    symmetries: the flips of the augmentation (8: all, for shapes; 2: horizontal only, for photographs);
    n_train, n_test, classes, max_objects, style: shapes only (see course_lib.datasets.shapes)."""

    name: str
    data: str
    image_size: int
    backbone: str
    epochs: dict
    batch_size: int
    lr: float
    threshold: float = 0.4
    head_width: int = 128
    dropout: float = 0.1
    symmetries: int = 8
    n_train: int = 0
    n_test: int = 0
    classes: tuple[str, ...] = ()
    max_objects: int = 6
    style: str = "cluttered"


QUICK = SSDProfile("quick", "shapes", 128, "small", dict(single=12, multilabel=4, grid=4, multi=10, focal=10),
                   batch_size=16, lr=6e-3, dropout=0.0, n_train=1000, n_test=200,
                   classes=("circle", "square", "triangle"), max_objects=3, style="plain")
FULL = SSDProfile("full", "voc2007", 224, "resnet34", dict(single=10, multilabel=10, grid=20, multi=30, focal=30),
                  batch_size=64, lr=1e-3, head_width=256, symmetries=2)


def get_profile(name: str) -> SSDProfile:
    """QUICK or FULL by name ('quick' or 'full', e.g. ctx.profile)."""
    profiles = {"quick": QUICK, "full": FULL}
    if name not in profiles:
        raise ValueError(f"profile must be 'quick' or 'full', got {name!r}")
    return profiles[name]


class DetectionTensors(NamedTuple):
    """A whole data set in memory: images (N, 3, S, S) float in [0, 1]; boxes (N, G, 4) `xyxy`
    pixels of the S x S image; labels (N, G) int64, -1 where padding; difficult (N, G) bool."""

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    difficult: torch.Tensor

    def targets(self) -> list[dict]:
        """Per-image ground truth without padding, as course_lib.metrics expects."""
        keep = self.labels >= 0
        return [dict(boxes=b[k], labels=l[k], difficult=d[k])
                for b, l, d, k in zip(self.boxes, self.labels, self.difficult, keep)]


def stack_detection(dataset, image_size: int) -> DetectionTensors:
    """Read every (image, target) of a detection data set (e.g. voc.VOCDetection), resize each image
    to image_size x image_size (boxes scaled with it) and pad the objects to the largest count."""
    images, targets = [], []
    for image, target in dataset:
        h, w = image.shape[-2:]
        if (h, w) != (image_size, image_size):
            image = F.interpolate(image[None], size=(image_size, image_size), mode="bilinear",
                                  align_corners=False, antialias=True)[0]
        scale = torch.tensor([image_size / w, image_size / h] * 2)
        images.append(image)
        targets.append((target["boxes"].float() * scale, target["labels"],
                        target.get("difficult", torch.zeros(len(target["labels"]), dtype=torch.bool))))
    N, G = len(images), max([len(t[1]) for t in targets], default=0)
    boxes, labels = torch.zeros(N, G, 4), torch.full((N, G), -1, dtype=torch.int64)
    difficult = torch.zeros(N, G, dtype=torch.bool)
    for i, (b, l, d) in enumerate(targets):
        boxes[i, :len(l)], labels[i, :len(l)], difficult[i, :len(l)] = b, l, d
    stacked = torch.stack(images) if images else torch.zeros(0, 3, image_size, image_size)
    return DetectionTensors(stacked, boxes, labels, difficult)


def load_split(profile: SSDProfile, split: str) -> tuple[DetectionTensors, tuple[str, ...]]:
    """The 'train' or 'test' split of the profile's data as tensors, and the class names.

    shapes: cached under data/ by shapes.write_shapes_voc. voc2007: trainval / test, downloaded
    once (fails at once offline, course_lib.notebook.require_online).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if profile.data == "shapes":
        from ...datasets import shapes

        ds = shapes.load_shapes_voc(split, n_train=profile.n_train, n_test=profile.n_test,
                                    image_size=profile.image_size, classes=profile.classes or shapes.SOURCE_CLASSES,
                                    max_objects=profile.max_objects, style=profile.style)
    elif profile.data == "voc2007":
        from ...datasets import voc

        ds = voc.voc2007(split="trainval" if split == "train" else "test")
    else:
        raise ValueError(f"profile.data must be 'shapes' or 'voc2007', got {profile.data!r}")
    return stack_detection(ds, profile.image_size), ds.class_names

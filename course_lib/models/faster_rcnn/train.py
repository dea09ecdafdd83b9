"""Lesson 3's data, training and evaluation of course_lib.models.faster_rcnn.FasterRCNN.

quick: the synthetic shapes (course_lib.datasets.shapes, the generator of lesson 2) held in memory.
full: Pascal VOC 2007 read lazily from disk (downloaded once; offline it fails at once).
Images are resized to profile.image_size squared; boxes are `xyxy` pixels of the resized image and
labels are 0-based class indices, as everywhere in course_lib.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...metrics import mean_average_precision
from ...metrics.detection import proposal_recall
from ...notebook import progress
from ...train import fit
from .model import LOSS_NAMES, FasterRCNN, FasterRCNNProfile

__all__ = ["Resized", "load_split", "BatchLoader", "train_detector", "predict", "evaluate"]


class Resized(torch.utils.data.Dataset):
    """A detection data set with every image resized to size x size and its boxes scaled with it.

    dataset[i] -> (image float (3, H, W) in [0, 1], dict(boxes (K, 4) `xyxy` pixels, labels (K,), ...));
    Resized(dataset, size)[i] -> the same with image (3, size, size) and boxes in its pixels.
    """

    def __init__(self, dataset, size: int):
        self.dataset, self.size = dataset, int(size)
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, target = self.dataset[i]
        h, w = image.shape[-2:]
        if (h, w) != (self.size, self.size):
            image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                                  antialias=True)[0]
        scale = torch.tensor([self.size / w, self.size / h] * 2)
        return image, dict(target, boxes=target["boxes"].float().reshape(-1, 4) * scale)


def load_split(profile: FasterRCNNProfile, split: str):
    """The 'train' or 'test' split of the profile's data: a sequence of (image, target) pairs
    (see Resized) with a `class_names` attribute.

    shapes: written once under data/ by shapes.write_shapes_voc, read back and kept in memory.
    voc2007: trainval / test, downloaded once (offline: OfflineError at once), read lazily.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if profile.dataset == "shapes":
        from ...datasets import shapes

        ds = shapes.load_shapes_voc(split, n_train=profile.n_train, n_test=profile.n_test,
                                    image_size=profile.image_size, classes=profile.classes,
                                    max_objects=profile.max_objects, style=profile.style)
        data = Resized(ds, profile.image_size)
        items = _InMemory([data[i] for i in range(len(data))], ds.class_names)
        return items
    if profile.dataset == "voc2007":
        from ...datasets import voc

        return Resized(voc.voc2007(split="trainval" if split == "train" else "test"), profile.image_size)
    raise ValueError(f"profile.dataset must be 'shapes' or 'voc2007', got {profile.dataset!r}")


class _InMemory(list):
    """A list of (image, target) pairs that also carries the class names."""

    def __init__(self, items, class_names):
        super().__init__(items)
        self.class_names = tuple(class_names)


class BatchLoader:
    """Mini-batches (images (B, 3, S, S), boxes (B, G, 4), labels (B, G) with -1 padding) from a
    sequence of (image, target) pairs of one size; a new order each epoch from a generator seeded
    with `seed`. The images are stacked per batch, so the data set may be read lazily from disk."""

    def __init__(self, data, batch_size: int, shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.shuffle = data, int(batch_size), shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self):
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            items = [self.data[int(i)] for i in order[start:start + self.batch_size]]
            yield _pad([im for im, _ in items], [t for _, t in items])


def _pad(images, targets):
    G = max([len(t["labels"]) for t in targets], default=0)
    boxes = torch.zeros(len(targets), G, 4)
    labels = torch.full((len(targets), G), -1, dtype=torch.int64)
    for i, t in enumerate(targets):
        boxes[i, :len(t["labels"])], labels[i, :len(t["labels"])] = t["boxes"], torch.as_tensor(t["labels"])
    return torch.stack(images), boxes, labels


def _unpad(boxes: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    return [dict(boxes=b[lab >= 0], labels=lab[lab >= 0]) for b, lab in zip(boxes, labels)]


def train_detector(model: FasterRCNN, data, epochs: int, batch_size: int, lr: float, seed: int = 0,
                   weight_decay: float = 1e-4) -> dict[str, list[float]]:
    """Train with course_lib.train.fit (AdamW, one-cycle schedule, a progress bar over the epochs).

    data: a sequence of (image (3, S, S), dict(boxes (K, 4) `xyxy` pixels, labels (K,) 0-based)).
    Returns {loss name: value at every step} for the four LOSS_NAMES.
    """
    history = {name: [] for name in LOSS_NAMES}

    def loss_fn(model, batch):
        images, boxes, labels = batch
        losses = model(images, _unpad(boxes, labels))
        for name in LOSS_NAMES:
            history[name].append(losses[name].item())
        return tuple(losses[name] for name in LOSS_NAMES)

    fit(model, BatchLoader(data, batch_size, seed=seed), loss_fn, epochs, lr=lr, weight_decay=weight_decay,
        desc="Faster R-CNN")
    return history


@torch.no_grad()
def predict(model: FasterRCNN, data, batch_size: int = 16, desc: str | None = None) -> list[dict]:
    """The inference forward over a data set: per image dict(boxes (K, 4) `xyxy`, scores (K,),
    labels (K,) 0-based, proposals (P, 4) `xyxy` best first). desc: show a progress bar."""
    model.eval()
    device = next(model.parameters()).device
    loader = BatchLoader(data, batch_size, shuffle=False)
    out = []
    for images, _, _ in (progress(loader, desc=desc) if desc else loader):
        out += [{k: v.cpu() for k, v in d.items()} for d in model(images.to(device))]
    return out


def evaluate(outputs: list[dict], data, k: int = 300, iou_threshold: float = 0.5) -> dict[str, float]:
    """RPN recall (IoU >= iou_threshold, top-k proposals) and detector mAP at iou_threshold.

    outputs: from `predict`; data: the same sequence of (image, target) pairs.
    Returns dict(recall=..., map=...), floats in [0, 1].
    """
    gts = [t for _, t in data]
    recall = proposal_recall([o["proposals"] for o in outputs], [t["boxes"] for t in gts], k, iou_threshold)
    preds = [dict(boxes=o["boxes"], scores=o["scores"], labels=o["labels"]) for o in outputs]
    gts = [{key: t[key] for key in ("boxes", "labels", "difficult") if key in t} for t in gts]
    mAP, _ = mean_average_precision(preds, gts, iou_threshold)
    return dict(recall=recall, map=mAP)

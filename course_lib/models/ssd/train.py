"""Training and inference for lesson 2's three tasks, on in-memory tensors (profile.DetectionTensors).

Every training draws one flip / transpose per image and step (augment.random_dihedral, with
`symmetries` 8 for the shapes or 2 for photographs) from a generator seeded with `seed`, and
runs course_lib.train.fit (AdamW, one-cycle schedule), so a run on the CPU repeats bit for bit.
Images are (N, 3, S, S) in [0, 1]; boxes `xyxy` pixels of the S x S image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...boxes import box_area
from ...train import TensorLoader, fit
from .augment import random_dihedral
from .loss import single_object_loss, ssd_loss
from .predict import decode_predictions

__all__ = ["largest_object", "multi_hot", "train_single", "train_multilabel", "train_ssd", "outputs", "detect"]


def largest_object(boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest object of every image: boxes (N, G, 4) `xyxy`, labels (N, G) with -1 for padding
    (G >= 1, every image with an object) -> (boxes (N, 4), labels (N,))."""
    if boxes.ndim != 3 or boxes.shape[1] == 0 or labels.shape != boxes.shape[:2]:
        raise ValueError(f"boxes must be (N, G >= 1, 4) and labels (N, G), "
                         f"got {tuple(boxes.shape)}, {tuple(labels.shape)}")
    area = torch.where(labels >= 0, box_area(boxes.reshape(-1, 4)).reshape(labels.shape), -1.0)
    i = area.argmax(1)
    return boxes[torch.arange(len(i)), i], labels[torch.arange(len(i)), i]


def multi_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """labels (N, G) int64 with -1 for padding -> (N, num_classes) float: 1 where the class appears."""
    hot = F.one_hot(labels.clamp(min=0), num_classes).float() * (labels >= 0)[..., None]
    return hot.amax(1) if labels.shape[1] else hot.new_zeros(labels.shape[0], num_classes)


def _fit(model, tensors, step, epochs, lr, batch_size, seed, desc):
    loader = TensorLoader(tensors, batch_size, seed=seed, drop_last=True)
    return fit(model, loader, step, epochs, lr=lr, desc=desc)


def train_single(model: nn.Module, images, boxes, labels, epochs: int, lr: float, batch_size: int,
                 weight: float, seed: int = 0, symmetries: int = 8, desc: str = "single object") -> list[float]:
    """One object per image: model(images) -> (B, 4 + C); loss = L1 of sigmoid box in pixels + weight * CE.

    boxes (N, 4) `xyxy` pixels, labels (N,). Returns the mean loss of every epoch.
    """
    g, S = torch.Generator().manual_seed(seed), images.shape[-1]

    def step(m, batch):
        x, b = random_dihedral(batch[0], batch[1][:, None], g, symmetries)
        return single_object_loss(m(x), b[:, 0], batch[2], S, weight)
    return _fit(model, [images, boxes, labels], step, epochs, lr, batch_size, seed, desc)


def train_multilabel(model: nn.Module, images, targets, epochs: int, lr: float, batch_size: int,
                     seed: int = 0, symmetries: int = 8, desc: str = "multi-label") -> list[float]:
    """Which classes appear: model(images) -> (B, C) logits, targets (N, C) multi-hot, BCE per class."""
    g = torch.Generator().manual_seed(seed)

    def step(m, batch):
        x, _ = random_dihedral(batch[0], batch[0].new_zeros(len(batch[0]), 0, 4), g, symmetries)
        return F.binary_cross_entropy_with_logits(m(x), batch[1])
    return _fit(model, [images, targets], step, epochs, lr, batch_size, seed, desc)


def train_ssd(model: nn.Module, images, boxes, labels, anchors: torch.Tensor, epochs: int, lr: float,
              batch_size: int, focal: bool = False, seed: int = 0, symmetries: int = 8, threshold: float = 0.5,
              desc: str = "ssd") -> list[float]:
    """The SSD loss (ssd_loss: matching at IoU > threshold, tanh decoding, L1 + BCE or focal) on every batch.

    model(images) -> (logits (B, A, C+1), box activations (B, A, 4)); boxes (N, G, 4) `xyxy` pixels,
    labels (N, G) with -1 for padding; anchors (A, 4) `cxcywh` normalised. Matching runs per batch,
    after the augmentation has moved the boxes.
    """
    g, S = torch.Generator().manual_seed(seed), images.shape[-1]
    anchors = anchors.to(next(model.parameters()).device)

    def step(m, batch):
        x, b = random_dihedral(batch[0], batch[1], g, symmetries)
        logits, acts = m(x)
        return ssd_loss(logits, acts, b / S, batch[2], anchors, focal=focal, threshold=threshold)
    return _fit(model, [images, boxes, labels], step, epochs, lr, batch_size, seed, desc)


@torch.no_grad()
def outputs(model: nn.Module, images: torch.Tensor, batch_size: int = 100):
    """model(images) in eval mode, batch by batch; returns the outputs concatenated on the CPU
    (a tensor, or a tuple of tensors for a detector)."""
    model.eval()
    device = next(model.parameters()).device
    parts = [model(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    if parts and isinstance(parts[0], tuple):
        return tuple(torch.cat([p[j] for p in parts]).cpu() for j in range(len(parts[0])))
    return torch.cat(parts).cpu() if parts else torch.zeros(0)


def detect(model: nn.Module, images: torch.Tensor, anchors: torch.Tensor, **kwargs) -> list[dict]:
    """Detections of a trained SSD on images (N, 3, S, S): decode_predictions(outputs, anchors, S, **kwargs)."""
    logits, acts = outputs(model, images)
    return decode_predictions(logits, acts, anchors.cpu(), images.shape[-1], **kwargs)

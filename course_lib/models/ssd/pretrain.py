"""The backbone lesson 2 fine-tunes: ImageNet's ResNet-34 in `full`, a small CNN pretrained on shapes in `quick`.

`full` starts from weights that already know what objects look like. `quick` gives its small CNN
(model.small_backbone) the same head start: before the lesson's sections, it learns to label every
16 x 16-pixel cell of OTHER synthetic images (a different seed, six shape classes, up to four
shapes per image) with the class of the shape covering most of the cell, or background. That is
coarse semantic segmentation at the backbone's own stride, so every cell of every image is a
labelled example. Image-level labels alone teach this CNN too slowly for a two-core budget.

The weights are trained once, deterministically (seeded data, shuffles and augmentation), and kept
in the data cache under a name that hashes every setting (course_lib.models.weights_cache).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...datasets import shapes
from ...train import TensorLoader, fit
from ..weights_cache import load_weights, save_weights
from .augment import dihedral
from .model import resnet34_backbone, small_backbone

__all__ = ["PretrainConfig", "PRETRAIN", "cell_labels", "segmentation_data", "pretrain_small_backbone",
           "pretrain_cache_path", "pretrained_backbone", "freeze"]


@dataclass(frozen=True)
class PretrainConfig:
    """n_images synthetic images of image_size px (shapes.make_shapes with classes, 1..max_objects
    shapes, style, seed); cell: pixels per labelled cell (the backbone's stride); epochs,
    batch_size, lr: of course_lib.train.fit; width: of model.small_backbone."""

    n_images: int = 3000
    image_size: int = 128
    classes: tuple[str, ...] = shapes.SOURCE_CLASSES
    max_objects: int = 4
    style: str = "plain"
    seed: int = 2
    cell: int = 16
    epochs: int = 6
    batch_size: int = 16
    lr: float = 3e-3
    width: int = 32

    def key(self) -> str:
        """12 hex digits that change with every setting and with the shapes generator's version."""
        text = json.dumps({**asdict(self), "generator": shapes.GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


PRETRAIN = PretrainConfig()


def cell_labels(masks: np.ndarray, labels: np.ndarray, cell: int, background: int) -> np.ndarray:
    """The class covering most of each cell of one image.

    masks: (K, H, W) bool visible instance masks (disjoint, as shapes.draw_scene returns them);
    labels: (K,) int; cell: pixels per cell side, dividing H and W; background: the label of
    uncovered pixels. Returns (H / cell, W / cell) int64; a tie goes to the smaller label.
    """
    masks, labels = np.asarray(masks, bool), np.asarray(labels, np.int64)
    if masks.ndim != 3 or len(labels) != len(masks):
        raise ValueError(f"masks must be (K, H, W) and labels (K,), got {masks.shape} and {labels.shape}")
    K, H, W = masks.shape
    if H % cell or W % cell:
        raise ValueError(f"cell ({cell}) must divide the image size ({H} x {W})")
    n = max(int(labels.max(initial=-1)), background) + 1
    pixel = np.where(masks.any(0), labels[masks.argmax(0)] if K else background, background)
    counts = np.eye(n, dtype=np.int32)[pixel].reshape(H // cell, cell, W // cell, cell, n).sum((1, 3))
    return counts.argmax(-1).astype(np.int64)


def segmentation_data(config: PretrainConfig = PRETRAIN) -> tuple[torch.Tensor, torch.Tensor]:
    """The pretraining set: images (N, 3, S, S) float in [0, 1] and cell labels (N, S/cell, S/cell)
    int64 (0..len(classes) - 1 a shape, len(classes) background)."""
    samples = shapes.make_shapes(config.n_images, config.image_size, config.classes, seed=config.seed,
                                 max_objects=config.max_objects, style=config.style)
    images = torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2).float() / 255
    cells = np.stack([cell_labels(s["masks"], s["labels"], config.cell, len(config.classes)) for s in samples])
    return images, torch.from_numpy(cells)


def pretrain_small_backbone(config: PretrainConfig = PRETRAIN, device="cpu") -> tuple[nn.Sequential, list[float]]:
    """Train model.small_backbone(config.width) with a 1x1-conv classifier on every cell of
    segmentation_data(config): cross-entropy, one of the 8 flips and quarter turns per image
    and step, course_lib.train.fit. Seeded from config.seed alone.
    Returns the backbone (eval mode, on the CPU) and the mean loss of every epoch."""
    images, cells = segmentation_data(config)
    torch.manual_seed(config.seed)
    backbone = small_backbone(config.width)
    net = nn.Sequential(backbone, nn.Conv2d(backbone.out_channels, len(config.classes) + 1, 1)).to(device)
    g = torch.Generator().manual_seed(config.seed)

    def step(model, batch):
        x, y = batch
        flags, none = torch.rand(3, len(x), generator=g) < 0.5, x.new_zeros(len(x), 0, 4)
        x = dihedral(x, none, *flags)[0]
        y = dihedral(y[:, None], none, *flags)[0][:, 0]   # the cells move with their pixels
        return F.cross_entropy(model(x), y)

    loader = TensorLoader([images, cells], config.batch_size, seed=config.seed, drop_last=True)
    history = fit(net, loader, step, config.epochs, lr=config.lr, desc="pretrain backbone")
    return backbone.cpu().eval(), history


def pretrain_cache_path(config: PretrainConfig = PRETRAIN) -> Path:
    """Where pretrained_backbone keeps the weights: data_dir()/ssd_backbone/small-<config.key()>.pt."""
    from ...paths import data_dir

    return data_dir() / "ssd_backbone" / f"small-{config.key()}.pt"


def pretrained_backbone(name: str, device="cpu", config: PretrainConfig = PRETRAIN, cache: bool = True) -> nn.Module:
    """The starting backbone of lesson 2: (B, 3, S, S) in [0, 1] -> (B, out_channels, S/16 or S/32, ...).

    name: 'small' (quick: pretrain_small_backbone(config), loaded from the cache when present,
    else trained and saved there; an unusable cache file is named in one line and replaced) or
    'resnet34' (full: ImageNet weights, model.resnet34_backbone). Returns it on `device`, in eval
    mode whichever way it was obtained (BatchNorm then uses its running statistics until a
    training loop switches it to train mode).
    """
    if name == "resnet34":
        return resnet34_backbone().to(device).eval()
    if name != "small":
        raise ValueError(f"backbone must be 'small' or 'resnet34', got {name!r}")
    path = pretrain_cache_path(config)
    if cache and path.is_file():
        backbone = small_backbone(config.width)
        problem = load_weights(backbone, path)
        if problem is None:
            return backbone.to(device).eval()
        print(f"course_lib: the cached backbone {path} cannot be loaded ({problem}); training it again")
    backbone, _ = pretrain_small_backbone(config, device)
    if cache:
        save_weights(backbone, path)
    return backbone.to(device).eval()


def freeze(module: nn.Module) -> nn.Module:
    """Stop the gradients of every parameter of `module` (fine-tuning only what comes after it)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module

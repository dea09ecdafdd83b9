"""Label-preserving augmentation for square detection batches: the 8 flips and quarter turns.

The shapes of the quick profile are drawn at random rotations (squares and crosses within
+-20 and +-30 degrees), so a flip or a transpose of the image never changes a shape's class;
each image of a training batch gets one of the 8 symmetries of the square, drawn from an
explicit generator so that a training run is reproducible.
"""
from __future__ import annotations

import torch

__all__ = ["dihedral", "random_dihedral"]


def dihedral(images: torch.Tensor, boxes: torch.Tensor, hflip: torch.Tensor, vflip: torch.Tensor,
             transpose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per image: transpose (swap x and y) first, then the horizontal and vertical flips.

    images: (B, C, S, S); boxes: (B, G, 4) `xyxy` pixels of the S x S image (padding rows are moved
    too and stay degenerate); hflip, vflip, transpose: (B,) bool. Returns (images, boxes), new tensors.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be (B, C, S, S) and square, got {tuple(images.shape)}")
    B, S = images.shape[0], images.shape[-1]
    if boxes.ndim != 3 or boxes.shape[0] != B or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (B, G, 4) `xyxy` with B = {B}, got {tuple(boxes.shape)}")
    for name, flag in (("hflip", hflip), ("vflip", vflip), ("transpose", transpose)):
        if flag.shape != (B,) or flag.dtype != torch.bool:
            raise ValueError(f"{name} must be a (B,) = ({B},) bool tensor, got {tuple(flag.shape)} {flag.dtype}")
    per_image = lambda flag: flag.to(images.device)[:, None, None, None]
    images = torch.where(per_image(transpose), images.transpose(-1, -2), images)
    images = torch.where(per_image(hflip), images.flip(-1), images)
    images = torch.where(per_image(vflip), images.flip(-2), images)
    x1, y1, x2, y2 = boxes.unbind(-1)
    t, h, v = (f.to(boxes.device)[:, None] for f in (transpose, hflip, vflip))
    x1, y1, x2, y2 = torch.where(t, y1, x1), torch.where(t, x1, y1), torch.where(t, y2, x2), torch.where(t, x2, y2)
    x1, x2 = torch.where(h, S - x2, x1), torch.where(h, S - x1, x2)
    y1, y2 = torch.where(v, S - y2, y1), torch.where(v, S - y1, y2)
    return images, torch.stack([x1, y1, x2, y2], -1)


def random_dihedral(images: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator,
                    symmetries: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """dihedral with a symmetry drawn per image from `generator` (a CPU torch.Generator).

    images: (B, C, S, S); boxes: (B, G, 4) `xyxy` pixels. symmetries: 8 (all flips and quarter
    turns, for the synthetic shapes) or 2 (identity or a horizontal flip, for photographs, where
    the sky stays up). Returns (images, boxes).
    """
    if symmetries not in (2, 8):
        raise ValueError(f"symmetries must be 2 or 8, got {symmetries}")
    flags = torch.rand(3, images.shape[0], generator=generator) < 0.5
    if symmetries == 2:
        flags[1:] = False
    return dihedral(images, boxes, flags[0], flags[1], flags[2])

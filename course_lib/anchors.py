"""Anchor boxes: Faster R-CNN's per-position anchors, and SSD/fastai grids in normalised units.

Order convention: anchors are listed row-major over the feature map (y, then x, then anchor), the
order of a conv output (B, A*K, H, W) permuted to (B, H, W, A*K) and reshaped to (B, H*W*A, K).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ._arrays import check_boxes, check_count, check_number, to_torch


def _positive(value, name: str) -> float:
    return check_number(value, name, 0, math.inf, lo_open=True, hi_open=True)

__all__ = ["anchor_base", "grid_anchors", "inside_image", "grid_anchors_normalized"]


def anchor_base(stride: int = 16, scales: Sequence[float] = (8, 16, 32),
                ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
    """The anchors of the top-left feature-map cell, centred at (stride/2, stride/2).

    An anchor of scale s and ratio r (= height / width) has area (stride * s)^2, height
    stride * s * sqrt(r) and width stride * s / sqrt(r). Ordered ratio-major, then scale.
    Returns (A, 4) float64 `xyxy` in pixels, A = len(ratios) * len(scales).
    """
    stride = _positive(stride, "stride")
    if not len(scales) or not len(ratios):
        raise ValueError("scales and ratios must be non-empty")
    r = np.asarray(ratios, dtype=np.float64)[:, None]
    s = np.asarray(scales, dtype=np.float64)[None, :]
    # Written so that NaN fails too.
    if not ((r > 0) & np.isfinite(r)).all() or not ((s > 0) & np.isfinite(s)).all():
        raise ValueError(f"scales and ratios must be positive, finite numbers, got scales={scales}, ratios={ratios}")
    h = (stride * s * np.sqrt(r)).ravel()
    w = (stride * s / np.sqrt(r)).ravel()
    c = stride / 2.0
    return np.stack([c - w / 2, c - h / 2, c + w / 2, c + h / 2], axis=1)


def grid_anchors(feature_hw: tuple[int, int], stride: int, base):
    """Every anchor of a feature map: `base` shifted to each cell.

    feature_hw: (H, W) of the feature map; stride: pixels per cell; base: (A, 4) `xyxy` anchors
    of the top-left cell (see anchor_base). Returns (H*W*A, 4) `xyxy` pixels, ordered y, x, anchor;
    the type of `base` (NumPy or torch).
    """
    if len(feature_hw) != 2:
        raise ValueError(f"feature_hw must be (H, W), got {feature_hw!r}")
    H, W = check_count(feature_hw[0], "feature_hw[0] (H)"), check_count(feature_hw[1], "feature_hw[1] (W)")
    stride = _positive(stride, "stride")
    b, back = to_torch(base, "base")
    b = check_boxes(b, "base")
    ys = torch.arange(H, dtype=b.dtype, device=b.device) * stride
    xs = torch.arange(W, dtype=b.dtype, device=b.device) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(H * W, 1, 4)
    return back((shifts + b[None]).reshape(-1, 4))


def inside_image(anchors, image_hw: tuple[int, int]):
    """Indices of the anchors that lie entirely inside the image.

    anchors: (N, 4) `xyxy` pixels; image_hw: (height, width). Returns (K,) int64, ascending.
    """
    if len(image_hw) != 2:
        raise ValueError(f"image_hw must be (height, width), got {image_hw!r}")
    h = check_number(image_hw[0], "image_hw[0] (height)", 0, math.inf, hi_open=True)
    w = check_number(image_hw[1], "image_hw[1] (width)", 0, math.inf, hi_open=True)
    t, back = to_torch(anchors, "anchors")
    t = check_boxes(t, "anchors")
    ok = (t[:, 0] >= 0) & (t[:, 1] >= 0) & (t[:, 2] <= w) & (t[:, 3] <= h)
    return back(ok.nonzero().flatten())


def grid_anchors_normalized(grids: Sequence[int] = (4, 2, 1), zooms: Sequence[float] = (1.0,),
                            ratios: Sequence[tuple[float, float]] = ((1.0, 1.0),)) -> torch.Tensor:
    """SSD-style anchors on square grids covering the unit image.

    grids: cells per side of each grid, e.g. (4, 2, 1); zooms: size multipliers; ratios:
    (width, height) multipliers. Each cell of a g x g grid gets len(zooms) * len(ratios) anchors of
    size (zoom * rw / g, zoom * rh / g), centred on the cell, zoom-major then ratio.
    Returns (sum(g*g) * k, 4) float32 `cxcywh`, normalised to 0..1, ordered grid, y, x, anchor.
    With the defaults: 16 + 4 + 1 = 21 anchors; with 3 zooms x 3 ratios: 189.
    """
    zooms = [_positive(z, "zooms") for z in zooms]
    ratios = [(_positive(rw, "ratios"), _positive(rh, "ratios")) for rw, rh in ratios]
    shapes = torch.tensor([[z * rw, z * rh] for z in zooms for rw, rh in ratios], dtype=torch.float32)
    out = []
    for g in grids:
        g = check_count(g, "grid sizes", 1)
        c = (torch.arange(g, dtype=torch.float32) + 0.5) / g
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack([xx, yy], dim=-1).reshape(-1, 1, 2).expand(-1, len(shapes), 2)
        sizes = (shapes / g).expand(g * g, -1, -1)
        out.append(torch.cat([centres, sizes], dim=-1).reshape(-1, 4))
    return torch.cat(out)


def num_anchors_per_cell(zooms: Sequence[float], ratios: Sequence) -> int:
    """k = len(zooms) * len(ratios), the anchors each grid cell carries."""
    return len(zooms) * len(ratios)



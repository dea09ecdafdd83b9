"""Checks that turn the metrics' inputs (NumPy arrays or torch tensors) into float64/int64 NumPy.

A detection set is a list with one dict per image:
    preds[i] = dict(boxes (K, 4) xyxy pixels, scores (K,), labels (K,))
    gts[i]   = dict(boxes (G, 4) xyxy pixels, labels (G,), optional iscrowd (G,) bool, difficult (G,) bool)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Image(NamedTuple):
    """One image's boxes, validated. Absent fields are filled: scores 0, labels 0, flags False."""

    boxes: np.ndarray    # (N, 4) float64 xyxy
    scores: np.ndarray   # (N,) float64
    labels: np.ndarray   # (N,) int64
    crowd: np.ndarray    # (N,) bool: an ignore region, IoU measured over the detection's area
    difficult: np.ndarray  # (N,) bool: ignored, IoU as usual


def as_numpy(x, name: str, dtype=np.float64) -> np.ndarray:
    """A NumPy copy-free view of `x` (array, tensor or list) with the given dtype.

    An integer dtype takes whole numbers only (2 and 2.0 alike): a label 1.7 would otherwise
    become class 1, and NaN class -2**63. A bool dtype takes bools or 0/1 only.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if not isinstance(x, (np.ndarray, list, tuple)):
        raise ValueError(f"{name} must be a NumPy array or a torch tensor, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    kind = np.dtype(dtype).kind
    if kind in "iu" and arr.dtype.kind == "f" and arr.size:
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all() and np.abs(arr).max() < 2.0 ** 53):
            raise ValueError(f"{name} must hold integers (such as class ids), got non-integer or non-finite values")
    elif kind == "b" and arr.dtype.kind != "b" and arr.size and not ((arr == 0) | (arr == 1)).all():
        raise ValueError(f"{name} must be bool or 0/1, got other values")
    return arr.astype(dtype, copy=False)


def as_boxes(x, name: str) -> np.ndarray:
    """(N, 4) float64 `xyxy` boxes with x2 >= x1 and y2 >= y1; an empty input becomes (0, 4)."""
    b = as_numpy(x, name)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in xyxy format, got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if (b[:, 2:] < b[:, :2]).any():
        raise ValueError(f"{name} has boxes of negative size; xyxy boxes need x2 >= x1 and y2 >= y1")
    return b


def as_vector(x, name: str, n: int, dtype=np.float64) -> np.ndarray:
    """(n,) array of `dtype`; raises ValueError for another shape or non-finite values."""
    v = as_numpy(x, name, dtype)
    if v.size == 0 and n == 0:
        return v.reshape(0)
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape (N,) = ({n},) to match the boxes, got {v.shape}")
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def _image(d, name: str, need: tuple[str, ...]) -> Image:
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be a dict with keys {need}, got {type(d).__name__}")
    missing = [k for k in need if k not in d]
    if missing:
        raise ValueError(f"{name} is missing the keys {missing}; expected at least {need}")
    boxes = as_boxes(d["boxes"], f"{name}['boxes']")
    n = len(boxes)

    def field(key, dtype, default):
        if key not in d:
            return np.full(n, default, dtype=dtype)
        return as_vector(d[key], f"{name}[{key!r}]", n, dtype)

    return Image(boxes, field("scores", np.float64, 0.0), field("labels", np.int64, 0),
                 field("iscrowd", bool, False), field("difficult", bool, False))


def parse(preds, gts, pred_keys=("boxes", "scores", "labels"), gt_keys=("boxes", "labels")):
    """Validate a detection set; returns (list of Image for preds, list of Image for gts)."""
    for name, lst in (("preds", preds), ("gts", gts)):
        if not isinstance(lst, (list, tuple)):
            raise ValueError(f"{name} must be a list with one dict per image, got {type(lst).__name__}")
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts must list the same images, got {len(preds)} and {len(gts)} entries")
    return ([_image(d, f"preds[{i}]", pred_keys) for i, d in enumerate(preds)],
            [_image(d, f"gts[{i}]", gt_keys) for i, d in enumerate(gts)])

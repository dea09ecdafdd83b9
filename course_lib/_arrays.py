"""Shared input checks and NumPy <-> torch plumbing for the array functions of course_lib.

Every public function takes NumPy arrays or torch tensors and gives back the type it was given.
Internally the work is done in torch (zero-copy for NumPy inputs on the CPU).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

ArrayLike = "np.ndarray | torch.Tensor"


def to_torch(x, name: str) -> tuple[torch.Tensor, Callable[[torch.Tensor], object]]:
    """Return `x` as a tensor and a function that turns a result back into `x`'s type."""
    if isinstance(x, torch.Tensor):
        return x, lambda t: t
    if isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError(f"{name} must be a numeric array, got dtype object")
        return torch.from_numpy(np.ascontiguousarray(arr)), lambda t: t.detach().cpu().numpy()
    raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(x).__name__}")


def as_float(t: torch.Tensor) -> torch.Tensor:
    """Integer and bool tensors become float32; floating tensors keep their dtype."""
    return t if t.is_floating_point() else t.to(torch.float32)


def check_boxes(t: torch.Tensor, name: str, fmt: str = "xyxy", ndim: int | None = 2) -> torch.Tensor:
    """Validate a box tensor: last dimension 4, finite, non-negative sizes; returns it as float.

    fmt: the box format, used for the size check and in messages.
    ndim: the required number of dimensions (2 for (N, 4)); None accepts any (..., 4).
    """
    if ndim is not None and t.ndim != ndim:
        shape = "(N, 4)" if ndim == 2 else f"{ndim} dimensions ending in 4"
        raise ValueError(f"{name} must have shape {shape} in {fmt} format, got {tuple(t.shape)}")
    if t.ndim == 0 or t.shape[-1] != 4:
        raise ValueError(f"{name} must have a last dimension of 4 ({fmt} format), got shape {tuple(t.shape)}")
    t = as_float(t)
    if t.numel() and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if t.numel():
        if fmt in ("xyxy", "yxyx"):
            sizes = t[..., 2:] - t[..., :2]
        elif fmt in ("xywh", "cxcywh"):
            sizes = t[..., 2:]
        else:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {BOX_FORMATS}")
        if (sizes < 0).any():
            what = "x2 >= x1 and y2 >= y1" if fmt == "xyxy" else (
                "y2 >= y1 and x2 >= x1" if fmt == "yxyx" else "w >= 0 and h >= 0")
            raise ValueError(f"{name} has boxes of negative size; {fmt} boxes need {what}")
    return t


def check_1d(t: torch.Tensor, name: str, length: int, length_name: str) -> None:
    """Require a 1-D tensor of the given length."""
    if t.ndim != 1 or t.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length_name},) = ({length},), got {tuple(t.shape)}")


BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")

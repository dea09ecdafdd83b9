"""Shared input checks and NumPy <-> torch plumbing for the array functions of course_lib.

Every public function takes NumPy arrays or torch tensors and gives back the type it was given.
Internally the work is done in torch (zero-copy for NumPy inputs on the CPU).
"""
from __future__ import annotations

import math
import numbers
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


def _unwrap_scalar(value):
    """A one-element tensor or a 0-d array as its Python scalar; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def check_number(value, name: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
                 hi_open: bool = False) -> float:
    """`value` as a float, if it is a real number in the interval from lo to hi (closed unless
    lo_open / hi_open); otherwise an error naming `name`. NaN is never in range."""
    value = _unwrap_scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not ((lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def check_count(value, name: str, minimum: int = 0) -> int:
    """`value` as an int, if it is a whole number >= minimum (2 or 2.0); otherwise an error naming `name`."""
    value = _unwrap_scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    whole = isinstance(value, numbers.Integral) or (math.isfinite(value) and value == int(value))
    if not (whole and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_labels(t: torch.Tensor, name: str, num_classes: int | None = None, padding: int | None = None) -> torch.Tensor:
    """Validate class labels: whole numbers (2 and 2.0 alike), in 0..num_classes-1 when
    num_classes is given, or equal to `padding`; returns them as int64.

    A label of 1.7 or NaN is an error rather than a silent class 1 or -2**63.
    """
    if t.is_floating_point():
        if t.numel() and not (torch.isfinite(t).all() and (t == t.round()).all()):
            raise ValueError(f"{name} must hold integer class ids, got non-integer or non-finite values")
        if t.numel() and t.abs().max() >= 2.0 ** 53:
            raise ValueError(f"{name} holds class ids too large to be exact integers")
    elif t.is_complex():
        raise ValueError(f"{name} must hold integer class ids, got dtype {t.dtype}")
    t = t.to(torch.int64)
    if num_classes is not None and t.numel():
        ok = (t >= 0) & (t < num_classes)
        if padding is not None:
            ok |= t == padding
        if not ok.all():
            pad = f" or {padding} for padding" if padding is not None else ""
            bad = t[~ok][0].item()
            raise ValueError(f"{name} must be class ids in 0..{num_classes - 1}{pad}, got {bad}")
    return t


def wide_float(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which to compute areas of boxes of `dtype`: float32 for float16 and bfloat16.

    float16 overflows past 65504 (the area of a 256 x 256 box) and bfloat16 keeps 8 significant
    bits; torchvision computes areas in float32 for both too. float32 and float64 stay as they are.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_1d(t: torch.Tensor, name: str, length: int, length_name: str) -> None:
    """Require a 1-D tensor of the given length."""
    if t.ndim != 1 or t.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length_name},) = ({length},), got {tuple(t.shape)}")


BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")

"""Box geometry: format conversion, area, IoU, clipping and small-box removal.

Formats (pixel coordinates unless a function says "normalised"):
    xyxy    x1, y1, x2, y2         (course_lib's default, torchvision's)
    yxyx    y1, x1, y2, x2         (the classic Faster R-CNN walkthrough)
    xywh    x1, y1, w, h           (COCO, WIDER FACE)
    cxcywh  x_centre, y_centre, w, h (anchors, the MP5 data, SSD priors)
Boxes are continuous: a box [0, 0, 10, 10] has width 10 (no "+1").
NumPy in -> NumPy out, torch in -> torch out.

float16 and bfloat16 boxes: areas, intersections and unions are computed in float32 (as
torchvision does), since a float16 area overflows past 65504 px^2, a box of about 256 x 256.
"""
from __future__ import annotations

import math

import torch

from ._arrays import BOX_FORMATS, check_boxes, check_number, to_torch, wide_float

__all__ = ["BOX_FORMATS", "box_convert", "box_area", "box_iou", "clip_boxes", "remove_small_boxes"]


def _to_xyxy(b: torch.Tensor, fmt: str) -> torch.Tensor:
    if fmt == "xyxy":
        return b
    if fmt == "yxyx":
        return b[..., [1, 0, 3, 2]]
    if fmt == "xywh":
        return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], dim=-1)
    # cxcywh
    half = b[..., 2:] / 2
    return torch.cat([b[..., :2] - half, b[..., :2] + half], dim=-1)


def _from_xyxy(b: torch.Tensor, fmt: str) -> torch.Tensor:
    if fmt == "xyxy":
        return b
    if fmt == "yxyx":
        return b[..., [1, 0, 3, 2]]
    if fmt == "xywh":
        return torch.cat([b[..., :2], b[..., 2:] - b[..., :2]], dim=-1)
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], dim=-1)


def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert boxes between formats.

    boxes: (..., 4) in `in_fmt`; in_fmt, out_fmt: one of 'xyxy', 'yxyx', 'xywh', 'cxcywh'.
    Returns (..., 4) in `out_fmt`, same unit (pixels or normalised) as the input.
    """
    for arg, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{arg} must be one of {BOX_FORMATS}, got {fmt!r}")
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes", in_fmt, ndim=None)
    if in_fmt == out_fmt:
        return back(t.clone())
    return back(_from_xyxy(_to_xyxy(t, in_fmt), out_fmt))


def box_area(boxes):
    """Area of each box.

    boxes: (..., 4) `xyxy`, any unit, x2 >= x1 and y2 >= y1. Returns (...,) areas in the dtype
    of `boxes`, except float16 and bfloat16 boxes, whose areas come in float32 (as torchvision's):
    float16 cannot hold an area above 65504, a box of about 256 x 256.

    Errors and edge cases: an empty (0, 4) input gives (0,); a point or a line has area 0.
    """
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes", "xyxy", ndim=None)
    t = t.to(wide_float(t.dtype))
    return back((t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1]))


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of validated (N, 4) and (M, 4) `xyxy` tensors, (N, M)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp_(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (area_a[:, None] + area_b[None, :]).sub_(inter)
    # union = 0 only for two empty boxes, whose intersection is 0 too: IoU 0, not 0/0.
    # In-place steps keep this at the memory traffic of torchvision's kernel on (N, M) inputs.
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))


def box_iou(boxes1, boxes2):
    """Pairwise intersection-over-union (the Jaccard index).

    boxes1: (N, 4) and boxes2: (M, 4), both `xyxy`, any unit, x2 >= x1 and y2 >= y1.
    Returns (N, M) IoU in [0, 1], in the dtype the two inputs promote to (integer boxes: float32;
    float16 and bfloat16 are computed in float32 and rounded at the end);
    NumPy in -> NumPy out, torch in -> torch out.

    Errors and edge cases: an empty set gives an (N, 0) or (0, M) result. Two boxes of zero area
    (a point or a line) have IoU 0, even when they coincide: the union is empty, and 0/0 is
    taken as 0. NaN, infinite coordinates and boxes with x2 < x1 or y2 < y1 raise ValueError.
    """
    a, back = to_torch(boxes1, "boxes1")
    b, _ = to_torch(boxes2, "boxes2")
    a = check_boxes(a, "boxes1")
    b = check_boxes(b, "boxes2")
    dtype = torch.promote_types(a.dtype, b.dtype)
    work = wide_float(dtype)
    return back(_iou(a.to(work), b.to(device=a.device, dtype=work)).to(dtype))


def clip_boxes(boxes, size):
    """Clip boxes to an image.

    boxes: (..., 4) `xyxy` in pixels; size: (height, width) of the image.
    Returns (..., 4) with 0 <= x <= width and 0 <= y <= height.
    """
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    h = check_number(size[0], "size[0] (height)", 0, math.inf, hi_open=True)
    w = check_number(size[1], "size[1] (width)", 0, math.inf, hi_open=True)
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes", "xyxy", ndim=None)
    lo = torch.zeros(4, dtype=t.dtype, device=t.device)
    hi = torch.tensor([w, h, w, h], dtype=t.dtype, device=t.device)
    return back(torch.maximum(torch.minimum(t, hi), lo))


def remove_small_boxes(boxes, min_size: float):
    """Indices of the boxes whose width and height are both >= `min_size`.

    boxes: (N, 4) `xyxy`, same unit as min_size (>= 0; 0 keeps every box, zero-size ones included).
    Returns (K,) int64 indices, ascending.
    """
    min_size = check_number(min_size, "min_size", 0)
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes")
    wh = t[:, 2:] - t[:, :2]
    keep = ((wh[:, 0] >= min_size) & (wh[:, 1] >= min_size)).nonzero().flatten()
    return back(keep)

"""Box geometry: format conversion, area, IoU, clipping and small-box removal.

Formats (pixel coordinates unless a function says "normalised"):
    xyxy    x1, y1, x2, y2         (course_lib's default, torchvision's)
    yxyx    y1, x1, y2, x2         (the classic Faster R-CNN walkthrough)
    xywh    x1, y1, w, h           (COCO, WIDER FACE)
    cxcywh  x_centre, y_centre, w, h (anchors, the MP5 data, SSD priors)
Boxes are continuous: a box [0, 0, 10, 10] has width 10 (no "+1").
NumPy in -> NumPy out, torch in -> torch out.
"""
from __future__ import annotations

import torch

from ._arrays import BOX_FORMATS, check_1d, check_boxes, to_torch

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

    boxes: (..., 4) `xyxy`, any unit, x2 >= x1 and y2 >= y1. Returns (...,) areas.
    """
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes", "xyxy", ndim=None)
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
    Returns (N, M) IoU in [0, 1]; NumPy in -> NumPy out, torch in -> torch out.
    """
    a, back = to_torch(boxes1, "boxes1")
    b, _ = to_torch(boxes2, "boxes2")
    a = check_boxes(a, "boxes1")
    b = check_boxes(b, "boxes2")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return back(_iou(a.to(dtype), b.to(device=a.device, dtype=dtype)))


def clip_boxes(boxes, size):
    """Clip boxes to an image.

    boxes: (..., 4) `xyxy` in pixels; size: (height, width) of the image.
    Returns (..., 4) with 0 <= x <= width and 0 <= y <= height.
    """
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    h, w = float(size[0]), float(size[1])
    if h < 0 or w < 0:
        raise ValueError(f"size must be non-negative (height, width), got {size!r}")
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes", "xyxy", ndim=None)
    lo = torch.zeros(4, dtype=t.dtype, device=t.device)
    hi = torch.tensor([w, h, w, h], dtype=t.dtype, device=t.device)
    return back(torch.maximum(torch.minimum(t, hi), lo))


def remove_small_boxes(boxes, min_size: float):
    """Indices of the boxes whose width and height are both >= `min_size`.

    boxes: (N, 4) `xyxy`, same unit as min_size. Returns (K,) int64 indices, ascending.
    """
    t, back = to_torch(boxes, "boxes")
    t = check_boxes(t, "boxes")
    wh = t[:, 2:] - t[:, :2]
    keep = ((wh[:, 0] >= min_size) & (wh[:, 1] >= min_size)).nonzero().flatten()
    return back(keep)

"""Greedy non-maximum suppression.

Walk the boxes from the highest score down; keep a box, then drop every remaining box that
overlaps it with IoU > iou_threshold. Each step compares the kept box with all survivors at once,
and the survivor list shrinks as it goes, so the work is one vector operation per kept box.
"""
from __future__ import annotations

import numpy as np
import torch

from ._arrays import check_1d, check_boxes, to_torch, wide_float

__all__ = ["nms", "batched_nms"]


def _greedy(b: np.ndarray, order: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Kept positions into `b`, for boxes visited in `order` (NumPy, float)."""
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        union = areas[i] + areas[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _prepare(boxes, scores):
    t, back = to_torch(boxes, "boxes")
    s, _ = to_torch(scores, "scores")
    t = check_boxes(t, "boxes")
    check_1d(s, "scores", t.shape[0], "N")
    if s.numel() and not torch.isfinite(s).all():
        raise ValueError("scores contains NaN or infinite values")
    return t, s, back


def _run(t: torch.Tensor, s: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    # Stable sort: among equal scores the earlier box is visited first (as torchvision does).
    order = torch.sort(s.detach(), descending=True, stable=True).indices
    b = t.detach().to(wide_float(t.dtype)).cpu().numpy()
    keep = _greedy(b, order.cpu().numpy(), float(iou_threshold))
    return torch.from_numpy(keep).to(t.device)


def nms(boxes, scores, iou_threshold: float):
    """Greedy NMS.

    boxes: (N, 4) `xyxy`, any unit; scores: (N,); iou_threshold: drop boxes with IoU > this with a
    kept, higher-scored box. Returns (K,) int64 indices of the kept boxes, in descending score order
    (ties: lower index first). NumPy in -> NumPy out, torch in -> torch out.
    float16 and bfloat16 boxes are compared in float32.
    """
    t, s, back = _prepare(boxes, scores)
    return back(_run(t, s, iou_threshold))


def batched_nms(boxes, scores, labels, iou_threshold: float):
    """NMS within each class: boxes of different labels never suppress each other.

    boxes: (N, 4) `xyxy`; scores: (N,); labels: (N,) int class per box. Each class is moved to a
    region of its own (an offset larger than every coordinate), so one NMS pass does every class.
    Returns (K,) int64 indices in descending score order.
    """
    t, s, back = _prepare(boxes, scores)
    lab, _ = to_torch(labels, "labels")
    check_1d(lab, "labels", t.shape[0], "N")
    if t.numel() == 0:
        return back(torch.zeros(0, dtype=torch.int64, device=t.device))
    offsets = lab.to(t.device, t.dtype) * (t.max() + 1)
    return back(_run(t + offsets[:, None], s, iou_threshold))

"""Greedy non-maximum suppression.

Walk the boxes from the highest score down; keep a box, then drop every remaining box that
overlaps it with IoU > iou_threshold. Each step compares the kept box with all survivors at once,
and the survivor list shrinks as it goes, so the work is one vector operation per kept box.
"""
from __future__ import annotations

import numpy as np
import torch

from ._arrays import check_1d, check_boxes, check_labels, check_number, to_torch, wide_float

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


def _prepare(boxes, scores, iou_threshold):
    check_number(iou_threshold, "iou_threshold", 0, 1)
    t, back = to_torch(boxes, "boxes")
    s, _ = to_torch(scores, "scores")
    t = check_boxes(t, "boxes")
    check_1d(s, "scores", t.shape[0], "N")
    if s.numel() and not torch.isfinite(s).all():
        raise ValueError("scores contains NaN or infinite values")
    return t, s, back


def _run(t: torch.Tensor, s: torch.Tensor, iou_threshold: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    # Stable sort: among equal scores the earlier box is visited first (as torchvision does).
    order = torch.sort(s.detach(), descending=True, stable=True).indices.cpu().numpy()
    b = t.detach().to(wide_float(t.dtype)).cpu().numpy()
    if labels is None:
        keep = _greedy(b, order, float(iou_threshold))
    else:
        # One greedy pass per class over that class's boxes, in the global visiting order: the
        # kept boxes are those of nms class by class, and each pass compares only boxes that may
        # suppress each other. A stable sort by label groups the classes, keeping that order.
        lab = labels.cpu().numpy()[order]
        grouped = order[np.argsort(lab, kind="stable")]
        bounds = np.cumsum(np.unique(lab, return_counts=True)[1])[:-1]
        keep = np.concatenate([_greedy(b, part, float(iou_threshold)) for part in np.split(grouped, bounds)])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        keep = keep[np.argsort(rank[keep])]  # back to descending score order, ties by index
    return torch.from_numpy(keep).to(t.device)


def nms(boxes, scores, iou_threshold: float):
    """Greedy NMS.

    boxes: (N, 4) `xyxy`, any unit; scores: (N,); iou_threshold: in [0, 1], drop boxes with
    IoU > this with a kept, higher-scored box (0: any overlap suppresses; 1: nothing is dropped).
    Returns (K,) int64 indices of the kept boxes, in descending score order
    (ties: lower index first). NumPy in -> NumPy out, torch in -> torch out.

    Errors and edge cases: N = 0 gives an empty result. Two boxes of zero area have IoU 0 and
    never suppress each other. float16 and bfloat16 boxes are compared in float32. An
    iou_threshold outside [0, 1] or NaN, NaN or infinite scores or coordinates raise ValueError.
    """
    t, s, back = _prepare(boxes, scores, iou_threshold)
    return back(_run(t, s, iou_threshold))


def batched_nms(boxes, scores, labels, iou_threshold: float):
    """NMS within each class: boxes of different labels never suppress each other.

    boxes: (N, 4) `xyxy`, any unit and sign; scores: (N,); labels: (N,) integer class per box
    (2 and 2.0 alike); iou_threshold: in [0, 1], as for `nms`. The greedy walk runs class by
    class on the boxes as given: no per-class coordinate offsets, which mix classes when
    coordinates are negative and lose precision when they are large. Returns (K,) int64 indices
    in descending score order (ties: lower index first), exactly `nms` class by class, merged.

    Errors and edge cases: as for `nms`; non-integer or non-finite labels raise ValueError.
    """
    t, s, back = _prepare(boxes, scores, iou_threshold)
    lab, _ = to_torch(labels, "labels")
    check_1d(lab, "labels", t.shape[0], "N")
    lab = check_labels(lab, "labels")
    if t.numel() == 0:
        return back(torch.zeros(0, dtype=torch.int64, device=t.device))
    return back(_run(t, s, iou_threshold, lab))

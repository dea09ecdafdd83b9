"""Precision/recall curves and average precision (AP), three ways.

    voc07    VOC2007's 11-point AP: the mean over recall r in {0, 0.1, ..., 1} of the highest
             precision reached at a recall >= r.
    voc_all  VOC2010+: the area under the interpolated curve (precision made non-increasing),
             summed over the recall steps.
    coco101  COCO's: like voc07 with 101 recall points 0, 0.01, ..., 1.
"""
from __future__ import annotations

import numpy as np

from .._arrays import check_count
from ._inputs import as_numpy, as_vector

__all__ = ["AP_METHODS", "COCO_RECALL_POINTS", "precision_recall_curve", "interpolated_precision",
           "average_precision"]

AP_METHODS = ("voc07", "voc_all", "coco101")
# Built exactly as pycocotools builds its recall points, so the two agree to the last bit.
COCO_RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
# i / 10 rather than arange(0, 1.1, 0.1): 0.1 * 3 > 0.3 would drop a recall of exactly 3/10.
VOC07_RECALL_POINTS = np.arange(11) / 10


def precision_recall_curve(scores, tp, num_gt: int):
    """Precision and recall after each detection of one class, detections taken by score.

    scores: (N,) detection scores; tp: (N,) bool, True for a true positive (ignored detections
    removed beforehand); num_gt: the number of (non-ignored) ground-truth boxes, > 0.
    Detections are sorted by decreasing score with a stable sort (ties keep their input order).
    Returns (precision (N,), recall (N,), thresholds (N,)): the values after the k-th detection,
    whose score is thresholds[k].
    """
    s = as_numpy(scores, "scores")
    if s.ndim != 1:
        raise ValueError(f"scores must have shape (N,), got {s.shape}")
    t = as_vector(tp, "tp", len(s), bool)
    num_gt = check_count(num_gt, "num_gt", 1)
    order = np.argsort(-s, kind="mergesort")
    hits = np.cumsum(t[order])
    k = np.arange(1, len(s) + 1)
    return hits / k, hits / num_gt, s[order]


def interpolated_precision(precision) -> np.ndarray:
    """The precision envelope: at each point the highest precision at this recall or beyond.

    precision: (N,) in detection order. Returns (N,), non-increasing.
    """
    p = as_numpy(precision, "precision")
    return np.maximum.accumulate(p[::-1])[::-1] if p.size else p


def _sampled(p: np.ndarray, r: np.ndarray, points: np.ndarray) -> float:
    """Mean of the interpolated precision at the recall points (0 past the last recall)."""
    idx = np.searchsorted(r, points, side="left")
    q = np.zeros(len(points))
    inside = idx < len(r)
    q[inside] = interpolated_precision(p)[idx[inside]]
    return float(np.mean(q))


def average_precision(precision, recall, method: str = "voc_all") -> float:
    """Average precision of one precision/recall curve.

    precision, recall: (N,) in detection order, as from precision_recall_curve (recall
    non-decreasing, both in [0, 1]); method: 'voc07', 'voc_all' or 'coco101' (module docstring).
    Returns a float in [0, 1]; 0 for an empty curve.
    """
    if method not in AP_METHODS:
        raise ValueError(f"method must be one of {AP_METHODS}, got {method!r}")
    p = as_numpy(precision, "precision")
    r = as_numpy(recall, "recall")
    if p.ndim != 1 or r.shape != p.shape:
        raise ValueError(f"precision and recall must have the same shape (N,), got {p.shape} and {r.shape}")
    # Written so that NaN fails too.
    if not (((p >= 0) & (p <= 1) & (r >= 0) & (r <= 1)).all() and (np.diff(r) >= 0).all()):
        raise ValueError("precision and recall must lie in [0, 1] and recall must be non-decreasing")
    if p.size == 0:
        return 0.0
    if method == "voc07":
        return _sampled(p, r, VOC07_RECALL_POINTS)
    if method == "coco101":
        return _sampled(p, r, COCO_RECALL_POINTS)
    # VOC's area sum_j (R_j - R_{j-1}) Q_j over the distinct recalls R_j (Q_j: the envelope there),
    # summed by parts as sum_j R_j (Q_j - Q_{j+1}): the same number, but a flat envelope (a perfect
    # detector) gives exactly R_J * Q_J = 1 rather than a sum of J rounded steps.
    first = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    R, Q = r[first], interpolated_precision(p)[first]
    return float(np.sum(R * (Q - np.r_[Q[1:], 0.0])))

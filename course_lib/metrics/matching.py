"""Which detection found which object: greedy matching in score order, COCO's rules.

Boxes are `xyxy` pixels (x1, y1, x2, y2; no "+1"). Ignore regions come in two kinds:
crowd boxes (COCO `iscrowd`: overlap measured as intersection over the detection's area) and
difficult boxes (VOC: ordinary IoU). A detection that lands on either is ignored: neither a true
nor a false positive, and several detections may land on the same ignore region.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._arrays import check_count
from ..boxes import box_iou
from ._inputs import as_boxes, as_numpy, as_vector

__all__ = ["Matches", "detection_iou", "greedy_match", "match_detections"]


def detection_iou(det_boxes, gt_boxes, gt_crowd=None) -> np.ndarray:
    """Overlap of each detection with each ground-truth box, as COCO measures it.

    det_boxes: (D, 4) and gt_boxes: (G, 4), both `xyxy`; gt_crowd: (G,) bool or None.
    Returns (D, G) float64: IoU, or intersection / detection area in the crowd columns.
    """
    d = as_boxes(det_boxes, "det_boxes")
    g = as_boxes(gt_boxes, "gt_boxes")
    iou = box_iou(d, g)
    crowd = np.zeros(len(g), bool) if gt_crowd is None else as_vector(gt_crowd, "gt_crowd", len(g), bool)
    if crowd.any() and len(d):
        c = g[crowd]
        wh = np.minimum(d[:, None, 2:], c[None, :, 2:]) - np.maximum(d[:, None, :2], c[None, :, :2])
        inter = wh.clip(min=0).prod(-1)
        area = ((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))[:, None]
        iou[:, crowd] = np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)
    return iou


class Matches(NamedTuple):
    """The result of match_detections for T IoU thresholds and the D' kept detections."""

    order: np.ndarray     # (D',) int64: indices of the kept detections, highest score first
    gt_index: np.ndarray  # (T, D') int64: matched ground-truth index, -1 if none
    ignored: np.ndarray   # (T, D') bool: matched an ignore region (crowd or difficult)

    @property
    def tp(self) -> np.ndarray:
        """(T, D') bool: true positives (matched a regular ground-truth box)."""
        return (self.gt_index >= 0) & ~self.ignored


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Row-wise index of the last maximum of a (T, G) array (COCO keeps the later of equal IoUs)."""
    return values.shape[1] - 1 - np.argmax(values[:, ::-1], axis=1)


def greedy_match(iou, gt_ignore, iou_thresholds):
    """The greedy matching loop itself, for detections already sorted by decreasing score.

    iou: (D, G) overlaps from detection_iou, rows in score order; gt_ignore: (G,) bool, True for
    ignore regions (crowd or difficult), which may take several detections; iou_thresholds: (T,)
    in [0, 1], as check_thresholds returns them (not checked again here: this runs once per image
    and class).
    Each detection takes, among the regular boxes not yet matched, the one with the highest
    IoU >= threshold (the later one on a tie, as COCO); failing that, an ignore region.
    Returns (gt_index (T, D) int64, -1 if unmatched; ignored (T, D) bool).
    """
    D, G = iou.shape
    T = len(iou_thresholds)
    gt_index = np.full((T, D), -1, dtype=np.int64)
    if not (D and G):
        return gt_index, np.zeros((T, D), bool)
    # COCO caps the threshold just below 1 so that a perfect box still matches at IoU 1.
    thr = np.minimum(np.asarray(iou_thresholds, np.float64), 1 - 1e-10)[:, None]
    taken = np.zeros((T, G), bool)
    rows = np.arange(T)
    for j in range(D):  # sequential by nature: each detection sees what the better ones took
        ok = (iou[j] >= thr) & (~taken | gt_ignore)
        reg, irr = ok & ~gt_ignore, ok & gt_ignore
        m = np.where(reg.any(1), _last_argmax(np.where(reg, iou[j], -1.0)),
                     np.where(irr.any(1), _last_argmax(np.where(irr, iou[j], -1.0)), -1))
        gt_index[:, j] = m
        hit = m >= 0
        taken[rows[hit], m[hit]] = True
    return gt_index, (gt_index >= 0) & gt_ignore[gt_index.clip(min=0)]


def check_thresholds(iou_thresholds) -> np.ndarray:
    """(T,) float64 IoU thresholds in [0, 1] from a float or a sequence."""
    if isinstance(iou_thresholds, (str, bytes)) or iou_thresholds is None:
        raise ValueError(f"iou_thresholds must be a float or (T,) floats in [0, 1], got {iou_thresholds!r}")
    thr = np.atleast_1d(as_numpy(iou_thresholds if not np.isscalar(iou_thresholds) else [iou_thresholds],
                                 "iou_thresholds"))
    if thr.ndim != 1 or not len(thr) or not ((thr >= 0) & (thr <= 1)).all():
        raise ValueError(f"iou_thresholds must be a float or (T,) floats in [0, 1], got {iou_thresholds!r}")
    return thr


def check_max_dets(max_dets) -> int | None:
    """None (keep every detection) or a positive integer: -1 would slice off the last detection."""
    return None if max_dets is None else check_count(max_dets, "max_dets", 1)


def match_detections(det_boxes, det_scores, gt_boxes, iou_thresholds=0.5, gt_crowd=None,
                     gt_difficult=None, max_dets=None) -> Matches:
    """Greedy matching of one image's detections (of one class) to its ground truth.

    det_boxes: (D, 4) `xyxy`; det_scores: (D,); gt_boxes: (G, 4) `xyxy`;
    iou_thresholds: a float or (T,) floats; gt_crowd, gt_difficult: (G,) bool or None;
    max_dets: keep only the best-scored max_dets detections (COCO: 100), None keeps all.
    Detections are visited by decreasing score (a stable sort: equal scores keep their input
    order) and matched by greedy_match. Returns Matches (order, gt_index, ignored; .tp).

    Errors and edge cases: D == 0 or G == 0 gives no match (gt_index -1). A threshold of 1 still
    matches a perfect box (COCO caps it just below 1). Thresholds outside [0, 1] and a max_dets
    that is not a positive integer raise ValueError.
    """
    max_dets = check_max_dets(max_dets)
    d = as_boxes(det_boxes, "det_boxes")
    s = as_vector(det_scores, "det_scores", len(d))
    g = as_boxes(gt_boxes, "gt_boxes")
    flag = lambda x, n: np.zeros(len(g), bool) if x is None else as_vector(x, n, len(g), bool)
    crowd, difficult = flag(gt_crowd, "gt_crowd"), flag(gt_difficult, "gt_difficult")
    thr = check_thresholds(iou_thresholds)
    order = np.argsort(-s, kind="mergesort")[:max_dets]
    gt_index, ignored = greedy_match(detection_iou(d[order], g, crowd), crowd | difficult, thr)
    return Matches(order, gt_index, ignored)

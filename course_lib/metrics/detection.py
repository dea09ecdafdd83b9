"""Detection metrics over a data set: mAP at one IoU threshold, and recall of the top-k boxes.

preds: list with one dict per image: boxes (K, 4) `xyxy` pixels, scores (K,), labels (K,).
gts:   list with one dict per image: boxes (G, 4) `xyxy` pixels, labels (G,), and optionally
       iscrowd (G,) bool and/or difficult (G,) bool (ignore regions, see metrics.matching).
NumPy arrays or torch tensors; results are Python floats / NumPy arrays.

Errors and edge cases: labels are whole numbers (2 and 2.0 alike; 1.7 or NaN raise ValueError
naming the image and key), flags bool or 0/1; an image may have no boxes; a class without a
regular ground-truth box gets no AP; a data set without ground truth gives NaN.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..boxes import box_iou
from ._inputs import Image, parse
from .ap import average_precision, precision_recall_curve
from .._arrays import check_count
from .matching import check_max_dets, check_thresholds, detection_iou, greedy_match

__all__ = ["pooled_matches", "class_curves", "gt_counts", "mean_average_precision", "recall_at_k", "proposal_recall"]


def pooled_matches(preds: list[Image], gts: list[Image], iou_thresholds, max_dets=None) -> dict:
    """Match every image's detections class by class and pool them per class over the data set.

    preds, gts: validated images (metrics._inputs.parse); iou_thresholds: (T,);
    max_dets: per image and class, None = all.
    Returns {class_id: (scores (N,), tp (T, N) bool, ignored (T, N) bool)}: the kept detections of
    all images in image order, each image's sorted by score -- the order COCO pools them in.
    """
    iou_thresholds = check_thresholds(iou_thresholds)
    max_dets = check_max_dets(max_dets)
    pooled = defaultdict(list)
    for p, g in zip(preds, gts):
        if not len(p.boxes):
            continue
        iou = detection_iou(p.boxes, g.boxes, g.crowd)  # once per image, sliced per class below
        ign = g.crowd | g.difficult
        for c in np.unique(p.labels):
            det = np.flatnonzero(p.labels == c)
            det = det[np.argsort(-p.scores[det], kind="mergesort")[:max_dets]]
            gt = np.flatnonzero(g.labels == c)
            gt_index, ignored = greedy_match(iou[np.ix_(det, gt)], ign[gt], iou_thresholds)
            pooled[int(c)].append((p.scores[det], (gt_index >= 0) & ~ignored, ignored))
    T = len(iou_thresholds)
    return {c: (np.concatenate([x[0] for x in v]), np.concatenate([x[1] for x in v], 1).reshape(T, -1),
                np.concatenate([x[2] for x in v], 1).reshape(T, -1)) for c, v in pooled.items()}


def class_curves(pooled: dict, c: int, t: int, num_gt: int):
    """Precision and recall (N,) of class c at threshold index t, ignored detections dropped."""
    s, tp, ign = pooled.get(c, (np.zeros(0), np.zeros((t + 1, 0), bool), np.zeros((t + 1, 0), bool)))
    keep = ~ign[t]
    prec, rec, _ = precision_recall_curve(s[keep], tp[t, keep], num_gt)
    return prec, rec, int(tp[t].sum())


def gt_counts(gts: list[Image]) -> dict:
    """{class_id: number of regular (not crowd, not difficult) boxes}, for classes that have some."""
    labels = [g.labels[~g.crowd & ~g.difficult] for g in gts]
    ids, n = np.unique(np.concatenate(labels) if labels else np.zeros(0, np.int64), return_counts=True)
    return {int(c): int(k) for c, k in zip(ids, n)}


def mean_average_precision(preds, gts, iou_threshold: float = 0.5, method: str = "voc_all",
                           max_dets=None):
    """Mean over classes of the average precision at one IoU threshold (PASCAL VOC's mAP).

    preds, gts: detection sets (module docstring); iou_threshold: in [0, 1];
    method: 'voc07', 'voc_all' or 'coco101' (metrics.ap); max_dets: per image and class, None = all.
    Classes without a regular ground-truth box are left out, as VOC and COCO do.
    Matching follows COCO (metrics.matching: IoU >= threshold, a detection whose best object is
    taken may still match another free one). The VOC devkit differs in two corner cases: it needs
    IoU > threshold, and it counts such a detection as a false positive.
    Returns (mAP float, {class_id: AP float}); mAP is NaN when no class has ground truth.
    """
    P, G = parse(preds, gts)
    thr = check_thresholds(iou_threshold)
    if len(thr) != 1:
        raise ValueError(f"iou_threshold must be one float in [0, 1], got {iou_threshold!r}")
    pooled = pooled_matches(P, G, thr, max_dets)
    per_class = {}
    for c, n in gt_counts(G).items():
        prec, rec, _ = class_curves(pooled, c, 0, n)
        per_class[c] = average_precision(prec, rec, method)
    mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return mean, per_class


def recall_at_k(preds, gts, k: int, iou_threshold: float = 0.5, class_aware: bool = False) -> float:
    """Fraction of ground-truth boxes covered (IoU >= threshold) by any of their image's top-k boxes.

    preds: per image dict(boxes (K, 4) `xyxy`, optional scores (K,) -- without scores the first k
    boxes count --, labels (K,) if class_aware); gts: per image dict(boxes (G, 4) `xyxy`, labels
    (G,) if class_aware, optional iscrowd/difficult, whose boxes are not counted).
    Several ground-truth boxes may be covered by the same box (no one-to-one matching).
    k: a positive integer; iou_threshold: in [0, 1].
    Returns a float in [0, 1]; NaN without ground truth.
    """
    k = check_count(k, "k", 1)
    thr = check_thresholds(iou_threshold)
    if len(thr) != 1:
        raise ValueError(f"iou_threshold must be one float in [0, 1], got {iou_threshold!r}")
    keys = ("boxes", "labels") if class_aware else ("boxes",)
    P, G = parse(preds, gts, pred_keys=keys, gt_keys=keys)
    found, total = 0, 0
    for p, g in zip(P, G):
        regular = ~g.crowd & ~g.difficult
        total += int(regular.sum())
        top = np.argsort(-p.scores, kind="mergesort")[: int(k)]
        if not len(top) or not regular.any():
            continue
        iou = box_iou(g.boxes[regular], p.boxes[top])
        if class_aware:
            iou = np.where(g.labels[regular][:, None] == p.labels[top][None, :], iou, 0.0)
        found += int((iou.max(1) >= thr[0]).sum())
    return found / total if total else float("nan")


def proposal_recall(proposals, gt_boxes, k: int = 300, iou_threshold: float = 0.5) -> float:
    """Recall of region proposals: recall_at_k for class-agnostic boxes.

    proposals: list per image of (P, 4) `xyxy` boxes sorted by objectness (the best first);
    gt_boxes: list per image of (G, 4) `xyxy`. Returns a float in [0, 1] (NaN without ground truth).
    """
    if not isinstance(proposals, (list, tuple)) or not isinstance(gt_boxes, (list, tuple)):
        raise ValueError("proposals and gt_boxes must be lists with one (N, 4) xyxy array per image")
    return recall_at_k([{"boxes": b} for b in proposals], [{"boxes": b} for b in gt_boxes], k, iou_threshold)

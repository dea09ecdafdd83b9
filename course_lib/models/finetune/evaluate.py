"""COCO-style evaluation of detections with the reference evaluator, pycocotools.

COCO's AP averages the area under the precision-recall curve over 10 IoU thresholds
0.50:0.05:0.95 (AP@[.5:.95]), over classes, with 101-point interpolation (Lin et al., 2014).
`precision_recall` reads pycocotools' own matches at chosen IoU thresholds to count true
positives among the detections above a score threshold.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ...metrics import to_coco

__all__ = ["coco_eval", "coco_stats", "coco_table", "precision_recall", "image_errors", "STAT_NAMES"]

# The 12 numbers COCOeval.summarize() prints, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def coco_eval(preds, gts, iou_thresholds=None, num_classes=None):
    """Run pycocotools' COCOeval (bbox) quietly; returns the evaluated, accumulated COCOeval.

    preds: list per image of dict(boxes (K, 4) `xyxy` px, scores (K,), labels (K,) 1..);
    gts: list per image of dict(boxes (G, 4) `xyxy` px, labels (G,) 1.., optional iscrowd (G,),
    optional difficult (G,)), converted by course_lib.metrics.to_coco.
    iou_thresholds: None for COCO's 0.50:0.05:0.95. num_classes: the classes evaluated are
    1..num_classes (default: 1 to the largest label seen); boxes of other labels are left out.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, dets = to_coco(preds, gts)
    labels = [a["category_id"] for a in gt_dict["annotations"] + dets]
    class_ids = list(range(1, (num_classes or max(labels, default=1)) + 1))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints timings
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:
            dt.dataset = {"images": gt_dict["images"], "annotations": [], "categories": gt_dict["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = class_ids
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
    return ev


def coco_stats(preds, gts, num_classes=None) -> dict:
    """COCO's 12 summary numbers as {name: float} (names in STAT_NAMES; -1 where undefined)."""
    return dict(zip(STAT_NAMES, (float(x) for x in _summarize(coco_eval(preds, gts, num_classes=num_classes))[0])))


def _summarize(ev):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    return ev.stats, buf.getvalue()


def coco_table(preds, gts, num_classes=None) -> tuple[dict, str]:
    """(stats dict as in `coco_stats`, the standard 12-line text table pycocotools prints)."""
    stats, text = _summarize(coco_eval(preds, gts, num_classes=num_classes))
    return dict(zip(STAT_NAMES, (float(x) for x in stats))), text.rstrip("\n")


def precision_recall(preds, gts, iou_thresholds=(0.2, 0.5, 0.8), score_threshold=0.5,
                     num_classes=None) -> dict:
    """Precision and recall of the detections scoring >= score_threshold, per IoU threshold.

    A detection is a true positive when pycocotools matches it (same class, greedy by score,
    IoU >= the threshold, up to 100 per image). Returns {iou: (precision, recall)}; precision
    is 1.0 when nothing is detected, recall 0.0 when there is no ground truth.
    """
    ev = coco_eval(preds, gts, iou_thresholds=iou_thresholds, num_classes=num_classes)
    all_area = [e for e in ev.evalImgs if e is not None and e["aRng"] == ev.params.areaRng[0]]
    n_t = len(iou_thresholds)
    tp, n_det, n_gt = np.zeros(n_t), 0, 0
    for e in all_area:
        keep = (np.asarray(e["dtScores"]) >= score_threshold) & ~np.asarray(e["dtIgnore"], bool).reshape(n_t, -1)[0]
        matched = np.asarray(e["dtMatches"]).reshape(n_t, -1) > 0
        tp += matched[:, keep].sum(axis=1)
        n_det += int(keep.sum())
        n_gt += int((~np.asarray(e["gtIgnore"], bool)).sum())
    prec = tp / n_det if n_det else np.ones(n_t)
    rec = tp / n_gt if n_gt else np.zeros(n_t)
    return {float(t): (float(p), float(r)) for t, p, r in zip(iou_thresholds, prec, rec)}


def image_errors(preds, gts, iou_threshold: float = 0.5, score_threshold: float = 0.5):
    """Per image, how many ground-truth boxes are missed and how many detections are wrong.

    preds, gts: as in `coco_eval` (`xyxy` px). Only detections scoring >= score_threshold count. A
    ground-truth box is missed when no detection of its class overlaps it with IoU >=
    iou_threshold; a detection is a false positive when no ground-truth box of its class does
    (a lenient, unmatched count: good for finding failure cases, not for metrics).
    Returns (missed (N,) int, false_positives (N,) int) NumPy arrays, N = number of images.
    """
    from ...boxes import box_iou

    if len(preds) != len(gts):
        raise ValueError(f"preds and gts must have one entry per image, got {len(preds)} and {len(gts)}")
    missed, false_pos = [], []
    for p, g in zip(preds, gts):
        keep = np.asarray(p["scores"]).reshape(-1) >= score_threshold
        pb = np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4)[keep]
        pl = np.asarray(p["labels"]).reshape(-1)[keep]
        gb, gl = np.asarray(g["boxes"], dtype=np.float64).reshape(-1, 4), np.asarray(g["labels"]).reshape(-1)
        hit = (box_iou(gb, pb) >= iou_threshold) & (gl[:, None] == pl[None, :])  # (G, K)
        missed.append(int((~hit.any(1)).sum()))
        false_pos.append(int((~hit.any(0)).sum()))
    return np.array(missed, dtype=np.int64), np.array(false_pos, dtype=np.int64)

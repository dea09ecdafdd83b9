"""COCO's box metrics: AP@[.5:.95], AP50, AP75 and AR@100, computed by course_lib, and a bridge
to the reference implementation (pycocotools) for cross-checks.

COCO's rules, reproduced to the last bit: area range 'all'; at most 100 detections per image and
class (a stable sort by score); greedy matching at each of 10 IoU thresholds 0.50:0.05:0.95
(metrics.matching; crowd boxes ignored, overlap with them over the detection's area); precision
made non-increasing and read at 101 recall points; classes without a regular ground-truth box get
no AP and are left out of the mean.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ._inputs import parse
from .ap import average_precision
from .detection import class_curves, gt_counts, pooled_matches

__all__ = ["COCO_IOU_THRESHOLDS", "coco_evaluate", "to_coco", "pycocotools_evaluate"]

# Built exactly as pycocotools builds them: the same floats, the same matches at the boundaries.
COCO_IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)


def coco_evaluate(preds, gts, max_dets: int = 100) -> dict:
    """COCO's summary box metrics, computed here.

    preds: list per image of dict(boxes (K, 4) `xyxy` pixels, scores (K,), labels (K,));
    gts: list per image of dict(boxes (G, 4) `xyxy` pixels, labels (G,), optional iscrowd (G,)
    bool, optional difficult (G,) bool -- treated as ignore regions with the ordinary IoU).
    max_dets: per image and class, a positive integer (COCO: 100).
    Returns dict(AP=AP@[.5:.95], AP50, AP75, AR100) of floats; NaN when no class has ground truth
    (pycocotools prints -1 there).
    """
    P, G = parse(preds, gts)
    T = len(COCO_IOU_THRESHOLDS)
    ap, ar = [], []
    pooled = pooled_matches(P, G, COCO_IOU_THRESHOLDS, max_dets)
    for c, n in gt_counts(G).items():
        for t in range(T):
            prec, rec, hits = class_curves(pooled, c, t, n)
            ap.append(average_precision(prec, rec, "coco101"))
            ar.append(hits / n)
    if not ap:
        return dict(AP=float("nan"), AP50=float("nan"), AP75=float("nan"), AR100=float("nan"))
    ap = np.array(ap).reshape(-1, T)  # (classes, thresholds)
    return dict(AP=float(ap.mean()), AP50=float(ap[:, 0].mean()), AP75=float(ap[:, 5].mean()),
                AR100=float(np.mean(ar)))


def to_coco(preds, gts):
    """The same detection set in COCO's JSON layout, ready for pycocotools.

    preds, gts: as for coco_evaluate. Image i gets id i + 1; annotations and detections get ids
    from 1; class ids are kept as category ids; boxes become `xywh` pixels; area = w * h;
    difficult boxes become iscrowd=1 (COCO's only ignore flag, which also changes their IoU).
    Returns (ground-truth dataset dict with images, annotations, categories; list of detection
    dicts with image_id, category_id, bbox, score), i.e. what COCO() and COCO.loadRes take.
    """
    P, G = parse(preds, gts)
    labels = np.concatenate([x.labels for x in P + G]) if P else np.zeros(0, np.int64)
    cats = [{"id": int(c), "name": str(int(c))} for c in np.unique(labels)]
    images, anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(P, G)):
        images.append({"id": i + 1})
        for b, c, crowd in zip(g.boxes, g.labels, g.crowd | g.difficult):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c), "iscrowd": int(crowd),
                         "bbox": [float(b[0]), float(b[1]), float(w), float(h)], "area": float(w * h)})
        for b, s, c in zip(p.boxes, p.scores, p.labels):
            dets.append({"image_id": i + 1, "category_id": int(c), "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycocotools_evaluate(preds, gts, verbose: bool = False) -> dict:
    """The same four numbers as coco_evaluate, computed by pycocotools' COCOeval.

    preds, gts: as for coco_evaluate; verbose: let COCOeval print its usual report.
    Returns dict(AP, AP50, AP75, AR100) of floats (-1 where COCOeval finds no ground truth).
    Needs the optional dependency pycocotools (pip install pycocotools).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("pycocotools_evaluate needs pycocotools: pip install pycocotools") from e
    gt, dets = to_coco(preds, gts)
    with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {**gt, "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return dict(AP=float(s[0]), AP50=float(s[1]), AP75=float(s[2]), AR100=float(s[8]))

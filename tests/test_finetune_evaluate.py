"""COCO evaluation through pycocotools: cross-checked against course_lib.metrics and by hand."""
import numpy as np
import pytest

from course_lib import metrics
from course_lib.models.finetune import evaluate


def _random_set(seed, n_images=6, n_classes=3):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        g = rng.integers(0, 5)
        xy = rng.uniform(0, 80, (g, 2))
        gb = np.concatenate([xy, xy + rng.uniform(8, 40, (g, 2))], 1)
        gl = rng.integers(1, n_classes + 1, g)
        k = rng.integers(0, 8)
        src = rng.integers(0, max(g, 1), k)
        pb = gb[src] + rng.normal(0, 4, (k, 4)) if g else rng.uniform(0, 100, (k, 4))
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = gl[src] if g else rng.integers(1, n_classes + 1, k)
        preds.append(dict(boxes=pb, scores=rng.random(k), labels=pl))
        gts.append(dict(boxes=gb, labels=gl))
    return preds, gts


@pytest.mark.parametrize("seed", range(4))
def test_coco_stats_match_course_lib(seed):
    preds, gts = _random_set(seed)
    ours = evaluate.coco_stats(preds, gts)
    ref = metrics.coco_evaluate(preds, gts)
    for k in ("AP", "AP50", "AP75", "AR100"):
        assert ours[k] == pytest.approx(ref[k], abs=1e-9) or (ours[k] == -1 and np.isnan(ref[k]))


def test_ground_truth_is_metrics_to_coco_with_difficult_boxes_ignored():
    # Difficult boxes become COCO ignore regions (iscrowd), as metrics.to_coco writes them.
    preds, gts = _random_set(7)
    rng = np.random.default_rng(7)
    for g in gts:
        g["difficult"] = rng.random(len(g["labels"])) < 0.4
    ev = evaluate.coco_eval(preds, gts)
    ref = metrics.to_coco(preds, gts)[0]["annotations"]
    ours = ev.cocoGt.dataset["annotations"]  # COCOeval adds its own ignore flags
    assert len(ours) == len(ref) and all({k: a[k] for k in r} == r for a, r in zip(ours, ref))
    ours, ref = evaluate.coco_stats(preds, gts), metrics.pycocotools_evaluate(preds, gts)
    for k in ("AP", "AP50", "AP75", "AR100"):
        assert ours[k] == pytest.approx(ref[k], abs=1e-12)


def test_table_text_and_perfect_detections():
    gts = [dict(boxes=np.array([[0, 0, 10, 10], [20, 20, 40, 50.0]]), labels=np.array([1, 2]))]
    preds = [dict(boxes=gts[0]["boxes"], scores=np.array([0.9, 0.8]), labels=gts[0]["labels"])]
    stats, text = evaluate.coco_table(preds, gts)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in text and len(text.splitlines()) == 12


def test_precision_recall_by_hand():
    # One box of 10x10 and a detection shifted by 3 px: IoU = 70 / 130 = 0.538.
    gts = [dict(boxes=np.array([[0, 0, 10, 10.0]]), labels=np.array([1]))]
    preds = [dict(boxes=np.array([[3, 0, 13, 10.0], [50, 50, 60, 60]]), scores=np.array([0.9, 0.7]),
                  labels=np.array([1, 1]))]
    pr = evaluate.precision_recall(preds, gts, iou_thresholds=(0.2, 0.5, 0.8), score_threshold=0.5)
    assert pr[0.2] == pytest.approx((0.5, 1.0)) and pr[0.5] == pytest.approx((0.5, 1.0))
    assert pr[0.8] == pytest.approx((0.0, 0.0))
    assert evaluate.precision_recall(preds, gts, score_threshold=0.8)[0.2] == pytest.approx((1.0, 1.0))


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="the same images"):
        evaluate.coco_stats([], [dict(boxes=np.zeros((0, 4)), labels=np.zeros(0))])


def test_image_errors_counts_misses_and_false_positives():
    gts = [dict(boxes=np.array([[0, 0, 10, 10.0], [20, 20, 30, 30]]), labels=np.array([1, 2])),
           dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64))]
    preds = [dict(boxes=np.array([[0, 0, 10, 10.0], [20, 20, 30, 30], [40, 40, 50, 50]]),
                  scores=np.array([0.9, 0.9, 0.2]), labels=np.array([1, 1, 1])),
             dict(boxes=np.array([[1, 1, 5, 5.0]]), scores=np.array([0.6]), labels=np.array([3]))]
    missed, fp = evaluate.image_errors(preds, gts)
    assert missed.tolist() == [1, 0] and fp.tolist() == [1, 1]

"""The earlier lessons' figures agree with course_lib.metrics, the course's single source of truth."""
import numpy as np
import pytest

from course_lib import metrics

mp5 = pytest.importorskip("course_lib.mp5")


@pytest.mark.parametrize("seed", range(3))
def test_lesson1_recall_at_k_is_metrics_recall_at_k(seed):
    rng = np.random.default_rng(seed)
    B, N1, N2, A = 4, 5, 6, 3
    centres = np.stack(np.meshgrid(np.arange(N1) * 16 + 8.0, np.arange(N2) * 16 + 8.0, indexing="ij"), -1)
    sizes = np.array([[12.0, 12], [20, 10], [10, 20]])
    anchors = np.concatenate(np.broadcast_arrays(centres[:, :, None], sizes[None, None]), -1)  # cxcywh
    Yhat = np.concatenate([rng.normal(0, 0.3, (B, N1, N2, A, 4)), rng.random((B, N1, N2, A, 1))], -1)
    rects = np.zeros((B, 5, 4))
    for b in range(B):  # 0..4 faces near anchors, the rest zero-width rows (unused)
        n = b + 1 if b < 3 else 0
        pick = anchors.reshape(-1, 4)[rng.choice(N1 * N2 * A, n, replace=False)]
        rects[b, :n] = pick + rng.normal(0, 2, (n, 4))
    preds = []
    for b in range(B):
        boxes, scores = mp5.detect_nms(Yhat[b], anchors, 10, 0.3)
        preds.append(dict(boxes=boxes, scores=scores))
    gts = [dict(boxes=metrics_xyxy(r[r[:, 2] > 0])) for r in rects]
    ours = metrics.recall_at_k(preds, gts, k=10, iou_threshold=0.5)
    assert mp5.recall_at_k(Yhat, anchors, rects, k=10, iou_threshold=0.5, nms_threshold=0.3) == pytest.approx(ours)


def metrics_xyxy(cxcywh):
    return np.c_[cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2]

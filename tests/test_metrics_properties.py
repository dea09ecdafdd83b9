"""Properties of course_lib.metrics on generated inputs (hypothesis): AP of ranked TP/FP lists,
ROC AUC against the Mann-Whitney rank statistic, and the invariants of greedy matching."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from course_lib.boxes import box_iou
from course_lib.metrics import (AP_METHODS, average_precision, match_detections, precision_recall_curve,
                                roc_auc, roc_curve, tpr_fpr)

ranked = st.lists(st.booleans(), min_size=1, max_size=40)  # TP/FP of detections in score order


def ap_all(tp, num_gt):
    scores = np.linspace(1, 0, len(tp) + 1)[:-1]  # distinct, decreasing: the list is the ranking
    prec, rec, _ = precision_recall_curve(scores, np.array(tp, bool), num_gt)
    return np.array([average_precision(prec, rec, m) for m in AP_METHODS])


@settings(max_examples=100, deadline=None)
@given(ranked, st.integers(0, 5))
def test_ap_of_a_ranking_is_in_unit_interval_and_ignores_trailing_false_positives(tp, missed):
    num_gt = max(sum(tp), 1) + missed
    ap = ap_all(tp, num_gt)
    assert ((ap >= 0) & (ap <= 1)).all()
    # A false positive below every other detection adds a point of lower precision at the same recall.
    assert (ap_all(tp + [False], num_gt) == ap).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10))
def test_perfect_ranking_scores_one(n, fps):
    assert (ap_all([True] * n + [False] * fps, n) == 1.0).all()
    assert (ap_all([False] + [True] * n, n) < 1.0).all()


@settings(max_examples=100, deadline=None)
@given(ranked, st.data())
def test_ranking_a_true_positive_higher_never_lowers_ap(tp, data):
    swaps = [i for i in range(len(tp) - 1) if not tp[i] and tp[i + 1]]
    if not swaps:
        return
    i = data.draw(st.sampled_from(swaps))
    better = tp[:i] + [True, False] + tp[i + 2:]
    assert (ap_all(better, sum(tp)) >= ap_all(tp, sum(tp)) - 1e-15).all()


def mann_whitney_auc(y, s):
    diff = s[y][:, None] - s[~y][None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


labelled_scores = st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60).filter(
    lambda v: 0 < sum(y for y, _ in v) < len(v))


@settings(max_examples=100, deadline=None)
@given(labelled_scores)
def test_roc_auc_is_the_rank_statistic(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], float) / 6  # few distinct values: many ties
    assert roc_auc(y, s) == pytest.approx(mann_whitney_auc(y, s), abs=1e-12)
    assert roc_auc(y, -s) == pytest.approx(1 - roc_auc(y, s), abs=1e-12)
    fpr, tpr, thr = roc_curve(y, s)
    k = len(thr) // 2
    assert tpr_fpr(y, s, thr[k]) == (tpr[k], fpr[k])


boxes = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 15), st.integers(1, 15)),
                 max_size=8).map(lambda v: np.array([[x, y, x + w, y + h] for x, y, w, h in v], float).reshape(-1, 4))


@settings(max_examples=100, deadline=None)
@given(boxes, boxes, st.sampled_from([0.1, 0.5, 0.75]), st.integers(0, 2**31))
def test_matching_invariants(dets, gts, thr, seed):
    scores = np.random.default_rng(seed).random(len(dets))
    m = match_detections(dets, scores, gts, thr)
    assert (np.diff(scores[m.order]) <= 0).all()
    matched = m.gt_index[0][m.tp[0]]
    assert len(set(matched.tolist())) == len(matched)  # each object at most once
    iou = box_iou(dets[m.order], gts) if len(gts) else np.zeros((len(dets), 0))
    assert (iou[m.tp[0], matched] >= thr).all()
    # An unmatched detection found no free object at the threshold when its turn came.
    for j in np.flatnonzero(~m.tp[0]):
        taken = set(m.gt_index[0][:j][m.tp[0][:j]].tolist())
        assert all(iou[j, g] < thr for g in range(len(gts)) if g not in taken)


def voc_devkit_ap(rec, prec):
    """VOCap of the PASCAL VOC devkit (VOC2010 on), transcribed line by line."""
    mrec, mpre = np.r_[0, rec, 1], np.r_[0, prec, 0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return np.sum((mrec[i] - mrec[i - 1]) * mpre[i])


def voc07_devkit_ap(rec, prec):
    """The 11-point AP of the VOC2007 devkit, transcribed (recall points i / 10, see metrics.ap)."""
    return sum(max(prec[rec >= t], default=0) for t in np.arange(11) / 10) / 11


@settings(max_examples=100, deadline=None)
@given(ranked, st.integers(0, 5))
def test_ap_equals_the_voc_devkit_formulas(tp, missed):
    num_gt = max(sum(tp), 1) + missed
    prec, rec, _ = precision_recall_curve(np.linspace(1, 0, len(tp)), np.array(tp, bool), num_gt)
    assert average_precision(prec, rec, "voc_all") == pytest.approx(voc_devkit_ap(rec, prec), abs=1e-12)
    assert average_precision(prec, rec, "voc07") == pytest.approx(voc07_devkit_ap(rec, prec), abs=1e-12)

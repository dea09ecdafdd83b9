"""Metric inputs that used to give a silent wrong answer: non-integer or NaN labels, thresholds and
counts out of range. Each must raise a ValueError naming the argument."""
import numpy as np
import pytest
import torch

from course_lib.metrics import (auc, average_precision, balanced_error_rate, coco_evaluate, error_rate,
                                match_detections, mean_average_precision, precision_recall_curve,
                                proposal_recall, recall_at_k, tpr_fpr)

BOX = [[0.0, 0, 10, 10]]
FAR = [[50.0, 50, 60, 60]]


def one_image(pred_labels=(1,), gt_labels=(1,), boxes=BOX, **gt):
    preds = [dict(boxes=np.array(boxes * len(pred_labels)), scores=np.linspace(0.9, 0.5, len(pred_labels)),
                  labels=np.array(pred_labels))]
    gts = [dict(boxes=np.array(BOX * len(gt_labels)), labels=np.array(gt_labels), **gt)]
    return preds, gts


@pytest.mark.parametrize("where, labels", [("preds", 1.7), ("preds", np.nan), ("gts", np.nan), ("gts", 0.5),
                                           ("preds", np.inf), ("gts", 1e300)])
def test_non_integer_labels_raise(where, labels):
    # A predicted 1.7 counted as class 1 (AP 1); a NaN ground-truth label became class -2**63.
    preds, gts = one_image((labels,), (1,)) if where == "preds" else one_image((1,), (labels,))
    for fn in (mean_average_precision, coco_evaluate):
        with pytest.raises(ValueError, match=rf"{where}\[0\]\['labels'\]"):
            fn(preds, gts)
    with pytest.raises(ValueError, match="labels"):
        recall_at_k(preds, gts, 1, class_aware=True)
    # Whole numbers stored as floats (or tensors) are class ids like any other.
    preds, gts = one_image((1.0, 2.0), (1.0, 2.0))
    ints = one_image((1, 2), (1, 2))
    assert mean_average_precision(preds, gts) == mean_average_precision(*ints) == (1.0, {1: 1.0, 2: 1.0})
    t = [{k: torch.as_tensor(v) for k, v in d.items()} for d in preds]
    assert mean_average_precision(t, gts)[0] == 1.0


def test_crowd_and_difficult_flags_must_be_0_or_1():
    preds, gts = one_image(iscrowd=np.array([0.5]))
    with pytest.raises(ValueError, match="iscrowd"):
        mean_average_precision(preds, gts)
    preds, gts = one_image(difficult=np.array([np.nan]))
    with pytest.raises(ValueError, match="difficult"):
        coco_evaluate(preds, gts)
    preds, gts = one_image(iscrowd=np.array([1.0]))
    assert np.isnan(mean_average_precision(preds, gts)[0])  # 1.0 is a crowd box: no regular object


@pytest.mark.parametrize("thr", [-1.0, 1.5, np.nan])
def test_recall_iou_threshold_must_be_in_0_1(thr):
    # At iou_threshold -1 a disjoint box counted as finding the object.
    preds, gts = one_image(boxes=FAR)
    assert recall_at_k(preds, gts, 1, 0.01) == 0.0
    with pytest.raises(ValueError, match="iou_threshold"):
        recall_at_k(preds, gts, 1, thr)
    with pytest.raises(ValueError, match="iou_threshold"):
        proposal_recall([p["boxes"] for p in preds], [g["boxes"] for g in gts], 1, thr)
    with pytest.raises(ValueError, match="iou_threshold"):
        mean_average_precision(preds, gts, thr)


@pytest.mark.parametrize("k", [0, -1, 2.5, np.nan, np.inf])
def test_recall_k_must_be_a_positive_integer(k):
    preds, gts = one_image()
    with pytest.raises(ValueError, match="k must"):
        recall_at_k(preds, gts, k)
    assert recall_at_k(preds, gts, 1.0) == recall_at_k(preds, gts, np.int64(1)) == 1.0


@pytest.mark.parametrize("max_dets", [-1, 0, 1.5, np.nan])
def test_max_dets_must_be_a_positive_integer(max_dets):
    # max_dets = -1 silently dropped the last (here: the only correct) detection.
    preds = [dict(boxes=np.array(FAR + BOX), scores=np.array([0.9, 0.5]), labels=np.array([1, 1]))]
    gts = [dict(boxes=np.array(BOX), labels=np.array([1]))]
    with pytest.raises(ValueError, match="max_dets"):
        mean_average_precision(preds, gts, max_dets=max_dets)
    with pytest.raises(ValueError, match="max_dets"):
        coco_evaluate(preds, gts, max_dets=max_dets)
    with pytest.raises(ValueError, match="max_dets"):
        match_detections(preds[0]["boxes"], preds[0]["scores"], gts[0]["boxes"], max_dets=max_dets)
    assert mean_average_precision(preds, gts, max_dets=2.0)[0] == mean_average_precision(preds, gts)[0] == 0.5


def test_classification_labels_must_be_integers():
    # Probabilities passed as predicted classes compared unequal to nothing: error rate 0.
    with pytest.raises(ValueError, match="y_pred"):
        error_rate([0, 1, 1], [0.4, 1.6, 1.9])
    with pytest.raises(ValueError, match="y_true"):
        balanced_error_rate([0, np.nan, 1], [0, 1, 1])
    assert error_rate([0.0, 1.0, 1.0], [0, 1, 0]) == pytest.approx(1 / 3)


def test_other_metric_arguments():
    with pytest.raises(ValueError, match="threshold"):
        tpr_fpr([0, 1], [0.2, 0.8], np.nan)  # no score is >= NaN: TPR and FPR 0
    assert tpr_fpr([0, 1], [0.2, 0.8], -np.inf) == (1.0, 1.0)
    with pytest.raises(ValueError, match="precision and recall"):
        average_precision([np.nan, 1.0], [0.5, 1.0])
    with pytest.raises(ValueError, match="num_gt"):
        precision_recall_curve([0.5], [True], np.nan)
    with pytest.raises(ValueError, match="tp"):
        precision_recall_curve([0.5], [0.5], 1)
    with pytest.raises(ValueError, match="x"):
        auc([0.0, np.nan, 1.0], [0.0, 0.5, 1.0])

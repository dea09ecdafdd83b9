"""Classification metrics: error rates, operating points at a threshold, the ROC curve and its AUC.

Labels are integer class ids (N,); for the binary metrics y_true is (N,) bool or 0/1 (1 = positive)
and scores is (N,) floats, higher meaning "more likely positive". Results are Python floats or
NumPy arrays. Class ids may be stored as floats (2.0), but a non-integer label (a probability
passed for a class) or NaN raises ValueError naming y_true or y_pred.
"""
from __future__ import annotations

import numpy as np

from .._arrays import check_number
from ._inputs import as_numpy, as_vector

__all__ = ["error_rate", "accuracy", "balanced_error_rate", "tpr_fpr", "roc_curve", "auc", "roc_auc"]


def _pair(y_true, y_pred, dtype=np.int64):
    t = as_numpy(y_true, "y_true", dtype)
    if t.ndim != 1:
        raise ValueError(f"y_true must have shape (N,), got {t.shape}")
    return t, as_vector(y_pred, "y_pred", len(t), dtype)


def error_rate(y_true, y_pred) -> float:
    """Fraction of wrong predictions. y_true, y_pred: (N,) class ids. NaN for N = 0."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t != p)) if len(t) else float("nan")


def accuracy(y_true, y_pred) -> float:
    """Fraction of right predictions, 1 - error_rate. y_true, y_pred: (N,) class ids."""
    return 1.0 - error_rate(y_true, y_pred)


def balanced_error_rate(y_true, y_pred) -> float:
    """Mean over the classes present in y_true of each class's error rate (1 - its recall).

    y_true, y_pred: (N,) class ids. Unlike error_rate, a rare class weighs as much as a common one.
    """
    t, p = _pair(y_true, y_pred)
    if not len(t):
        return float("nan")
    classes, idx = np.unique(t, return_inverse=True)
    wrong = np.bincount(idx, weights=(t != p), minlength=len(classes))
    return float(np.mean(wrong / np.bincount(idx, minlength=len(classes))))


def _binary(y_true, scores):
    t = as_numpy(y_true, "y_true")
    if t.ndim != 1 or not np.isin(t, (0, 1)).all():
        raise ValueError(f"y_true must have shape (N,) with values 0/1 or bool, got shape {t.shape}")
    s = as_vector(scores, "scores", len(t))
    pos = int(t.sum())
    if pos == 0 or pos == len(t):
        raise ValueError("y_true must contain both positives and negatives for TPR and FPR")
    return t.astype(bool), s


def tpr_fpr(y_true, scores, threshold: float):
    """True and false positive rates when score >= threshold is called positive.

    y_true: (N,) bool/0-1 with both classes present; scores: (N,); threshold: a number (+-inf
    allowed, NaN raises). Returns (tpr, fpr) floats:
    TPR = TP / positives (recall, sensitivity), FPR = FP / negatives (1 - specificity).
    """
    threshold = check_number(threshold, "threshold")
    t, s = _binary(y_true, scores)
    called = s >= threshold
    return float((called & t).sum() / t.sum()), float((called & ~t).sum() / (~t).sum())


def roc_curve(y_true, scores):
    """The ROC curve: (FPR, TPR) at every distinct threshold, as sklearn.metrics.roc_curve.

    y_true: (N,) bool/0-1 with both classes present; scores: (N,).
    Returns (fpr, tpr, thresholds), each (M + 1,): thresholds are the M distinct scores in
    decreasing order preceded by +inf (nothing called positive, the point (0, 0)). Every threshold
    is kept (sklearn's drop_intermediate=False).
    """
    t, s = _binary(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tps, fps = np.cumsum(t)[last], np.cumsum(~t)[last]
    tpr = np.r_[0.0, tps / t.sum()]
    fpr = np.r_[0.0, fps / (~t).sum()]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc(x, y) -> float:
    """Area under a curve by the trapezoidal rule. x: (M,) monotonic, y: (M,). Returns a float."""
    xs = as_numpy(x, "x")
    if xs.ndim != 1 or len(xs) < 2:
        raise ValueError(f"x must have shape (M,) with M >= 2, got {xs.shape}")
    xs = as_vector(xs, "x", len(xs))
    ys = as_vector(y, "y", len(xs))
    dx = np.diff(xs)
    if (dx < 0).any() and (dx > 0).any():
        raise ValueError("x must be monotonic (increasing or decreasing)")
    return float(abs(np.sum(dx * (ys[1:] + ys[:-1]) / 2)))


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count one half). y_true: (N,) bool/0-1 with both classes; scores: (N,)."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return auc(fpr, tpr)

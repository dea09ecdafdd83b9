"""Which anchor learns which object: SSD matching, Faster R-CNN labelling, balanced sampling.

All functions take an IoU matrix `overlaps` of shape (G, A): ground-truth objects x anchors,
as returned by box_iou(gt_boxes, anchors).
"""
from __future__ import annotations

import torch

from ._arrays import check_count, check_labels, check_number, to_torch

__all__ = ["FORCED", "ssd_match", "ssd_match_batch", "label_anchors", "sample_labels"]

# The overlap written onto an anchor that is some object's best match. Any value above 1 works:
# no real IoU can beat it, so no threshold can drop the match.
FORCED = 1.99


def _check_overlaps(t: torch.Tensor, shape: str = "(G, A) = (objects, anchors)") -> torch.Tensor:
    if t.ndim != shape.split(" = ")[0].count(",") + 1:
        raise ValueError(f"overlaps must have shape {shape}, got {tuple(t.shape)}")
    if t.numel():
        if not torch.isfinite(t).all():
            raise ValueError("overlaps contains NaN or infinite values")
        lo, hi = torch.aminmax(t)
        if lo < 0 or hi > 1:
            raise ValueError(f"overlaps must be IoUs in [0, 1], got values in [{lo.item():g}, {hi.item():g}]")
    return t.float() if not t.is_floating_point() else t


def ssd_match(overlaps, threshold: float = 0.5):
    """SSD / fastai matching: every object gets its best anchor, then any anchor above threshold.

    overlaps: (G, A) IoU of objects x anchors. Step 1: each anchor takes the object it overlaps
    most (`overlaps.max(0)`). Step 2: each object's best anchor (`overlaps.max(1)`) is forced onto
    that object with overlap FORCED (1.99), so that no object is left without an anchor.
    Returns (gt_idx, overlap, positive), each (A,): the matched object index (-1 if G == 0),
    the overlap after forcing, and overlap > threshold.
    threshold: in [0, 1] (1: only the forced matches are positive).

    Errors and edge cases: G == 0 gives no positives, gt_idx -1 and overlap 0 everywhere.
    Overlaps outside [0, 1], NaN, or a threshold outside [0, 1] raise ValueError.
    """
    t, back = to_torch(overlaps, "overlaps")
    t = _check_overlaps(t)
    valid = torch.ones(t.shape[0], dtype=torch.bool, device=t.device)
    gt_idx, overlap, positive = ssd_match_batch(t[None], valid[None], threshold)
    return back(gt_idx[0]), back(overlap[0]), back(positive[0])


def ssd_match_batch(overlaps: torch.Tensor, valid: torch.Tensor, threshold: float = 0.5,
                    labels: torch.Tensor | None = None, num_classes: int | None = None):
    """ssd_match for a batch of images at once, objects padded to a common count G.

    overlaps: (B, G, A) float IoU of objects x anchors per image; valid: (B, G) bool, False for
    padding rows (they match nothing); threshold: in [0, 1]. Same rules as ssd_match; when two
    objects share a best anchor the later one wins. Returns (gt_idx, overlap, positive), each
    (B, A): the matched object's index into G (-1 for an image without valid objects), the
    overlap after forcing (0 there), and overlap > threshold.

    labels, num_classes: optional (B, G) class ids of the objects and the number of classes C,
    checked so that a label cannot pass for something else once gathered through gt_idx: valid
    rows need 0 <= label < C (a 1-based label C would read as background, class C, in SSD's
    C + 1 outputs), padding rows may also hold -1.

    Errors and edge cases: G == 0 or no valid row gives gt_idx -1, overlap 0, no positives.
    Overlaps outside [0, 1], NaN, a threshold outside [0, 1] or bad labels raise ValueError.
    """
    if overlaps.ndim != 3 or valid.shape != overlaps.shape[:2] or valid.dtype != torch.bool:
        raise ValueError(f"overlaps must be (B, G, A) and valid (B, G) bool, "
                         f"got {tuple(overlaps.shape)} and {tuple(valid.shape)} {valid.dtype}")
    threshold = check_number(threshold, "threshold", 0, 1)
    overlaps = _check_overlaps(overlaps, "(B, G, A) = (images, objects, anchors)")
    if labels is not None:
        if num_classes is None:
            raise ValueError("num_classes must be given with labels, to check them")
        num_classes = check_count(num_classes, "num_classes", 1)
        if labels.shape != valid.shape:
            raise ValueError(f"labels must have shape (B, G) = {tuple(valid.shape)}, got {tuple(labels.shape)}")
        lab = check_labels(labels, "labels", num_classes, padding=-1)
        if (lab[valid] < 0).any():
            raise ValueError("labels must be class ids in 0..C-1 for the valid (non-padding) objects, got -1")
    B, G, A = overlaps.shape
    if G == 0:
        zeros = overlaps.new_zeros(B, A)
        return torch.full((B, A), -1, dtype=torch.int64, device=overlaps.device), zeros, zeros > 0
    # Padding rows at -1 never win an anchor from a real object (IoU >= 0).
    t = torch.where(valid[..., None], overlaps, torch.full_like(overlaps, -1.0))
    overlap, gt_idx = t.max(1)
    best = t.argmax(2)                                        # (B, G): each object's best anchor
    src = torch.where(valid, torch.arange(G, device=t.device).expand(B, G), -1)
    owner = torch.full_like(gt_idx, -1).scatter_reduce(1, best, src, "amax")
    forced = owner >= 0
    gt_idx = torch.where(forced, owner, torch.where(overlap >= 0, gt_idx, -1))
    overlap = torch.where(forced, torch.full_like(overlap, FORCED), overlap.clamp(min=0))
    return gt_idx, overlap, overlap > threshold


def label_anchors(overlaps, pos_threshold: float = 0.7, neg_threshold: float = 0.3):
    """Faster R-CNN's RPN labels: 1 object, 0 background, -1 ignored.

    overlaps: (G, A) IoU of objects x anchors (pass only the anchors inside the image).
    Rules, in this order: an anchor whose best IoU is < neg_threshold is 0; an anchor whose best
    IoU is >= pos_threshold is 1; for each object, every anchor tied at that object's highest IoU
    is 1 (ties included, so that an object with no anchor above the threshold still gets one;
    an object that overlaps no anchor at all gets none). Everything else is -1.
    Returns (labels, gt_idx), each (A,) int64: the label, and the best object per anchor
    (-1 if G == 0). Thresholds: 0 <= neg_threshold <= pos_threshold <= 1.

    Errors and edge cases: G == 0 makes every anchor background (0), A == 0 gives empty results.
    Overlaps outside [0, 1], NaN, or thresholds out of order or outside [0, 1] raise ValueError.
    """
    pos_threshold = check_number(pos_threshold, "pos_threshold", 0, 1)
    neg_threshold = check_number(neg_threshold, "neg_threshold", 0, pos_threshold)
    t, back = to_torch(overlaps, "overlaps")
    t = _check_overlaps(t)
    G, A = t.shape
    labels = torch.full((A,), -1, dtype=torch.int64, device=t.device)
    if G == 0:
        return back(labels.zero_()), back(torch.full((A,), -1, dtype=torch.int64, device=t.device))
    if A == 0:
        return back(labels), back(labels.clone())
    best_iou, gt_idx = t.max(0)
    labels[best_iou < neg_threshold] = 0
    labels[best_iou >= pos_threshold] = 1
    per_gt_best = t.max(1, keepdim=True).values
    is_best = ((t == per_gt_best) & (per_gt_best > 0)).any(0)
    labels[is_best] = 1
    return back(labels), back(gt_idx)


def sample_labels(labels, num: int = 256, pos_fraction: float = 0.5, generator: torch.Generator | int | None = None):
    """Keep a random, balanced subset of labelled examples; the rest become -1 (ignored).

    labels: (A,) int with 1 positive, 0 negative, -1 ignored. At most num * pos_fraction positives
    are kept, and negatives fill the rest up to `num`. generator: a torch.Generator or an int seed
    (None uses torch's global generator). Returns (A,) labels of the input type; input untouched.
    num: an integer >= 0; pos_fraction: in [0, 1].

    Errors and edge cases: labels other than -1, 0 and 1 raise ValueError (a label 2 would be
    neither sampled nor ignored).
    """
    t, back = to_torch(labels, "labels")
    if t.ndim != 1:
        raise ValueError(f"labels must have shape (A,), got {tuple(t.shape)}")
    num = check_count(num, "num")
    pos_fraction = check_number(pos_fraction, "pos_fraction", 0, 1)
    if t.numel() and not ((t == -1) | (t == 0) | (t == 1)).all():
        raise ValueError("labels must be 1 (object), 0 (background) or -1 (ignored)")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    out = t.clone()
    pos = (t == 1).nonzero().flatten()
    n_pos = min(int(num * pos_fraction), pos.numel())
    if pos.numel() > n_pos:
        drop = pos[torch.randperm(pos.numel(), generator=generator)[n_pos:].to(pos.device)]
        out[drop] = -1
    neg = (t == 0).nonzero().flatten()
    n_neg = num - n_pos
    if neg.numel() > n_neg:
        drop = neg[torch.randperm(neg.numel(), generator=generator)[n_neg:].to(neg.device)]
        out[drop] = -1
    return back(out)

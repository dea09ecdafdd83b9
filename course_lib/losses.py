"""Detection losses: binary cross-entropy, the focal loss and smooth-L1 (torch, differentiable).

Every loss takes a `reduction`: 'none' (per element), 'sum' or 'mean'; 'mean' of an empty input
is NaN (as in torch), 'sum' of an empty input 0. bce_with_logits, sigmoid_focal_loss and smooth_l1
take torch tensors (differentiable) or NumPy arrays: NumPy in -> NumPy out, torch in -> torch out.
"""
from __future__ import annotations

import math

import torch

from ._arrays import as_float, check_number, to_torch

__all__ = ["bce_with_logits", "sigmoid_focal_loss", "smooth_l1", "sigma_to_beta", "yolo_v1_loss",
           "yolo_v1_loss_terms"]


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def _same_shape(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} and {nb} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _pair(a, b, na: str, nb: str):
    """Two same-shape float tensors (the second in the first's dtype and device), and the function
    that turns a result back into the type of `a`."""
    x, back = to_torch(a, na)
    y, _ = to_torch(b, nb)
    _same_shape(x, y, na, nb)
    x = as_float(x)
    return x, y.to(device=x.device, dtype=x.dtype), back


def _check_probabilities(t: torch.Tensor, name: str) -> None:
    # One pass over the targets: the -1 "ignore" label of label_anchors would otherwise cost
    # max(x, 0) + x + ... instead of nothing, and NaN fails both comparisons.
    if t.numel():
        lo, hi = torch.aminmax(t.detach())
        if not (lo >= 0 and hi <= 1):
            raise ValueError(f"{name} must lie in [0, 1] (1 object, 0 background, soft targets in between), "
                             f"got values in [{lo.item():g}, {hi.item():g}]; drop ignored (-1) entries first")


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy from logits, stable for any logit.

    loss = -[t log s(x) + (1 - t) log(1 - s(x))] = max(x, 0) - x t + log(1 + exp(-|x|)),
    which never takes the log of 0 (s is the sigmoid). logits, targets: the same shape, targets in
    [0, 1] (soft targets allowed); weight: broadcastable per-element weights.

    Errors and edge cases: targets outside [0, 1] or NaN raise ValueError (an ignore label -1
    must be masked out, not passed); 'mean' over no element is NaN.
    """
    logits, targets, back = _pair(logits, targets, "logits", "targets")
    _check_probabilities(targets, "targets")
    loss = logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))
    if weight is not None:
        loss = loss * to_torch(weight, "weight")[0].to(loss.device)
    return back(_reduce(loss, reduction))


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    """The focal loss of RetinaNet (Lin et al., 2017): -alpha_t (1 - p_t)^gamma log(p_t).

    p_t is the predicted probability of the true label, alpha_t = alpha for positives and
    1 - alpha for negatives; alpha in [0, 1], or -1 to turn the weighting off; gamma >= 0.
    gamma = 0, alpha = -1 is BCE. logits, targets: the same shape, targets in {0, 1} (soft targets
    in [0, 1] are accepted, as torchvision does). Same defaults as torchvision.ops.

    Errors and edge cases: where p_t rounds to 1 (a confident, correct logit: |x| >= 17 in
    float32, 37 in float64) the loss and its gradient are 0, also for gamma < 1, whose factor
    (1 - p_t)^gamma has an infinite slope there. gamma < 0, alpha outside [0, 1] other than -1,
    or targets outside [0, 1] raise ValueError.
    """
    gamma = check_number(gamma, "gamma", 0, math.inf, hi_open=True)
    if alpha != -1:
        alpha = check_number(alpha, "alpha (or -1 for no weighting)", 0, 1)
    logits, targets, back = _pair(logits, targets, "logits", "targets")
    p = torch.sigmoid(logits)
    ce = bce_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    base = 1 - p_t
    if gamma >= 1:  # a finite slope on [0, 1]
        modulator = base ** gamma
    else:
        # base ** gamma has an infinite derivative at 0, and backward multiplies it by the
        # sigmoid's zero slope there: NaN. Take the power only where base > 0 (the same values);
        # at 0 the factor is the constant 0 ** gamma, with gradient 0.
        pos = base > 0
        modulator = torch.where(pos, torch.where(pos, base, 1.0) ** gamma, 0.0 ** gamma)
    loss = ce * modulator
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return back(_reduce(loss, reduction))


def sigma_to_beta(sigma: float) -> float:
    """Faster R-CNN writes smooth-L1 with sigma; PyTorch with beta = 1 / sigma^2 (sigma 3 -> 1/9).

    sigma: a positive, finite number (sigma = inf would be beta = 0, plain L1: pass beta=0 instead).
    """
    return 1.0 / check_number(sigma, "sigma", 0, math.inf, lo_open=True, hi_open=True) ** 2


def smooth_l1(input: torch.Tensor, target: torch.Tensor, beta: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Smooth-L1 (Huber-like): 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = input - target.

    The PyTorch convention (`F.smooth_l1_loss(beta=...)`). Papers that write sigma mean
    beta = 1 / sigma^2: see sigma_to_beta. beta = 0 is plain L1; beta must be finite and >= 0.
    'mean' over no element is NaN.
    """
    beta = check_number(beta, "beta", 0, math.inf, hi_open=True)
    input, target, back = _pair(input, target, "input", "target")
    d = (input - target).abs()
    loss = d - 0.5 * beta if beta == 0 else torch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return back(_reduce(loss, reduction))




def _cell_iou(a: torch.Tensor, b: torch.Tensor, S: int) -> torch.Tensor:
    """IoU of paired boxes in the same cell, (..., 4) (x, y, w, h) each -> (...,).

    x, y are offsets in the cell (units of 1/S of the image), w, h fractions of the image. Both
    boxes share the cell's corner, so it cancels and centres x / S, y / S suffice.
    """
    def corners(t):
        centre, half = t[..., :2] / S, t[..., 2:4].clamp(min=0) / 2
        return centre - half, centre + half
    (a1, a2), (b1, b2) = corners(a), corners(b)
    inter = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0).prod(-1)
    union = (a2 - a1).prod(-1) + (b2 - b1).prod(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def _signed_sqrt(t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # A raw network output can be <= 0: keep its sign and a finite gradient at 0.
    return torch.sign(t) * torch.sqrt(t.abs() + eps)


def yolo_v1_loss_terms(pred: torch.Tensor, target: torch.Tensor, S: int = 7, B: int = 2, C: int = 20,
                       lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> dict[str, torch.Tensor]:
    """The five terms of YOLO v1's loss (Redmon et al., 2016), each summed over the cells of an
    image and averaged over the batch, with its lambda weight applied. See `yolo_v1_loss`.

    Returns dict(xy, wh, obj, noobj, cls) of 0-d tensors; their sum is `yolo_v1_loss`.
    """
    if pred.ndim != 4 or tuple(pred.shape[1:]) != (S, S, B * 5 + C):
        raise ValueError(f"pred must have shape (N, S, S, B*5 + C) = (N, {S}, {S}, {B * 5 + C}), "
                         f"got {tuple(pred.shape)}")
    if target.ndim != 4 or tuple(target.shape) != (pred.shape[0], S, S, 5 + C):
        raise ValueError(f"target must have shape (N, S, S, 5 + C) = ({pred.shape[0]}, {S}, {S}, {5 + C}), "
                         f"got {tuple(target.shape)}")
    target = target.to(pred.dtype)
    boxes = pred[..., :B * 5].reshape(*pred.shape[:3], B, 5)        # (N, S, S, B, 5)
    truth, has_obj = target[..., :4], target[..., 4]                 # (N, S, S, 4), (N, S, S)
    if ((has_obj != 0) & (has_obj != 1)).any():
        raise ValueError("target[..., 4] (object in cell) must be 0 or 1")
    # The IoU is a target, not a path for gradients (as in the paper).
    iou = _cell_iou(boxes[..., :4].detach(), truth[..., None, :], S)  # (N, S, S, B)
    # The responsible predictor: the best-overlapping one in a cell with an object (first on ties).
    best = torch.nn.functional.one_hot(iou.argmax(-1), B).to(pred.dtype)
    resp = best * has_obj[..., None]                                  # 1_ij^obj, (N, S, S, B)
    d_xy = (boxes[..., :2] - truth[..., None, :2]).pow(2).sum(-1)
    d_wh = (_signed_sqrt(boxes[..., 2:4]) - truth[..., None, 2:4].clamp(min=0).sqrt()).pow(2).sum(-1)
    conf = boxes[..., 4]
    cls = (pred[..., B * 5:] - target[..., 5:]).pow(2).sum(-1)        # (N, S, S)
    n = max(pred.shape[0], 1)
    return {
        "xy": lambda_coord * (resp * d_xy).sum() / n,
        "wh": lambda_coord * (resp * d_wh).sum() / n,
        "obj": (resp * (conf - iou).pow(2)).sum() / n,
        "noobj": lambda_noobj * ((1 - resp) * conf.pow(2)).sum() / n,
        "cls": (has_obj * cls).sum() / n,
    }


def yolo_v1_loss(pred: torch.Tensor, target: torch.Tensor, S: int = 7, B: int = 2, C: int = 20,
                 lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> torch.Tensor:
    """YOLO v1's sum-squared-error loss (Redmon et al., 2016), summed per image, mean over the batch.

    pred: (N, S, S, B*5 + C), the raw output reshaped to the S x S grid (row i, column j). Last
    axis: B boxes of (x, y, w, h, confidence), then C class probabilities of the cell.
    target: (N, S, S, 5 + C). Last axis: the truth box (x, y, w, h), then 1 if an object's centre
    falls in the cell (else 0), then the one-hot class (C values).
    Boxes per cell: x, y the centre's offset in the cell, in [0, 1] (cell units); w, h the width
    and height as fractions of the image. Targets in cells without an object are ignored.

    In a cell with an object the responsible predictor j is the one whose box has the highest IoU
    with the truth (1_ij^obj = 1; the first on ties). With 1_ij^noobj = 1 - 1_ij^obj and
    1_i^obj = 1 for cells holding an object (hats mark targets, c is a predicted confidence):
        xy     lambda_coord sum 1_ij^obj [(x - x^)^2 + (y - y^)^2]
        wh     lambda_coord sum 1_ij^obj [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
        obj    sum 1_ij^obj (c - IoU(box_ij, truth_i))^2      (the IoU is a constant target)
        noobj  lambda_noobj sum 1_ij^noobj c^2
        cls    sum_i 1_i^obj sum_c (p(c) - p^(c))^2
    Predicted w, h enter as sign(w) sqrt(|w| + 1e-6), so a negative raw output still has a
    finite gradient. Returns a 0-d tensor; N = 0 gives 0.
    """
    return sum(yolo_v1_loss_terms(pred, target, S, B, C, lambda_coord, lambda_noobj).values())

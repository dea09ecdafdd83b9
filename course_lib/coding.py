"""Box coding: boxes as offsets from anchors, and back.

Faster R-CNN coding (Girshick et al.), for anchor (xa, ya, wa, ha) and box (x, y, w, h) in centre
form: tx = (x - xa) / wa, ty = (y - ya) / ha, tw = log(w / wa), th = log(h / ha), each multiplied
by a weight (torchvision's BoxCoder convention; 1, 1, 1, 1 for the RPN).
"""
from __future__ import annotations

import math

import torch

from ._arrays import as_float, check_boxes, check_number, to_torch

__all__ = ["encode", "decode", "tanh_decode", "tanh_reach", "DEFAULT_CLAMP"]

# torchvision's bbox_xform_clip: a box may grow at most 1000/16 times its anchor per side.
DEFAULT_CLAMP = math.log(1000.0 / 16)


def _centre_form(t: torch.Tensor, fmt: str) -> tuple[torch.Tensor, ...]:
    """(first-axis centre, second-axis centre, first size, second size) of xyxy or yxyx boxes."""
    if fmt not in ("xyxy", "yxyx"):
        raise ValueError(f"fmt must be 'xyxy' or 'yxyx', got {fmt!r}")
    s0 = t[..., 2] - t[..., 0]
    s1 = t[..., 3] - t[..., 1]
    return t[..., 0] + 0.5 * s0, t[..., 1] + 0.5 * s1, s0, s1


def _check_weights(weights) -> tuple[float, ...]:
    if len(weights) != 4:
        raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
    return tuple(check_number(w, f"weights[{i}]", 0, math.inf, lo_open=True, hi_open=True)
                 for i, w in enumerate(weights))


def encode(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0), fmt: str = "xyxy"):
    """Offsets that move each anchor onto its box.

    boxes, anchors: (N, 4), both `fmt` ('xyxy' or 'yxyx'), pixels, positive sizes; weights: 4
    positive numbers. Returns (N, 4) deltas: (tx, ty, tw, th) for 'xyxy', (ty, tx, th, tw) for
    'yxyx', times weights.

    Errors and edge cases: a box or an anchor of zero (or negative) width or height raises
    ValueError, naming which: its log-size offset would be -inf (or NaN). Encode only matched,
    real objects, not padding. N = 0 gives an empty (0, 4) result.
    """
    weights = _check_weights(weights)
    b, back = to_torch(boxes, "boxes")
    a, _ = to_torch(anchors, "anchors")
    b, a = check_boxes(b, "boxes", fmt), check_boxes(a, "anchors", fmt)
    if b.shape != a.shape:
        raise ValueError(f"boxes and anchors must have the same shape (N, 4), got {tuple(b.shape)} and {tuple(a.shape)}")
    a = a.to(b.dtype)
    bc0, bc1, bs0, bs1 = _centre_form(b, fmt)
    ac0, ac1, as0, as1 = _centre_form(a, fmt)
    if b.numel() and ((as0 <= 0) | (as1 <= 0)).any():
        raise ValueError("anchors must have positive width and height")
    if b.numel() and ((bs0 <= 0) | (bs1 <= 0)).any():
        raise ValueError("boxes must have positive width and height: a box of zero size has no log-size offset")
    w = torch.as_tensor(weights, dtype=b.dtype, device=b.device)
    d = torch.stack([(bc0 - ac0) / as0, (bc1 - ac1) / as1, torch.log(bs0 / as0), torch.log(bs1 / as1)], dim=-1)
    return back(d * w)


def decode(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0), clamp: float | None = None, fmt: str = "xyxy"):
    """Boxes from anchors and offsets: the inverse of `encode`.

    deltas: (N, 4) as returned by encode for `fmt`; anchors: (N, 4) `fmt` pixels.
    clamp: if given, the log-size offsets are clamped to at most this (e.g. DEFAULT_CLAMP) so that
    an untrained network cannot produce overflowing boxes. weights: 4 positive numbers, as given
    to encode. Returns (N, 4) boxes in `fmt`, pixels.

    Errors and edge cases: a zero-size anchor decodes to a zero-size box at its centre.
    NaN in clamp or weights, and weights <= 0, raise ValueError.
    """
    weights = _check_weights(weights)
    if clamp is not None:
        clamp = check_number(clamp, "clamp")
    d, back = to_torch(deltas, "deltas")
    a, _ = to_torch(anchors, "anchors")
    d = as_float(d)
    a = check_boxes(a, "anchors", fmt).to(d.dtype)
    if d.shape != a.shape:
        raise ValueError(f"deltas and anchors must have the same shape (N, 4), got {tuple(d.shape)} and {tuple(a.shape)}")
    d = d / torch.as_tensor(weights, dtype=d.dtype, device=d.device)
    ac0, ac1, as0, as1 = _centre_form(a, fmt)
    t0, t1, t2, t3 = d.unbind(-1)
    if clamp is not None:
        t2, t3 = t2.clamp(max=clamp), t3.clamp(max=clamp)
    c0, c1 = ac0 + t0 * as0, ac1 + t1 * as1
    s0, s1 = as0 * torch.exp(t2), as1 * torch.exp(t3)
    return back(torch.stack([c0 - 0.5 * s0, c1 - 0.5 * s1, c0 + 0.5 * s0, c1 + 0.5 * s1], dim=-1))


def tanh_decode(activations, anchors):
    """Bounded decoding of raw activations relative to anchors (the fastai SSD convention).

    activations: (..., N, 4) raw network outputs; anchors: (N, 4) `cxcywh`, normalised.
    tanh squashes each activation to (-1, 1): the centre moves by at most half the anchor's width
    and height, and the size is scaled by a factor in (0.5, 1.5). Returns (..., N, 4) `xyxy`,
    normalised (the unit of the anchors). Differentiable (torch in -> torch out).
    """
    t, back = to_torch(activations, "activations")
    a, _ = to_torch(anchors, "anchors")
    a = check_boxes(a, "anchors", "cxcywh").to(t.dtype)
    if t.shape[-2:] != a.shape:
        raise ValueError(f"activations must end in (N, 4) = {tuple(a.shape)}, got {tuple(t.shape)}")
    s = torch.tanh(t)
    centre = a[:, :2] + s[..., :2] / 2 * a[:, 2:]
    size = (s[..., 2:] / 2 + 1) * a[:, 2:]
    return back(torch.cat([centre - size / 2, centre + size / 2], dim=-1))


def tanh_reach(boxes, anchors):
    """How close tanh_decode can bring each anchor's box to each object: (G, A) IoU.

    boxes: (G, 4) `xyxy` objects; anchors: (A, 4) `cxcywh`; both normalised (or both pixels).
    For every pair, the decoded box is the one tanh_decode gets nearest to the object: its centre
    clamped to the anchor's reach (at most half the anchor's size away) and its sides to
    (0.5, 1.5) times the anchor's. That is the best box the anchor can output whenever the
    object's centre lies within its reach, and a lower bound of the best otherwise; tanh only
    approaches the limits, so the IoU is a supremum. Returns (G, A) IoU; torch in -> torch out.
    """
    from .boxes import box_convert

    b_in, back = to_torch(boxes, "boxes")
    a, _ = to_torch(anchors, "anchors")
    b = check_boxes(b_in, "boxes", "xyxy").to(torch.float64)
    a = check_boxes(a, "anchors", "cxcywh").to(torch.float64)
    g = box_convert(b, "xyxy", "cxcywh")[:, None]                  # (G, 1, 4)
    centre = torch.minimum(torch.maximum(g[..., :2], a[:, :2] - a[:, 2:] / 2), a[:, :2] + a[:, 2:] / 2)
    size = torch.minimum(torch.maximum(g[..., 2:], a[:, 2:] / 2), a[:, 2:] * 1.5)
    # the object and its nearest box share the centre on every axis where it is reachable
    lt = torch.maximum(g[..., :2] - g[..., 2:] / 2, centre - size / 2)
    rb = torch.minimum(g[..., :2] + g[..., 2:] / 2, centre + size / 2)
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = g[..., 2:].prod(-1) + size.prod(-1) - inter
    iou = inter / union.clamp(min=torch.finfo(union.dtype).tiny)
    dtype = b_in.dtype if b_in.is_floating_point() else torch.float32
    return back(iou.to(dtype))

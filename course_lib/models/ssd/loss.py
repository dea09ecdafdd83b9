"""Losses of lesson 2: the single-object loss, and the SSD loss over matched anchors.

Targets come padded to one tensor per batch: gt_boxes (B, G, 4) `xyxy` normalised to 0..1 and
gt_labels (B, G) int64 class indices in 0..C-1, where a label of -1 (or a box of zero area) marks
padding. Background is class C, the last logit of the output block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...boxes import box_convert, box_iou
from ...coding import tanh_decode
from ...losses import bce_with_logits, sigmoid_focal_loss
from ...matching import ssd_match_batch

__all__ = ["single_object_loss", "match_targets", "match_batch", "ssd_loss_from_targets", "ssd_loss"]


def single_object_loss(out: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, image_size: float,
                       weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 of a sigmoid-scaled box plus `weight` x cross-entropy of the class, for one object per image.

    out: (B, 4 + C) raw outputs, the first 4 a box; boxes: (B, 4) `xyxy` pixels; labels: (B,) int64;
    image_size: pixels per side, the scale of sigmoid(out[:, :4]). Returns (l1, ce), each a scalar
    (mean over the batch, L1 also over the 4 coordinates); the training loss is l1 + weight * ce.
    """
    if out.ndim != 2 or out.shape[1] < 5 or boxes.shape != (out.shape[0], 4):
        raise ValueError(f"out must be (B, 4 + C) and boxes (B, 4), got {tuple(out.shape)} and {tuple(boxes.shape)}")
    l1 = F.l1_loss(torch.sigmoid(out[:, :4]) * image_size, boxes)
    return l1, weight * F.cross_entropy(out[:, 4:], labels)


def match_targets(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anchors: torch.Tensor, num_classes: int,
                  threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-anchor targets of one image by SSD matching (course_lib.matching.ssd_match): match_batch
    on a batch of one.

    gt_boxes: (G, 4) `xyxy` normalised; gt_labels: (G,) int64, -1 for padding; anchors: (A, 4) `cxcywh`
    normalised. Returns (classes (A,) int64 with num_classes for background, boxes (A, 4) `xyxy` the
    matched object's box (zeros where background), positive (A,) bool).
    """
    if gt_boxes.ndim != 2 or gt_boxes.shape[-1] != 4 or gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(f"gt_boxes must be (G, 4) and gt_labels (G,), "
                         f"got {tuple(gt_boxes.shape)}, {tuple(gt_labels.shape)}")
    classes, boxes, positive = match_batch(gt_boxes[None], gt_labels[None], anchors, num_classes, threshold)
    return classes[0], boxes[0], positive[0]


def match_batch(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anchors: torch.Tensor, num_classes: int,
                threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """match_targets for every image of a batch at once: gt_boxes (B, G, 4) `xyxy` normalised,
    gt_labels (B, G) (-1 = padding); anchors (A, 4) `cxcywh` normalised. Returns classes (B, A) int64
    (num_classes = background), boxes (B, A, 4) `xyxy` normalised (zeros where background),
    positive (B, A) bool, equal to match_targets image by image.

    Without augmentation the targets never change, so they can be computed once per data set.
    """
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4 or gt_boxes.shape[:2] != gt_labels.shape:
        raise ValueError(f"gt_boxes must be (B, G, 4) and gt_labels (B, G), "
                         f"got {tuple(gt_boxes.shape)}, {tuple(gt_labels.shape)}")
    B, G = gt_labels.shape
    A = anchors.shape[0]
    valid = (gt_labels >= 0) & (gt_boxes[..., 2:] > gt_boxes[..., :2]).all(-1)
    anchors_xyxy = box_convert(anchors, "cxcywh", "xyxy").to(gt_boxes.dtype)
    overlaps = box_iou(gt_boxes.reshape(B * G, 4), anchors_xyxy).reshape(B, G, A)
    gt_idx, _, positive = ssd_match_batch(overlaps, valid, threshold, gt_labels, num_classes)
    if G == 0:
        return (torch.full((B, A), num_classes, dtype=torch.int64, device=anchors.device),
                gt_boxes.new_zeros(B, A, 4), positive)
    idx = gt_idx.clamp(min=0)
    labels = gt_labels.gather(1, idx)
    boxes = gt_boxes.gather(1, idx[..., None].expand(B, A, 4))
    classes = torch.where(positive, labels, torch.full_like(labels, num_classes))
    return classes, torch.where(positive[..., None], boxes, torch.zeros_like(boxes)), positive


def ssd_loss_from_targets(logits: torch.Tensor, box_acts: torch.Tensor, classes: torch.Tensor, boxes: torch.Tensor,
                          positive: torch.Tensor, anchors: torch.Tensor, focal: bool = False, alpha: float = 0.25,
                          gamma: float = 2.0, loc_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """ssd_loss with the matching already done (classes, boxes, positive as returned by match_batch).

    logits: (B, A, C+1); box_acts: (B, A, 4); anchors: (A, 4) `cxcywh` normalised.
    Returns (loc_weight * loc, cls) as ssd_loss does.
    """
    B, A, C1 = logits.shape
    if box_acts.shape != (B, A, 4) or anchors.shape != (A, 4) or classes.shape != (B, A):
        raise ValueError(f"need box_acts (B, A, 4) = {(B, A, 4)}, anchors ({A}, 4) and classes ({B}, {A}); got "
                         f"{tuple(box_acts.shape)}, {tuple(anchors.shape)} and {tuple(classes.shape)}")
    n_pos = positive.sum().clamp(min=1)
    pred = tanh_decode(box_acts, anchors.to(box_acts.dtype))
    loc = (pred[positive] - boxes[positive]).abs().sum() / n_pos
    onehot = F.one_hot(classes, C1)[..., :-1].to(logits.dtype)
    x = logits[..., :-1]
    per = sigmoid_focal_loss(x, onehot, alpha, gamma) if focal else bce_with_logits(x, onehot, reduction="none")
    return loc_weight * loc, per.sum() / n_pos


def ssd_loss(logits: torch.Tensor, box_acts: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
             anchors: torch.Tensor, focal: bool = False, alpha: float = 0.25, gamma: float = 2.0,
             threshold: float = 0.5, loc_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSD loss of a batch: L1 on the matched positives' boxes, and a per-class binary loss.

    logits: (B, A, C+1) class logits (the last, background, is not used: background is "none of
    the C classes", a row of zero targets); box_acts: (B, A, 4) activations decoded by tanh_decode
    around anchors (A, 4) `cxcywh` normalised; gt_boxes (B, G, 4) `xyxy` normalised, gt_labels (B, G)
    with -1 for padding. Anchors are matched per image by match_targets (threshold).
    Classification is BCE, or the focal loss (alpha, gamma) when `focal`. Both terms are sums
    divided by the number of positive anchors in the batch (at least 1).
    Returns (loc_weight * loc, cls), two scalars; an image without objects adds only to cls.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, A, C+1), got {tuple(logits.shape)}")
    targets = match_batch(gt_boxes, gt_labels, anchors, logits.shape[-1] - 1, threshold)
    return ssd_loss_from_targets(logits, box_acts, *targets, anchors, focal, alpha, gamma, loc_weight)

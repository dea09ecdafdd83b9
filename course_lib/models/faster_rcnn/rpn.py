"""The Region Proposal Network of Faster R-CNN (Ren et al., 2015): head, anchor targets, loss.

Box formats are explicit: anchors and ground truth are passed in one format `fmt`, 'xyxy'
(course_lib's default) or 'yxyx' (the classic walkthrough), pixels. Location outputs and targets
follow the same format's coding: (tx, ty, tw, th) for 'xyxy', (ty, tx, th, tw) for 'yxyx'.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...anchors import inside_image
from ...boxes import box_convert, box_iou
from ...coding import encode
from ...losses import sigma_to_beta, smooth_l1
from ...matching import label_anchors, sample_labels

__all__ = ["RPNHead", "anchor_targets", "rpn_loss"]


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then sibling 1x1 convs for A x 4 locations and A x 2 scores per cell.

    Weights are drawn from N(0, 0.01) and biases are zero (as in the paper), so an untrained head
    predicts near-zero offsets and 50/50 scores. forward(features (B, C, H, W)) returns
    locs (B, H*W*A, 4) and scores (B, H*W*A, 2) (logits: background, object), ordered y, x, anchor:
    the order of course_lib.anchors.grid_anchors.
    """

    def __init__(self, in_channels: int = 512, mid_channels: int = 512, num_anchors: int = 9):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.loc = nn.Conv2d(mid_channels, num_anchors * 4, 1)
        self.score = nn.Conv2d(mid_channels, num_anchors * 2, 1)
        for layer in (self.conv, self.loc, self.score):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if features.ndim != 4:
            raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
        h = F.relu(self.conv(features))
        B = features.shape[0]
        # NCHW -> NHWC puts the A*K channels of one cell together: rows y, x, anchor, as the anchors.
        locs = self.loc(h).permute(0, 2, 3, 1).reshape(B, -1, 4)
        scores = self.score(h).permute(0, 2, 3, 1).reshape(B, -1, 2)
        return locs, scores


def anchor_targets(anchors, gt_boxes, image_hw: tuple[int, int], num: int = 256, pos_fraction: float = 0.5,
                   pos_threshold: float = 0.7, neg_threshold: float = 0.3,
                   generator: torch.Generator | int | None = None, fmt: str = "xyxy"):
    """RPN training targets for every anchor.

    anchors: (N, 4) and gt_boxes: (G, 4), both `fmt` ('xyxy' or 'yxyx') pixels; image_hw: (h, w).
    Anchors not entirely inside the image are ignored; the others are labelled by
    course_lib.matching.label_anchors (best anchor per object incl. ties, IoU >= pos_threshold
    object, < neg_threshold background) and `num` are sampled with up to num * pos_fraction positives.
    Returns labels (N,) int64 in {1, 0, -1 ignored} and deltas (N, 4) float32 in `fmt`'s coding
    (zero where the anchor is not positive). G == 0 gives only negatives and zero deltas.
    """
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    gt = torch.as_tensor(gt_boxes, dtype=torch.float32, device=anchors.device).reshape(-1, 4)
    xyxy = box_convert(anchors, fmt, "xyxy")
    inside = inside_image(xyxy, image_hw)
    labels = torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    deltas = torch.zeros_like(anchors)
    lab, gt_idx = label_anchors(box_iou(box_convert(gt, fmt, "xyxy"), xyxy[inside]))
    labels[inside] = sample_labels(lab, num, pos_fraction, generator)
    pos = labels == 1
    if pos.any():
        matched = gt[gt_idx[(labels[inside] == 1)]]
        deltas[pos] = encode(matched, anchors[pos], fmt=fmt).float()
    return labels, deltas


def rpn_loss(locs: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, target_deltas: torch.Tensor,
             sigma: float = 3.0, lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The RPN loss: cross-entropy on sampled anchors + lam x smooth-L1 over positives.

    locs: (..., N, 4) predicted offsets; scores: (..., N, 2) logits (background, object);
    labels: (..., N) in {1, 0, -1 ignored}; target_deltas: (..., N, 4), same coding as locs.
    The classification term averages over the anchors with label >= 0; the location term sums
    smooth-L1 (beta = 1 / sigma^2) over positive anchors and divides by their count (at least 1).
    Returns (cls_loss, loc_loss), two scalars; loc_loss already includes lam.
    """
    if locs.shape != target_deltas.shape or locs.shape[:-1] != labels.shape or scores.shape[:-1] != labels.shape:
        raise ValueError(f"need locs (..., N, 4), scores (..., N, 2), labels (..., N), target_deltas like locs; "
                         f"got {tuple(locs.shape)}, {tuple(scores.shape)}, {tuple(labels.shape)}, "
                         f"{tuple(target_deltas.shape)}")
    labels = labels.reshape(-1)
    sampled = labels >= 0
    cls = F.cross_entropy(scores.reshape(-1, 2)[sampled], labels[sampled], reduction="sum") / sampled.sum().clamp(min=1)
    pos = labels == 1
    loc = smooth_l1(locs.reshape(-1, 4)[pos], target_deltas.reshape(-1, 4)[pos], beta=sigma_to_beta(sigma),
                    reduction="sum")
    return cls, lam * loc / pos.sum().clamp(min=1)

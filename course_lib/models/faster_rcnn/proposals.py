"""From RPN outputs to RoIs: the proposal layer, and the RoI sampling that trains the second stage.

Box formats are explicit: every box argument is in `fmt`, 'xyxy' (course_lib's default) or 'yxyx'
(the classic walkthrough), pixels; offsets use that format's coding (see course_lib.coding).
IoU, clipping and NMS run in 'xyxy' internally.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...boxes import box_convert, box_iou, clip_boxes, remove_small_boxes
from ...coding import DEFAULT_CLAMP, decode, encode
from ...nms import nms

__all__ = ["ProposalConfig", "propose", "ProposalLayer", "sample_rois"]


@dataclass(frozen=True)
class ProposalConfig:
    """How many boxes the proposal layer keeps: top-N before NMS and after it, in training and test."""

    pre_nms_train: int = 12000
    post_nms_train: int = 2000
    pre_nms_test: int = 6000
    post_nms_test: int = 300
    nms_threshold: float = 0.7
    min_size: float = 16.0


def propose(locs, objectness, anchors, image_hw: tuple[int, int], pre_nms: int = 12000, post_nms: int = 2000,
            nms_threshold: float = 0.7, min_size: float = 16.0, fmt: str = "xyxy"):
    """The proposal layer for one image.

    locs: (N, 4) offsets in `fmt`'s coding; objectness: (N,) scores (any monotone score, e.g. the
    softmax object probability); anchors: (N, 4) `fmt` pixels; image_hw: (height, width).
    Steps: decode, clip to the image, drop boxes with a side < min_size, sort by score, keep the
    top pre_nms, NMS at nms_threshold, keep the top post_nms.
    Returns rois (K, 4) `fmt` pixels and their scores (K,), in descending score order (no gradient).
    """
    locs, objectness, anchors = locs.detach(), objectness.detach(), torch.as_tensor(anchors).to(locs)
    if locs.shape != anchors.shape or objectness.shape != locs.shape[:1]:
        raise ValueError(f"need locs (N, 4), objectness (N,), anchors (N, 4); got {tuple(locs.shape)}, "
                         f"{tuple(objectness.shape)}, {tuple(anchors.shape)}")
    boxes = clip_boxes(box_convert(decode(locs, anchors, clamp=DEFAULT_CLAMP, fmt=fmt), fmt, "xyxy"), image_hw)
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores = boxes[keep], objectness[keep]
    order = torch.sort(scores, descending=True, stable=True).indices[:pre_nms]
    boxes, scores = boxes[order], scores[order]
    keep = nms(boxes, scores, nms_threshold)[:post_nms]
    return box_convert(boxes[keep], "xyxy", fmt), scores[keep]


class ProposalLayer(nn.Module):
    """`propose` with the train / test counts of a ProposalConfig, chosen by the module's mode.

    forward(locs (N, 4), objectness (N,), anchors (N, 4) `fmt`, image_hw) -> rois (K, 4) `fmt`, scores (K,).
    """

    def __init__(self, config: ProposalConfig = ProposalConfig(), fmt: str = "xyxy"):
        super().__init__()
        self.config, self.fmt = config, fmt

    def forward(self, locs, objectness, anchors, image_hw):
        c = self.config
        pre, post = (c.pre_nms_train, c.post_nms_train) if self.training else (c.pre_nms_test, c.post_nms_test)
        return propose(locs, objectness, anchors, image_hw, pre, post, c.nms_threshold, c.min_size, self.fmt)


def sample_rois(rois, gt_boxes, gt_labels, num: int = 128, pos_fraction: float = 0.25, pos_iou: float = 0.5,
                neg_iou: tuple[float, float] = (0.0, 0.5), weights=(10.0, 10.0, 5.0, 5.0), append_gt: bool = True,
                generator: torch.Generator | int | None = None, fmt: str = "xyxy"):
    """Sample the RoIs that train the Fast R-CNN head, with their classes and box targets.

    rois: (R, 4) and gt_boxes: (G, 4), both `fmt` pixels; gt_labels: (G,) int classes in 1..C
    (0 is background). With append_gt the ground-truth boxes join the candidates (so every object
    has at least one positive). Up to num * pos_fraction RoIs with IoU >= pos_iou are positives;
    negatives (best IoU in [neg_iou[0], neg_iou[1])) fill the rest, without replacement.
    Returns rois (S, 4) `fmt`, labels (S,) int64 (0 for negatives), and targets (S, 4) in `fmt`'s
    coding times `weights` (zero for negatives), positives first; S <= num.
    """
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    rois = torch.as_tensor(rois, dtype=torch.float32).reshape(-1, 4)
    dev = rois.device
    gt = torch.as_tensor(gt_boxes, dtype=torch.float32, device=dev).reshape(-1, 4)
    gt_labels = torch.as_tensor(gt_labels, dtype=torch.int64, device=dev).reshape(-1)
    if gt_labels.shape[0] != gt.shape[0]:
        raise ValueError(f"gt_labels must have shape (G,) = ({gt.shape[0]},), got {tuple(gt_labels.shape)}")
    if append_gt:
        rois = torch.cat([rois, gt])
    if gt.shape[0]:
        best_iou, gt_idx = box_iou(box_convert(gt, fmt, "xyxy"), box_convert(rois, fmt, "xyxy")).max(0)
    else:
        best_iou = torch.zeros(rois.shape[0], device=dev)
        gt_idx = torch.zeros(rois.shape[0], dtype=torch.int64, device=dev)
    pos = (best_iou >= pos_iou).nonzero().flatten()
    neg = ((best_iou >= neg_iou[0]) & (best_iou < neg_iou[1])).nonzero().flatten()
    pos = pos[torch.randperm(pos.numel(), generator=generator)[: int(num * pos_fraction)].to(dev)]
    neg = neg[torch.randperm(neg.numel(), generator=generator)[: num - pos.numel()].to(dev)]
    keep = torch.cat([pos, neg])
    labels = torch.zeros(keep.numel(), dtype=torch.int64, device=dev)
    targets = torch.zeros(keep.numel(), 4, device=dev)
    if pos.numel():
        labels[: pos.numel()] = gt_labels[gt_idx[pos]]
        targets[: pos.numel()] = encode(gt[gt_idx[pos]], rois[pos], weights, fmt=fmt)
    return rois[keep], labels, targets

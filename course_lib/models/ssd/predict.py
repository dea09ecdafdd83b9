"""From SSD outputs to detections: scores, bounded box decoding, per-class NMS, top-k."""
from __future__ import annotations

import torch

from ...coding import tanh_decode
from ...nms import batched_nms

__all__ = ["decode_predictions"]


def decode_predictions(logits: torch.Tensor, box_acts: torch.Tensor, anchors: torch.Tensor, image_size: float,
                       score_threshold: float = 0.1, iou_threshold: float | None = 0.45,
                       top_k: int = 100) -> list[dict]:
    """Per-image detections from a batch of SSD outputs.

    logits: (B, A, C+1) (the background logit is dropped; scores are per-class sigmoids);
    box_acts: (B, A, 4); anchors: (A, 4) `cxcywh` normalised; image_size: pixels per side.
    Every (anchor, class) pair scoring > score_threshold is a candidate; NMS per class with
    iou_threshold (None: no NMS), then the top_k best. Returns a list of B dicts with boxes (K, 4)
    `xyxy` pixels clipped to the image, scores (K,), labels (K,) int64, in descending score order.
    """
    if logits.ndim != 3 or box_acts.shape != (*logits.shape[:2], 4):
        raise ValueError(f"logits must be (B, A, C+1) and box_acts (B, A, 4), "
                         f"got {tuple(logits.shape)}, {tuple(box_acts.shape)}")
    with torch.no_grad():
        scores = torch.sigmoid(logits[..., :-1].float())
        boxes = (tanh_decode(box_acts.float(), anchors.float()) * image_size).clamp(0, image_size)
    out = []
    for s, b in zip(scores, boxes):
        a_idx, labels = (s > score_threshold).nonzero(as_tuple=True)
        bx, sc = b[a_idx], s[a_idx, labels]
        if iou_threshold is None:
            keep = torch.sort(sc, descending=True, stable=True).indices
        else:
            keep = batched_nms(bx, sc, labels, iou_threshold)
        keep = keep[:top_k]
        out.append(dict(boxes=bx[keep].cpu(), scores=sc[keep].cpu(), labels=labels[keep].cpu()))
    return out

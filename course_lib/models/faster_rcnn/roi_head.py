"""The second stage of Faster R-CNN: RoI pooling, the Fast R-CNN head (Girshick, 2015) and its loss.

RoIs given to the pooling are (K, 5) rows [batch_index, x1, y1, x2, y2]: `xyxy` pixels of the input
image, torchvision's convention (convert 'yxyx' RoIs with course_lib.boxes.box_convert first).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_pool

from ...boxes import clip_boxes, remove_small_boxes
from ...coding import DEFAULT_CLAMP, decode
from ...losses import sigma_to_beta, smooth_l1
from ...nms import batched_nms

__all__ = ["roi_pool_reference", "RoIPool", "FastRCNNHead", "roi_loss", "detect_boxes"]


def _check_rois(features: torch.Tensor, rois: torch.Tensor) -> None:
    if features.ndim != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must have shape (K, 5) = [batch_index, x1, y1, x2, y2], got {tuple(rois.shape)}")


def _round(v: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (torch.round rounds halves to even)."""
    return (torch.sign(v) * torch.floor(v.abs() + 0.5)).long()


def _bins(lo: torch.Tensor, hi: torch.Tensor, n: int, size: int,
          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end cells (K, n) of n bins over cells lo..hi (inclusive), clipped to [0, size].

    The bin edges are computed in `dtype`, the features' type, as torchvision's kernel does: in
    float32, 7 * (29 / 7) is not 29, and the last bin takes one row more than in float64."""
    length = (hi - lo + 1).clamp(min=1).to(dtype)
    step = length[:, None] / n
    p = torch.arange(n, dtype=dtype, device=lo.device)
    start = torch.floor(p * step).long() + lo[:, None]
    end = torch.ceil((p + 1) * step).long() + lo[:, None]
    return start.clamp(0, size), end.clamp(0, size)


def roi_pool_reference(features: torch.Tensor, rois: torch.Tensor, output_size=(7, 7),
                       spatial_scale: float = 1 / 16) -> torch.Tensor:
    """RoI max pooling written out in torch (Girshick, 2015), equal to torchvision.ops.roi_pool.

    features: (B, C, H, W); rois: (K, 5) [batch_index, x1, y1, x2, y2] `xyxy` image pixels;
    spatial_scale: feature cells per image pixel (1/16 for VGG16's conv5). Each RoI is rounded to
    whole cells, split into output_size bins (floor / ceil edges) and each bin keeps its maximum;
    an empty bin gives 0. Returns (K, C, ph, pw). Slower than torchvision: for reading.
    """
    _check_rois(features, rois)
    ph, pw = output_size
    B, C, H, W = features.shape
    # torchvision computes in the features' type T, the scale included (T * T): so do we.
    dtype = features.dtype
    scaled = rois[:, 1:].to(dtype) * torch.tensor(spatial_scale, dtype=dtype, device=rois.device)
    x1, y1, x2, y2 = _round(scaled).unbind(1)
    hs, he = _bins(y1, y2, ph, H, dtype)
    ws, we = _bins(x1, x2, pw, W, dtype)
    empty = (he <= hs)[:, :, None] | (we <= ws)[:, None, :]              # (K, ph, pw)
    # Slices need at least one cell; bins that are really empty are zeroed at the end.
    hs, ws = hs.clamp(max=H - 1), ws.clamp(max=W - 1)
    he, we = torch.maximum(he, hs + 1), torch.maximum(we, ws + 1)
    hs, he, ws, we, b = hs.tolist(), he.tolist(), ws.tolist(), we.tolist(), rois[:, 0].long().tolist()
    out = []
    # A loop over RoIs and bins, the way the paper describes it: each bin is a different slice.
    for k in range(rois.shape[0]):
        f = features[b[k], :, hs[k][0]:max(he[k])]                                           # the RoI's rows
        hs_k, he_k = [v - hs[k][0] for v in hs[k]], [v - hs[k][0] for v in he[k]]
        cols = torch.stack([f[:, :, ws[k][j]:we[k][j]].amax(-1) for j in range(pw)], -1)      # (C, rows, pw)
        out.append(torch.stack([cols[:, hs_k[i]:he_k[i]].amax(1) for i in range(ph)], 1))  # (C, ph, pw)
    pooled = torch.stack(out) if out else features.new_zeros(0, C, ph, pw)
    return pooled.masked_fill(empty[:, None], 0.0)


class RoIPool(nn.Module):
    """RoI max pooling (torchvision.ops.roi_pool): (B, C, H, W) features and (K, 5) RoIs
    [batch_index, x1, y1, x2, y2] `xyxy` image pixels -> (K, C, *output_size)."""

    def __init__(self, output_size=(7, 7), spatial_scale: float = 1 / 16):
        super().__init__()
        self.output_size, self.spatial_scale = tuple(output_size), float(spatial_scale)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        _check_rois(features, rois)
        return roi_pool(features, rois.to(features.dtype), self.output_size, self.spatial_scale)


class FastRCNNHead(nn.Module):
    """Flatten the pooled RoI, two fully connected layers each followed by ReLU, then sibling outputs.

    forward(pooled (K, C, ph, pw)) returns box deltas (K, num_classes * 4) (one set of offsets per
    class, background included, in the coding of the RoIs' format) and class logits (K, num_classes),
    num_classes counting the background as class 0. The outputs start small: N(0, 0.001) for boxes
    and N(0, 0.01) for scores, zero bias.
    """

    def __init__(self, in_features: int = 512 * 7 * 7, hidden: int = 4096, num_classes: int = 21):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.loc = nn.Linear(hidden, num_classes * 4)
        self.score = nn.Linear(hidden, num_classes)
        for layer, std in ((self.loc, 0.001), (self.score, 0.01)):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Without the ReLUs the two layers would collapse into one linear map.
        h = F.relu(self.fc2(F.relu(self.fc1(pooled.flatten(1)))))
        return self.loc(h), self.score(h)


def roi_loss(box_deltas: torch.Tensor, class_logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
             sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The Fast R-CNN loss: cross-entropy over the sampled RoIs + smooth-L1 on the true class's box.

    box_deltas: (S, num_classes * 4); class_logits: (S, num_classes); labels: (S,) int64, 0 =
    background; targets: (S, 4) in the coding of box_deltas. Only positive RoIs (label > 0) have a
    box term, read from the four outputs of their ground-truth class; it is summed (beta =
    1 / sigma^2) and divided by the number of sampled RoIs S, as in the reference implementations.
    Returns (cls_loss, loc_loss), two scalars.
    """
    S = labels.shape[0]
    if class_logits.shape[0] != S or box_deltas.shape != (S, class_logits.shape[1] * 4) or targets.shape != (S, 4):
        raise ValueError(f"need box_deltas (S, C*4), class_logits (S, C), labels (S,), targets (S, 4); got "
                         f"{tuple(box_deltas.shape)}, {tuple(class_logits.shape)}, {tuple(labels.shape)}, "
                         f"{tuple(targets.shape)}")
    cls = F.cross_entropy(class_logits, labels, reduction="sum") / max(S, 1)
    pos = (labels > 0).nonzero().flatten()
    chosen = box_deltas.reshape(S, -1, 4)[pos, labels[pos]]
    loc = smooth_l1(chosen, targets[pos], beta=sigma_to_beta(sigma), reduction="sum") / max(S, 1)
    return cls, loc


def detect_boxes(box_deltas: torch.Tensor, class_logits: torch.Tensor, rois: torch.Tensor, image_hw,
                 weights=(10.0, 10.0, 5.0, 5.0), score_threshold: float = 0.05, nms_threshold: float = 0.3,
                 top_k: int = 100):
    """Detections of one image from the Fast R-CNN head's outputs.

    box_deltas: (R, (C + 1) * 4) in the 'xyxy' coding times `weights`; class_logits: (R, C + 1),
    class 0 = background; rois: (R, 4) `xyxy` pixels; image_hw: (height, width).
    Every RoI gives one box per object class (decoded from that class's offsets, clipped), scored
    by the softmax probability; boxes under score_threshold go, NMS runs per class, the top_k stay.
    Returns boxes (K, 4) `xyxy` pixels, scores (K,), labels (K,) int64 in 0..C-1 (background
    removed), in descending score order.
    """
    R, C1 = class_logits.shape
    probs = class_logits.detach().softmax(-1)[:, 1:]                                 # (R, C)
    deltas = box_deltas.detach().reshape(R, C1, 4)[:, 1:].reshape(-1, 4)            # (R * C, 4)
    anchors = rois.detach().repeat_interleave(C1 - 1, dim=0)
    boxes = clip_boxes(decode(deltas, anchors, weights, clamp=DEFAULT_CLAMP), image_hw)
    scores = probs.reshape(-1)
    labels = torch.arange(C1 - 1, device=rois.device).repeat(R)
    keep = remove_small_boxes(boxes, 1e-2)
    keep = keep[scores[keep] > score_threshold]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:top_k]
    return boxes[keep], scores[keep], labels[keep]

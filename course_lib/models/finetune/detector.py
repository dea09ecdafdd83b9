"""torchvision's Faster R-CNN, built two ways, and the profile that chooses between them.

`quick` (offline, CPU): a tiny BatchNorm conv backbone trained from scratch, one stride-8 feature
map, anchors and RoI-align sized for 10-60 px objects in 128 px images, a 256-wide box head and
few proposals, so one batch costs well under a second on 2 CPU cores.
`full` (online, GPU): `fasterrcnn_resnet50_fpn` with COCO weights (Ren et al., 2015; Lin et al., 2017).
Either way `replace_predictor` swaps the last layer for a new set of classes, the step that
turns a trained detector into a detector of *your* objects.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import MultiScaleRoIAlign

__all__ = ["DetectorProfile", "QUICK", "FULL", "PROFILES", "tiny_backbone", "GridRoIAlign", "tiny_fasterrcnn",
           "resnet50_fpn", "build_detector", "replace_predictor", "count_parameters"]


TINY_VERSION = 2  # part of the pre-training cache key: bump when tiny_fasterrcnn changes


@dataclass(frozen=True)
class DetectorProfile:
    """Everything lesson 4 sizes by profile. Iterations count batches (the training budget)."""

    name: str
    backbone: str            # "tiny" (from scratch) or "resnet50_fpn" (COCO weights)
    data: str                # "shapes" (synthetic target set on disk) or "pennfudan"
    image_size: int          # synthetic image side in pixels (quick only)
    width: int               # channels of the tiny backbone (quick only)
    max_objects: int         # most objects per synthetic image (quick only)
    style: str               # "plain" or "cluttered" synthetic images (quick only, see datasets.shapes)
    n_source: int            # synthetic source images for pre-training (quick only)
    n_target: int            # target images written to disk (quick only)
    n_test: int              # held-out target images
    pretrain_iters: int
    finetune_iters: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: float = 0.75    # the LR drops by lr_gamma after this fraction of the iterations
    lr_gamma: float = 0.1

    def key(self) -> str:
        """A short stable hash of the fields that decide the pre-trained weights (cache key)."""
        import hashlib
        import json

        fields = {k: v for k, v in asdict(self).items() if k not in ("finetune_iters", "n_target", "n_test")}
        fields["tiny_version"] = TINY_VERSION
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


QUICK = DetectorProfile(
    name="quick", backbone="tiny", data="shapes", image_size=96, width=64, max_objects=3, style="plain",
    n_source=600, n_target=100, n_test=40, pretrain_iters=800, finetune_iters=300, batch_size=4,
    lr=0.02,
)
FULL = DetectorProfile(
    name="full", backbone="resnet50_fpn", data="pennfudan", image_size=0, width=0, max_objects=0, style="",
    n_source=0, n_target=170,
    n_test=50, pretrain_iters=0, finetune_iters=600, batch_size=2, lr=0.005, weight_decay=5e-4,
)
PROFILES = {"quick": QUICK, "full": FULL}


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def tiny_backbone(width: int = 128) -> nn.Sequential:
    """Six 3x3 conv-BN-ReLU layers, stride 8: (B, 3, H, W) -> (B, width, H/8, W/8).

    Carries `out_channels` as torchvision's detectors expect.
    """
    w = width
    net = nn.Sequential(_conv(3, w // 4, 2), _conv(w // 4, w // 4, 1), _conv(w // 4, w // 2, 2),
                        _conv(w // 2, w // 2, 1), _conv(w // 2, w, 2), _conv(w, w, 1))
    net.out_channels = w
    return net


class GridRoIAlign(MultiScaleRoIAlign):
    """RoI align on one feature map with one bilinear sample per bin, through `grid_sample`.

    The same numbers as torchvision's `roi_align(..., sampling_ratio=1, aligned=False)` for boxes
    inside the image (at the border it clamps to the edge pixels), but its backward pass runs
    several times faster on a CPU, where RoI pooling dominates the cost of a small detector.
    A drop-in `box_roi_pool` for torchvision's FasterRCNN:
    forward(features {name: (B, C, h, w)}, proposals list of (K_b, 4) `xyxy` pixels of the
    (resized) input images, image_shapes list of (H, W)) -> (sum K_b, C, output_size, output_size).
    """

    def __init__(self, featmap_name: str = "0", output_size: int = 7):
        super().__init__([featmap_name], output_size, sampling_ratio=1)
        self.featmap_name = featmap_name
        self.output_size = int(output_size)

    def forward(self, features, proposals, image_shapes):
        x = features[self.featmap_name]
        h, w = x.shape[-2:]
        height = max(s[0] for s in image_shapes)
        scale = 2.0 ** round(torch.log2(torch.tensor(h / height)).item())  # as torchvision infers it
        k = self.output_size
        centres = (torch.arange(k, dtype=x.dtype, device=x.device) + 0.5) / k  # bin centres in 0..1
        out = []
        for b, boxes in enumerate(proposals):
            x1, y1, x2, y2 = (boxes.to(x.dtype) * scale).unbind(1)                # feature-map pixels
            bw, bh = (x2 - x1).clamp(min=1.0), (y2 - y1).clamp(min=1.0)        # as roi_align does
            px, py = x1[:, None] + bw[:, None] * centres, y1[:, None] + bh[:, None] * centres  # (K, k)
            # grid_sample(align_corners=False) puts feature pixel i at (2 i + 1) / size - 1
            gx, gy = (2 * px + 1) / w - 1, (2 * py + 1) / h - 1
            grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)  # (K, k, k, 2)
            y = F.grid_sample(x[b:b + 1], grid.reshape(1, -1, k, 2), mode="bilinear",
                              padding_mode="border", align_corners=False)          # (1, C, K k, k)
            out.append(y.reshape(x.shape[1], -1, k, k).transpose(0, 1))
        return torch.cat(out)


def tiny_fasterrcnn(num_classes: int, image_size: int = 128, width: int = 128,
                    representation: int = 256, head: str = "mlp") -> nn.Module:
    """A small torchvision FasterRCNN for `image_size` px images, from scratch.

    num_classes counts the background (objects + 1). One stride-8 map; 12 anchors per position
    (sizes 12/24/48/96 px, h/w ratios 0.5/1/2); RoI-align 7x7; a two-layer box head `representation`
    wide; RPN keeps 300 proposals in training, 100 at test; 128 sampled RoIs per image. The RoI
    pooling is `GridRoIAlign` (RoI align with one sample per bin, cheaper to train on a CPU).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead

    backbone = tiny_backbone(width)
    anchors = AnchorGenerator(sizes=((12, 24, 48, 96),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = GridRoIAlign("0", output_size=7)  # = MultiScaleRoIAlign(["0"], 7, sampling_ratio=1), faster on CPU
    if head == "conv":
        box_head = FastRCNNConvFCHead((width, 7, 7), [width, width], [representation], nn.BatchNorm2d)
    elif head == "mlp":
        box_head = TwoMLPHead(width * 7 * 7, representation)
    else:
        raise ValueError(f"head must be 'conv' or 'mlp', got {head!r}")
    return FasterRCNN(
        backbone, num_classes=None, min_size=image_size, max_size=image_size,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, rpn_batch_size_per_image=128,
        box_roi_pool=roi_pool, box_head=box_head,
        box_predictor=FastRCNNPredictor(representation, num_classes), box_batch_size_per_image=128,
        box_detections_per_img=100,
    )


def resnet50_fpn(weights: str | None = "DEFAULT") -> nn.Module:
    """torchvision's `fasterrcnn_resnet50_fpn` with COCO weights (91 classes); needs the internet
    the first time (the weights go to torch's hub cache, through
    course_lib.datasets.download.fetch_pretrained). Offline and not cached, it stops at once."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

    from ...datasets.download import fetch_pretrained

    if weights is not None:
        weights = fetch_pretrained(FasterRCNN_ResNet50_FPN_Weights.verify(weights),
                                   "the COCO weights of fasterrcnn_resnet50_fpn")
    return fasterrcnn_resnet50_fpn(weights=weights)


def build_detector(profile: DetectorProfile, num_classes: int, pretrained: bool = True) -> nn.Module:
    """The profile's starting detector: tiny from scratch (num_classes incl. background), or
    fasterrcnn_resnet50_fpn with COCO weights (pretrained=True, 91 classes) or random weights
    everywhere (pretrained=False, num_classes; the from-scratch baseline)."""
    if profile.backbone == "tiny":
        return tiny_fasterrcnn(num_classes, profile.image_size, profile.width)
    if profile.backbone == "resnet50_fpn":
        if not pretrained:
            from torchvision.models.detection import fasterrcnn_resnet50_fpn

            return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)
        return resnet50_fpn("DEFAULT")
    raise ValueError(f"profile.backbone must be 'tiny' or 'resnet50_fpn', got {profile.backbone!r}")


def replace_predictor(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the box predictor for a fresh FastRCNNPredictor(in_features, num_classes), in place.

    num_classes counts the background. The backbone, RPN and box head keep their weights.
    Returns the model.
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (objects + background), got {num_classes}")
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

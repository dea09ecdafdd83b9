"""Faster R-CNN (Ren et al., 2015) assembled from course_lib's parts.

backbone -> feature map (stride 8 or 16) -> RPN head -> proposal layer -> RoI pooling ->
Fast R-CNN head -> per-class boxes. The model works in `xyxy` pixels of the input image throughout
(the lesson's walkthrough shows the same steps in `yxyx`). Class labels outside the model are
0-based object classes; inside, the heads use 0 for background and 1..C for the objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...anchors import anchor_base, grid_anchors
from ..normalize import ImageNetNormalize
from .proposals import ProposalConfig, ProposalLayer, sample_rois
from .roi_head import FastRCNNHead, RoIPool, detect_boxes, roi_loss
from .rpn import RPNHead, anchor_targets, rpn_loss

__all__ = ["LOSS_NAMES", "FasterRCNNProfile", "QUICK", "FULL", "PROFILES", "get_profile", "BackboneAdapter",
           "small_backbone", "vgg16_backbone", "canonical_backbone", "FasterRCNN", "build_faster_rcnn"]

LOSS_NAMES = ("rpn_cls", "rpn_loc", "roi_cls", "roi_loc")


@dataclass(frozen=True)
class FasterRCNNProfile:
    """Everything that differs between the `quick` and `full` runs of lesson 3.

    backbone: "small" (a CNN from scratch, stride 2**len(widths)) or "vgg16" (ImageNet weights,
    stride 16, 512 channels); anchor sizes are stride * scales pixels; image_size: the side the
    images are resized to (shapes are drawn at that size); max_objects, style: of the synthetic
    shapes (see course_lib.datasets.shapes.draw_scene).
    """

    name: str
    dataset: str                      # "shapes" or "voc2007"
    classes: tuple[str, ...] | None   # object classes (None: the data set's own)
    image_size: int
    n_train: int
    n_test: int
    backbone: str
    widths: tuple[int, ...]
    out_channels: int
    anchor_scales: tuple[float, ...]
    anchor_ratios: tuple[float, ...]
    rpn_mid: int
    head_hidden: int
    proposals: ProposalConfig
    roi_samples: int
    epochs: int
    batch_size: int
    lr: float
    max_objects: int = 6
    style: str = "cluttered"

    @property
    def stride(self) -> int:
        return 16 if self.backbone == "vgg16" else 2 ** len(self.widths)


QUICK = FasterRCNNProfile(
    name="quick", dataset="shapes", classes=("circle", "square", "triangle"), image_size=128, n_train=320,
    n_test=100, backbone="small", widths=(32, 64, 128), out_channels=128, anchor_scales=(1.5, 3.0, 6.0, 12.0),
    anchor_ratios=(0.5, 1.0, 2.0), rpn_mid=128, head_hidden=256,
    proposals=ProposalConfig(pre_nms_train=1000, post_nms_train=300, pre_nms_test=1000, post_nms_test=300,
                             nms_threshold=0.7, min_size=4.0),
    roi_samples=64, epochs=16, batch_size=4, lr=5e-3, max_objects=3, style="plain")

FULL = FasterRCNNProfile(
    name="full", dataset="voc2007", classes=None, image_size=600, n_train=0, n_test=0, backbone="vgg16",
    widths=(), out_channels=512, anchor_scales=(8.0, 16.0, 32.0), anchor_ratios=(0.5, 1.0, 2.0), rpn_mid=512,
    head_hidden=4096, proposals=ProposalConfig(), roi_samples=128, epochs=14, batch_size=1, lr=1e-4)

PROFILES = {"quick": QUICK, "full": FULL}


def get_profile(name: str) -> FasterRCNNProfile:
    """QUICK or FULL by name ('quick' or 'full', e.g. ctx.profile)."""
    if name not in PROFILES:
        raise ValueError(f"profile must be 'quick' or 'full', got {name!r}")
    return PROFILES[name]


class BackboneAdapter(nn.Module):
    """Any feature extractor, plus the two numbers the detector needs: out_channels and stride.

    body: (B, 3, H, W) images in [0, 1] -> (B, out_channels, about H / stride, about W / stride).
    forward checks both shapes, so a backbone cut at the wrong layer fails with a clear message.
    """

    def __init__(self, body: nn.Module, out_channels: int, stride: int):
        super().__init__()
        self.body, self.out_channels, self.stride = body, int(out_channels), int(stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        features = self.body(images)
        h, w = images.shape[-2:]
        fh, fw = features.shape[-2:]
        if features.shape[1] != self.out_channels or abs(fh * self.stride - h) >= self.stride \
                or abs(fw * self.stride - w) >= self.stride:
            raise ValueError(f"the backbone turned {tuple(images.shape)} images into {tuple(features.shape)} "
                             f"features; expected {self.out_channels} channels at stride {self.stride}")
        return features


def small_backbone(widths=(32, 64, 128), out_channels: int | None = None, in_channels: int = 3) -> nn.Sequential:
    """A small CNN trained from scratch: per width, a stride-2 3x3 conv and a 3x3 conv, each + BN + ReLU.

    (B, 3, H, W) images in [0, 1] -> (B, out_channels, H / 2**len(widths), W / 2**len(widths)).
    out_channels other than widths[-1] adds a 1x1 conv (e.g. to 512 channels like VGG16's conv5).
    """
    layers, c = [], in_channels
    for w in widths:
        for stride in (2, 1):
            layers += [nn.Conv2d(c, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
    if out_channels is not None and out_channels != c:
        layers += [nn.Conv2d(c, out_channels, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def vgg16_backbone(pretrained: bool = True) -> tuple[nn.Sequential, nn.Sequential]:
    """VGG16 (Simonyan & Zisserman, 2015) cut before its 5th pool, with ImageNet weights.

    The weights are downloaded once into torch's hub cache, their hash checked
    (course_lib.datasets.download.fetch_pretrained); without them and offline, OfflineError at once.
    pretrained=False builds the same layers untrained.
    Returns (features, fc): features maps (B, 3, H, W) images in [0, 1] to (B, 512, H/16, W/16)
    (conv1-conv2 frozen, as in the paper); fc is VGG16's fc6 + ReLU + fc7 + ReLU, to initialise the
    Fast R-CNN head (25088 -> 4096 -> 4096).
    """
    from torchvision.models import VGG16_Weights, vgg16

    from ...datasets.download import fetch_pretrained

    weights = fetch_pretrained(VGG16_Weights.IMAGENET1K_V1, "the ImageNet weights of VGG16") if pretrained else None
    vgg = vgg16(weights=weights)
    features = vgg.features[:30]
    for p in features[:10].parameters():
        p.requires_grad_(False)
    fc = nn.Sequential(vgg.classifier[0], nn.ReLU(inplace=True), vgg.classifier[3], nn.ReLU(inplace=True))
    return nn.Sequential(ImageNetNormalize(), features), fc


def canonical_backbone(kind: str = "small") -> BackboneAdapter:
    """The feature extractor of the lesson's walkthrough: stride 16, 512 channels (50 x 50 x 512 for
    an 800 x 800 image). kind "vgg16": VGG16 with ImageNet weights cut before its 5th pool (downloads);
    "small": four stride-2 stages of small_backbone and a 1x1 conv to 512 channels, untrained."""
    if kind == "vgg16":
        return BackboneAdapter(vgg16_backbone()[0], 512, 16)
    if kind == "small":
        return BackboneAdapter(small_backbone((16, 32, 64, 128), 512), 512, 16)
    raise ValueError(f"kind must be 'small' or 'vgg16', got {kind!r}")


class FasterRCNN(nn.Module):
    """Faster R-CNN. All boxes are `xyxy` pixels of the input images.

    backbone: a BackboneAdapter, (B, 3, H, W) -> (B, out_channels, H / stride, W / stride);
    num_classes: object classes (the background is added). forward(images (B, 3, H, W), targets=None):
    - training (targets: per image dict(boxes (G, 4) `xyxy`, labels (G,) 0-based)): returns a dict
      of the four scalar losses LOSS_NAMES;
    - eval: returns per image dict(boxes (K, 4) `xyxy`, scores (K,), labels (K,) 0-based,
      proposals (P, 4) `xyxy` in RPN score order).
    Sampling (anchors, RoIs) draws from torch's global generator, which the lesson's setup seeds.
    """

    def __init__(self, backbone: BackboneAdapter, num_classes: int, anchor_scales=(8, 16, 32),
                 anchor_ratios=(0.5, 1.0, 2.0), rpn_mid: int = 512, head_hidden: int = 4096, proposals: ProposalConfig = ProposalConfig(), roi_samples: int = 128,
                 rpn_samples: int = 256, box_weights=(10.0, 10.0, 5.0, 5.0), score_threshold: float = 0.05,
                 nms_threshold: float = 0.3, detections_per_image: int = 100):
        super().__init__()
        if not isinstance(backbone, BackboneAdapter):
            raise ValueError("backbone must be a BackboneAdapter (it knows its out_channels and stride)")
        self.backbone, self.num_classes = backbone, int(num_classes)
        stride, out_channels = backbone.stride, backbone.out_channels
        self.stride = stride
        base = torch.as_tensor(anchor_base(stride, anchor_scales, anchor_ratios), dtype=torch.float32)
        self.register_buffer("anchor_base", base, persistent=False)
        self.rpn = RPNHead(out_channels, rpn_mid, base.shape[0])
        self.proposal = ProposalLayer(proposals, fmt="xyxy")
        self.roi_pool = RoIPool((7, 7), 1.0 / stride)
        self.head = FastRCNNHead(out_channels * 49, head_hidden, num_classes + 1)
        self.roi_samples, self.rpn_samples, self.box_weights = roi_samples, rpn_samples, tuple(box_weights)
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.detections_per_image = detections_per_image

    def _rpn(self, images: torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        features = self.backbone(images)
        locs, scores = self.rpn(features)
        anchors = grid_anchors(features.shape[-2:], self.stride, self.anchor_base)
        hw = tuple(images.shape[-2:])
        objectness = scores.detach().softmax(-1)[..., 1]
        rois = [self.proposal(locs[i], objectness[i], anchors, hw)[0] for i in range(images.shape[0])]
        return features, locs, scores, anchors, rois

    def _pool(self, features: torch.Tensor, rois: list[torch.Tensor]):
        batch_idx = torch.cat([torch.full((len(r), 1), float(i), device=features.device) for i, r in enumerate(rois)])
        return self.head(self.roi_pool(features, torch.cat([batch_idx, torch.cat(rois)], 1)))

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None):
        features, locs, scores, anchors, rois = self._rpn(images)
        hw = tuple(images.shape[-2:])
        if self.training:
            if targets is None or len(targets) != images.shape[0]:
                raise ValueError("training needs targets: one dict(boxes (G, 4) xyxy, labels (G,)) per image")
            return self._losses(features, locs, scores, anchors, rois, targets, hw)
        box_deltas, logits = self._pool(features, rois)
        out, start = [], 0
        for r in rois:
            boxes, sc, labels = detect_boxes(box_deltas[start:start + len(r)], logits[start:start + len(r)], r, hw,
                                             self.box_weights, self.score_threshold, self.nms_threshold,
                                             self.detections_per_image)
            out.append(dict(boxes=boxes, scores=sc, labels=labels, proposals=r))
            start += len(r)
        return out

    def _losses(self, features, locs, scores, anchors, rois, targets, hw) -> dict:
        labels, deltas, sampled = [], [], []
        for r, t in zip(rois, targets):
            gt = t["boxes"].to(anchors).reshape(-1, 4)
            lab, d = anchor_targets(anchors, gt, hw, num=self.rpn_samples)
            labels.append(lab)
            deltas.append(d)
            sampled.append(sample_rois(r, gt, t["labels"].to(gt.device) + 1, num=self.roi_samples,
                                       weights=self.box_weights))
        rpn_cls, rpn_loc = rpn_loss(locs, scores, torch.stack(labels), torch.stack(deltas), sigma=3.0)
        box_deltas, logits = self._pool(features, [s[0] for s in sampled])
        roi_cls, roi_loc = roi_loss(box_deltas, logits, torch.cat([s[1] for s in sampled]),
                                    torch.cat([s[2] for s in sampled]), sigma=1.0)
        return dict(zip(LOSS_NAMES, (rpn_cls, rpn_loc, roi_cls, roi_loc)))


def build_faster_rcnn(profile: FasterRCNNProfile, num_classes: int) -> FasterRCNN:
    """The model a profile describes: a small CNN from scratch (quick) or VGG16 (full, downloads)."""
    if profile.backbone == "vgg16":
        body, fc = vgg16_backbone()
    elif profile.backbone == "small":
        body, fc = small_backbone(profile.widths, profile.out_channels), None
    else:
        raise ValueError(f"profile.backbone must be 'small' or 'vgg16', got {profile.backbone!r}")
    backbone = BackboneAdapter(body, profile.out_channels, profile.stride)
    model = FasterRCNN(backbone, num_classes, profile.anchor_scales, profile.anchor_ratios, profile.rpn_mid,
                       profile.head_hidden, profile.proposals, profile.roi_samples)
    if fc is not None:
        model.head.fc1.load_state_dict(fc[0].state_dict())
        model.head.fc2.load_state_dict(fc[2].state_dict())
    return model

"""A single-shot detector in the fastai style: a backbone, then heads on 4x4, 2x2 and 1x1 grids.

Every head predicts, per anchor, C + 1 class logits (the last one is "background", kept only so
that the output block reads like the classic one; the losses ignore it) and 4 box activations that
`course_lib.coding.tanh_decode` turns into a box around the anchor. Outputs are flattened in
course_lib's anchor order: grid (4, 2, 1), then y, then x, then anchor
(see `course_lib.anchors.grid_anchors_normalized`).
"""
from __future__ import annotations

import torch
from torch import nn

from ...anchors import grid_anchors_normalized
from ...boxes import box_convert
from ..normalize import ImageNetNormalize

__all__ = ["conv_block", "OutputBlock", "SingleGridHead", "MultiScaleHead", "DenseHead", "PresenceHead",
           "Detector", "small_backbone", "resnet34_backbone", "ssd_anchors", "MULTI_SCALE"]

# The anchors of the lesson's multi-scale head: 3 grids x 3 zooms x 3 (width, height) ratios.
MULTI_SCALE = dict(grids=(4, 2, 1), zooms=(0.75, 1.0, 1.3), ratios=((1.0, 1.0), (1.0, 0.5), (0.5, 1.0)))
# Initial bias of the class logits: sigmoid(-4) ~ 0.018, the prior of RetinaNet (Lin et al., 2017),
# so that the many background anchors do not swamp the first steps of training.
PRIOR_BIAS = -4.0


def conv_block(c_in: int, c_out: int, stride: int = 2, dropout: float = 0.1) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> ReLU -> Dropout. Input (B, c_in, H, W) -> (B, c_out, ceil(H/s), ceil(W/s))."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.Dropout(dropout))


def _flatten(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k * D, H, W) -> (B, H * W * k, D), ordered y, x, anchor."""
    B, _, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, H * W * k, -1)


class OutputBlock(nn.Module):
    """Two 3x3 convs on a feature map: class logits and box activations for k anchors per cell.

    Input (B, c_in, H, W). Returns (logits (B, H*W*k, C+1), boxes (B, H*W*k, 4)), ordered y, x, anchor.
    """

    def __init__(self, c_in: int, num_classes: int, k: int = 1):
        super().__init__()
        self.k = k
        self.cls = nn.Conv2d(c_in, k * (num_classes + 1), 3, padding=1)
        self.box = nn.Conv2d(c_in, k * 4, 3, padding=1)
        nn.init.constant_(self.cls.bias, PRIOR_BIAS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _flatten(self.cls(x), self.k), _flatten(self.box(x), self.k)


class SingleGridHead(nn.Module):
    """One 4x4 grid: a stride-2 block brings the backbone's 7x7 or 8x8 map to 4x4, then outputs.

    Input (B, c_in, H, W) with ceil(H/2) = ceil(W/2) = 4. Returns (B, 16*k, C+1) and (B, 16*k, 4).
    """

    def __init__(self, c_in: int, num_classes: int, k: int = 1, width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(conv_block(c_in, width, 2, dropout), conv_block(width, width, 1, dropout))
        self.out = OutputBlock(width, num_classes, k)

    def forward(self, x):
        return self.out(self.body(x))


class MultiScaleHead(nn.Module):
    """4x4, 2x2 and 1x1 grids, each from a stride-2 block over the previous one.

    Input as SingleGridHead. Returns (B, 21*k, C+1) and (B, 21*k, 4), in the order grid 4, 2, 1.
    """

    def __init__(self, c_in: int, num_classes: int, k: int = 9, width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.blocks = nn.ModuleList([conv_block(c_in, width, 2, dropout), conv_block(width, width, 2, dropout),
                                     conv_block(width, width, 2, dropout)])
        self.outs = nn.ModuleList([OutputBlock(width, num_classes, k) for _ in range(3)])

    def forward(self, x):
        logits, boxes = [], []
        for block, out in zip(self.blocks, self.outs):
            x = block(x)
            c, b = out(x)
            logits.append(c)
            boxes.append(b)
        return torch.cat(logits, 1), torch.cat(boxes, 1)


class DenseHead(nn.Module):
    """A whole-image head: a stride-2 block to 4x4, flatten, dropout, linear. (B, c_in, H, W) -> (B, n_out)."""

    def __init__(self, c_in: int, n_out: int, width: int = 128, dropout: float = 0.25):
        super().__init__()
        self.body = nn.Sequential(conv_block(c_in, width, 2, 0.0), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Dropout(dropout), nn.Linear(16 * width, n_out))

    def forward(self, x):
        return self.body(x)


class PresenceHead(nn.Module):
    """Which classes an image holds: a conv block, a 1x1 conv to C logits per cell, then the
    maximum over the cells (an image holds a class when one of its cells does).

    (B, c_in, H, W) -> (B, num_classes) logits.
    """

    def __init__(self, c_in: int, num_classes: int, width: int = 128):
        super().__init__()
        self.body = nn.Sequential(conv_block(c_in, width, 1, 0.0), nn.Conv2d(width, num_classes, 1),
                                  nn.AdaptiveMaxPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.body(x)


class Detector(nn.Module):
    """backbone followed by head: images (B, 3, S, S) in [0, 1] -> whatever the head returns."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor):
        return self.head(self.backbone(images))


def small_backbone(width: int = 32) -> nn.Sequential:
    """A small CNN from scratch: (B, 3, S, S) in [0, 1] -> (B, 4 * width, S/16, S/16).

    A space-to-depth stem (nn.PixelUnshuffle(2)) first stacks each 2 x 2 block of pixels into 12
    channels: nothing is lost, and every conv runs at S/2 or less, which makes a training step
    about a third cheaper on a CPU than convs at full resolution. Then three stages, each a
    stride-2 conv block and a stride-1 one, with width, 2 * width and 4 * width channels.
    At S = 128 its 8x8 map matches, after a head's stride-2 block, the 4x4 grid.
    """
    chans = [12, width, 2 * width, 4 * width]
    layers = [nn.PixelUnshuffle(2)]
    for c_in, c_out in zip(chans[:-1], chans[1:]):
        layers += [conv_block(c_in, c_out, 2, 0.0), conv_block(c_out, c_out, 1, 0.0)]
    net = nn.Sequential(*layers)
    net.out_channels = chans[-1]
    return net


def resnet34_backbone() -> nn.Sequential:
    """torchvision's ResNet-34 with ImageNet weights, without pooling and classifier.

    (B, 3, S, S) in [0, 1] -> (B, 512, S/32, S/32); normalises with the ImageNet mean and std itself.
    Downloads the weights (about 83 MB) once (course_lib.datasets.download.fetch_pretrained): stops
    at once with a clear message when offline and not cached.
    """
    from torchvision.models import ResNet34_Weights, resnet34

    from ...datasets.download import fetch_pretrained

    body = resnet34(weights=fetch_pretrained(ResNet34_Weights.IMAGENET1K_V1, "the ImageNet weights of ResNet-34"))
    net = nn.Sequential(ImageNetNormalize(), *list(body.children())[:-2])
    net.out_channels = 512
    return net


def ssd_anchors(grids=(4,), zooms=(1.0,), ratios=((1.0, 1.0),), fmt: str = "cxcywh") -> torch.Tensor:
    """grid_anchors_normalized in `fmt` ('cxcywh' or 'xyxy'), normalised 0..1; (sum g*g*k, 4)."""
    if fmt not in ("cxcywh", "xyxy"):
        raise ValueError(f"fmt must be 'cxcywh' or 'xyxy', got {fmt!r}")
    a = grid_anchors_normalized(grids, zooms, ratios)
    return a if fmt == "cxcywh" else box_convert(a, "cxcywh", fmt)

"""The input standardisation that ImageNet-trained backbones (VGG16, ResNet) expect."""
from __future__ import annotations

import torch
from torch import nn


class ImageNetNormalize(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> standardised with ImageNet's per-channel mean and std."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

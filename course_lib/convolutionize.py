"""Turn a classifier's fully connected layers into convolutions ("convolutionizing").

A `Linear` that reads a flattened (C, H, W) feature map computes the same numbers as a `Conv2d`
with C input channels and an H x W kernel applied to that map: one output position. On a larger
map the convolution slides, and the classifier becomes a detector of class scores on a grid
(Sermanet et al., 2014; Long et al., 2015).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["convolutionize", "convolutionize_head", "fully_convolutional"]


def convolutionize(linear: nn.Linear, in_shape) -> nn.Conv2d:
    """The convolution that computes what `linear` computes on a flattened feature map.

    linear: nn.Linear with in_features = C * H * W, reading a (C, H, W) map flattened in
    row-major (C, H, W) order, as `torch.flatten(x, 1)` does for an (N, C, H, W) tensor.
    in_shape: (C, H, W), the shape of that map.
    Returns nn.Conv2d(C, out_features, kernel_size=(H, W)) with copied weights: on an
    (N, C, H, W) input it gives (N, out_features, 1, 1) equal to linear(flatten(x)); on an
    (N, C, H', W') input, (N, out_features, H' - H + 1, W' - W + 1).
    """
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    if len(in_shape) != 3 or any(int(s) <= 0 for s in in_shape):
        raise ValueError(f"in_shape must be (C, H, W) of positive sizes, got {tuple(in_shape)}")
    c, h, w = (int(s) for s in in_shape)
    if c * h * w != linear.in_features:
        raise ValueError(f"in_shape {(c, h, w)} has {c * h * w} elements but linear.in_features is "
                         f"{linear.in_features}")
    conv = nn.Conv2d(c, linear.out_features, kernel_size=(h, w), bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(linear.out_features, c, h, w))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def convolutionize_head(head: nn.Sequential, in_shape) -> nn.Sequential:
    """A classifier head (Flatten / Linear / ReLU / Dropout ...) rewritten as convolutions.

    head: nn.Sequential whose first Linear reads a flattened (C, H, W) map; in_shape: (C, H, W).
    That Linear becomes an H x W convolution, every later Linear a 1 x 1 convolution, Flatten is
    dropped and the other modules (activations, dropout) are kept in order.
    Returns nn.Sequential mapping (N, C, H', W') to (N, classes, H' - H + 1, W' - W + 1).
    """
    if not any(isinstance(m, nn.Linear) for m in head):
        raise ValueError("head must contain at least one nn.Linear")
    layers, shape = [], tuple(in_shape)
    for module in head:
        if isinstance(module, nn.Flatten):
            continue
        if isinstance(module, nn.Linear):
            layers.append(convolutionize(module, shape))
            shape = (module.out_features, 1, 1)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            # A BatchNorm1d would read the 4-d map as (N, C, L) and fail or normalise wrongly.
            raise ValueError(f"head must hold only Linear, Flatten and elementwise modules, got "
                             f"{type(module).__name__}")
        else:
            layers.append(module)
    return nn.Sequential(*layers)


def fully_convolutional(model: nn.Module) -> nn.Sequential:
    """A fully convolutional copy of a torchvision VGG or AlexNet (features, avgpool, classifier).

    The adaptive average pool, which squeezes any input to the (H, W) the classifier expects, is
    dropped: on a 224 x 224 image the features already have that size, so the outputs are equal.
    Returns nn.Sequential(features, convolutionized classifier): an (N, 3, h, w) image gives an
    (N, classes, H', W') map of class scores, one per window (224 x 224 windows at stride 32 for
    VGG and AlexNet). Weights are copied; the original model is not changed.
    """
    for part in ("features", "avgpool", "classifier"):
        if not hasattr(model, part):
            raise ValueError(f"model must have a `{part}` attribute like torchvision's VGG and AlexNet")
    out_size = model.avgpool.output_size
    h, w = (out_size, out_size) if isinstance(out_size, int) else out_size
    first = next((m for m in model.classifier if isinstance(m, nn.Linear)), None)
    if first is None or first.in_features % (h * w):
        raise ValueError("model.classifier must start its Linear layers with one reading C x H x W features")
    shape = (first.in_features // (h * w), h, w)
    head = convolutionize_head(copy.deepcopy(model.classifier), shape)
    return nn.Sequential(copy.deepcopy(model.features), head).train(model.training)


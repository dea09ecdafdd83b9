"""Drawing images and boxes with matplotlib.

Boxes get a dark outline under a coloured line and labels sit in white on a dark box, so both
read on any background. Colours come from a fixed colour-blind-friendly palette indexed by class
(Okabe & Ito's eight colours, without black, then Paul Tol's "bright" cyan and grey).
Boxes are in pixels, in any format of course_lib.boxes (default `xyxy`), NumPy or torch.
"""
from __future__ import annotations

import math

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

from .boxes import box_convert

PALETTE = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
    "#D55E00", "#CC79A7", "#66CCEE", "#BBBBBB", "#FFFFFF",
)


def class_color(label: int) -> str:
    """The palette colour of class index `label` (the palette repeats after 10 classes)."""
    return PALETTE[int(label) % len(PALETTE)]


def _numpy(x):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _xyxy(boxes, fmt: str) -> np.ndarray:
    boxes = _numpy(boxes)
    if boxes.size == 0:
        return np.zeros((0, 4), np.float32)
    return _numpy(box_convert(boxes, fmt, "xyxy")).reshape(-1, 4)


def _label_text(i, labels, scores, class_names) -> str | None:
    parts = []
    if labels is not None:
        lab = int(labels[i])
        parts.append(class_names[lab] if class_names is not None and 0 <= lab < len(class_names) else str(lab))
    if scores is not None:
        parts.append(f"{float(scores[i]):.2f}")
    return " ".join(parts) or None


def draw_boxes(ax, boxes, labels=None, scores=None, class_names=None, color=None, fmt: str = "xyxy",
               linewidth: float = 2, fontsize: float = 7):
    """Draw boxes on `ax` (usually over an image shown with show_image).

    boxes: (N, 4) pixels in `fmt` ('xyxy', 'yxyx', 'xywh' or 'cxcywh'), NumPy or torch.
    labels: optional (N,) class indices (colour and name); scores: optional (N,) floats.
    A label "name 0.87" (or just one of the two) goes at each box's top-left corner: above
    the box, or inside it when the box touches the top of the image. color: one colour for
    all boxes (default: the palette colour of each label, else the first palette colour).
    Returns the list of Rectangle patches added (one per box); adds one text per box when
    labels or scores are given.
    """
    xyxy = _xyxy(boxes, fmt)
    labels, scores = _numpy(labels), _numpy(scores)
    n = len(xyxy)
    for arg, value in (("labels", labels), ("scores", scores)):
        if value is not None and len(value.reshape(-1)) != n:
            raise ValueError(f"{arg} must have shape ({n},) to match boxes, got {value.shape}")
    outline = [pe.Stroke(linewidth=linewidth + 2, foreground="black", alpha=0.8), pe.Normal()]
    (left, right), (bottom, top) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    # data units per point of text, to keep labels inside the axes
    scale = (right - left) / max(ax.get_window_extent().width * 72 / ax.figure.dpi, 1)
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        c = color or (class_color(labels[i]) if labels is not None else PALETTE[0])
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=linewidth,
                         path_effects=outline)
        patches.append(ax.add_patch(rect))
        text = _label_text(i, labels, scores, class_names)
        if text is not None:
            width, height = 0.62 * fontsize * len(text) * scale, 1.4 * fontsize * scale
            inside = y1 - bottom < height  # no room above the box: put the label inside it
            ax.text(max(left, min(x1, right - width)), y1, text, color="white", fontsize=fontsize,
                    va="top" if inside else "bottom", ha="left", clip_on=True,
                    bbox=dict(facecolor="black", alpha=0.6, edgecolor="none", pad=1.0))
    return patches


def show_image(ax, image):
    """Show an image and hide the axes.

    image: uint8 (H, W, 3) or (H, W) NumPy, float (H, W, 3) in [0, 1], or a float tensor
    (3, H, W) / (1, H, W) in [0, 1] (a torchvision-style CHW image).
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"image must be (H, W, 3) / (H, W) NumPy or a (3, H, W) tensor, got {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 1)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_axis_off()
    return ax


def _entry(values, i):
    return None if values is None else values[i]


def show_grid(images, boxes=None, labels=None, scores=None, class_names=None, ncols: int = 4,
              size: float = 2.5, titles=None, fmt: str = "xyxy"):
    """A grid of images with their boxes; returns the matplotlib Figure.

    images: a sequence of images (see show_image); boxes, labels, scores, titles: optional
    sequences with one entry per image ((K_i, 4) pixels in `fmt`, (K_i,), (K_i,), str).
    ncols: images per row; size: inches per image.
    """
    n = len(images)
    for arg, value in (("boxes", boxes), ("labels", labels), ("scores", scores), ("titles", titles)):
        if value is not None and len(value) != n:
            raise ValueError(f"{arg} must have one entry per image ({n}), got {len(value)}")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        show_image(ax, images[i])
        if boxes is not None:
            draw_boxes(ax, boxes[i], _entry(labels, i), _entry(scores, i), class_names, fmt=fmt,
                       linewidth=1.5)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def show_anchors(ax, anchors, fmt: str = "xyxy", color: str = "white", linewidth: float = 0.6,
                 alpha: float = 0.7):
    """Draw many thin boxes (e.g. anchors) at once as one PolyCollection; returns it.

    anchors: (N, 4) pixels in `fmt`, NumPy or torch.
    """
    x1, y1, x2, y2 = _xyxy(anchors, fmt).T
    corners = np.stack([np.stack([x1, y1], -1), np.stack([x2, y1], -1),
                        np.stack([x2, y2], -1), np.stack([x1, y2], -1)], 1)  # (N, 4, 2)
    coll = PolyCollection(corners, closed=True, facecolors="none", edgecolors=color,
                          linewidths=linewidth, alpha=alpha)
    ax.add_collection(coll)
    return coll


def draw_masks(ax, masks, labels=None, alpha: float = 0.45):
    """Overlay instance masks on `ax` (over an image shown with show_image), one colour per mask.

    masks: (K, H, W) bool or 0/1, NumPy or torch. labels: optional (K,) class indices (each mask
    takes its class's palette colour, as draw_boxes does); without labels mask k takes colour k.
    Returns the AxesImage drawn (an (H, W, 4) RGBA layer, transparent outside the masks), or
    None when K = 0.
    """
    from matplotlib.colors import to_rgba

    masks = _numpy(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    labels = _numpy(labels)
    if labels is not None and len(labels.reshape(-1)) != len(masks):
        raise ValueError(f"labels must have shape ({len(masks)},) to match masks, got {labels.shape}")
    if len(masks) == 0:
        return None
    layer = np.zeros((*masks.shape[1:], 4), np.float32)
    for k, m in enumerate(masks.astype(bool)):
        layer[m] = to_rgba(class_color(labels[k] if labels is not None else k), alpha)
    return ax.imshow(layer, interpolation="nearest")

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
    A label "name 0.87" (or just one of the two) goes at a corner of its box where it overlaps
    no other label of `ax` (above the top-left corner when there is room); a label that fits
    nowhere is left out, so labels never print over each other. color: one colour for
    all boxes (default: the palette colour of each label, else the first palette colour).
    Returns the list of Rectangle patches added (one per box); adds at most one text per box
    when labels or scores are given.
    """
    xyxy = _xyxy(boxes, fmt)
    labels, scores = _numpy(labels), _numpy(scores)
    n = len(xyxy)
    for arg, value in (("labels", labels), ("scores", scores)):
        if value is not None and len(value.reshape(-1)) != n:
            raise ValueError(f"{arg} must have shape ({n},) to match boxes, got {value.shape}")
    outline = [pe.Stroke(linewidth=linewidth + 2, foreground="black", alpha=0.8), pe.Normal()]
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        c = color or (class_color(labels[i]) if labels is not None else PALETTE[0])
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=linewidth,
                         path_effects=outline)
        patches.append(ax.add_patch(rect))
    texts = [_label_text(i, labels, scores, class_names) for i in range(n)]
    if any(t is not None for t in texts):
        _place_labels(ax, xyxy, texts, fontsize)
    return patches


def _place_labels(ax, xyxy: np.ndarray, texts: list, fontsize: float) -> None:
    """Put each text at a corner of its box where it overlaps no label already on `ax`.

    Tried in turn: above the top-left corner, inside it, below the bottom-left corner, inside
    it, then further down; a label that fits nowhere inside the axes is left out. Extents are
    measured by the figure's renderer, so the rule holds for any font and size.
    """
    renderer = ax.figure.canvas.get_renderer()
    to_data = ax.transData.inverted()
    (left, right), (bottom, top) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    axes_box = ax.get_window_extent(renderer)
    taken = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible()]
    for (x1, y1, x2, y2), text in zip(xyxy, texts):
        if text is None:
            continue
        artist = ax.text(x1, y1, text, color="white", fontsize=fontsize, ha="left", va="bottom",
                         clip_on=True, bbox=dict(facecolor="black", alpha=0.6, edgecolor="none", pad=1.0))
        extent = artist.get_window_extent(renderer)
        (w, h) = np.abs(to_data.transform([extent.x1, extent.y1]) - to_data.transform([extent.x0, extent.y0]))
        x = max(left, min(x1, right - w))
        # y grows downwards on an image: each candidate is the label's top edge
        candidates = [y1 - h, y1, y2, y2 - h] + [y2 + k * h for k in range(1, 8)]
        for y in candidates:
            if y < bottom - 1e-9 or y + h > top + 1e-9:
                continue
            artist.set_position((x, y + h))
            box = artist.get_window_extent(renderer)
            inside = box.x0 >= axes_box.x0 - 1 and box.x1 <= axes_box.x1 + 1
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
        else:
            artist.remove()


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


def show_predictions(images, preds, gts, class_names=None, min_score: float = 0.3, ncols: int = 6,
                     size: float = 2.2):
    """Detections above the ground truth of the same images, so that every error can be read off.

    images: a sequence of n images (see show_image); preds: n dicts with boxes (K, 4) `xyxy`
    pixels, scores (K,) and labels (K,); gts: n dicts with boxes (G, 4) `xyxy` pixels and
    labels (G,). Only detections scoring above min_score are drawn. Rows come in pairs:
    detections, then the ground truth below them. Returns the matplotlib Figure.
    """
    n = len(images)
    if len(preds) != n or len(gts) != n:
        raise ValueError(f"preds and gts must have one entry per image ({n}), got {len(preds)} and {len(gts)}")
    ncols = max(1, min(ncols, n))
    pairs = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(2 * pairs, ncols, figsize=(ncols * size, 2 * pairs * size), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        top, below = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        keep = _numpy(preds[i]["scores"]) > min_score
        for ax, boxes, labels, scores in (
                (top, _numpy(preds[i]["boxes"])[keep], _numpy(preds[i]["labels"])[keep],
                 _numpy(preds[i]["scores"])[keep]),
                (below, gts[i]["boxes"], gts[i]["labels"], None)):
            show_image(ax, images[i])
            draw_boxes(ax, boxes, labels, scores, class_names, linewidth=1.5)
        if i % ncols == 0:
            top.set_title(f"detected (score > {min_score:g})", fontsize=9, loc="left")
            below.set_title("ground truth", fontsize=9, loc="left")
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

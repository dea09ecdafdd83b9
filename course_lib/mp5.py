"""Faster R-CNN's detection head (the region proposal network) in NumPy: the MP5 API.

The head is two convolutions on a CNN feature map: a 3x3 conv + ReLU (C -> D channels), then a
1x1 conv giving, for each of the A anchors at every position, 5 numbers: 4 linear box offsets
(tx, ty, tw, th) and one sigmoid face probability (Ren et al., 2015).

Axes, everywhere in this module and in course_lib.datasets.mp5:
    X        (N1, N2, C) or a batch (B, N1, N2, C); axis N1 is y (rows), axis N2 is x (columns),
             as in an image array (height, width, channels).
    Y, Yhat  (..., N1, N2, A, 5): [tx, ty, tw, th, p], tx along x, ty along y.
    anchors  (N1, N2, A, 4): `cxcywh` pixels [x_centre, y_centre, w, h].
    W1       (M1, M2, C, D), M1 along y, M2 along x; W2 (1, 1, D, A, 5).

Convolution convention (a true convolution, as in signal processing):
    xi[n1, n2, d] = sum_c sum_m1 sum_m2 w[m1, m2, c, d] x[n1 - m1 + p, n2 - m2 + p, c]
with zero padding p on each side. The stored kernel index m = 0..M-1 stands for the offset
m - p, so with p = (M - 1) // 2 (an odd kernel) the kernel is centred and the output has the
input's size. It equals torch's conv2d (a correlation) with the kernel flipped in both axes.

Every function computes in the floating dtype of its inputs (float32 or float64).
"""
from __future__ import annotations

import math

import numpy as np

from .boxes import box_convert
from .coding import decode
from .nms import nms

__all__ = [
    "conv2", "conv_layer", "im2col", "sigmoid", "safe_log", "safe_log_naive", "SAFE_LOG_MIN",
    "forwardprop", "forwardprop_loop", "detect", "detect_nms", "loss", "backprop",
    "weight_gradient", "weight_update", "adam_init", "adam_step", "training_step",
]

SAFE_LOG_MIN = math.exp(-100)
# detect(): a box may grow at most 2x its anchor per side.
MAX_GROWTH = math.log(2.0)


def _array(x, name: str, ndim: tuple[int, ...], float_only: bool = True) -> np.ndarray:
    """`x` as a NumPy array with one of the allowed numbers of dimensions, finite."""
    a = np.asarray(x)
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {a.shape}")
    if float_only and not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    # A finite sum proves every entry finite, at a third of the cost of isfinite().all().
    with np.errstate(over="ignore", invalid="ignore"):
        finite_sum = np.isfinite(a.sum()) if a.size else True
    if not finite_sum and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _odd_padding(M1: int, M2: int, name: str) -> int:
    if M1 != M2 or M1 % 2 == 0:
        raise ValueError(f"{name} must be square with an odd size (M1 = M2 = 1, 3, 5...), got {M1}x{M2}")
    return (M1 - 1) // 2


def conv2(H, W, padding: int):
    """2-D convolution of one channel, 'valid' after zero-padding.

    H: (N1, N2) input; W: (M1, M2) kernel; padding: rows/columns of zeros added on each side.
    Returns (N1 - M1 + 1 + 2p, N2 - M2 + 1 + 2p) with
    out[n1, n2] = sum_m1 sum_m2 W[m1, m2] Hpad[n1 + M1 - 1 - m1, n2 + M2 - 1 - m2].
    """
    H, W = _array(H, "H", (2,)), _array(W, "W", (2,))
    if padding < 0 or H.shape[0] + 2 * padding < W.shape[0] or H.shape[1] + 2 * padding < W.shape[1]:
        raise ValueError(f"W {W.shape} must fit inside H {H.shape} padded by {padding}")
    Hp = np.pad(H, padding)
    win = np.lib.stride_tricks.sliding_window_view(Hp, W.shape)
    return np.tensordot(win, W[::-1, ::-1], axes=([2, 3], [0, 1]))


def im2col(X, M1: int, M2: int, padding: int) -> np.ndarray:
    """The (M1, M2) neighbourhoods of every position, so that a convolution is one matrix product.

    X: (..., N1, N2, C). Returns cols (..., N1', N2', M1 * M2 * C), N1' = N1 - M1 + 1 + 2p, with
    cols[..., n1, n2, (m1, m2, c)] = Xpad[..., n1 + M1 - 1 - m1, n2 + M2 - 1 - m2, c]: the columns
    follow the kernel's own layout, so conv = cols @ W.reshape(M1 * M2 * C, D) with no flipped copy.
    """
    X = np.asarray(X)
    pad = [(0, 0)] * (X.ndim - 3) + [(padding, padding), (padding, padding), (0, 0)]
    Xp = np.pad(X, pad)
    N1, N2, C = Xp.shape[-3] - M1 + 1, Xp.shape[-2] - M2 + 1, Xp.shape[-1]
    if N1 < 1 or N2 < 1:
        raise ValueError(f"the {M1}x{M2} kernel must fit inside X {X.shape} padded by {padding}")
    cols = np.empty(X.shape[:-3] + (N1, N2, M1, M2, C), dtype=X.dtype)
    # One copy per kernel tap (9 for 3x3), each a contiguous block: no loop over pixels.
    for m1 in range(M1):
        for m2 in range(M2):
            r, c = M1 - 1 - m1, M2 - 1 - m2
            cols[..., m1, m2, :] = Xp[..., r:r + N1, c:c + N2, :]
    return cols.reshape(X.shape[:-3] + (N1, N2, M1 * M2 * C))


def _flat_kernel(W: np.ndarray) -> np.ndarray:
    return W.reshape(-1, W.shape[-1])


def conv_layer(H, W, padding: int):
    """A convolutional layer (no bias, no activation).

    H: (N1, N2, C) or (B, N1, N2, C); W: (M1, M2, C, D); padding: zeros on each side.
    Returns (..., N1 - M1 + 1 + 2p, N2 - M2 + 1 + 2p, D):
    xi[n1, n2, d] = sum_c sum_m1 sum_m2 W[m1, m2, c, d] Hpad[n1 + M1 - 1 - m1, n2 + M2 - 1 - m2, c].
    """
    H, W = _array(H, "H", (3, 4)), _array(W, "W", (4,))
    if W.shape[2] != H.shape[-1]:
        raise ValueError(f"W must have shape (M1, M2, C={H.shape[-1]}, D) to match H, got {W.shape}")
    if W.shape[0] == W.shape[1] == 1 and padding == 0:
        return H @ W[0, 0]
    return im2col(H, W.shape[0], W.shape[1], padding) @ _flat_kernel(W)


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), without overflow warnings for any finite x."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def safe_log(x):
    """log(x), with x clamped to at least SAFE_LOG_MIN = exp(-100): log(0) is -100, never -inf."""
    return np.log(np.maximum(np.asarray(x, dtype=np.float64), SAFE_LOG_MIN))


def safe_log_naive(x):
    """log(x) where x > exp(-100), else 0: the original helper, kept to show its pitfall.

    A probability that rounds to 0 gets log 0 := 0, so a confidently wrong prediction costs
    nothing. Use safe_log.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    ok = x > SAFE_LOG_MIN
    out[ok] = np.log(x[ok])
    return out


def _check_weights(X: np.ndarray, W1, W2) -> tuple[np.ndarray, np.ndarray]:
    W1, W2 = _array(W1, "W1", (4,)), _array(W2, "W2", (5,))
    if W1.shape[2] != X.shape[-1]:
        raise ValueError(f"W1 must have shape (M1, M2, C={X.shape[-1]}, D), got {W1.shape}")
    _odd_padding(W1.shape[0], W1.shape[1], "W1")
    if W2.shape[:3] != (1, 1, W1.shape[3]) or W2.shape[4] != 5:
        raise ValueError(f"W2 must have shape (1, 1, D={W1.shape[3]}, A, 5), got {W2.shape}")
    return W1, W2


def _head(cols: np.ndarray, W1: np.ndarray, W2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, Yhat) from the im2col matrix of X (shapes as in forwardprop)."""
    H = np.maximum(cols @ _flat_kernel(W1), 0)
    A = W2.shape[3]
    Yhat = (H @ W2.reshape(W2.shape[2], A * 5)).reshape(H.shape[:-1] + (A, 5))
    Yhat[..., 4] = sigmoid(Yhat[..., 4])
    return H, Yhat


def forwardprop(X, W1, W2):
    """The head's forward pass.

    X: (N1, N2, C) or (B, N1, N2, C) features; W1: (M1, M2, C, D), odd M1 = M2, padded to keep the
    size; W2: (1, 1, D, A, 5). Returns H (..., N1, N2, D) = ReLU(conv(X, W1)) and
    Yhat (..., N1, N2, A, 5): [tx, ty, tw, th] linear, p = sigmoid (index 4).
    """
    X = _array(X, "X", (3, 4))
    W1, W2 = _check_weights(X, W1, W2)
    return _head(im2col(X, W1.shape[0], W1.shape[1], (W1.shape[0] - 1) // 2), W1, W2)


def forwardprop_loop(X, W1, W2):
    """forwardprop for one image written straight from the formula: one conv2 per (c, d) pair.

    Same arguments and results as forwardprop with X (N1, N2, C); slow on purpose, to time.
    """
    X = _array(X, "X", (3,))
    W1, W2 = _check_weights(X, W1, W2)
    p = (W1.shape[0] - 1) // 2
    N1, N2, C = X.shape
    D, A = W1.shape[3], W2.shape[3]
    H = np.zeros((N1, N2, D), dtype=np.result_type(X, W1))
    for d in range(D):
        for c in range(C):
            H[:, :, d] += conv2(X[:, :, c], W1[:, :, c, d], p)
    H = np.maximum(H, 0)
    Yhat = np.zeros((N1, N2, A, 5), dtype=H.dtype)
    for a in range(A):
        for k in range(5):
            for d in range(D):
                Yhat[:, :, a, k] += W2[0, 0, d, a, k] * H[:, :, d]
    Yhat[..., 4] = sigmoid(Yhat[..., 4])
    return H, Yhat


def _check_pair(Yhat, Y) -> tuple[np.ndarray, np.ndarray]:
    Yhat, Y = _array(Yhat, "Yhat", (4, 5)), _array(Y, "Y", (4, 5))
    if Yhat.shape != Y.shape or Y.shape[-1] != 5:
        raise ValueError(f"Yhat and Y must have the same shape (..., N1, N2, A, 5), got {Yhat.shape} and {Y.shape}")
    return Yhat, Y


def _decode(Yhat: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, 4) `xyxy` boxes from (N, 5) outputs and (N, 4) `cxcywh` anchors, growth capped at 2x."""
    a = box_convert(anchors.astype(np.float64), "cxcywh", "xyxy")
    return decode(Yhat[:, :4].astype(np.float64), a, clamp=MAX_GROWTH)


def _check_anchors(Yhat: np.ndarray, anchors) -> np.ndarray:
    anchors = _array(anchors, "anchors", (4,))
    if anchors.shape != Yhat.shape[:3] + (4,):
        raise ValueError(f"anchors must have shape (N1, N2, A, 4) = {Yhat.shape[:3] + (4,)} (cxcywh), got {anchors.shape}")
    return anchors


def detect(Yhat, number_to_return: int, anchors):
    """The highest-scoring anchors of one image, decoded back to rectangles.

    Yhat: (N1, N2, A, 5); anchors: (N1, N2, A, 4) `cxcywh` pixels. Width and height grow at most
    2x the anchor's. Returns best_rects (K, 4) `cxcywh` pixels [x, y, w, h], K = number_to_return
    (at most N1*N2*A), by descending score.
    """
    Yhat = _array(Yhat, "Yhat", (4,))
    anchors = _check_anchors(Yhat, anchors)
    if number_to_return < 0:
        raise ValueError(f"number_to_return must be >= 0, got {number_to_return}")
    flat = Yhat.reshape(-1, 5)
    order = np.argsort(-flat[:, 4], kind="stable")[:number_to_return]
    boxes = _decode(flat[order], anchors.reshape(-1, 4)[order])
    return box_convert(boxes, "xyxy", "cxcywh")


def detect_nms(Yhat, anchors, k: int = 10, iou_threshold: float = 0.3):
    """Detections of one image after NMS: decode every anchor, suppress, keep the best k.

    Yhat: (N1, N2, A, 5); anchors: (N1, N2, A, 4) `cxcywh` pixels.
    Returns (boxes (K, 4) `xyxy` pixels, scores (K,)), K <= k, by descending score.
    """
    Yhat = _array(Yhat, "Yhat", (4,))
    anchors = _check_anchors(Yhat, anchors)
    flat = Yhat.reshape(-1, 5).astype(np.float64)
    boxes = _decode(flat, anchors.reshape(-1, 4))
    keep = nms(boxes, flat[:, 4], iou_threshold)[:k]
    return boxes[keep], flat[keep, 4]


def loss(Yhat, Y, log=safe_log):
    """The head's two losses.

    Yhat, Y: (..., N1, N2, A, 5); Y[..., 4] is 1 for a face anchor, else 0.
    bce_loss: binary cross-entropy of index 4, the mean over all images, positions and anchors.
    mse_loss: 0.5 * sum over positive anchors of |Yhat[:4] - Y[:4]|^2 / number of positive anchors
    (0 if there are none). log: the logarithm used (safe_log; safe_log_naive shows a pitfall).
    Returns (bce_loss, mse_loss) as Python floats.
    """
    Yhat, Y = _check_pair(Yhat, Y)
    p, y = Yhat[..., 4], Y[..., 4]
    bce = -np.mean(y * log(p) + (1 - y) * log(1 - p))
    pos = y > 0.5
    err = Yhat[..., :4][pos] - Y[..., :4][pos]
    mse = 0.5 * np.sum(err.astype(np.float64) ** 2) / max(int(pos.sum()), 1)
    return float(bce), float(mse)


def backprop(Y, Yhat, H, W2):
    """Gradients of bce_loss + mse_loss w.r.t. the excitations (pre-activations) of both layers.

    Y, Yhat: (..., N1, N2, A, 5); H: (..., N1, N2, D); W2: (1, 1, D, A, 5).
    Returns GradXi1 (..., N1, N2, D) and GradXi2 (..., N1, N2, A, 5). For index 4 the gradient is
    (p - y) / count, the exact derivative of the cross-entropy through the sigmoid.
    """
    Yhat, Y = _check_pair(Yhat, Y)
    H, W2 = _array(H, "H", (3, 4)), _array(W2, "W2", (5,))
    if H.shape[:-1] != Y.shape[:-2] or W2.shape[:3] != (1, 1, H.shape[-1]) or W2.shape[3:] != Y.shape[-2:]:
        raise ValueError(f"H must be (..., N1, N2, D) and W2 (1, 1, D, A, 5) to match Y {Y.shape}; got H {H.shape}, W2 {W2.shape}")
    pos = Y[..., 4] > 0.5
    G2 = np.empty_like(Yhat)
    G2[..., :4] = (Yhat[..., :4] - Y[..., :4]) * (pos[..., None] / max(int(pos.sum()), 1))
    G2[..., 4] = (Yhat[..., 4] - Y[..., 4]) / Y[..., 4].size
    D, A = W2.shape[2], W2.shape[3]
    G1 = (G2.reshape(H.shape[:-1] + (A * 5,)) @ W2.reshape(D, A * 5).T) * (H > 0)
    return G1, G2


def _weight_gradients(cols, H, G1, G2, M1, M2):
    C = cols.shape[-1] // (M1 * M2)
    dW1 = (cols.reshape(-1, cols.shape[-1]).T @ G1.reshape(-1, G1.shape[-1])).reshape(M1, M2, C, -1)
    dW2 = H.reshape(-1, H.shape[-1]).T @ G2.reshape(-1, G2.shape[-2] * 5)
    return dW1, dW2.reshape((1, 1) + dW2.shape[:1] + G2.shape[-2:])


def weight_gradient(X, H, GradXi1, GradXi2, M1: int, M2: int):
    """Gradients of the loss w.r.t. W1 and W2, summed over images and positions.

    X: (..., N1, N2, C); H: (..., N1, N2, D); GradXi1: (..., N1, N2, D); GradXi2: (..., N1, N2, A, 5);
    M1, M2: the first layer's (odd, square) kernel size. Returns dW1 (M1, M2, C, D), dW2 (1, 1, D, A, 5).
    """
    X, H = _array(X, "X", (3, 4)), _array(H, "H", (3, 4))
    G1, G2 = _array(GradXi1, "GradXi1", (3, 4)), _array(GradXi2, "GradXi2", (4, 5))
    if H.shape[:-1] != X.shape[:-1] or G1.shape != H.shape or G2.shape[:-2] != H.shape[:-1] or G2.shape[-1] != 5:
        raise ValueError(f"X, H, GradXi1, GradXi2 must share (..., N1, N2); got {X.shape}, {H.shape}, {G1.shape}, {G2.shape}")
    p = _odd_padding(M1, M2, "M1, M2")
    return _weight_gradients(im2col(X, M1, M2, p), H, G1, G2, M1, M2)


def weight_update(W1, W2, dW1, dW2, learning_rate: float):
    """One gradient-descent step: returns (W1 - learning_rate * dW1, W2 - learning_rate * dW2)."""
    for name, w, g in (("dW1", W1, dW1), ("dW2", W2, dW2)):
        if np.shape(w) != np.shape(g):
            raise ValueError(f"{name} must have the shape of its weights {np.shape(w)}, got {np.shape(g)}")
    new = []
    for w, g in ((W1, dW1), (W2, dW2)):
        step = np.multiply(g, -learning_rate, dtype=np.result_type(w, g))
        step += w  # in place: one new array per weight, not two
        new.append(step)
    return new[0], new[1]


def adam_init(W1, W2) -> dict:
    """Adam's state for (W1, W2): zero first and second moments, step 0."""
    return {"t": 0, "m": [np.zeros_like(W1), np.zeros_like(W2)], "v": [np.zeros_like(W1), np.zeros_like(W2)]}


def adam_step(W1, W2, dW1, dW2, state: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """One Adam step (Kingma & Ba, 2015). Returns (new_W1, new_W2, new_state); inputs unchanged."""
    b1, b2 = betas
    t = state["t"] + 1
    m = [b1 * m + (1 - b1) * g for m, g in zip(state["m"], (dW1, dW2))]
    v = [b2 * v + (1 - b2) * g * g for v, g in zip(state["v"], (dW1, dW2))]
    scale = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    new = [w - (scale * mi / (np.sqrt(vi) + eps)).astype(w.dtype) for w, mi, vi in zip((W1, W2), m, v)]
    return new[0], new[1], {"t": t, "m": m, "v": v}


def training_step(cols, Y, W1, W2, state: dict, lr: float):
    """Forward, backward and one Adam step on a batch whose im2col matrix is precomputed.

    cols: im2col(X, M1, M2, (M1 - 1) // 2) of features X (B, N1, N2, C); Y: (B, N1, N2, A, 5).
    The features do not change during training, so their im2col is built once.
    Returns (W1, W2, state, bce_loss, mse_loss), the losses before the step.
    """
    H, Yhat = _head(cols, W1, W2)
    bce, mse = loss(Yhat, Y)
    G1, G2 = backprop(Y, Yhat, H, W2)
    dW1, dW2 = _weight_gradients(cols, H, G1, G2, W1.shape[0], W1.shape[1])
    W1, W2, state = adam_step(W1, W2, dW1, dW2, state, lr)
    return W1, W2, state, bce, mse


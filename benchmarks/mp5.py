"""Speed of lesson 1's NumPy head against the bare matrix product it cannot beat.

    python benchmarks/mp5.py [--repeat 20]

On the MP5 shapes (X 8x8x512, W1 3x3x512x128, W2 1x1x128x9x5, float32) it times, in one run:
the bare im2col product (64 x 4608) @ (4608 x 128), which is the first layer's work and the
practical limit; `forwardprop` for one image; one training step (forward, loss, backward and a
gradient-descent update); and a straightforward loop version of forwardprop (one conv2 per input
and output channel, timed on 16 of the 128 output channels and scaled). Goals: forwardprop <= 2x
the bare product, a training step <= 5x it. Because every figure comes from the same run, the ratios hold on any machine. On a machine other
jobs keep busy, multi-threaded BLAS waits for its threads at every product; run with
OMP_NUM_THREADS=1 there for stable figures.
"""
from __future__ import annotations

import argparse

import numpy as np

from course_lib import mp5

from _timing import best_time  # benchmarks/ is on sys.path when a script runs


def train_step(X, Y, W1, W2, lr: float = 1e-3):
    """Forward, loss, backward and one plain gradient step on one image, through the public API."""
    H, Yhat = mp5.forwardprop(X, W1, W2)
    mp5.loss(Yhat, Y)
    G1, G2 = mp5.backprop(Y, Yhat, H, W2)
    dW1, dW2 = mp5.weight_gradient(X, H, G1, G2, 3, 3)
    return mp5.weight_update(W1, W2, dW1, dW2, lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = np.maximum(rng.normal(size=(8, 8, 512)), 0).astype(np.float32)
    W1 = rng.normal(0, 0.01, (3, 3, 512, 128)).astype(np.float32)
    W2 = rng.normal(0, 0.01, (1, 1, 128, 9, 5)).astype(np.float32)
    Y = np.zeros((8, 8, 9, 5), np.float32)
    Y[3:5, 3:5, :2, 4] = 1
    cols = mp5.im2col(X, 3, 3, 1).reshape(64, 4608)
    K = W1.reshape(4608, 128)

    bare = best_time(lambda: cols @ K, args.repeat)
    fwd = best_time(lambda: mp5.forwardprop(X, W1, W2), args.repeat)
    step = best_time(lambda: train_step(X, Y, W1, W2), args.repeat)
    # The loop's time grows with the number of output channels D: time 16 of them, scale to 128.
    d = 16
    loop = best_time(lambda: mp5.forwardprop_loop(X, W1[..., :d], W2[:, :, :d]), 1) * W1.shape[3] / d
    small = (X, W1[..., :d], W2[:, :, :d])
    np.testing.assert_allclose(mp5.forwardprop(*small)[1], mp5.forwardprop_loop(*small)[1], atol=1e-4)

    print(f"{'what':<44}{'ms':>10}{'x bare':>9}")
    for name, t in (("bare product (64x4608) @ (4608x128)", bare), ("forwardprop, one image", fwd),
                    ("training step, one image", step), ("forwardprop_loop, one image", loop)):
        print(f"{name:<44}{1e3 * t:>10.3f}{t / bare:>9.2f}")
    print(f"forwardprop / bare product: {fwd / bare:.2f} (goal <= 2)")
    print(f"training step / bare product: {step / bare:.2f} (goal <= 5)")
    print(f"speed-up of forwardprop over the loop version: {loop / fwd:.0f}x")


if __name__ == "__main__":
    main()

"""Speed of course_lib's box_iou and nms against torchvision's C++ kernels and a per-pair loop.

    python benchmarks/ops.py [--repeat 5]

Every figure is measured in this run on the same inputs, so the ratios hold on any machine:
course_lib / torchvision (goal: <= 3) and loop / course_lib (goal: >= 1000). The loop is timed on a
slice of the pairs and scaled up, because the full loop over 450,000 pairs takes seconds.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torchvision.ops as tvops

from course_lib.boxes import box_iou
from course_lib.nms import nms

from _timing import best_time  # benchmarks/ is on sys.path when a script runs


def random_boxes(n: int, size: float, gen: np.random.Generator) -> np.ndarray:
    """(n, 4) float32 `xyxy` pixel boxes inside a size x size image."""
    xy = gen.uniform(0, size * 0.9, (n, 2))
    wh = gen.uniform(8, size * 0.3, (n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, size)], 1).astype(np.float32)


def iou_pair(a, b) -> float:
    """IoU of one pair of `xyxy` boxes, the way one writes it first."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_iou(a, b) -> np.ndarray:
    """Every pair in turn: rows of NumPy arrays `a` (N, 4) and `b` (M, 4), or lists of lists."""
    out = np.empty((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = iou_pair(a[i], b[j])
    return out


def bench_iou(n: int, m: int, repeat: int, gen) -> dict:
    a, b = random_boxes(n, 800, gen), random_boxes(m, 800, gen)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ours = best_time(lambda: box_iou(ta, tb), repeat)
    ref = best_time(lambda: tvops.box_iou(ta, tb), repeat)
    rows = max(1, 2000 // m)  # time the loops on `rows` rows of `a`, then scale to all n
    loop = best_time(lambda: loop_iou(a[:rows], b), 1) * n / rows
    pure = best_time(lambda: loop_iou(a[:rows].tolist(), b.tolist()), 1) * n / rows
    assert np.allclose(box_iou(ta, tb).numpy(), tvops.box_iou(ta, tb).numpy(), atol=1e-6)
    assert np.allclose(loop_iou(a[:rows], b), tvops.box_iou(ta[:rows], tb).numpy(), atol=1e-5)
    return dict(name=f"box_iou {n}x{m}", ours=ours, torchvision=ref, loop=loop, pure=pure)


def bench_nms(n: int, repeat: int, gen) -> dict:
    boxes = torch.from_numpy(random_boxes(n, 800, gen))
    scores = torch.from_numpy(gen.random(n).astype(np.float32))
    ours = best_time(lambda: nms(boxes, scores, 0.7), repeat)
    ref = best_time(lambda: tvops.nms(boxes, scores, 0.7), repeat)
    assert torch.equal(nms(boxes, scores, 0.7), tvops.nms(boxes, scores, 0.7))
    return dict(name=f"nms {n}", ours=ours, torchvision=ref, loop=None, pure=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    gen = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeat} runs")
    print("loop: a Python loop over pairs of NumPy rows; pure: the same loop over Python floats")
    print(f"{'operation':<20}{'course_lib':>12}{'torchvision':>13}{'loop':>11}{'ours/tv':>9}{'loop/ours':>11}"
          f"{'pure/ours':>11}{'loop/tv':>10}")
    for r in (bench_iou(8940, 2, args.repeat, gen), bench_iou(22500, 20, args.repeat, gen),
              bench_nms(12000, args.repeat, gen)):
        loop = f"{r['loop']:10.3f}s" if r["loop"] else f"{'-':>11}"
        speedup = f"{r['loop'] / r['ours']:10.0f}x" if r["loop"] else f"{'-':>11}"
        pure = f"{r['pure'] / r['ours']:10.0f}x" if r["pure"] else f"{'-':>11}"
        loop_tv = f"{r['loop'] / r['torchvision']:9.0f}x" if r["loop"] else f"{'-':>10}"
        print(f"{r['name']:<20}{r['ours'] * 1e3:10.2f}ms{r['torchvision'] * 1e3:11.2f}ms{loop}"
              f"{r['ours'] / r['torchvision']:8.2f}x{speedup}{pure}{loop_tv}")
    print("goals: ours/tv <= 3, loop/ours >= 1000 (loop/tv bounds what any vectorised code can reach)")


if __name__ == "__main__":
    main()

"""Speed of lesson 2's batched SSD matching against matching one image at a time.

    python benchmarks/ssd_matching.py [--repeat 20]

A training batch of lesson 2 (16 images, up to 3 objects each, padded, the 189 multi-scale anchors)
is matched by `match_batch`, which does every image in one set of tensor operations, and by a loop
of `match_targets` over the images, one image at a time.
Both are measured in this run on the same batch and give equal targets, so the ratio holds on any
machine. Goal: loop / batched >= 5 (matching is then a small part of a training step).
"""
from __future__ import annotations

import argparse

import torch

from course_lib.models import ssd
from course_lib.models.ssd.loss import match_batch, match_targets

from _timing import best_time  # benchmarks/ is on sys.path when a script runs


def batch(n: int = 16, g: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, g, 4) `xyxy` normalised boxes and (n, g) labels, about a third of the rows padding (-1)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, g, 2, generator=gen) * 0.7
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(n, g, 2, generator=gen) * 0.2], -1)
    labels = torch.randint(0, 3, (n, g), generator=gen)
    labels[:, 1:][torch.rand(n, g - 1, generator=gen) < 0.5] = -1
    return boxes, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    boxes, labels = batch()
    loop = lambda: [match_targets(b, l, anchors, 3, 0.4) for b, l in zip(boxes, labels)]
    batched = lambda: match_batch(boxes, labels, anchors, 3, 0.4)
    for got, want in zip(batched(), zip(*loop())):
        assert torch.equal(got, torch.stack(want))
    t_loop, t_batch = best_time(loop, args.repeat), best_time(batched, args.repeat)
    print(f"{'what':<44}{'ms':>10}")
    print(f"{'match_targets, image by image (16 images)':<44}{1e3 * t_loop:>10.3f}")
    print(f"{'match_batch, the whole batch':<44}{1e3 * t_batch:>10.3f}")
    print(f"loop / batched: {t_loop / t_batch:.1f} (goal >= 5)")


if __name__ == "__main__":
    main()

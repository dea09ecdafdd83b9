"""A plain training loop shared by the lessons: mini-batches from tensors, AdamW, one-cycle schedule.

The loop knows nothing about detection: a `loss_fn(model, batch)` callable turns a batch into a
scalar loss, so the same `fit` trains a classifier, an SSD or a region-proposal network.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .notebook import progress

__all__ = ["TensorLoader", "fit"]


class TensorLoader:
    """Mini-batches of aligned tensors that already sit in memory (no per-item collation).

    tensors: tensors with the same first dimension N; yields tuples of (batch_size, ...) slices.
    shuffle: a new order every epoch drawn from a torch.Generator seeded with `seed`, so a run is
    reproducible. drop_last drops a final incomplete batch (BatchNorm dislikes a batch of 1).
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int = 32, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        n = {t.shape[0] for t in tensors}
        if len(n) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {sorted(n)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors, self.batch_size, self.shuffle, self.drop_last = tuple(tensors), batch_size, shuffle, drop_last
        self.n = n.pop()
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def fit(model: nn.Module, loader: Iterable, loss_fn: Callable, epochs: int, lr: float = 1e-3,
        weight_decay: float = 1e-4, optimizer: torch.optim.Optimizer | None = None, desc: str = "train",
        device: torch.device | str | None = None) -> list[float]:
    """Train `model` for `epochs` passes over `loader`; return the mean loss of every epoch.

    loss_fn(model, batch) -> scalar tensor, or a tuple of scalars that are summed (e.g. (loc, cls)).
    Each batch is moved to `device` (default: the model's). optimizer defaults to AdamW(lr,
    weight_decay); the learning rate follows a one-cycle schedule peaking at `lr`. One progress bar
    over the epochs (course_lib.notebook.progress) shows the last epoch's loss.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = device or next(model.parameters()).device
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=epochs * len(loader))
    history = []
    bar = progress(range(epochs), desc=desc)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            batch = tuple(t.to(device) for t in batch)
            loss = loss_fn(model, batch)
            loss = sum(loss) if isinstance(loss, (tuple, list)) else loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        history.append(total / max(count, 1))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return history

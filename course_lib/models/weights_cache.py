"""Trained weights kept in the data cache: a state dict saved atomically, loaded with checks.

Lesson 2's pretrained shape backbone and lesson 4's source detector are trained once and kept
under data/. A file is written under a temporary name and renamed into place
(course_lib.datasets._atomic), so a killed run never leaves a half-written file; a file that
cannot be used (truncated, another model's weights, NaN) is reported in one line, not trusted.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_weights", "save_weights"]


def load_weights(model: nn.Module, path) -> str | None:
    """Load the state dict at `path` (torch.load, weights_only) into `model`.

    Returns None when it worked, else a short reason (the model is then left as it was, unless
    load_state_dict failed half-way: callers that retrain reload their own initial state).
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        return f"truncated or corrupt: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "not a state dict"
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return f"NaN or infinite values in {bad[0]}"
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        return f"not a state dict of this model ({str(err).splitlines()[0]})"
    return None


def save_weights(model: nn.Module, path) -> Path:
    """Save model.state_dict() (on the CPU) to `path`: written to a temporary sibling, then renamed."""
    from ..datasets._atomic import clean_stale, temp_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = temp_path(path, ".part")
    try:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

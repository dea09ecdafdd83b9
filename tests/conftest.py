import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def random_boxes(rng: np.random.Generator, n: int, size: float = 100.0, max_wh: float = 50.0) -> np.ndarray:
    """(n, 4) xyxy boxes with positive sizes inside roughly [0, size + max_wh]."""
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, max_wh, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)

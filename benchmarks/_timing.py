"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import time


def best_time(fn, repeat: int) -> float:
    """The fastest of `repeat` runs of `fn()`, in seconds (the least disturbed by other work)."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

"""Calibrated bands for the figures the lessons train.

A trained figure (an mAP, an accuracy, a loss after training) differs between seeds, CPUs, thread
counts and GPUs, so a lesson never compares it with one stored number. It asserts it against a band
measured over many runs instead: `benchmarks/calibrate.py` runs each lesson under several seeds,
thread counts and devices, and writes `calibration.json` (beside this module) and the readable
table `benchmarks/calibration.md`. Each entry holds the observed minimum, median and maximum and a
bound a little outside them:

- for a figure where higher is better, ``bound = minimum - margin``;
- for one where lower is better (an error in pixels), ``bound = maximum + margin``;
- ``margin = max(MARGIN_SPREAD * (maximum - minimum), MARGIN_RELATIVE * |median|)``.

A lesson calls ``check(key, value)``: it fails only when the figure leaves its band, which is a
regression, not noise. Keys read ``"lesson2.focal_map"``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("calibration.json")
# The observed spread again, or 15% of the typical value, whichever is wider: the runs cannot
# cover every CPU and GPU, and a band must not fail a machine that merely rounds differently.
MARGIN_SPREAD = 1.0
MARGIN_RELATIVE = 0.15


@dataclass(frozen=True)
class Band:
    """What the calibration runs saw of one figure, and the bound a run must respect.

    better: "higher" (the bound is a floor) or "lower" (the bound is a ceiling); runs: how many
    runs the minimum, median and maximum come from.
    """

    key: str
    better: str
    minimum: float
    median: float
    maximum: float
    runs: int
    bound: float

    def holds(self, value: float) -> bool:
        return value >= self.bound if self.better == "higher" else value <= self.bound

    def __str__(self) -> str:
        side = ">=" if self.better == "higher" else "<="
        return (f"{self.key} {side} {self.bound:.3g} (runs: median {self.median:.3g}, "
                f"{self.minimum:.3g} to {self.maximum:.3g} over {self.runs})")


def bound_for(better: str, minimum: float, median: float, maximum: float) -> float:
    """The bound of a band: outside the observed range by the margin the module docstring states."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    margin = max(MARGIN_SPREAD * (maximum - minimum), MARGIN_RELATIVE * abs(median))
    return minimum - margin if better == "higher" else maximum + margin


def load_table(path: Path | str = TABLE) -> dict[str, Band]:
    """Every band of the calibration table, by key."""
    try:
        rows = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    return {key: Band(key=key, **row) for key, row in rows.items()}


def band(key: str) -> Band:
    """The band of one figure; a clear KeyError when the table has no such key."""
    table = load_table()
    if key not in table:
        raise KeyError(f"{key!r} is not in the calibration table {TABLE.name}; run "
                       "benchmarks/calibrate.py for its lesson (see benchmarks/calibration.md)")
    return table[key]


def describe(key: str, fmt: str = ".2f") -> str:
    """The band as prose: ``"0.72 (0.66 to 0.76 over 10 runs)"``, for the lesson text via glue.

    While $COURSE_RECORD is set (a calibration run), a key not yet in the table is described as
    "(not calibrated yet)" instead of raising, so that the run that calibrates it can finish."""
    if os.environ.get("COURSE_RECORD") and key not in load_table():
        return "(not calibrated yet)"
    b = band(key)
    return f"{b.median:{fmt}} ({b.minimum:{fmt}} to {b.maximum:{fmt}} over {b.runs} runs)"


def check(key: str, value, better: str = "higher") -> float:
    """Assert that a trained figure lies inside its calibrated band; return it as a float.

    key: ``"lessonN.name"``; value: a number (Python, NumPy or a one-element tensor); better:
    "higher" or "lower", which side of the band is a failure.
    While $COURSE_RECORD names a file (a calibration run), the figure is appended to it as one JSON
    line and nothing is asserted: the runs are what sets the bands.
    """
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    value = float(value.item() if hasattr(value, "item") else value)
    record = os.environ.get("COURSE_RECORD")
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"key": key, "value": value, "better": better}) + "\n")
        return value
    b = band(key)
    if b.better != better:
        raise ValueError(f"{key}: the table says {b.better} is better, the lesson says {better}")
    assert b.holds(value), f"{key} = {value:.4g} is outside its calibrated band: {b}"
    return value

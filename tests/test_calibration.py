"""Calibrated bands (course_lib.calibration) and glue: the tools that keep trained figures honest."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import calibration, notebook
from course_lib.calibration import Band, bound_for, check

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(path):
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


def _checked_keys():
    keys = {}
    for path in NOTEBOOKS:
        for key, better in re.findall(r'check\(\s*f?"([^"]+)"[^)]*?(?:better="(\w+)")?\)', _code(path)):
            keys[key] = better or "higher"
    return keys


def test_bound_is_outside_the_observed_range_by_the_stated_margin():
    assert bound_for("higher", 0.5, 0.6, 0.8) == pytest.approx(0.5 - 0.3)          # the spread
    assert bound_for("higher", 0.69, 0.7, 0.71) == pytest.approx(0.69 - 0.105)    # 15% of the median
    assert bound_for("lower", 20.0, 25.0, 40.0) == pytest.approx(40.0 + 20.0)
    with pytest.raises(ValueError, match="better"):
        bound_for("up", 0, 0, 0)


def test_check_asserts_against_the_band(monkeypatch):
    table = {"lesson9.map": Band("lesson9.map", "higher", 0.6, 0.7, 0.8, 5, 0.5),
             "lesson9.err": Band("lesson9.err", "lower", 10.0, 12.0, 14.0, 5, 16.0)}
    monkeypatch.setattr(calibration, "load_table", lambda path=None: table)
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    assert check("lesson9.map", np.float32(0.55)) == pytest.approx(0.55)
    assert check("lesson9.err", torch.tensor(15.0), better="lower") == 15.0
    with pytest.raises(AssertionError, match=r"lesson9.map = 0.45 is outside its calibrated band: lesson9.map >= 0.5"):
        check("lesson9.map", 0.45)
    with pytest.raises(AssertionError, match="lesson9.err"):
        check("lesson9.err", 16.5, better="lower")
    with pytest.raises(ValueError, match="the table says lower is better"):
        check("lesson9.err", 1.0)
    with pytest.raises(KeyError, match="calibrate.py"):
        check("lesson9.unknown", 1.0)


def test_check_records_instead_of_asserting_during_calibration(tmp_path, monkeypatch):
    record = tmp_path / "figures.jsonl"
    monkeypatch.setenv("COURSE_RECORD", str(record))
    assert check("lesson9.never_calibrated", 0.0) == 0.0
    check("lesson9.err", 3, better="lower")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines == [{"key": "lesson9.never_calibrated", "value": 0.0, "better": "higher"},
                     {"key": "lesson9.err", "value": 3.0, "better": "lower"}]


def test_the_table_holds_every_checked_figure_and_nothing_else():
    table = calibration.load_table()
    keys = _checked_keys()
    assert keys, "no lesson calls calibration.check"
    # A key written as an f-string ("lesson4.finetuned_{key}") stands for every key it can produce.
    patterns = {re.compile(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(k)) + "$"): b for k, b in keys.items()}
    for pattern in patterns:
        assert any(pattern.match(key) for key in table), f"{pattern.pattern} is not in the table"
    for key, band in table.items():
        better = [b for pattern, b in patterns.items() if pattern.match(key)]
        assert better, f"{key} is in the table but no lesson checks it"
        assert band.better == better[0], key
        assert band.minimum <= band.median <= band.maximum and band.runs >= 5, key
        assert band.bound == pytest.approx(bound_for(band.better, band.minimum, band.median, band.maximum), abs=1e-4)
        assert band.holds(band.minimum) and band.holds(band.maximum), key


def test_describe_quotes_median_and_range(monkeypatch):
    monkeypatch.setattr(calibration, "load_table",
                        lambda path=None: {"k": Band("k", "higher", 0.66, 0.72, 0.76, 10, 0.61)})
    assert calibration.describe("k") == "0.72 (0.66 to 0.76 over 10 runs)"
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    with pytest.raises(KeyError, match="calibrate.py"):
        calibration.describe("lesson9.new")
    monkeypatch.setenv("COURSE_RECORD", "figures.jsonl")   # the run that calibrates it goes on
    assert calibration.describe("lesson9.new") == "(not calibrated yet)"
    assert calibration.describe("k") == "0.72 (0.66 to 0.76 over 10 runs)"


def test_glue_returns_its_value_and_is_silent_outside_a_kernel(capsys):
    value = np.float64(0.25)
    assert notebook.glue("x", value) is value
    assert notebook.glue("t", torch.tensor(3)) is not None
    assert capsys.readouterr().out == ""
    with pytest.raises(TypeError, match="number or a string"):
        notebook.glue("bad", [1, 2])


def test_course_seed_replaces_the_setup_seed(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    ctx = notebook.setup(seed=0)
    assert ctx.seed == 7 and torch.equal(torch.rand(2), (torch.manual_seed(7), torch.rand(2))[1])


def test_glue_stores_floats_to_four_significant_digits():
    assert notebook._plain(np.float32(0.123456789)) == 0.1235
    assert notebook._plain(181.01933598375618) == 181.0
    assert notebook._plain(torch.tensor(7)) == 7 and notebook._plain("a") == "a"


def test_a_bad_course_seed_is_named(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "one")
    with pytest.raises(ValueError, match="COURSE_SEED must be a whole number, got 'one'"):
        notebook.setup()

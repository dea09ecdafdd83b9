import numpy as np
import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.boxes import box_iou
from course_lib.nms import batched_nms, nms
from conftest import random_boxes


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed, thr):
    rng = np.random.default_rng(seed)
    b = torch.tensor(random_boxes(rng, 300), dtype=torch.float32)
    s = torch.tensor(rng.random(300), dtype=torch.float32)
    assert torch.equal(nms(b, s, thr), tvo.nms(b, s, thr))


def test_nms_ties_match_torchvision():
    rng = np.random.default_rng(3)
    b = torch.tensor(random_boxes(rng, 400, size=60), dtype=torch.float32)
    s = torch.tensor(rng.integers(0, 5, 400) / 4.0, dtype=torch.float32)  # many equal scores
    assert torch.equal(nms(b, s, 0.5), tvo.nms(b, s, 0.5))


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_matches_torchvision(seed):
    rng = np.random.default_rng(seed)
    b = torch.tensor(random_boxes(rng, 500), dtype=torch.float32)
    s = torch.tensor(rng.permutation(500) / 500.0, dtype=torch.float32)  # distinct scores
    lab = torch.tensor(rng.integers(0, 4, 500))
    assert torch.equal(batched_nms(b, s, lab, 0.5), tvo.batched_nms(b, s, lab, 0.5))


def test_numpy_in_numpy_out_and_empty():
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]])
    keep = nms(b, np.array([0.9, 0.8, 0.7]), 0.5)
    assert isinstance(keep, np.ndarray) and keep.tolist() == [0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int), 0.5).shape == (0,)


def test_nms_bad_input():
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\)"):
        nms(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        nms(np.zeros((1, 4)), np.array([np.nan]), 0.5)
    with pytest.raises(ValueError, match="labels"):
        batched_nms(np.zeros((2, 4)), np.zeros(2), np.zeros(3, dtype=int), 0.5)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 0.9))
def test_nms_greedy_properties(seed, thr):
    rng = np.random.default_rng(seed)
    b = random_boxes(rng, 40, size=50)
    s = rng.random(40)
    keep = nms(b, s, thr)
    assert np.all(np.diff(s[keep]) <= 0), "kept indices come in descending score order"
    iou = box_iou(b, b)
    kept_iou = iou[np.ix_(keep, keep)] - np.eye(len(keep))
    assert np.all(kept_iou <= thr), "no two kept boxes overlap above the threshold"
    dropped = np.setdiff1d(np.arange(40), keep)
    for d in dropped:
        assert np.any((iou[d, keep] > thr) & (s[keep] >= s[d])), "each dropped box has a higher kept box over it"



@pytest.mark.parametrize("fn", [nms, lambda b, s, t: batched_nms(b, s, np.zeros(len(b), int), t)])
def test_iou_threshold_must_be_in_0_1(fn):
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30.0]])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    # A NaN threshold used to drop the disjoint box 3: no IoU is <= NaN.
    for thr in (np.nan, -0.1, 1.5, np.inf):
        with pytest.raises(ValueError, match="iou_threshold"):
            fn(b, s, thr)
    for thr in (None, "0.5"):
        with pytest.raises(TypeError, match="iou_threshold"):
            fn(b, s, thr)
    assert fn(b, s, 1.0).tolist() == [0, 1, 2, 3]  # IoU > 1 never happens: nothing dropped
    assert fn(b, s, 0.0).tolist() == [0, 3]         # any overlap drops
    assert fn(b, s, np.float32(0.45)).tolist() == fn(b, s, torch.tensor(0.45)).tolist() == [0, 2, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_greedy_nms_can_keep_fewer_boxes_at_a_higher_threshold(dtype):
    # The counter-example behind the NMS exercises of lessons 0 and 3: A suppresses B at 0.25 only,
    # and B, left alive at 0.5, suppresses C and D.
    boxes = np.array([[0, 4, 10, 20], [0, 0, 10, 10], [0, 0, 6, 10], [4, 0, 10, 10]], dtype=dtype)
    scores = np.array([4, 3, 2, 1], dtype=dtype)
    for t, kept in ((0.25, [0, 2, 3]), (0.5, [0, 1])):
        assert nms(boxes, scores, t).tolist() == kept
        assert tvo.nms(torch.from_numpy(boxes), torch.from_numpy(scores), t).tolist() == kept

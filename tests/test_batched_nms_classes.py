"""batched_nms keeps its promise: boxes of different labels never suppress each other, whatever
the sign or magnitude of the coordinates. Checked against torchvision.ops.nms run class by class."""
import numpy as np
import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.nms import batched_nms


def per_class_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thr: float) -> torch.Tensor:
    """torchvision's nms class by class, merged in descending score order (ties: lower index first)."""
    b = boxes.float() if boxes.dtype in (torch.float16, torch.bfloat16) else boxes
    keep = [torch.nonzero(labels == c).flatten()[tvo.nms(b[labels == c], scores[labels == c].to(b.dtype), thr)]
            for c in labels.unique()]
    keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.int64)
    order = np.lexsort((keep.numpy(), -scores[keep].double().numpy()))
    return keep[torch.from_numpy(order)]


def test_negative_coordinates_do_not_mix_classes():
    boxes = np.array([[-100, -100, -10, -10.0]] * 2)
    keep = batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.5)
    assert keep.tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_large_float32_coordinates_with_many_classes(seed):
    # Offsetting each class by label * (max + 1) would reach 4e7, where float32 steps by 4.
    rng = np.random.default_rng(seed)
    xy = rng.uniform(1e6 - 50, 1e6, (400, 2))
    b = torch.tensor(np.c_[xy, xy + rng.uniform(1, 30, (400, 2))], dtype=torch.float32)
    s = torch.tensor(rng.random(400), dtype=torch.float32)
    lab = torch.tensor(rng.integers(0, 40, 400))
    assert torch.equal(batched_nms(b, s, lab, 0.5), per_class_nms(b, s, lab, 0.5))


@st.composite
def detections(draw):
    dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
    scale = draw(st.sampled_from([1.0, 100.0, 3e4] + ([1e6, 1e8] if dtype in (torch.float32, torch.float64) else [])))
    offset = draw(st.sampled_from([0.0, -1.0, 1.0])) * scale
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xy = rng.uniform(-scale, scale, (n, 2)) / 4 + offset
    wh = rng.uniform(0, scale / 3, (n, 2))
    b = torch.tensor(np.c_[xy, xy + wh], dtype=dtype)
    b = torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2])], 1)  # sizes >= 0 after rounding
    s = torch.tensor(np.round(rng.random(n), 1), dtype=torch.float32)  # ties occur
    lab = torch.tensor(rng.integers(0, draw(st.integers(1, 50)), n))
    return b, s, lab


@settings(max_examples=150, deadline=None)
@given(detections(), st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.7, 1.0]), st.booleans())
def test_batched_nms_is_nms_class_by_class(det, thr, float_labels):
    b, s, lab = det
    got = batched_nms(b, s, lab.double() if float_labels else lab, thr)
    assert torch.equal(got, per_class_nms(b, s, lab, thr))


@pytest.mark.parametrize("bad", [[0, 1.5], [0, np.nan], [0, np.inf]])
def test_non_integer_labels_raise(bad):
    with pytest.raises(ValueError, match="labels"):
        batched_nms(np.zeros((2, 4)), np.ones(2), np.array(bad), 0.5)

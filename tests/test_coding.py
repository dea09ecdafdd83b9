import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder

from course_lib.boxes import box_convert
from course_lib.coding import DEFAULT_CLAMP, decode, encode, tanh_decode
from conftest import random_boxes


def test_encode_decode_match_torchvision_boxcoder(rng):
    boxes, anchors = torch.tensor(random_boxes(rng, 40)), torch.tensor(random_boxes(rng, 40))
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    ref = coder.encode_single(boxes, anchors)
    torch.testing.assert_close(encode(boxes, anchors), ref)
    torch.testing.assert_close(decode(ref, anchors, clamp=DEFAULT_CLAMP), coder.decode_single(ref, anchors))
    w = (10.0, 10.0, 5.0, 5.0)
    torch.testing.assert_close(encode(boxes, anchors, weights=w), BoxCoder(w).encode_single(boxes, anchors))


def test_yxyx_is_the_same_coding_with_axes_swapped(rng):
    b, a = random_boxes(rng, 10), random_boxes(rng, 10)
    d_xy = encode(b, a)
    d_yx = encode(box_convert(b, "xyxy", "yxyx"), box_convert(a, "xyxy", "yxyx"), fmt="yxyx")
    np.testing.assert_allclose(d_yx, d_xy[:, [1, 0, 3, 2]])


def test_clamp_limits_growth():
    a = np.array([[0, 0, 10, 10.0]])
    out = decode(np.array([[0, 0, 50, 50.0]]), a, clamp=DEFAULT_CLAMP)
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 10 * 1000 / 16)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["xyxy", "yxyx"]))
def test_round_trip(seed, fmt):
    rng = np.random.default_rng(seed)
    b, a = random_boxes(rng, 6), random_boxes(rng, 6)
    np.testing.assert_allclose(decode(encode(b, a, fmt=fmt), a, fmt=fmt), b, rtol=1e-9, atol=1e-9)


def test_tanh_decode_bounds():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    big = tanh_decode(torch.full((1, 4), 50.0), anchors)
    torch.testing.assert_close(big, torch.tensor([[0.45, 0.4, 0.75, 1.0]]))
    zero = tanh_decode(torch.zeros(2, 1, 4), anchors)
    torch.testing.assert_close(zero[0], box_convert(anchors, "cxcywh", "xyxy"))


def test_bad_coding_input():
    with pytest.raises(ValueError, match="same shape"):
        encode(np.zeros((2, 4)) + [0, 0, 1, 1], np.zeros((3, 4)) + [0, 0, 1, 1])
    with pytest.raises(ValueError, match="positive width"):
        encode(np.array([[0, 0, 1, 1.0]]), np.array([[0, 0, 0, 1.0]]))
    with pytest.raises(ValueError, match="fmt"):
        encode(np.array([[0, 0, 1, 1.0]]), np.array([[0, 0, 1, 1.0]]), fmt="xywh")


@pytest.mark.parametrize("fmt", ["xyxy", "yxyx"])
@pytest.mark.parametrize("size", [0.0, -1.0])
def test_encode_rejects_boxes_without_size(fmt, size):
    # A zero-width box used to encode to tw = -inf.
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    boxes = np.array([[2, 2, 8, 8], [3, 3, 3 + size, 9]])
    with pytest.raises(ValueError, match="boxes"):
        encode(boxes, anchors, fmt=fmt)
    with pytest.raises(ValueError, match="boxes"):
        encode(torch.tensor(boxes[:, [1, 0, 3, 2]]), torch.tensor(anchors), fmt=fmt)
    with pytest.raises(ValueError, match="anchors"):
        encode(anchors, boxes, fmt=fmt)


@pytest.mark.parametrize("weights", [(1, 1, 0, 1), (1, 1, 1, float("nan")), (1, -1, 1, 1), (1, 1, 1)])
def test_coding_weights_must_be_four_positive_numbers(weights):
    # A zero weight gave -inf offsets in decode (division by it), a NaN one NaN boxes.
    b = np.array([[0, 0, 10, 10.0]])
    with pytest.raises(ValueError, match="weights"):
        encode(b, b, weights)
    with pytest.raises(ValueError, match="weights"):
        decode(np.zeros((1, 4)), b, weights)


def test_decode_clamp_must_be_a_number():
    with pytest.raises(ValueError, match="clamp"):
        decode(np.zeros((1, 4)), np.array([[0, 0, 10, 10.0]]), clamp=float("nan"))


def test_tanh_reach_bounds_every_decoded_box_and_is_reached():
    from course_lib.coding import tanh_decode, tanh_reach
    from course_lib.boxes import box_iou

    g = torch.Generator().manual_seed(0)
    anchors = torch.cat([torch.rand(6, 2, generator=g), 0.1 + 0.4 * torch.rand(6, 2, generator=g)], 1)
    centres = anchors[:, :2] + (torch.rand(6, 2, generator=g) - 0.5) * anchors[:, 2:]   # within reach
    sizes = anchors[:, 2:] * torch.exp(torch.randn(6, 2, generator=g))
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1).to(torch.float64)
    reach = tanh_reach(boxes, anchors.double())
    assert reach.shape == (6, 6) and reach.dtype == torch.float64
    acts = torch.randn(20000, 6, 4, generator=g, dtype=torch.float64) * 2
    decoded = tanh_decode(acts, anchors.double())                            # (20000, 6, 4) xyxy
    gc = box_convert(boxes, "xyxy", "cxcywh")
    a = anchors.double()
    s_centre = ((gc[:, :2] - a[:, :2]) / (a[:, 2:] / 2)).clamp(-1, 1)
    s_size = (2 * (gc[:, 2:] / a[:, 2:] - 1)).clamp(-1, 1)
    nearest = tanh_decode(torch.atanh(torch.cat([s_centre, s_size], 1) * (1 - 1e-12))[None], a)[0]
    for j in range(6):
        assert box_iou(boxes[j:j + 1], decoded[:, j]).max() <= reach[j, j] + 1e-9   # nothing beats it
        assert box_iou(boxes[j:j + 1], nearest[j:j + 1]).item() == pytest.approx(reach[j, j].item(), abs=1e-6)
    # an object the anchor can fit exactly, and one twice the largest size the anchor can reach
    a = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    fit_exactly = torch.tensor([[0.42, 0.42, 0.62, 0.62]])
    too_big = torch.tensor([[0.2, 0.2, 0.8, 0.8]])
    assert tanh_reach(fit_exactly, a).item() == pytest.approx(1.0)
    assert tanh_reach(too_big, a).item() == pytest.approx((0.3 / 0.6) ** 2)
    assert tanh_reach(fit_exactly.numpy(), a.numpy()).dtype == np.float32

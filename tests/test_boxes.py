import numpy as np
import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from course_lib.boxes import BOX_FORMATS, box_area, box_convert, box_iou, clip_boxes, remove_small_boxes
from conftest import random_boxes

TV_FMT = {"xyxy": "xyxy", "xywh": "xywh", "cxcywh": "cxcywh"}


def test_iou_matches_torchvision(rng):
    a, b = random_boxes(rng, 50), random_boxes(rng, 30)
    ours = box_iou(torch.tensor(a), torch.tensor(b))
    ref = tvo.box_iou(torch.tensor(a), torch.tensor(b))
    torch.testing.assert_close(ours, ref)
    assert isinstance(box_iou(a, b), np.ndarray)
    np.testing.assert_allclose(box_iou(a, b), ref.numpy(), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_convert_matches_torchvision(rng, fmt):
    a = torch.tensor(random_boxes(rng, 20))
    torch.testing.assert_close(box_convert(a, "xyxy", fmt), tvo.box_convert(a, "xyxy", fmt))
    b = tvo.box_convert(a, "xyxy", fmt)
    torch.testing.assert_close(box_convert(b, fmt, "xyxy"), tvo.box_convert(b, fmt, "xyxy"))


def test_yxyx_swaps_axes():
    b = np.array([[1.0, 2.0, 5.0, 9.0]])
    np.testing.assert_array_equal(box_convert(b, "xyxy", "yxyx"), [[2.0, 1.0, 9.0, 5.0]])
    np.testing.assert_array_equal(box_convert(b, "xyxy", "cxcywh"), [[3.0, 5.5, 4.0, 7.0]])


@pytest.mark.parametrize("src", BOX_FORMATS)
@pytest.mark.parametrize("dst", BOX_FORMATS)
def test_convert_round_trip(rng, src, dst):
    b = box_convert(random_boxes(rng, 10), "xyxy", src)
    np.testing.assert_allclose(box_convert(box_convert(b, src, dst), dst, src), b, atol=1e-9)


def test_area_and_clip():
    b = np.array([[0, 0, 10, 5], [-5, -5, 5, 20]], dtype=float)
    np.testing.assert_array_equal(box_area(b), [50, 250])
    np.testing.assert_array_equal(clip_boxes(b, (12, 8)), [[0, 0, 8, 5], [0, 0, 5, 12]])


def test_remove_small_matches_torchvision(rng):
    b = torch.tensor(random_boxes(rng, 100, max_wh=20))
    torch.testing.assert_close(remove_small_boxes(b, 8.0), tvo.remove_small_boxes(b, 8.0))


def test_empty_inputs_give_empty_outputs():
    e = np.zeros((0, 4))
    assert box_iou(e, np.ones((3, 4))).shape == (0, 3)
    assert box_iou(np.ones((3, 4)), e).shape == (3, 0)
    assert box_convert(e, "xyxy", "cxcywh").shape == (0, 4)
    assert box_area(e).shape == (0,)
    assert remove_small_boxes(e, 1).shape == (0,)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: box_iou(np.zeros((3, 5)), np.zeros((2, 4))), "last dimension of 4"),
        (lambda: box_iou(np.zeros((4,)), np.zeros((2, 4))), "boxes1 must have shape"),
        (lambda: box_convert(np.zeros((2, 4)), "xyxy", "ltrb"), "out_fmt"),
        (lambda: box_iou(np.array([[0, 0, np.nan, 1]]), np.zeros((1, 4))), "NaN"),
        (lambda: box_iou(np.array([[5, 0, 1, 1.0]]), np.zeros((1, 4))), "negative size"),
        (lambda: box_convert(np.array([[0, 0, -1, 2.0]]), "xywh", "xyxy"), "w >= 0"),
        (lambda: clip_boxes(np.zeros((1, 4)), (3,)), "height, width"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _boxes_strategy(n_max=8):
    coords = st.floats(0, 1000, allow_nan=False, width=64)
    sizes = st.floats(0.5, 500, allow_nan=False, width=64)
    box = st.tuples(coords, coords, sizes, sizes).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
    return st.lists(box, min_size=1, max_size=n_max).map(lambda l: np.array(l, dtype=np.float64))


@settings(max_examples=60, deadline=None)
@given(a=_boxes_strategy(), b=_boxes_strategy())
def test_iou_properties(a, b):
    iou = box_iou(a, b)
    assert np.all((iou >= 0) & (iou <= 1 + 1e-12))
    np.testing.assert_allclose(iou, box_iou(b, a).T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.diag(box_iou(a, a)), 1.0, rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(a=_boxes_strategy(), b=_boxes_strategy(), shift=st.floats(-500, 500), scale=st.floats(0.1, 10))
def test_iou_invariant_to_translation_and_scale(a, b, shift, scale):
    ref = box_iou(a, b)
    np.testing.assert_allclose(box_iou(a + shift, b + shift), ref, atol=1e-7)
    np.testing.assert_allclose(box_iou(a * scale, b * scale), ref, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (5, 4), elements=st.floats(-1e3, 1e3)))
def test_convert_accepts_any_finite_xywh_with_nonneg_size(x):
    x[:, 2:] = np.abs(x[:, 2:])
    np.testing.assert_allclose(box_convert(box_convert(x, "xywh", "xyxy"), "xyxy", "xywh"), x, atol=1e-9)

"""Box geometry in every floating dtype: float16 areas must not overflow past 65504 px^2
(a box of about 256 x 256), and results are cross-checked against torchvision.ops."""
import numpy as np
import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.boxes import box_area, box_iou
from course_lib.nms import nms

h = lambda a: torch.tensor(a, dtype=torch.float16)


def test_float16_iou_of_large_boxes():
    iou = box_iou(h([[0, 0, 300, 300]]), h([[0, 0, 300, 300], [0, 0, 10, 10]]))
    assert iou.dtype == torch.float16
    torch.testing.assert_close(iou, h([[1.0, 100 / 90000]]), atol=1e-3, rtol=0)


def test_float16_iou_numpy_in_numpy_out():
    a = np.array([[0, 0, 300, 300], [-200, -200, 200, 200]], dtype=np.float16)
    iou = box_iou(a, a)
    assert isinstance(iou, np.ndarray) and iou.dtype == np.float16
    np.testing.assert_allclose(iou, [[1, 40000 / 210000], [40000 / 210000, 1]], atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_area_is_float32(dtype):
    # float16 cannot hold 90000: the area comes in float32, as torchvision's box_area gives it.
    b = torch.tensor([[0, 0, 300, 300], [10, 10, 20, 30]], dtype=dtype)
    area = box_area(b)
    assert area.dtype == torch.float32
    torch.testing.assert_close(area, torch.tensor([90000.0, 200.0]))
    torch.testing.assert_close(area, tvo.box_area(b))
    assert box_area(b.numpy() if dtype == torch.float16 else b.float().numpy()).dtype == np.float32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nms_drops_a_near_duplicate_large_box(dtype):
    b = torch.tensor([[0, 0, 300, 300], [0, 0, 300, 301], [400, 400, 700, 700]], dtype=dtype)
    s = torch.tensor([0.9, 0.8, 0.7], dtype=dtype)
    assert nms(b, s, 0.5).tolist() == [0, 2]
    assert nms(b.float().numpy().astype(np.float16), s.float().numpy(), 0.5).tolist() == [0, 2]


_MAX = {torch.float16: 3e4, torch.bfloat16: 1e6, torch.float32: 1e6, torch.float64: 1e9}


@st.composite
def box_sets(draw, dtype, n_max=12):
    """(N, 4) xyxy boxes of `dtype` of any sign and a magnitude up to what the dtype holds."""
    m = _MAX[dtype]
    scale = draw(st.sampled_from([1.0, 30.0, 1e3, m]))
    n = draw(st.integers(1, n_max))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-scale, scale, (n, 2))
    wh = rng.uniform(0, scale, (n, 2)) * (rng.random((n, 1)) < 0.9)  # some zero-size boxes
    b = torch.tensor(np.c_[xy, np.minimum(xy + wh, m)], dtype=dtype)
    return torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2])], 1)


def _reference_iou(a, b):
    """IoU in float64 of the boxes exactly as stored in their dtype."""
    a, b = a.double(), b.double()
    inter = (torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])
             ).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    union = area(a)[:, None] + area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(inter))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_iou_and_area_in_every_dtype(dtype, data):
    a, b = data.draw(box_sets(dtype)), data.draw(box_sets(dtype))
    iou = box_iou(a, b)
    assert iou.dtype == dtype and torch.isfinite(iou).all()
    assert ((iou >= 0) & (iou <= 1)).all()
    ref = _reference_iou(a, b)
    tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(iou.double(), ref, atol=tol, rtol=0)
    area = box_area(a)
    assert torch.isfinite(area).all()
    a64 = a.double()
    torch.testing.assert_close(area.double(), (a64[:, 2] - a64[:, 0]) * (a64[:, 3] - a64[:, 1]),
                               rtol=1e-6 if dtype != torch.float64 else 1e-12, atol=0)
    torch.testing.assert_close(area, tvo.box_area(a))
    # torchvision answers 0/0 = NaN for two boxes of zero area, where course_lib answers 0.
    tv = tvo.box_iou(a, b).nan_to_num(0.0)
    if dtype in (torch.float32, torch.float64):  # the same operations in the same order
        torch.testing.assert_close(iou, tv, atol=0, rtol=0)
    else:  # torchvision answers in float32, from intersections subtracted in the input's dtype
        torch.testing.assert_close(iou.float(), tv, atol=2 * tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@settings(max_examples=40, deadline=None)
@given(data=st.data(), thr=st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.7, 1.0]))
def test_nms_in_every_dtype_matches_torchvision(dtype, data, thr):
    b = data.draw(box_sets(dtype, n_max=40))
    s = torch.tensor(np.random.default_rng(len(b)).permutation(len(b)) / len(b), dtype=torch.float32)
    # torchvision's CPU kernel wants float32 or float64: compare on the same values in float32.
    ref = tvo.nms(b.float() if dtype in (torch.float16, torch.bfloat16) else b, s.to(b.dtype).float()
                  if dtype in (torch.float16, torch.bfloat16) else s.to(b.dtype), thr)
    assert torch.equal(nms(b, s.to(b.dtype), thr), ref)

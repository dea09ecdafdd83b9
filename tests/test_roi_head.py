"""Lesson 3's second stage: RoI pooling vs torchvision, the Fast R-CNN head, its loss, detections."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torchvision.ops import roi_pool

from course_lib.coding import encode
from course_lib.models.faster_rcnn.roi_head import (FastRCNNHead, RoIPool, detect_boxes, roi_loss,
                                                    roi_pool_reference)


def _rois(g, k, size, batch):
    xy = torch.rand(k, 2, generator=g) * size
    wh = torch.rand(k, 2, generator=g) * size * 0.8 + 1
    b = torch.randint(0, batch, (k, 1), generator=g).float()
    return torch.cat([b, xy, xy + wh], 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1 / 16, 1 / 8, 0.25, 0.1]), st.sampled_from([(7, 7), (3, 5), (2, 2)]),
       st.sampled_from([torch.float32, torch.float64]))
def test_reference_roi_pool_equals_torchvision(seed, scale, out, dtype):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 3, 9, 11, generator=g, dtype=dtype)
    rois = _rois(g, 6, 11 / scale, 2).to(dtype)
    ref = roi_pool_reference(feats, rois, out, scale)
    assert torch.equal(ref, roi_pool(feats, rois, out, scale))


def test_canonical_roi_pool_and_module():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 512, 50, 50, generator=g)
    rois = torch.cat([torch.zeros(4, 1), torch.tensor([[30.0, 20, 500, 400], [400, 300, 600, 500],
                                                      [0, 0, 799, 799], [780, 780, 799, 799]])], 1)
    pooled = RoIPool((7, 7), 1 / 16)(feats, rois)
    assert pooled.shape == (4, 512, 7, 7)
    assert torch.equal(pooled, roi_pool(feats, rois, (7, 7), 1 / 16))
    assert torch.equal(pooled, roi_pool_reference(feats, rois, (7, 7), 1 / 16))
    # the whole-image RoI's top-left bin is the max over cells 0..7 x 0..7
    assert torch.equal(pooled[2, :, 0, 0], feats[0, :, :8, :8].amax((-1, -2)))


def test_roi_pool_empty_and_bad_input():
    feats = torch.randn(1, 2, 5, 5)
    assert roi_pool_reference(feats, torch.zeros(0, 5)).shape == (0, 2, 7, 7)
    with pytest.raises(ValueError, match="rois"):
        RoIPool()(feats, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="features"):
        roi_pool_reference(feats[0], torch.zeros(1, 5))


def test_head_shapes_init_and_nonlinearity():
    head = FastRCNNHead(8 * 7 * 7, 32, 21)
    x = torch.randn(5, 8, 7, 7)
    deltas, logits = head(x)
    assert deltas.shape == (5, 84) and logits.shape == (5, 21)
    assert head.loc.weight.std() < 0.002 and head.score.weight.std() < 0.02
    # an affine map would satisfy f(a + b) + f(0) == f(a) + f(b); the ReLUs break that
    a, b = x[:1], x[1:2]
    lhs = head(a + b)[1] + head(torch.zeros_like(a))[1]
    assert not torch.allclose(lhs, head(a)[1] + head(b)[1], atol=1e-7)


def test_roi_loss_by_hand():
    C1 = 3
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1, 2])
    deltas = torch.zeros(3, C1 * 4)
    deltas[1, 4:8] = torch.tensor([0.5, 0.0, 2.0, 0.0])   # class 1's outputs of RoI 1
    deltas[2, 8:12] = torch.tensor([0.0, 0.0, 0.0, -0.2])  # class 2's outputs of RoI 2
    deltas[2, 4:8] = 100.0                                 # another class's outputs: not in the loss
    targets = torch.zeros(3, 4)
    cls, loc = roi_loss(deltas, logits, labels, targets, sigma=1.0)
    lse = lambda *v: math.log(sum(math.exp(t) for t in v))
    ce = ((lse(2, 0, 0) - 2) + (lse(0, 1, 0) - 1) + (lse(0, 0, 3) - 3)) / 3
    sl1 = (0.5 * 0.5 ** 2 + (2.0 - 0.5) + 0.5 * 0.2 ** 2) / 3
    assert cls.item() == pytest.approx(ce, rel=1e-6) and loc.item() == pytest.approx(sl1, rel=1e-6)
    assert cls.ndim == 0 and loc.ndim == 0


def test_roi_loss_bad_shapes():
    with pytest.raises(ValueError, match="box_deltas"):
        roi_loss(torch.zeros(2, 8), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4))


def test_detect_boxes_decodes_per_class_and_suppresses():
    rois = torch.tensor([[10.0, 10, 50, 50], [12.0, 10, 52, 50], [60, 60, 90, 90]])
    target = torch.tensor([[20.0, 20, 60, 60]])
    deltas = torch.zeros(3, 3 * 4)
    deltas[0, 8:12] = encode(target, rois[:1], (10.0, 10.0, 5.0, 5.0))[0]  # class 2 of RoI 0 -> target
    logits = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 4.0], [0.0, 6.0, 0.0]])
    boxes, scores, labels = detect_boxes(deltas, logits, rois, (100, 100), score_threshold=0.3, nms_threshold=0.3)
    # RoI 2 -> class index 1 (label 0); RoI 0 -> class index 2 (label 1), moved onto `target`;
    # RoI 1's class-2 box overlaps that box with IoU 0.43 > 0.3 and is suppressed
    assert labels.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([math.exp(6) / (2 + math.exp(6)), math.exp(5) / (2 + math.exp(5))])
    assert torch.allclose(boxes, torch.tensor([[60.0, 60, 90, 90], [20, 20, 60, 60]]), atol=1e-4)


def test_detect_boxes_without_rois():
    boxes, scores, labels = detect_boxes(torch.zeros(0, 12), torch.zeros(0, 3), torch.zeros(0, 4), (10, 10))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_reference_roi_pool_rounds_float64_rois_as_torchvision_does():
    # 8 - 1e-8 px at scale 1/16 is just under half a cell: float64 rounds it down, float32 up.
    feats = torch.arange(2 * 6 * 6, dtype=torch.float64).reshape(1, 2, 6, 6)
    rois = torch.tensor([[0.0, 8 - 1e-8, 8 - 1e-8, 72.0, 72.0]], dtype=torch.float64)
    assert torch.equal(roi_pool_reference(feats, rois, (2, 2), 1 / 16), roi_pool(feats, rois, (2, 2), 1 / 16))


def test_reference_roi_pool_bins_float64_as_torchvision_does():
    # A RoI 29 cells tall in 7 bins: float32 puts the last bin's end at ceil(29.000002) = 30.
    feats = torch.arange(50 * 50, dtype=torch.float64).reshape(1, 1, 50, 50)
    rois = torch.tensor([[0.0, 500.7, 0.0, 800.0, 450.8]], dtype=torch.float64)
    assert torch.equal(roi_pool_reference(feats, rois, (7, 7), 1 / 16), roi_pool(feats, rois, (7, 7), 1 / 16))

"""Lesson 3's proposal layer and RoI sampling."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib.boxes import box_convert, box_iou
from course_lib.coding import decode, encode
from course_lib.models.faster_rcnn.proposals import (ProposalConfig, ProposalLayer, propose,
                                                     sample_rois)


def _greedy_reference(boxes, scores, thr):
    """Score-ordered greedy NMS written as the textbook loop (the reference, not the code under test)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(box_iou(boxes[i:i + 1], boxes[j:j + 1]).item() <= thr for j in keep):
            keep.append(i)
    return keep


def test_hand_made_case_keeps_what_score_ordered_nms_keeps():
    anchors = torch.tensor([[10.0, 10, 50, 50],     # 0
                            [12.0, 10, 52, 50],     # 1: IoU 0.905 with 0
                            [60.0, 60, 100, 100],   # 2
                            [62.0, 62, 100, 100],   # 3: IoU 0.9025 with 2
                            [0.0, 0, 8, 8],         # 4: smaller than min_size 16 -> dropped
                            [90.0, 90, 140, 140]])  # 5: clipped to [90, 90, 120, 120]
    scores = torch.tensor([0.6, 0.9, 0.5, 0.4, 0.99, 0.7])
    rois, kept_scores = propose(torch.zeros(6, 4), scores, anchors, (120, 120), pre_nms=10, post_nms=10,
                                nms_threshold=0.7, min_size=16)
    # in score order: 4 (too small), 1, 5, 0 (suppressed by 1), 2, 3 (suppressed by 2)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert rois.tolist() == [[12.0, 10, 52, 50], [90.0, 90, 120, 120], [60.0, 60, 100, 100]]
    # NMS in anchor order (the easy mistake) would keep box 0 instead of the better-scored box 1
    assert _greedy_reference(anchors[[0, 1]], [1.0, 0.0], 0.7) == [0]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 40), st.sampled_from([0.3, 0.5, 0.7]))
def test_random_cases_equal_the_reference_greedy_nms(seed, pre, post, thr):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(40, 2, generator=g) * 80
    anchors = torch.cat([xy, xy + 16 + torch.rand(40, 2, generator=g) * 40], 1)
    locs = torch.randn(40, 4, generator=g) * 0.2
    scores = torch.rand(40, generator=g)
    rois, s = propose(locs, scores, anchors, (100, 110), pre, post, thr, min_size=16)
    boxes = decode(locs, anchors, clamp=None)
    boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clamp(0, 110), boxes[:, 1::2].clamp(0, 100)
    big = ((boxes[:, 2] - boxes[:, 0]) >= 16) & ((boxes[:, 3] - boxes[:, 1]) >= 16)
    idx = big.nonzero().flatten()
    top = idx[torch.sort(scores[idx], descending=True, stable=True).indices[:pre]]
    keep = [top[i].item() for i in _greedy_reference(boxes[top], scores[top].tolist(), thr)][:post]
    assert torch.allclose(rois, boxes[keep], atol=1e-4) and torch.equal(s, scores[keep])
    assert (s[:-1] >= s[1:]).all()


def test_yxyx_gives_the_same_boxes():
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=g) * 60
    anchors = torch.cat([xy, xy + 20 + torch.rand(50, 2, generator=g) * 30], 1)
    locs, scores = torch.randn(50, 4, generator=g) * 0.1, torch.rand(50, generator=g)
    a, s_a = propose(locs, scores, anchors, (90, 90), 30, 10)
    b, s_b = propose(locs[:, [1, 0, 3, 2]], scores, box_convert(anchors, "xyxy", "yxyx"), (90, 90), 30, 10,
                     fmt="yxyx")
    assert torch.allclose(box_convert(b, "yxyx", "xyxy"), a) and torch.equal(s_a, s_b)


def test_proposal_layer_counts_follow_the_mode():
    g = torch.Generator().manual_seed(2)
    xy = torch.rand(400, 2, generator=g) * 300
    anchors = torch.cat([xy, xy + 20], 1)
    layer = ProposalLayer(ProposalConfig(pre_nms_train=200, post_nms_train=50, pre_nms_test=100, post_nms_test=7))
    args = (torch.zeros(400, 4), torch.rand(400, generator=g), anchors, (400, 400))
    assert len(layer.train()(*args)[0]) == 50 and len(layer.eval()(*args)[0]) == 7


def test_empty_and_bad_input():
    rois, s = propose(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 4), (10, 10))
    assert rois.shape == (0, 4) and s.shape == (0,)
    with pytest.raises(ValueError, match="objectness"):
        propose(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3, 4), (10, 10))


def test_sample_rois_fractions_labels_and_targets():
    g = torch.Generator().manual_seed(0)
    gt = torch.tensor([[20.0, 20, 80, 80], [100, 100, 150, 160]])
    xy = torch.rand(500, 2, generator=g) * 150
    rois = torch.cat([xy, xy + 20 + torch.rand(500, 2, generator=g) * 50], 1)
    out, labels, targets = sample_rois(rois, gt, torch.tensor([6, 8]), num=128, pos_fraction=0.25, generator=0)
    npos = int((labels > 0).sum())
    assert out.shape == (128, 4) and 2 <= npos <= 32 and (labels[:npos] > 0).all() and (labels[npos:] == 0).all()
    iou = box_iou(gt, out).max(0)
    assert (iou.values[:npos] >= 0.5).all() and (iou.values[npos:] < 0.5).all()
    assert set(labels[:npos].tolist()) <= {6, 8}
    assert torch.equal(labels[:npos], torch.tensor([6, 8])[iou.indices[:npos]])
    expected = encode(gt[iou.indices[:npos]], out[:npos], (10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(targets[:npos], expected) and targets[npos:].abs().sum() == 0


def test_sample_rois_without_objects_and_bad_labels():
    rois = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
    out, labels, targets = sample_rois(rois, torch.zeros(0, 4), torch.zeros(0), num=4, generator=0)
    assert out.shape == (2, 4) and (labels == 0).all() and targets.abs().sum() == 0
    with pytest.raises(ValueError, match="gt_labels"):
        sample_rois(rois, torch.zeros(2, 4), torch.zeros(3), generator=0)

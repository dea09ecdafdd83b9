"""Lesson 3's RPN: head output order vs anchor order, anchor targets, and the loss by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.anchors import anchor_base, grid_anchors
from course_lib.boxes import box_convert
from course_lib.coding import decode
from course_lib.models.faster_rcnn.rpn import RPNHead, anchor_targets, rpn_loss


def test_head_shapes_and_init():
    head = RPNHead(512, 512, 9)
    locs, scores = head(torch.randn(1, 512, 50, 50))
    assert locs.shape == (1, 22500, 4) and scores.shape == (1, 22500, 2)
    for conv in (head.conv, head.loc, head.score):
        assert conv.bias.abs().sum() == 0
        assert 0.008 < conv.weight.std().item() < 0.012


@pytest.mark.parametrize("y,x,a", [(0, 0, 0), (1, 3, 4), (2, 0, 8), (2, 4, 7)])
def test_known_activation_lands_on_the_expected_anchor(y, x, a):
    """A cell (y, x) and output channel for anchor a must come out at row (y * W + x) * A + a,
    the row where grid_anchors puts the anchor of that cell."""
    H, W, A = 3, 5, 9
    head = RPNHead(1, 1, A)
    with torch.no_grad():
        for conv in (head.conv, head.loc, head.score):
            conv.weight.zero_()
            conv.bias.zero_()
        head.conv.weight[0, 0, 1, 1] = 1.0
        head.loc.weight[a * 4 + 2, 0] = 1.0      # third offset of anchor a
        head.score.weight[a * 2 + 1, 0] = 1.0    # object logit of anchor a
    feat = torch.zeros(1, 1, H, W)
    feat[0, 0, y, x] = 1.0
    locs, scores = head(feat)
    row = (y * W + x) * A + a
    assert locs[0].nonzero().tolist() == [[row, 2]] and scores[0].nonzero().tolist() == [[row, 1]]
    anchors = grid_anchors((H, W), 16, anchor_base(16))
    centre = (anchors[row, :2] + anchors[row, 2:]) / 2
    assert centre.tolist() == [x * 16 + 8, y * 16 + 8]
    assert anchors[row].tolist() == pytest.approx((anchor_base(16)[a] + [x * 16, y * 16] * 2).tolist())


def test_anchor_targets_labels_and_deltas_roundtrip():
    anchors = torch.as_tensor(grid_anchors((50, 50), 16, anchor_base()), dtype=torch.float32)
    gt = torch.tensor([[30.0, 20, 500, 400], [400, 300, 600, 500]])
    labels, deltas = anchor_targets(anchors, gt, (800, 800), generator=0)
    assert labels.shape == (22500,) and deltas.shape == (22500, 4)
    pos, neg = labels == 1, labels == 0
    assert 0 < pos.sum() <= 128 and pos.sum() + neg.sum() == 256
    outside = (anchors[:, 0] < 0) | (anchors[:, 1] < 0) | (anchors[:, 2] > 800) | (anchors[:, 3] > 800)
    assert (labels[outside] == -1).all()
    boxes = decode(deltas[pos], anchors[pos])
    ok = [(torch.allclose(b, gt[0], atol=1e-2) or torch.allclose(b, gt[1], atol=1e-2)) for b in boxes]
    assert all(ok) and deltas[~pos].abs().sum() == 0


def test_anchor_targets_yxyx_equals_xyxy_permuted():
    anchors = torch.as_tensor(grid_anchors((50, 50), 16, anchor_base()), dtype=torch.float32)
    gt = torch.tensor([[30.0, 20, 500, 400], [400, 300, 600, 500]])
    l1, d1 = anchor_targets(anchors, gt, (800, 800), generator=0)
    l2, d2 = anchor_targets(box_convert(anchors, "xyxy", "yxyx"), box_convert(gt, "xyxy", "yxyx"), (800, 800),
                            generator=0, fmt="yxyx")
    assert torch.equal(l1, l2) and torch.allclose(d1[:, [1, 0, 3, 2]], d2, atol=1e-6)


def test_anchor_targets_without_objects_gives_only_negatives():
    anchors = torch.as_tensor(grid_anchors((8, 8), 16, anchor_base(16, (2,))), dtype=torch.float32)
    labels, deltas = anchor_targets(anchors, torch.zeros(0, 4), (128, 128), num=32, generator=0)
    assert (labels != 1).all() and (labels == 0).sum() == 32 and deltas.abs().sum() == 0


def test_rpn_loss_by_hand():
    scores = torch.tensor([[2.0, -1.0], [0.0, 1.0], [0.5, 0.5], [3.0, 3.0]])
    labels = torch.tensor([0, 1, -1, 1])
    locs = torch.tensor([[9.0, 9, 9, 9], [0.05, 0.0, -0.5, 0.0], [7.0, 7, 7, 7], [0.0, 0.0, 0.0, 1.0]])
    target = torch.zeros(4, 4)
    # cross-entropy of anchors 0, 1, 3 (anchor 2 is ignored), averaged over 3
    ce = (-math.log(math.exp(2) / (math.exp(2) + math.exp(-1))) - math.log(math.exp(1) / (1 + math.exp(1)))
          + math.log(2)) / 3
    # smooth-L1 with sigma 3 (beta 1/9) over the positives 1 and 3, divided by 2 positives:
    # |0.05| < 1/9 -> 0.5 * 0.05^2 * 9; 0.5 and 1.0 are >= 1/9 -> |d| - 1/18
    sl1 = (0.5 * 0.05 ** 2 * 9 + (0.5 - 1 / 18) + (1.0 - 1 / 18)) / 2
    cls, loc = rpn_loss(locs, scores, labels, target, sigma=3.0, lam=1.0)
    assert cls.ndim == 0 and loc.ndim == 0
    assert cls.item() == pytest.approx(ce, rel=1e-6) and loc.item() == pytest.approx(sl1, rel=1e-6)
    cls_ref = F.cross_entropy(scores[labels >= 0], labels[labels >= 0])
    assert cls.item() == pytest.approx(cls_ref.item(), rel=1e-6)
    _, loc2 = rpn_loss(locs, scores, labels, target, sigma=3.0, lam=10.0)
    assert loc2.item() == pytest.approx(10 * sl1, rel=1e-6)


def test_rpn_loss_batched_and_without_positives():
    locs, scores = torch.randn(2, 6, 4, requires_grad=True), torch.randn(2, 6, 2)
    labels = torch.tensor([[0, 0, -1, -1, 0, -1], [-1, 0, 0, -1, -1, -1]])
    cls, loc = rpn_loss(locs, scores, labels, torch.zeros(2, 6, 4))
    assert torch.isfinite(cls) and loc.item() == 0.0
    (cls + loc).backward()
    assert torch.isfinite(locs.grad).all()


def test_rpn_bad_input_raises():
    with pytest.raises(ValueError, match="locs"):
        rpn_loss(torch.zeros(5, 4), torch.zeros(5, 2), torch.zeros(4, dtype=torch.long), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="features"):
        RPNHead(4, 4, 3)(torch.zeros(4, 8, 8))

"""Lesson 2's SSD: matching on a hand-made case, anchor order vs head order, the loss edge cases."""
import math

import pytest
import torch

from course_lib.boxes import box_convert, box_iou
from course_lib.matching import FORCED, ssd_match
from course_lib.models import ssd
from course_lib.models.ssd.loss import match_batch, match_targets, single_object_loss, ssd_loss
from course_lib.models.ssd.pretrain import pretrained_backbone

C = 3  # classes in these tests; background is index C


def test_ssd_matching_hand_made_case():
    anchors = ssd.ssd_anchors(grids=(4,))  # 16 cells of 0.25, ordered y then x
    gt = torch.tensor([[0.0, 0.0, 0.25, 0.25],   # exactly cell (0, 0) -> anchor 0, IoU 1
                       [0.5, 0.25, 1.0, 0.75],   # 4 cells at IoU 0.25 each: only the forced best, anchor 6
                       [0.0, 0.5, 0.3, 0.8]])    # mostly cell (2, 0) -> anchor 8, IoU 0.694
    labels = torch.tensor([2, 0, 1])
    overlaps = box_iou(gt, ssd.ssd_anchors(grids=(4,), fmt="xyxy"))
    assert overlaps[1, [6, 7, 10, 11]].tolist() == pytest.approx([0.25] * 4)
    gt_idx, overlap, positive = ssd_match(overlaps, 0.5)
    assert positive.nonzero().flatten().tolist() == [0, 6, 8]
    assert gt_idx[[0, 6, 8]].tolist() == [0, 1, 2]
    assert overlap[[0, 6, 8]].tolist() == pytest.approx([FORCED] * 3)  # each is its object's best
    assert overlap[positive.logical_not()].max() < 0.5
    classes, boxes, pos = match_targets(gt, labels, anchors, C)
    expected = torch.full((16,), C)
    expected[[0, 6, 8]] = labels
    assert classes.tolist() == expected.tolist() and torch.equal(pos, positive)
    assert torch.equal(boxes[[0, 6, 8]], gt) and boxes[~pos].abs().sum() == 0


def test_forced_match_survives_any_threshold():
    anchors = ssd.ssd_anchors(grids=(4,))
    tiny = torch.tensor([[0.6, 0.6, 0.62, 0.62]])  # IoU with its cell 0.0064
    classes, _, pos = match_targets(tiny, torch.tensor([1]), anchors, C, threshold=0.99)
    assert pos.sum() == 1 and classes[pos].item() == 1 and pos.nonzero().item() == 2 * 4 + 2


def test_multi_scale_anchor_count():
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    assert anchors.shape == (189, 4)
    head = ssd.MultiScaleHead(64, C, k=9, width=16)
    logits, boxes = head(torch.zeros(2, 64, 8, 8))
    assert logits.shape == (2, 189, C + 1) and boxes.shape == (2, 189, 4)


@pytest.mark.parametrize("g,y,x,a,c", [(4, 1, 2, 5, 0), (4, 3, 0, 8, 2), (2, 1, 1, 0, 1), (1, 0, 0, 4, 3)])
def test_known_activation_lands_on_the_expected_anchor(g, y, x, a, c):
    k = 9
    block = ssd.OutputBlock(1, C, k)
    with torch.no_grad():
        for conv in (block.cls, block.box):
            conv.weight.zero_()
            conv.bias.zero_()
        block.cls.weight[a * (C + 1) + c, 0, 1, 1] = 1.0  # centre tap: output channel <- input pixel
        block.box.weight[a * 4 + 3, 0, 1, 1] = 1.0
    feat = torch.zeros(1, 1, g, g)
    feat[0, 0, y, x] = 1.0
    logits, boxes = block(feat)
    offset = sum(n * n * k for n in (4, 2, 1)[:(4, 2, 1).index(g)])
    hit = logits[0].nonzero().tolist()
    assert hit == [[(y * g + x) * k + a, c]] and boxes[0].nonzero().tolist() == [[(y * g + x) * k + a, 3]]
    anchor = ssd.ssd_anchors(**ssd.MULTI_SCALE)[offset + (y * g + x) * k + a]
    zoom = ssd.MULTI_SCALE["zooms"][a // 3]
    rw, rh = ssd.MULTI_SCALE["ratios"][a % 3]
    assert anchor.tolist() == pytest.approx([(x + 0.5) / g, (y + 0.5) / g, zoom * rw / g, zoom * rh / g])


def test_multi_scale_head_concatenates_grids_4_2_1():
    head = ssd.MultiScaleHead(8, C, k=9, width=8).eval()
    with torch.no_grad():
        for i, out in enumerate(head.outs):
            out.cls.weight.zero_()
            out.cls.bias.fill_(float(i))
    logits, _ = head(torch.randn(1, 8, 8, 8))
    assert logits[0, :144].unique().tolist() == [0.0]
    assert logits[0, 144:180].unique().tolist() == [1.0] and logits[0, 180:].unique().tolist() == [2.0]


def test_single_grid_head_shapes_and_prior():
    head = ssd.SingleGridHead(32, C, k=1, width=16).eval()
    logits, boxes = head(torch.zeros(3, 32, 8, 8))
    assert logits.shape == (3, 16, C + 1) and boxes.shape == (3, 16, 4)
    assert torch.sigmoid(head.out.cls.bias).max().item() == pytest.approx(1 / (1 + math.exp(4)), rel=1e-5)


def _batch(seed=0, B=2, A=189):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, A, C + 1, generator=g), torch.randn(B, A, 4, generator=g)


@pytest.mark.parametrize("focal", [False, True])
def test_loss_is_finite_without_objects(focal):
    logits, acts = _batch()
    logits.requires_grad_(True)
    acts.requires_grad_(True)
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    empty = ssd_loss(logits, acts, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.int64), anchors, focal)
    padded = ssd_loss(logits, acts, torch.zeros(2, 3, 4), torch.full((2, 3), -1), anchors, focal)
    for loc, cls in (empty, padded):
        assert loc.item() == 0 and math.isfinite(cls.item()) and cls.item() > 0
    sum(padded).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(acts.grad).all()


@pytest.mark.parametrize("focal", [False, True])
def test_loss_ignores_padding_boxes(focal):
    logits, acts = _batch(1)
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6]], [[0.3, 0.2, 0.9, 0.7]]])
    labels = torch.tensor([[0], [2]])
    base = ssd_loss(logits, acts, boxes, labels, anchors, focal)
    pad_boxes = torch.cat([boxes, torch.tensor([[[0.2, 0.2, 0.8, 0.8]], [[0.0, 0.0, 0.0, 0.0]]])], 1)
    pad_labels = torch.cat([labels, torch.tensor([[-1], [-1]])], 1)  # -1: padding, whatever its box
    padded = ssd_loss(logits, acts, pad_boxes, pad_labels, anchors, focal)
    assert [p.item() for p in padded] == pytest.approx([b.item() for b in base])
    assert base[0].item() > 0


def test_loss_terms_by_hand():
    anchors = ssd.ssd_anchors(grids=(4,))
    gt, labels = torch.tensor([[[0.0, 0.0, 0.25, 0.25]]]), torch.tensor([[1]])
    logits = torch.zeros(1, 16, C + 1)
    acts = torch.zeros(1, 16, 4)  # decodes to the anchors themselves
    loc, cls = ssd_loss(logits, acts, gt, labels, anchors)
    assert loc.item() == pytest.approx(0.0, abs=1e-7)
    assert cls.item() == pytest.approx(16 * C * math.log(2))  # every logit 0: BCE log 2, one positive
    acts[0, 0, 2:] = 10.0  # tanh -> 1: the anchor grows 1.5x about its centre
    loc, _ = ssd_loss(logits, acts, gt, labels, anchors)
    assert loc.item() == pytest.approx(4 * 0.0625, rel=1e-4)


def test_focal_is_below_bce_on_easy_background():
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    logits = torch.full((1, 189, C + 1), -4.0)
    acts = torch.zeros(1, 189, 4)
    gt, labels = torch.tensor([[[0.1, 0.1, 0.4, 0.4]]]), torch.tensor([[0]])
    _, bce = ssd_loss(logits, acts, gt, labels, anchors)
    _, focal = ssd_loss(logits, acts, gt, labels, anchors, focal=True)
    assert focal < 0.5 * bce


def test_match_batch_matches_per_image():
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [0, 0, 0, 0]], [[0.3, 0.2, 0.9, 0.7], [0.0, 0.6, 0.3, 0.9]]])
    labels = torch.tensor([[0, -1], [2, 1]])
    classes, bx, pos = match_batch(boxes, labels, anchors, C)
    assert classes.shape == (2, 189) and bx.shape == (2, 189, 4) and pos.shape == (2, 189)
    one = match_targets(boxes[1], labels[1], anchors, C)
    assert torch.equal(classes[1], one[0]) and torch.equal(bx[1], one[1])
    empty = match_batch(torch.zeros(0, 2, 4), torch.zeros(0, 2, dtype=torch.int64), anchors, C)
    assert empty[0].shape == (0, 189) and empty[1].shape == (0, 189, 4)


def test_bad_shapes_raise():
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    with pytest.raises(ValueError, match="gt_boxes"):
        match_targets(torch.zeros(3, 5), torch.zeros(3, dtype=torch.int64), anchors, C)
    with pytest.raises(ValueError, match="logits"):
        ssd_loss(torch.zeros(189, C + 1), torch.zeros(189, 4), torch.zeros(1, 0, 4),
                 torch.zeros(1, 0, dtype=torch.int64), anchors)
    with pytest.raises(ValueError, match="box_acts"):
        ssd_loss(torch.zeros(1, 189, C + 1), torch.zeros(1, 21, 4), torch.zeros(1, 0, 4),
                 torch.zeros(1, 0, dtype=torch.int64), anchors)
    with pytest.raises(ValueError, match="backbone"):
        pretrained_backbone("vgg")
    with pytest.raises(ValueError, match="fmt"):
        ssd.ssd_anchors(fmt="xywh")


def test_single_object_loss():
    out = torch.zeros(2, 4 + C)
    boxes = torch.full((2, 4), 64.0)  # sigmoid(0) * 128
    l1, ce = single_object_loss(out, boxes, torch.tensor([0, 2]), 128, weight=2.0)
    assert l1.item() == 0 and ce.item() == pytest.approx(2 * math.log(C))
    with pytest.raises(ValueError, match="out must be"):
        single_object_loss(torch.zeros(2, 4), boxes, torch.tensor([0, 1]), 128)


def test_small_backbone_feeds_the_4x4_grid():
    net = ssd.small_backbone(16)
    feat = net(torch.zeros(1, 3, 128, 128))
    assert feat.shape == (1, net.out_channels, 8, 8)
    logits, _ = ssd.SingleGridHead(net.out_channels, C)(feat)
    assert logits.shape == (1, 16, C + 1)


def test_small_backbone_stem_keeps_every_pixel():
    stem = ssd.small_backbone(16)[0]
    x = torch.rand(2, 3, 128, 128)
    y = stem(x)
    assert y.shape == (2, 12, 64, 64) and torch.equal(torch.nn.functional.pixel_shuffle(y, 2), x)


@pytest.mark.parametrize("seed", range(5))
def test_match_batch_equals_match_targets_per_image(seed):
    # Padding in the middle, zero-area boxes and duplicated objects (two objects, one best anchor).
    g = torch.Generator().manual_seed(seed)
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    B, G = 6, 5
    xy = torch.rand(B, G, 2, generator=g) * 0.7
    wh = torch.rand(B, G, 2, generator=g) * 0.4 + 0.02
    boxes = torch.cat([xy, xy + wh], -1)
    labels = torch.randint(0, C, (B, G), generator=g)
    labels[torch.rand(B, G, generator=g) < 0.3] = -1
    boxes[0, 1] = boxes[0, 1, :2].repeat(2)          # zero area: padding
    boxes[1, 3], labels[1, 3] = boxes[1, 0], 1       # same box twice
    labels[2] = -1                                   # an image without objects
    for threshold in (0.4, 0.5):
        classes, bx, pos = match_batch(boxes, labels, anchors, C, threshold)
        for i in range(B):
            one = match_targets(boxes[i], labels[i], anchors, C, threshold)
            assert torch.equal(classes[i], one[0]) and torch.equal(bx[i], one[1]) and torch.equal(pos[i], one[2])
    assert not pos[2].any() and (classes[2] == C).all()


def test_train_ssd_matches_at_the_given_threshold(monkeypatch):
    from course_lib.models.ssd import train as ssd_training

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["threshold"])
        return ssd_loss(*args, **kwargs)
    monkeypatch.setattr(ssd_training, "ssd_loss", spy)
    anchors = ssd.ssd_anchors(grids=(4,))
    bb = ssd.small_backbone(8)
    model = ssd.Detector(bb, ssd.SingleGridHead(bb.out_channels, C, k=1, width=8, dropout=0.0))
    images = torch.rand(4, 3, 128, 128)
    boxes = torch.tensor([[[10.0, 10.0, 50.0, 60.0]]]).expand(4, 1, 4).clone()
    labels = torch.zeros(4, 1, dtype=torch.int64)
    ssd_training.train_ssd(model, images, boxes, labels, anchors, 1, 1e-3, 2, threshold=0.4)
    assert seen == [0.4, 0.4]


def test_match_batch_rejects_a_label_equal_to_the_class_count():
    # A 1-based label C would otherwise be read as SSD's background class C.
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5]]])
    anchors = ssd.ssd_anchors(grids=(2,))
    with pytest.raises(ValueError, match="label"):
        match_batch(boxes, torch.tensor([[3]]), anchors, num_classes=3)
    classes, _, positive = match_batch(boxes, torch.tensor([[2]]), anchors, num_classes=3)
    assert positive.any() and set(classes[positive].tolist()) == {2}

"""Lesson 2: detections from SSD outputs, and the flip / transpose augmentation."""
import pytest
import torch

from course_lib.models import ssd
from course_lib.models.ssd.augment import dihedral, random_dihedral
from course_lib.models.ssd.predict import decode_predictions

C = 3


def _outputs(A=16, hot=((5, 1, 3.0), (6, 1, 2.0), (9, 0, 1.0))):
    logits = torch.full((1, A, C + 1), -10.0)
    for a, c, v in hot:
        logits[0, a, c] = v
    return logits, torch.zeros(1, A, 4)


def test_decode_scores_labels_and_pixel_boxes():
    anchors = ssd.ssd_anchors(grids=(4,))
    logits, acts = _outputs()
    det = decode_predictions(logits, acts, anchors, 128, score_threshold=0.5, iou_threshold=None)[0]
    assert det["labels"].tolist() == [1, 1, 0]
    assert det["scores"].tolist() == pytest.approx(torch.sigmoid(torch.tensor([3.0, 2.0, 1.0])).tolist())
    assert det["boxes"][0].tolist() == pytest.approx([32, 32, 64, 64])  # anchor 5 = cell (1, 1) of 32 px


def test_nms_removes_the_overlapping_duplicate_of_the_same_class_only():
    anchors = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.52, 0.5, 0.5, 0.5], [0.5, 0.52, 0.5, 0.5]])
    logits = torch.full((1, 3, C + 1), -10.0)
    logits[0, 0, 0], logits[0, 1, 0], logits[0, 2, 2] = 2.0, 1.0, 0.5
    acts = torch.zeros(1, 3, 4)
    raw = decode_predictions(logits, acts, anchors, 100, score_threshold=0.1, iou_threshold=None)[0]
    kept = decode_predictions(logits, acts, anchors, 100, score_threshold=0.1, iou_threshold=0.45)[0]
    assert raw["labels"].tolist() == [0, 0, 2] and kept["labels"].tolist() == [0, 2]
    assert kept["scores"][0] == raw["scores"][0]


def test_decode_empty_and_top_k():
    anchors = ssd.ssd_anchors(grids=(4,))
    logits, acts = _outputs(hot=())
    det = decode_predictions(logits, acts, anchors, 128)[0]
    assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,) and det["labels"].shape == (0,)
    logits = torch.zeros(2, 16, C + 1)
    dets = decode_predictions(logits, acts.expand(2, -1, -1), anchors, 128, iou_threshold=None, top_k=5)
    assert [len(d["scores"]) for d in dets] == [5, 5]
    with pytest.raises(ValueError, match="box_acts"):
        decode_predictions(logits, torch.zeros(2, 15, 4), anchors, 128)


def _box_mask(boxes, S):
    """(G, 4) integer `xyxy` boxes -> (S, S) int mask, box i painted with value i + 1."""
    m = torch.zeros(S, S, dtype=torch.int64)
    for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
        m[y1:y2, x1:x2] = i + 1
    return m


@pytest.mark.parametrize("flags", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1), (1, 0, 1)])
def test_dihedral_moves_boxes_with_pixels(flags):
    S = 12
    boxes = torch.tensor([[[1.0, 2.0, 5.0, 4.0], [7.0, 6.0, 12.0, 11.0]]])
    image = _box_mask(boxes[0], S)[None, None].float()
    h, v, t = (torch.tensor([bool(f)]) for f in flags)
    out_img, out_boxes = dihedral(image, boxes, h, v, t)
    assert torch.equal(out_img[0, 0].long(), _box_mask(out_boxes[0], S))
    assert (out_boxes[..., 2:] > out_boxes[..., :2]).all()


def test_random_dihedral_is_reproducible_and_mixes():
    images = torch.rand(64, 3, 8, 8)
    boxes = torch.tensor([[1.0, 1.0, 3.0, 4.0]]).expand(64, 1, 4)
    a = random_dihedral(images, boxes, torch.Generator().manual_seed(3))
    b = random_dihedral(images, boxes, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert len(a[1][:, 0].unique(dim=0)) == 8  # all 8 symmetries of the square show up


def test_dihedral_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        dihedral(torch.zeros(1, 3, 4, 5), torch.zeros(1, 0, 4), *(torch.zeros(1, dtype=torch.bool),) * 3)
    with pytest.raises(ValueError, match="hflip"):
        dihedral(torch.zeros(2, 3, 4, 4), torch.zeros(2, 0, 4), torch.zeros(1, dtype=torch.bool),
                 *(torch.zeros(2, dtype=torch.bool),) * 2)


def test_random_dihedral_with_two_symmetries_only_flips_horizontally():
    images = torch.rand(32, 3, 8, 8)
    boxes = torch.tensor([[1.0, 1.0, 3.0, 4.0]]).expand(32, 1, 4)
    _, out = random_dihedral(images, boxes, torch.Generator().manual_seed(0), symmetries=2)
    assert out[:, 0].unique(dim=0).tolist() == [[1.0, 1.0, 3.0, 4.0], [5.0, 1.0, 7.0, 4.0]]
    with pytest.raises(ValueError, match="symmetries"):
        random_dihedral(images, boxes, torch.Generator(), symmetries=4)

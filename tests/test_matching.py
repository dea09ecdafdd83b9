import numpy as np
import pytest
import torch

from course_lib.matching import FORCED, label_anchors, sample_labels, ssd_match


def test_ssd_match_forces_best_anchor():
    # Object 1's best anchor (2) has a higher IoU with object 0, and object 0 is best on anchor 0.
    ov = torch.tensor([[0.6, 0.1, 0.45, 0.0],
                       [0.0, 0.2, 0.40, 0.1]])
    gt_idx, overlap, pos = ssd_match(ov, threshold=0.5)
    assert gt_idx.tolist() == [0, 1, 1, 1]
    torch.testing.assert_close(overlap, torch.tensor([FORCED, 0.2, FORCED, 0.1]))
    assert pos.tolist() == [True, False, True, False]


def test_ssd_match_shared_best_anchor_goes_to_the_later_object():
    ov = np.array([[0.9, 0.1], [0.8, 0.2]])
    gt_idx, _, _ = ssd_match(ov)
    assert gt_idx.tolist() == [1, 1]


def test_ssd_match_no_objects():
    gt_idx, overlap, pos = ssd_match(np.zeros((0, 5)))
    assert gt_idx.tolist() == [-1] * 5 and not pos.any() and overlap.shape == (5,)


def test_label_anchors_rules_and_ties():
    ov = torch.tensor([[0.75, 0.50, 0.10, 0.35, 0.35, 0.0],
                       [0.10, 0.20, 0.20, 0.35, 0.35, 0.0]])
    labels, gt_idx = label_anchors(ov)
    # anchor 0: >= 0.7; anchor 1: in between (ignored); anchor 2: < 0.3 (background);
    # anchors 3 and 4: tied best for object 1 (positive); anchor 5: overlaps nothing.
    assert labels.tolist() == [1, -1, 0, 1, 1, 0]
    assert gt_idx[0] == 0


def test_label_anchors_object_with_no_overlap_gets_no_anchor():
    labels, _ = label_anchors(np.zeros((1, 4)))
    assert labels.tolist() == [0, 0, 0, 0]


def test_label_anchors_no_objects_all_background():
    labels, gt_idx = label_anchors(np.zeros((0, 3)))
    assert labels.tolist() == [0, 0, 0] and gt_idx.tolist() == [-1, -1, -1]


def test_sample_labels_balance_and_determinism():
    labels = torch.cat([torch.ones(300, dtype=torch.int64), torch.zeros(5000, dtype=torch.int64),
                        torch.full((100,), -1)])
    out = sample_labels(labels, 256, 0.5, generator=7)
    assert (out == 1).sum() == 128 and (out == 0).sum() == 128
    assert torch.equal(out, sample_labels(labels, 256, 0.5, generator=7))
    assert not torch.equal(out, sample_labels(labels, 256, 0.5, generator=8))
    few = torch.tensor([1] * 10 + [0] * 1000)
    out = sample_labels(few, 256, 0.5, generator=0)
    assert (out == 1).sum() == 10 and (out == 0).sum() == 246
    assert isinstance(sample_labels(few.numpy(), 16, generator=0), np.ndarray)


def test_bad_overlaps():
    with pytest.raises(ValueError, match=r"\(G, A\)"):
        ssd_match(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        label_anchors(np.array([[np.nan, 0.1]]))

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


# --- arguments and labels that used to give a silent wrong answer -------------------------------

from course_lib.matching import ssd_match_batch  # noqa: E402

OV = torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.2, 0.1]])  # no IoU above 0.5: only forced matches


@pytest.mark.parametrize("thr", [float("nan"), 2.0, 1.99, -0.1])
def test_ssd_match_threshold_outside_0_1_raises(thr):
    # NaN, 2.0 or FORCED itself dropped the forced best-anchor matches.
    with pytest.raises(ValueError, match="threshold"):
        ssd_match(OV, thr)
    with pytest.raises(ValueError, match="threshold"):
        ssd_match_batch(OV[None], torch.ones(1, 2, dtype=torch.bool), thr)
    assert ssd_match(OV, 1.0)[2].tolist() == [True, True, False]  # 1: forced matches only
    assert ssd_match(OV, 0.0)[2].tolist() == [True, True, True]


@pytest.mark.parametrize("bad", [[[-0.2, 0.1, 0.0]], [[1.5, 0.1, 0.0]], [[float("nan"), 0.1, 0.0]]])
def test_overlaps_must_be_ious(bad):
    # A negative overlap passed for padding (-1) in the batched matching; one above FORCED beat it.
    with pytest.raises(ValueError, match="overlaps"):
        ssd_match(np.array(bad))
    with pytest.raises(ValueError, match="overlaps"):
        label_anchors(np.array(bad))
    with pytest.raises(ValueError, match="overlaps"):
        ssd_match_batch(torch.tensor(bad)[None], torch.ones(1, 1, dtype=torch.bool))


def test_ssd_match_batch_checks_labels_against_num_classes():
    ov = torch.rand(2, 3, 8, generator=torch.Generator().manual_seed(0))
    valid = torch.tensor([[True, True, False], [True, False, False]])
    ok = torch.tensor([[0, 2, -1], [1, -1, -1]])
    ref = ssd_match_batch(ov, valid, 0.5)
    for got, want in zip(ssd_match_batch(ov, valid, 0.5, ok, 3), ref):
        assert torch.equal(got, want)
    assert ssd_match_batch(ov, valid, 0.5, ok.double(), 3)[0].tolist() == ref[0].tolist()  # 2.0 is class 2
    # 1-based labels: class 3 of 3 would read as background (class C) in SSD's C + 1 outputs.
    for bad, match in (([[1, 3, -1], [1, -1, -1]], "0..2"), ([[0, 2, -1], [-1, -1, -1]], "valid"),
                       ([[0, 2, -2], [1, -1, -1]], "0..2"), ([[0, 1.5, -1], [1, -1, -1]], "integer")):
        with pytest.raises(ValueError, match=match):
            ssd_match_batch(ov, valid, 0.5, torch.tensor(bad), 3)
    with pytest.raises(ValueError, match="num_classes"):
        ssd_match_batch(ov, valid, 0.5, ok)


@pytest.mark.parametrize("pos, neg", [(float("nan"), 0.3), (0.7, float("nan")), (1.2, 0.3), (0.7, -0.1), (0.3, 0.7)])
def test_label_anchors_thresholds_must_be_ordered_in_0_1(pos, neg):
    with pytest.raises(ValueError, match="threshold"):
        label_anchors(OV, pos, neg)


def test_label_anchors_accepts_the_lesson_thresholds():
    assert label_anchors(OV, 0.7, 0.3)[0].tolist() == [1, 1, 0]
    assert label_anchors(OV, 0.5, 0.5)[0].tolist() == [1, 1, 0]  # the MP5 data: one threshold
    with pytest.raises(ValueError, match="neg_threshold"):
        label_anchors(OV, 0.5, 0.6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num=2.5), "num"), (dict(num=-1), "num"), (dict(num=float("nan")), "num"),
    (dict(pos_fraction=float("nan")), "pos_fraction"), (dict(pos_fraction=1.5), "pos_fraction"),
])
def test_sample_labels_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_labels(torch.tensor([1, 0, -1]), **kwargs)


def test_sample_labels_rejects_other_labels():
    # A label 2 was neither sampled nor ignored: it stayed 2, neither object nor background.
    with pytest.raises(ValueError, match="labels"):
        sample_labels(torch.tensor([2, 1, 0, -1]), 2, generator=0)

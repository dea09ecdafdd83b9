"""course_lib.metrics: classification metrics, detection matching, AP three ways, mAP and COCO's
AP@[.5:.95], cross-checked against pycocotools and a direct rank statistic."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib.metrics import (accuracy, auc, average_precision, balanced_error_rate, coco_evaluate,
                                detection_iou, error_rate, match_detections, mean_average_precision,
                                precision_recall_curve, proposal_recall, pycocotools_evaluate, recall_at_k,
                                roc_auc, roc_curve, to_coco, tpr_fpr)

pytest.importorskip("pycocotools")
METHODS = ("voc07", "voc_all", "coco101")


def random_set(seed, n_img=12, n_cls=3, crowd=0.15, quantise=False, max_dets=12, tie_decimals=1):
    """A seeded detection set: jittered copies of the ground truth plus clutter; some images have
    no objects and some no detections; scores rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n_img):
        G = int(rng.integers(0, 6)) if i % 5 else 0
        xy, wh = rng.uniform(0, 80, (G, 2)), rng.uniform(5, 40, (G, 2))
        gb, gl = np.c_[xy, xy + wh], rng.integers(0, n_cls, G)
        K = int(rng.integers(0, max_dets)) if i % 7 else 0
        if G:
            pick = rng.integers(0, G, K)
            db = gb[pick] + rng.normal(0, 4, (K, 4))
            dl = np.where(rng.random(K) < 0.8, gl[pick], rng.integers(0, n_cls, K))
        else:
            db, dl = rng.uniform(0, 80, (K, 4)), rng.integers(0, n_cls, K)
        db = np.c_[np.minimum(db[:, :2], db[:, 2:]), np.maximum(db[:, :2], db[:, 2:])]
        if quantise:  # integer corners: exact IoUs, some of them exactly on a threshold
            db, gb = np.round(db), np.round(gb)
        preds.append(dict(boxes=db, scores=np.round(rng.random(K), tie_decimals), labels=dl))
        gts.append(dict(boxes=gb, labels=gl, iscrowd=rng.random(G) < crowd))
    return preds, gts


# --- COCO: course_lib against pycocotools --------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_coco_matches_pycocotools(seed):
    preds, gts = random_set(seed, quantise=seed % 2 == 0, crowd=0.25)
    assert any(len(g["boxes"]) == 0 for g in gts) and any(len(p["boxes"]) == 0 for p in preds)
    assert any(g["iscrowd"].any() for g in gts)
    ours, ref = coco_evaluate(preds, gts), pycocotools_evaluate(preds, gts)
    assert set(ours) == {"AP", "AP50", "AP75", "AR100"}
    for k in ours:
        assert abs(ours[k] - ref[k]) < 1e-6, (k, ours[k], ref[k])
    # The same pooled matching, read at one threshold, is COCO's AP50.
    ap50, _ = mean_average_precision(preds, gts, 0.5, "coco101", max_dets=100)
    assert abs(ap50 - ref["AP50"]) < 1e-6


def test_coco_max_dets_ties_and_torch_inputs():
    # 130 detections per image: COCO keeps the best 100 of each image and class.
    preds, gts = random_set(11, n_img=4, n_cls=1, max_dets=131, tie_decimals=2)
    assert max(len(p["boxes"]) for p in preds) > 100
    ref = pycocotools_evaluate(preds, gts)
    to_t = lambda d: {k: torch.as_tensor(v) for k, v in d.items()}
    ours = coco_evaluate([to_t(p) for p in preds], [to_t(g) for g in gts])
    assert all(abs(ours[k] - ref[k]) < 1e-6 for k in ours)
    # The only true positive is the 101st best detection: dropped by COCO's cap, kept without it.
    far = np.tile([[500.0, 500, 510, 510]], (100, 1))
    preds = [dict(boxes=np.r_[far, [[0, 0, 10, 10]]], scores=np.r_[np.ones(100), 0.5], labels=np.zeros(101, int))]
    gts = [dict(boxes=[[0.0, 0, 10, 10]], labels=[0])]
    assert coco_evaluate(preds, gts) == pycocotools_evaluate(preds, gts) == dict(AP=0, AP50=0, AP75=0, AR100=0)
    assert coco_evaluate(preds, gts, max_dets=1000)["AR100"] == 1.0


def test_coco_empty_detections_and_empty_ground_truth():
    _, gts = random_set(3)
    no_dets = [dict(boxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0, int)) for _ in gts]
    assert coco_evaluate(no_dets, gts) == pycocotools_evaluate(no_dets, gts) == dict(AP=0, AP50=0, AP75=0, AR100=0)
    no_gt = [dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, int))] * 2
    out = coco_evaluate(no_dets[:2], no_gt)
    assert all(np.isnan(v) for v in out.values())


def test_to_coco_layout():
    preds = [dict(boxes=[[1.0, 2.0, 4.0, 8.0]], scores=[0.5], labels=[3])]
    gts = [dict(boxes=[[0.0, 0.0, 2.0, 2.0]], labels=[3], difficult=[True])]
    gt, dets = to_coco(preds, gts)
    assert gt["images"] == [{"id": 1}] and gt["categories"] == [{"id": 3, "name": "3"}]
    assert gt["annotations"][0] == dict(id=1, image_id=1, category_id=3, iscrowd=1, bbox=[0.0, 0.0, 2.0, 2.0], area=4.0)
    assert dets == [dict(image_id=1, category_id=3, score=0.5, bbox=[1.0, 2.0, 3.0, 6.0])]


# --- matching ------------------------------------------------------------------------------------

def test_match_detections_rules():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [100, 100, 200, 200]], float)
    crowd = np.array([False, False, True])
    det = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [120, 120, 130, 130], [110, 110, 120, 120]], float)
    m = match_detections(det, [0.9, 0.8, 0.7, 0.6, 0.6], gt, [0.5, 0.95], gt_crowd=crowd)
    assert m.order.tolist() == [0, 1, 2, 3, 4]  # ties keep their input order
    # Best IoU first (box 0), then the next-best free box, then nothing; crowd takes several.
    assert m.gt_index.tolist() == [[0, 1, -1, 2, 2], [0, -1, -1, 2, 2]]
    assert m.tp.tolist() == [[True, True, False, False, False], [True, False, False, False, False]]
    assert m.ignored[:, 3:].all() and not m.ignored[:, :3].any()
    # Overlap with a crowd box is intersection over the detection's area: 1 for a box inside it.
    assert detection_iou(det[3:4], gt, crowd)[0].tolist() == [0.0, 0.0, 1.0]
    empty = match_detections(np.zeros((0, 4)), np.zeros(0), gt)
    assert empty.gt_index.shape == (1, 0)


# --- AP three ways, by hand ---------------------------------------------------------------------

def test_average_precision_by_hand():
    # 4 objects; detections in score order: TP FP TP FP FP TP.
    prec, rec, thr = precision_recall_curve([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 1, 0, 0, 1], 4)
    assert np.allclose(prec, [1, 1 / 2, 2 / 3, 2 / 4, 2 / 5, 3 / 6]) and np.allclose(rec, [.25, .25, .5, .5, .5, .75])
    # Envelope 1 up to recall .25, 2/3 up to .5, 1/2 up to .75, nothing beyond.
    assert average_precision(prec, rec, "voc_all") == pytest.approx(.25 * 1 + .25 * 2 / 3 + .25 * .5)
    assert average_precision(prec, rec, "voc07") == pytest.approx((3 * 1 + 3 * 2 / 3 + 2 * .5) / 11)
    assert average_precision(prec, rec, "coco101") == pytest.approx((26 * 1 + 25 * 2 / 3 + 25 * .5) / 101)
    assert average_precision([], [], "voc_all") == 0.0


def test_mean_average_precision_by_hand():
    gts = [dict(boxes=[[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], labels=[0, 0, 1],
                difficult=[False, False, True])]
    preds = [dict(boxes=[[40, 0, 50, 10], [0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]],
                  scores=[0.95, 0.9, 0.8, 0.7, 0.6], labels=[0, 0, 0, 0, 0])]
    # Class 0: the detection on the difficult box is of another class -> FP first: FP TP FP TP FP.
    m, per_class = mean_average_precision(preds, gts, 0.5, "voc_all")
    assert per_class == {0: pytest.approx(.5 * .5 + .5 * .5)} and m == per_class[0]  # class 1 has only a difficult box
    # The same detection on a difficult box of its own class is ignored: TP FP TP FP.
    gts[0]["labels"] = [0, 0, 0]
    m, per_class = mean_average_precision(preds, gts, 0.5, "voc_all")
    assert m == pytest.approx(.5 * 1 + .5 * 2 / 3)
    assert np.isnan(mean_average_precision(preds, [dict(boxes=np.zeros((0, 4)), labels=[])])[0])


def test_recall_at_k_and_proposal_recall():
    gts = [dict(boxes=[[0, 0, 10, 10], [20, 20, 30, 30]], labels=[1, 2])]
    preds = [dict(boxes=[[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 31]], scores=[0.9, 0.8, 0.1], labels=[1, 2, 2])]
    assert recall_at_k(preds, gts, 1) == 0.0
    assert recall_at_k(preds, gts, 2) == 0.5 and recall_at_k(preds, gts, 3) == 1.0
    assert recall_at_k(preds, gts, 3, class_aware=True) == 0.5
    assert proposal_recall([np.array(preds[0]["boxes"], float)], [np.array(gts[0]["boxes"], float)], k=2) == 0.5


# --- classification -----------------------------------------------------------------------------

def test_error_rates():
    y = np.array([0] * 90 + [1] * 10)
    always_0 = np.zeros(100, int)
    assert error_rate(y, always_0) == pytest.approx(0.1) and accuracy(y, always_0) == pytest.approx(0.9)
    assert balanced_error_rate(y, always_0) == pytest.approx(0.5)  # (0 + 1) / 2
    assert balanced_error_rate([0, 1, 2, 2], [0, 2, 2, 1]) == pytest.approx((0 + 1 + .5) / 3)


def mann_whitney_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_rank_statistic(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.5 * y, 1)  # many ties
    fpr, tpr, thr = roc_curve(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and thr[0] == np.inf
    assert (np.diff(thr) < 0).all() and (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert roc_auc(y, s) == pytest.approx(mann_whitney_auc(y.astype(int), s), abs=1e-12)
    i = len(thr) // 2
    assert tpr_fpr(y, s, thr[i]) == pytest.approx((tpr[i], fpr[i]))
    assert auc([0, 1], [0, 1]) == 0.5


# --- properties ---------------------------------------------------------------------------------

def all_aps(preds, gts):
    out = [mean_average_precision(preds, gts, 0.5, m)[0] for m in METHODS]
    return out + [coco_evaluate(preds, gts)["AP"]]


set_args = st.tuples(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 3))


@settings(max_examples=25, deadline=None)
@given(set_args)
def test_ap_in_unit_interval_and_perfect_detector(args):
    seed, n_img, n_cls = args
    preds, gts = random_set(seed, n_img=n_img, n_cls=n_cls, tie_decimals=3)
    if not any((~g["iscrowd"]).any() for g in gts):
        return
    assert all(0 <= ap <= 1 for ap in all_aps(preds, gts))
    perfect = [dict(boxes=g["boxes"], scores=np.ones(len(g["boxes"])), labels=g["labels"]) for g in gts]
    assert all_aps(perfect, gts) == [1.0] * 4


@settings(max_examples=25, deadline=None)
@given(set_args, st.integers(0, 5))
def test_low_scored_false_positive_never_raises_ap(args, where):
    seed, n_img, n_cls = args
    preds, gts = random_set(seed, n_img=n_img, n_cls=n_cls, crowd=0.0)
    if not any(len(g["boxes"]) for g in gts):
        return
    before = all_aps(preds, gts)
    i = where % n_img
    p = preds[i]
    low = min([s for q in preds for s in q["scores"]], default=1.0) - 0.5
    preds[i] = dict(boxes=np.r_[p["boxes"], [[500, 500, 510, 510]]], scores=np.r_[p["scores"], low],
                    labels=np.r_[p["labels"], next(g["labels"][:1] for g in gts if len(g["labels"]))])
    assert all(a <= b + 1e-12 for a, b in zip(all_aps(preds, gts), before))


@settings(max_examples=25, deadline=None)
@given(set_args, st.integers(0, 2**31))
def test_permuting_distinct_scores_changes_nothing(args, perm_seed):
    seed, n_img, n_cls = args
    preds, gts = random_set(seed, n_img=n_img, n_cls=n_cls, tie_decimals=12)
    rng = np.random.default_rng(perm_seed)
    shuffled = []
    for p in preds:
        order = rng.permutation(len(p["boxes"]))
        shuffled.append({k: v[order] for k, v in p.items()})
    a, b = all_aps(preds, gts), all_aps(shuffled, gts)
    assert np.allclose(a, b, atol=1e-12, equal_nan=True)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("preds, gts, match", [
    ([dict(boxes=np.zeros((1, 3)), scores=[1.0], labels=[0])], [dict(boxes=np.zeros((0, 4)), labels=[])], r"shape \(N, 4\)"),
    ([dict(boxes=[[5, 0, 1, 1]], scores=[1.0], labels=[0])], [dict(boxes=np.zeros((0, 4)), labels=[])], "negative size"),
    ([dict(boxes=[[0, 0, 1, 1]], scores=[1.0, 2.0], labels=[0])], [dict(boxes=np.zeros((0, 4)), labels=[])], "scores"),
    ([dict(boxes=[[0, 0, 1, 1]], labels=[0])], [dict(boxes=np.zeros((0, 4)), labels=[])], "missing"),
    ([], [dict(boxes=np.zeros((0, 4)), labels=[])], "same images"),
    ([dict(boxes=[[0, 0, 1, np.nan]], scores=[1.0], labels=[0])], [dict(boxes=np.zeros((0, 4)), labels=[])], "NaN"),
])
def test_bad_detection_sets_raise(preds, gts, match):
    with pytest.raises(ValueError, match=match):
        mean_average_precision(preds, gts)
    with pytest.raises(ValueError, match=match):
        coco_evaluate(preds, gts)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="method"):
        average_precision([1.0], [1.0], "voc2012")
    with pytest.raises(ValueError, match="non-decreasing"):
        average_precision([1.0, 1.0], [0.5, 0.2])
    with pytest.raises(ValueError, match="iou_threshold"):
        mean_average_precision([], [], iou_threshold=1.5)
    with pytest.raises(ValueError, match="both positives and negatives"):
        roc_curve([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="y_pred"):
        error_rate([0, 1], [0])
    with pytest.raises(ValueError, match="num_gt"):
        precision_recall_curve([0.5], [True], 0)
    with pytest.raises(ValueError, match="k must"):
        recall_at_k([], [], 0)

"""YOLO v1 loss: a hand-computed case term by term, edge cases, and a loop-over-cells reference."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib.losses import yolo_v1_loss, yolo_v1_loss_terms

S, B, C = 2, 2, 2


def tiny_case():
    """One image, a 2 x 2 grid, one object in cell (0, 0); numbers chosen to be checked by hand.

    Truth in cell (0, 0): x = y = 0.5, w = h = 0.25, i.e. [0.125, 0.125, 0.375, 0.375] of the image.
    Predictor 0: x 0.6, y 0.5, w 0.09, h 0.25 -> x in [0.255, 0.345], inside the truth: IoU 0.0225 / 0.0625 = 0.36.
    Predictor 1: x 0.5, y 0.5, w 0.25, h 0.0625 -> inside the truth: IoU 0.015625 / 0.0625 = 0.25.
    So predictor 0 is responsible.
    """
    pred = torch.zeros(1, S, S, B * 5 + C)
    target = torch.zeros(1, S, S, 5 + C)
    pred[0, 0, 0] = torch.tensor([0.6, 0.5, 0.09, 0.25, 0.8, 0.5, 0.5, 0.25, 0.0625, 0.6, 0.7, 0.2])
    target[0, 0, 0] = torch.tensor([0.5, 0.5, 0.25, 0.25, 1.0, 1.0, 0.0])
    # An empty cell: only its confidences count; its boxes, classes and targets are ignored.
    pred[0, 0, 1] = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.2, 0.3, 0.3, 0.3, 0.3, 0.4, 0.9, 0.9])
    target[0, 0, 1] = torch.tensor([0.7, 0.7, 0.7, 0.7, 0.0, 0.7, 0.7])
    return pred, target


def test_hand_computed_terms():
    pred, target = tiny_case()
    terms = yolo_v1_loss_terms(pred, target, S, B, C)
    expected = {
        "xy": 5.0 * (0.6 - 0.5) ** 2,                    # 0.05
        "wh": 5.0 * (0.3 - 0.5) ** 2,                    # sqrt(0.09) vs sqrt(0.25), h exact: 0.2
        "obj": (0.8 - 0.36) ** 2,                        # confidence against the IoU: 0.1936
        "noobj": 0.5 * (0.6 ** 2 + 0.2 ** 2 + 0.4 ** 2),  # predictor 1 of (0, 0), both of (0, 1): 0.28
        "cls": (0.7 - 1.0) ** 2 + (0.2 - 0.0) ** 2,      # 0.13
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, abs=1e-5), name
    assert yolo_v1_loss(pred, target, S, B, C).item() == pytest.approx(sum(expected.values()), abs=1e-5)


def test_lambdas_scale_their_terms():
    pred, target = tiny_case()
    base = yolo_v1_loss_terms(pred, target, S, B, C)
    scaled = yolo_v1_loss_terms(pred, target, S, B, C, lambda_coord=1.0, lambda_noobj=2.0)
    assert scaled["xy"].item() == pytest.approx(base["xy"].item() / 5)
    assert scaled["wh"].item() == pytest.approx(base["wh"].item() / 5)
    assert scaled["noobj"].item() == pytest.approx(base["noobj"].item() * 4)
    assert scaled["obj"].item() == pytest.approx(base["obj"].item())


def test_no_object_only_noobj_term():
    pred = torch.rand(3, 7, 7, 30, generator=torch.Generator().manual_seed(0))
    target = torch.rand(3, 7, 7, 25, generator=torch.Generator().manual_seed(1))
    target[..., 4] = 0
    terms = yolo_v1_loss_terms(pred, target)
    for name in ("xy", "wh", "obj", "cls"):
        assert terms[name].item() == 0.0
    conf = pred[..., 4:10:5]
    assert terms["noobj"].item() == pytest.approx(0.5 * conf.pow(2).sum().item() / 3, rel=1e-5)


def test_perfect_prediction_is_zero():
    pred, target = tiny_case()
    pred[0, 0, 0, :5] = torch.tensor([0.5, 0.5, 0.25, 0.25, 1.0])   # equals the truth: IoU 1
    pred[0, 0, 0, 9] = 0.0
    pred[0, 0, 0, 10:] = torch.tensor([1.0, 0.0])
    pred[0, 0, 1, [4, 9]] = 0.0
    assert yolo_v1_loss(pred, target, S, B, C).item() == pytest.approx(0.0, abs=1e-6)


def test_tie_picks_first_predictor():
    pred, target = tiny_case()
    pred[0, 0, 0, 5:9] = pred[0, 0, 0, 0:4]                          # two identical boxes
    pred[0, 0, 0, 4], pred[0, 0, 0, 9] = 0.36, 0.9
    terms = yolo_v1_loss_terms(pred, target, S, B, C)
    assert terms["obj"].item() == pytest.approx(0.0, abs=1e-6)      # predictor 0 hits its IoU
    assert terms["noobj"].item() == pytest.approx(0.5 * (0.81 + 0.04 + 0.16), abs=1e-6)


def test_batch_is_a_mean_of_images():
    pred, target = tiny_case()
    other = torch.rand_like(pred), target.clone()
    other[1][..., 4] = 0
    both = yolo_v1_loss(torch.cat([pred, other[0]]), torch.cat([target, other[1]]), S, B, C)
    single = yolo_v1_loss(pred, target, S, B, C) + yolo_v1_loss(*other, S, B, C)
    assert both.item() == pytest.approx(single.item() / 2, rel=1e-6)


def test_empty_batch_is_zero():
    loss = yolo_v1_loss(torch.zeros(0, S, S, B * 5 + C), torch.zeros(0, S, S, 5 + C), S, B, C)
    assert loss.item() == 0.0


def test_gradients_finite_and_iou_is_a_constant():
    pred, target = tiny_case()
    pred[0, 0, 0, 2], pred[0, 0, 0, 8] = 0.0, -0.1                  # zero and negative raw sizes
    pred.requires_grad_(True)
    yolo_v1_loss(pred, target, S, B, C).backward()
    assert torch.isfinite(pred.grad).all()
    pred.grad = None
    yolo_v1_loss_terms(pred, target, S, B, C)["obj"].backward()
    assert pred.grad[0, 0, 0, :4].abs().sum().item() == 0.0          # no gradient through the IoU target
    assert pred.grad[0, 0, 0, 4].item() != 0.0


@pytest.mark.parametrize("pred_shape,target_shape", [
    ((1, 2, 2, 11), (1, 2, 2, 7)),        # B*5 + C wrong
    ((1, 3, 2, 12), (1, 3, 2, 7)),        # not S x S
    ((2, 2, 12), (2, 2, 7)),              # no batch axis
    ((1, 2, 2, 12), (1, 2, 2, 12)),       # target laid out like pred
    ((2, 2, 2, 12), (1, 2, 2, 7)),        # batch sizes differ
])
def test_bad_shapes_raise(pred_shape, target_shape):
    with pytest.raises(ValueError, match="must have shape"):
        yolo_v1_loss(torch.zeros(pred_shape), torch.zeros(target_shape), S, B, C)


def test_object_flag_must_be_binary():
    pred, target = tiny_case()
    target[0, 1, 1, 4] = 0.5
    with pytest.raises(ValueError, match="0 or 1"):
        yolo_v1_loss(pred, target, S, B, C)


def reference_loss(pred, target, S, B, C, l_coord=5.0, l_noobj=0.5):
    """The paper's sum written cell by cell, predictor by predictor."""
    def iou(p, t):
        def corners(b):
            return b[0] / S - b[2] / 2, b[1] / S - b[3] / 2, b[0] / S + b[2] / 2, b[1] / S + b[3] / 2
        (a0, a1, a2, a3), (b0, b1, b2, b3) = corners([p[0], p[1], max(p[2], 0), max(p[3], 0)]), corners(t)
        inter = max(0, min(a2, b2) - max(a0, b0)) * max(0, min(a3, b3) - max(a1, b1))
        union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
        return inter / union if union > 0 else 0.0

    def ssqrt(v):
        return (1 if v > 0 else -1 if v < 0 else 0) * (abs(v) + 1e-6) ** 0.5

    total = 0.0
    for n in range(pred.shape[0]):
        for i in range(S):
            for j in range(S):
                p, t = pred[n, i, j].tolist(), target[n, i, j].tolist()
                ious = [iou(p[5 * b:5 * b + 4], t[:4]) for b in range(B)]
                r = max(range(B), key=lambda b: (ious[b], -b)) if t[4] == 1 else -1
                for b in range(B):
                    x, y, w, h, c = p[5 * b:5 * b + 5]
                    if b == r:
                        total += l_coord * ((x - t[0]) ** 2 + (y - t[1]) ** 2)
                        total += l_coord * ((ssqrt(w) - t[2] ** 0.5) ** 2 + (ssqrt(h) - t[3] ** 0.5) ** 2)
                        total += (c - ious[b]) ** 2
                    else:
                        total += l_noobj * c ** 2
                if t[4] == 1:
                    total += sum((p[5 * B + k] - t[5 + k]) ** 2 for k in range(C))
    return total / max(pred.shape[0], 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(0, 10_000))
def test_matches_loop_reference(s, b, c, n, seed):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(n, s, s, b * 5 + c, generator=g, dtype=torch.float64) * 1.2 - 0.1
    target = torch.rand(n, s, s, 5 + c, generator=g, dtype=torch.float64)
    target[..., 4] = (target[..., 4] > 0.5).double()
    got = yolo_v1_loss(pred, target, s, b, c).item()
    assert got == pytest.approx(reference_loss(pred, target, s, b, c), rel=1e-9, abs=1e-12)

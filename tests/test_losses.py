import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo

from course_lib.losses import bce_with_logits, sigma_to_beta, sigmoid_focal_loss, smooth_l1


@pytest.fixture
def logits_targets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64) * 4
    t = (torch.rand(64, 5, generator=g) > 0.7).double()
    return x, t


def test_bce_matches_torch_and_is_stable(logits_targets):
    x, t = logits_targets
    torch.testing.assert_close(bce_with_logits(x, t), F.binary_cross_entropy_with_logits(x, t))
    extreme = torch.tensor([1000.0, -1000.0])
    out = bce_with_logits(extreme, torch.tensor([0.0, 1.0]), reduction="none")
    torch.testing.assert_close(out, torch.tensor([1000.0, 1000.0]))


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1, 0.0), (0.5, 1.0)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_matches_torchvision(logits_targets, alpha, gamma, reduction):
    x, t = logits_targets
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha, gamma, reduction),
                               tvo.sigmoid_focal_loss(x, t, alpha, gamma, reduction))


def test_focal_gradient_matches_torchvision(logits_targets):
    x, t = logits_targets
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    sigmoid_focal_loss(a, t, reduction="sum").backward()
    tvo.sigmoid_focal_loss(b, t, reduction="sum").backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("beta", [1.0, 1 / 9, 0.0])
def test_smooth_l1_matches_torch(beta):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    torch.testing.assert_close(smooth_l1(a, b, beta=beta), F.smooth_l1_loss(a, b, beta=beta))
    torch.testing.assert_close(smooth_l1(a, b, beta, "sum"), F.smooth_l1_loss(a, b, reduction="sum", beta=beta))


def test_sigma_convention():
    assert sigma_to_beta(3.0) == pytest.approx(1 / 9)


def test_gradcheck_losses():
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 1, 0, 1, 0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: sigmoid_focal_loss(z, t, reduction="sum"), (x,))
    assert torch.autograd.gradcheck(lambda z: smooth_l1(z, t, beta=0.5), (x,))


def test_loss_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        bce_with_logits(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        smooth_l1(torch.zeros(3), torch.zeros(3), reduction="avg")


# --- input that used to give a silent wrong answer -----------------------------------------------

import numpy as np  # noqa: E402


@pytest.mark.parametrize("bad", [-1.0, 2.0, float("nan")])
@pytest.mark.parametrize("loss", [bce_with_logits, sigmoid_focal_loss])
def test_targets_outside_0_1_raise(loss, bad):
    # The -1 "ignore" label of label_anchors cost 10 at logit 5 instead of nothing.
    x = torch.tensor([5.0, -2.0, 0.5])
    with pytest.raises(ValueError, match="targets"):
        loss(x, torch.tensor([bad, 0.0, 1.0]))
    soft = torch.tensor([0.3, 0.0, 1.0])  # soft targets stay legitimate
    torch.testing.assert_close(bce_with_logits(x, soft, reduction="none"),
                               F.binary_cross_entropy_with_logits(x, soft, reduction="none"))


def test_losses_take_numpy_and_give_numpy(logits_targets):
    x, t = logits_targets
    for ours, ref in [
        (lambda a, b: bce_with_logits(a, b, reduction="none"), lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none")),
        (lambda a, b: bce_with_logits(a, b, weight=b + 1), lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=b + 1)),
        (lambda a, b: sigmoid_focal_loss(a, b), lambda a, b: tvo.sigmoid_focal_loss(a, b)),
        (lambda a, b: smooth_l1(a, b, 0.5, "sum"), lambda a, b: F.smooth_l1_loss(a, b, beta=0.5, reduction="sum")),
    ]:
        got = ours(x.numpy(), t.numpy())
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_allclose(got, ref(x, t).numpy(), rtol=1e-12, atol=1e-15)
    assert isinstance(bce_with_logits(x.float().numpy(), t.bool().numpy()), np.ndarray)
    assert torch.is_tensor(bce_with_logits(x, t.numpy()))  # the type follows the logits


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 0.9, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_gradient_is_finite_for_confident_correct_logits(gamma, dtype):
    # (1 - p_t)^gamma has an infinite slope at p_t = 1 when gamma < 1: NaN gradients from |x| >= 17.
    x = torch.tensor([17.0, 25.0, 40.0, 100.0, -17.0, -40.0, -100.0, 3.0], dtype=dtype, requires_grad=True)
    t = torch.tensor([1, 1, 1, 1, 0, 0, 0, 1], dtype=dtype)
    loss = sigmoid_focal_loss(x, t, 0.25, gamma, "sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    ref = x.detach().clone().requires_grad_()
    tvo.sigmoid_focal_loss(ref, t, 0.25, gamma, "sum").backward()
    ok = torch.isfinite(ref.grad)  # where torchvision's gradient is finite, the two agree
    torch.testing.assert_close(x.grad[ok], ref.grad[ok])


@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9])
def test_focal_gradcheck_small_gamma(gamma):
    # Finite differences in float64 over the whole range, confident logits included.
    x = torch.tensor([-60, -37, -20, -3, -0.5, 0.2, 2, 17, 25, 37, 60], dtype=torch.float64, requires_grad=True)
    for t in (torch.ones(11, dtype=torch.float64), torch.zeros(11, dtype=torch.float64)):
        assert torch.autograd.gradcheck(lambda z: sigmoid_focal_loss(z, t, 0.25, gamma, "sum"), (x,))
        assert torch.autograd.gradcheck(lambda z: sigmoid_focal_loss(z, t, -1, gamma, "none"), (x,))


@pytest.mark.parametrize("kwargs, match", [
    (dict(gamma=-0.5), "gamma"), (dict(gamma=float("nan")), "gamma"), (dict(alpha=1.5), "alpha"),
    (dict(alpha=-0.25), "alpha"), (dict(alpha=float("nan")), "alpha"),
])
def test_focal_arguments(kwargs, match):
    x, t = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match=match):
        sigmoid_focal_loss(x, t, **kwargs)
    # alpha = -1 turns the weighting off (the lessons' plain focal term), alpha 0 and 1 are weights.
    for alpha in (-1, 0.0, 1.0):
        sigmoid_focal_loss(x, t, alpha=alpha)


def test_smooth_l1_beta_and_sigma():
    a = torch.zeros(3)
    for beta in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="beta"):
            smooth_l1(a, a + 1, beta)
    for sigma in (0.0, -3.0, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            sigma_to_beta(sigma)

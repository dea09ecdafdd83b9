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

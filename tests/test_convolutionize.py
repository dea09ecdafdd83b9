"""Convolutionizing: the same numbers as the fully connected original, a score map on larger inputs."""
import pytest
import torch
import torchvision
from torch import nn

from course_lib.convolutionize import convolutionize, convolutionize_head, fully_convolutional


@pytest.fixture(scope="module")
def alexnet_pair():
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None, num_classes=10).eval()
    return model, fully_convolutional(model).eval()


def test_equal_outputs_on_224(alexnet_pair):
    model, fcn = alexnet_pair
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), fcn(x)
    assert got.shape == (2, 10, 1, 1)
    torch.testing.assert_close(got.flatten(1), expected, rtol=1e-4, atol=1e-6)


def test_score_map_on_larger_input(alexnet_pair):
    _, fcn = alexnet_pair
    with torch.no_grad():
        assert fcn(torch.zeros(1, 3, 320, 320)).shape == (1, 10, 4, 4)
        assert fcn(torch.zeros(1, 3, 224, 320)).shape == (1, 10, 1, 4)


def test_original_model_untouched(alexnet_pair):
    model, fcn = alexnet_pair
    ours = {p.data_ptr() for p in fcn.parameters()}
    assert not ours & {p.data_ptr() for p in model.parameters()}


@pytest.mark.parametrize("in_shape,bias", [((3, 2, 4), True), ((5, 1, 1), False)])
def test_convolutionize_each_window_is_the_linear(in_shape, bias):
    torch.manual_seed(0)
    c, h, w = in_shape
    linear = nn.Linear(c * h * w, 6, bias=bias)
    conv = convolutionize(linear, in_shape)
    x = torch.randn(2, c, h + 3, w + 2)
    out = conv(x)
    assert out.shape == (2, 6, 4, 3)
    for i, j in [(0, 0), (3, 2), (1, 2)]:
        window = x[:, :, i:i + h, j:j + w].flatten(1)
        torch.testing.assert_close(out[:, :, i, j], linear(window))


def test_head_keeps_activations_and_drops_flatten():
    head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 3 * 3, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 4))
    conv_head = convolutionize_head(head, (8, 3, 3)).eval()
    kinds = [type(m) for m in conv_head]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.Dropout, nn.Conv2d]
    assert conv_head[0].kernel_size == (3, 3) and conv_head[3].kernel_size == (1, 1)
    x = torch.randn(5, 8, 3, 3)
    torch.testing.assert_close(conv_head(x).flatten(1), head.eval()(x))


def test_square_linear_head_is_not_mistaken_for_empty():
    head = nn.Sequential(nn.Linear(5, 5))
    conv_head = convolutionize_head(head, (5, 1, 1))
    x = torch.randn(3, 5, 1, 1)
    torch.testing.assert_close(conv_head(x).flatten(1), head(x.flatten(1)))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="in_features"):
        convolutionize(nn.Linear(10, 2), (3, 2, 2))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        convolutionize(nn.Linear(12, 2), (3, 4))
    with pytest.raises(ValueError, match="nn.Linear"):
        convolutionize(nn.Conv2d(3, 2, 1), (3, 1, 1))
    with pytest.raises(ValueError, match="at least one"):
        convolutionize_head(nn.Sequential(nn.ReLU()), (3, 1, 1))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        convolutionize_head(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), (3, 1, 1))
    with pytest.raises(ValueError, match="features"):
        fully_convolutional(nn.Linear(3, 2))

import numpy as np
import pytest
import torch

from course_lib.anchors import anchor_base, grid_anchors, grid_anchors_normalized, inside_image
from course_lib.boxes import box_convert


def test_anchor_base_canonical_values():
    base = anchor_base(16, (8, 16, 32), (0.5, 1, 2))
    assert base.shape == (9, 4)
    # The classic walkthrough's first anchor, [y1, x1, y2, x2] = [-37.25, -82.51, 53.25, 98.51].
    np.testing.assert_allclose(box_convert(base, "xyxy", "yxyx")[0], [-37.254834, -82.509668, 53.254834, 98.509668])
    wh = base[:, 2:] - base[:, :2]
    np.testing.assert_allclose(wh[:, 1] / wh[:, 0], np.repeat([0.5, 1, 2], 3))
    np.testing.assert_allclose(np.sqrt(wh.prod(1)), np.tile([128, 256, 512], 3))
    np.testing.assert_allclose((base[:, :2] + base[:, 2:]) / 2, 8.0)


def test_grid_order_is_y_then_x_then_anchor():
    base = anchor_base(16, (8,), (0.5, 1, 2))
    a = grid_anchors((3, 5), 16, base).reshape(3, 5, 3, 4)
    np.testing.assert_allclose(a[0, 0], base)
    np.testing.assert_allclose(a[2, 4] - base, np.tile([4 * 16, 2 * 16, 4 * 16, 2 * 16], (3, 1)))


def test_canonical_counts():
    anchors = grid_anchors((50, 50), 16, anchor_base())
    assert anchors.shape == (22500, 4)
    assert len(inside_image(anchors, (800, 800))) == 8940


def test_grid_anchors_matches_torchvision_shift_layout():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    gen = AnchorGenerator(sizes=((32, 64),), aspect_ratios=((0.5, 1.0, 2.0),))
    base_tv = gen.cell_anchors[0] if gen.cell_anchors else gen.generate_anchors((32, 64), (0.5, 1.0, 2.0))
    # torchvision centres its cell anchors at 0 and shifts by x * stride: ours start at stride/2.
    ours = grid_anchors((4, 6), 8, base_tv.double() + 4.0)
    ref = torch.cat([base_tv.double()[None] + torch.tensor([x * 8, y * 8, x * 8, y * 8]) for y in range(4)
                     for x in range(6)]) + 4.0
    torch.testing.assert_close(ours, ref.reshape(-1, 4))


def test_normalized_grid_counts_and_bounds():
    assert grid_anchors_normalized((4, 2, 1)).shape == (21, 4)
    a = grid_anchors_normalized((4, 2, 1), (0.75, 1.0, 1.3), ((1, 1), (1, 0.5), (0.5, 1)))
    assert a.shape == (189, 4)
    assert torch.all((a[:, :2] > 0) & (a[:, :2] < 1))
    # First 9 anchors share the top-left 4x4 cell's centre (1/8, 1/8).
    torch.testing.assert_close(a[:9, :2], torch.full((9, 2), 0.125))
    # Cell 1 of the 4x4 grid is to the right of cell 0 (x changes before y).
    torch.testing.assert_close(a[9, :2], torch.tensor([0.375, 0.125]))


def test_bad_anchor_arguments():
    with pytest.raises(ValueError, match="positive"):
        anchor_base(16, (8,), (0.0,))
    with pytest.raises(ValueError, match="base"):
        grid_anchors((2, 2), 16, np.zeros((3, 5)))


@pytest.mark.parametrize("call, match", [
    (lambda: anchor_base(float("nan")), "stride"),
    (lambda: anchor_base(16, (8, float("nan")), (1,)), "scales"),
    (lambda: anchor_base(16, (8,), (float("nan"),)), "ratios"),
    (lambda: grid_anchors((2.5, 2), 16, anchor_base()), "feature_hw"),
    (lambda: grid_anchors((2, 2), float("nan"), anchor_base()), "stride"),
    (lambda: grid_anchors((2, 2), -16, anchor_base()), "stride"),
    (lambda: inside_image(anchor_base(), (float("nan"), 800)), "image_hw"),
    (lambda: grid_anchors_normalized((4, 2.5)), "grid sizes"),
    (lambda: grid_anchors_normalized((4,), (float("nan"),)), "zooms"),
    (lambda: grid_anchors_normalized((4,), (1.0,), ((1.0, -0.5),)), "ratios"),
])
def test_nan_and_fractional_anchor_arguments_raise(call, match):
    # Each used to give NaN anchors, a silently truncated grid or no anchor inside the image.
    with pytest.raises(ValueError, match=match):
        call()

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from course_lib import viz  # noqa: E402

BOXES = np.array([[2.0, 3.0, 20.0, 30.0], [10.0, 0.0, 40.0, 12.0], [30.0, 25.0, 39.0, 39.0]])


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    viz.show_image(ax, np.zeros((40, 40, 3), np.uint8))
    yield ax
    plt.close(fig)


@pytest.mark.parametrize("as_torch", [False, True])
def test_draw_boxes_counts(ax, as_torch):
    conv = torch.from_numpy if as_torch else np.asarray
    patches = viz.draw_boxes(ax, conv(BOXES), labels=conv(np.array([0, 1, 2])),
                             scores=conv(np.array([0.9, 0.5, 0.123])), class_names=("a", "b", "c"))
    assert len(patches) == 3 and len(ax.patches) == 3 and len(ax.texts) == 3
    assert [t.get_text() for t in ax.texts] == ["a 0.90", "b 0.50", "c 0.12"]
    assert patches[0].get_width() == pytest.approx(18) and patches[0].get_xy() == pytest.approx((2, 3))
    assert patches[0].get_path_effects()  # the dark outline
    ax.figure.canvas.draw()


def test_draw_boxes_without_labels_and_other_formats(ax):
    viz.draw_boxes(ax, BOXES)
    assert len(ax.patches) == 3 and len(ax.texts) == 0
    cxcywh = np.array([[11.0, 16.5, 18.0, 27.0]])
    (p,) = viz.draw_boxes(ax, cxcywh, fmt="cxcywh", color="red")
    assert p.get_xy() == pytest.approx((2, 3)) and p.get_height() == pytest.approx(27)
    viz.draw_boxes(ax, np.zeros((0, 4)))
    assert len(ax.patches) == 4
    viz.draw_boxes(ax, BOXES[:1], scores=[0.5])
    assert ax.texts[-1].get_text() == "0.50"
    ax.figure.canvas.draw()


def test_labels_stay_inside_the_image(ax):
    viz.draw_boxes(ax, np.array([[35.0, 0.0, 40.0, 5.0]]), labels=[0], class_names=("a_long_class_name",))
    (text,) = ax.texts
    renderer = ax.figure.canvas.get_renderer()
    box, frame = text.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert text.get_position()[0] < 35
    assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1


@pytest.mark.parametrize("fontsize", [7, 14])
def test_labels_never_overprint(ax, fontsize):
    """Many labelled boxes on one spot (duplicates of one object, as before NMS): every label that
    is drawn overlaps no other, and those that fit nowhere are left out."""
    rng = np.random.default_rng(0)
    boxes = np.array([12.0, 12.0, 26.0, 26.0]) + rng.uniform(-2, 2, (12, 4))
    viz.draw_boxes(ax, boxes, labels=rng.integers(0, 3, 12), scores=rng.random(12),
                   class_names=("circle", "square", "triangle"), fontsize=fontsize)
    viz.draw_boxes(ax, boxes[:3] + 1, labels=[0, 1, 2], class_names=("circle", "square", "triangle"),
                   fontsize=fontsize)                            # a second call respects the first one's labels
    renderer = ax.figure.canvas.get_renderer()
    extents = [t.get_window_extent(renderer) for t in ax.texts]
    assert 2 <= len(extents) < 15
    for i, a in enumerate(extents):
        for b in extents[i + 1:]:
            assert not a.overlaps(b)
    assert len(ax.patches) == 15                               # every box is still drawn


def test_draw_boxes_bad_input(ax):
    with pytest.raises(ValueError, match="labels"):
        viz.draw_boxes(ax, BOXES, labels=[0, 1])
    with pytest.raises(ValueError):
        viz.draw_boxes(ax, BOXES, fmt="xyz")


def test_palette_is_fixed():
    assert viz.class_color(0) == viz.class_color(len(viz.PALETTE)) and viz.class_color(0) != viz.class_color(1)


def test_show_image_accepts_numpy_and_chw_tensor():
    fig, (a, b, c) = plt.subplots(1, 3)
    viz.show_image(a, np.zeros((8, 9, 3), np.uint8))
    viz.show_image(b, torch.rand(3, 8, 9))
    viz.show_image(c, torch.rand(1, 8, 9))
    assert b.get_images()[0].get_array().shape == (8, 9, 3) and not b.axison
    assert c.get_images()[0].get_array().shape == (8, 9)
    with pytest.raises(ValueError, match="image"):
        viz.show_image(a, np.zeros((8, 9, 4)))
    plt.close(fig)


def test_show_grid():
    images = [np.zeros((32, 32, 3), np.uint8), torch.rand(3, 32, 32), np.ones((32, 32, 3), np.uint8)]
    boxes = [BOXES[:2] / 2, torch.tensor([[1.0, 1.0, 5.0, 5.0]]), np.zeros((0, 4))]
    labels = [np.array([0, 1]), torch.tensor([1]), np.zeros(0, np.int64)]
    fig = viz.show_grid(images, boxes, labels, class_names=("a", "b"), ncols=2, titles=["x", "y", "z"])
    axes = fig.axes
    assert len(axes) == 4
    assert [len(ax.patches) for ax in axes] == [2, 1, 0, 0]
    assert [len(ax.texts) for ax in axes] == [2, 1, 0, 0]
    assert axes[1].get_title() == "y" and not axes[3].axison
    fig.canvas.draw()
    plt.close(fig)
    with pytest.raises(ValueError, match="boxes"):
        viz.show_grid(images, boxes[:2])


def test_show_anchors(ax):
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 15.0]])
    coll = viz.show_anchors(ax, anchors)
    assert isinstance(coll, PolyCollection) and len(coll.get_paths()) == 2
    np.testing.assert_allclose(coll.get_paths()[1].vertices[:4], [[5, 5], [25, 5], [25, 15], [5, 15]])
    ax.figure.canvas.draw()


def test_draw_masks(ax):
    masks = np.zeros((2, 40, 40), bool)
    masks[0, 2:10, 3:8] = True
    masks[1, 20:30, 20:25] = True
    im = viz.draw_masks(ax, torch.from_numpy(masks), labels=np.array([1, 4]))
    layer = im.get_array()
    assert layer.shape == (40, 40, 4)
    assert (layer[..., 3] > 0).sum() == masks.sum()
    np.testing.assert_allclose(layer[5, 5, :3], matplotlib.colors.to_rgb(viz.class_color(1)))
    np.testing.assert_allclose(layer[25, 22, :3], matplotlib.colors.to_rgb(viz.class_color(4)))
    assert viz.draw_masks(ax, np.zeros((0, 40, 40), bool)) is None
    with pytest.raises(ValueError, match="masks"):
        viz.draw_masks(ax, np.zeros((40, 40), bool))
    with pytest.raises(ValueError, match="labels"):
        viz.draw_masks(ax, masks, labels=[1])


def test_show_predictions_pairs_detections_with_ground_truth():
    images = [np.zeros((40, 40, 3), np.uint8)] * 3
    preds = [dict(boxes=BOXES, scores=np.array([0.9, 0.2, 0.5]), labels=np.array([0, 1, 2]))] * 3
    gts = [dict(boxes=BOXES[:2], labels=np.array([0, 1]))] * 3
    fig = viz.show_predictions(images, preds, gts, class_names=("a", "b", "c"), ncols=2)
    axes = fig.axes
    assert len(axes) == 8                                   # 2 pairs of rows x 2 columns
    assert [len(ax.patches) for ax in axes] == [2, 2, 2, 2, 2, 0, 2, 0]   # scores > 0.3 above, truth below
    assert axes[0].get_title(loc="left").startswith("detected") and axes[2].get_title(loc="left") == "ground truth"
    with pytest.raises(ValueError, match="gts"):
        viz.show_predictions(images, preds, gts[:2])
    plt.close(fig)

"""course_lib.datasets.faces: deterministic synthetic face images."""
import numpy as np
import pytest

from course_lib.datasets import faces


def test_same_seed_same_images():
    a, ra = faces.make_faces(3, seed=1)
    b, rb = faces.make_faces(3, seed=1)
    c, _ = faces.make_faces(3, seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ra, rb)
    assert not np.array_equal(a, c)


def test_shapes_sizes_and_layout():
    images, rects = faces.make_faces(20, seed=0, centre_box=(40, 40, 184, 184))
    assert images.shape == (20, 224, 224, 3) and images.dtype == np.uint8
    assert rects.shape == (20, 10, 10) and rects.dtype == np.float32
    used = rects[..., 2] > 0
    n = used.sum(1)
    assert n.min() >= 1 and n.max() <= 4
    assert np.all(~used[:, 1:] | used[:, :-1])                 # used rows first, zero rows after
    r = rects[used]
    assert r[:, 2].min() >= 16 and r[:, 2].max() <= 100          # widths 16..100 px
    assert np.all(r[:, 3] > r[:, 2])                             # faces are taller than wide
    assert np.all((r[:, :2] >= 40) & (r[:, :2] <= 184))          # centres in centre_box
    assert np.all(rects[~used] == 0)


def test_faces_are_drawn_in_skin_tones():
    images, rects = faces.make_faces(5, seed=3)
    for img, r in zip(images, rects):
        cx, cy, w, h = r[0, :4]
        # Just below the eyes, beside the nose: skin, which is brighter in red than in blue.
        patch = img[int(cy + 0.05 * h), int(cx - 0.05 * w):int(cx + 0.05 * w) + 1].astype(float)
        assert (patch[:, 0] >= patch[:, 2]).mean() > 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_faces"):
        faces.make_faces(2, max_faces=11)
    images, rects = faces.make_faces(0)
    assert images.shape == (0, 224, 224, 3) and rects.shape == (0, 10, 10)

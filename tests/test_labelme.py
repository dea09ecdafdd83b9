"""LabelMe reader: polygons -> masks -> boxes, several shapes and labels, bad labels."""
import json

import numpy as np
import pytest
from PIL import Image

from course_lib.datasets import labelme


def _doc(tmp_path, shapes, h=40, w=50, name="photo"):
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(tmp_path / f"{name}.png")
    doc = {"imagePath": f"{name}.png", "imageHeight": h, "imageWidth": w, "shapes": shapes}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def _poly(label, points, kind="polygon"):
    return {"label": label, "points": points, "shape_type": kind}


def test_polygon_area_within_tolerance():
    # A regular 40-gon of radius 15: area close to pi r^2 sampled at pixel centres.
    a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    pts = np.stack([25 + 15 * np.cos(a), 20 + 15 * np.sin(a)], 1)
    mask = labelme.polygon_mask(pts, 40, 50)
    exact = 0.5 * 40 * 15 ** 2 * np.sin(2 * np.pi / 40)
    assert abs(mask.sum() - exact) / exact < 0.03


def test_rectangle_polygon_exact():
    mask = labelme.polygon_mask([[2, 3], [10, 3], [10, 8], [2, 8]], 12, 12)
    assert mask.sum() == 8 * 5 and mask[3:8, 2:10].all()


def test_several_shapes_and_labels(tmp_path):
    path = _doc(tmp_path, [
        _poly("mug", [[2, 3], [10, 3], [10, 8], [2, 8]]),
        _poly("plant", [[20, 10], [40, 10], [30, 30]]),
        _poly("mug", [[30, 31], [45, 38]], "rectangle"),
    ])
    ann = labelme.read_labelme(path, ["plant", "mug"])
    assert ann["labels"].tolist() == [2, 1, 2]
    assert ann["masks"].shape == (3, 40, 50)
    np.testing.assert_array_equal(ann["boxes"][0], [2, 3, 10, 8])
    np.testing.assert_array_equal(ann["boxes"][2], [30, 31, 45, 38])
    b = ann["boxes"][1]
    assert 20 <= b[0] <= 21 and 39 <= b[2] <= 40 and b[1] == 10 and 28 <= b[3] <= 30
    ds = labelme.LabelMeDataset(tmp_path, ["plant", "mug"])
    image, t = ds[0]
    assert image.shape == (3, 40, 50) and t["labels"].tolist() == [2, 1, 2] and t["masks"].shape == (3, 40, 50)


def test_unknown_label_is_a_clear_error(tmp_path):
    path = _doc(tmp_path, [_poly("cat", [[2, 3], [10, 3], [10, 8]])])
    with pytest.raises(ValueError, match="'cat'.*class_names"):
        labelme.read_labelme(path, ["dog"])


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="points"):
        labelme.polygon_mask([[1, 2], [3, 4]], 5, 5)
    path = _doc(tmp_path, [_poly("dog", [[1, 1], [3, 3]], "circle")])
    with pytest.raises(ValueError, match="shape_type"):
        labelme.read_labelme(path, ["dog"])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        labelme.read_labelme(tmp_path / "bad.json", ["dog"])


def test_no_shapes_gives_empty_targets(tmp_path):
    ann = labelme.read_labelme(_doc(tmp_path, []), ["dog"])
    assert ann["boxes"].shape == (0, 4) and ann["masks"].shape == (0, 40, 50) and ann["labels"].shape == (0,)


def test_write_then_read_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    shapes = [{"label": "leaf", "points": [[2, 3], [12, 3], [12, 9], [2, 9]]},
              {"label": "house", "points": [[20, 5], [35, 20]], "shape_type": "rectangle"}]
    path = labelme.write_labelme(tmp_path / "sub" / "a.json", image, shapes)
    ann = labelme.read_labelme(path, ["house", "leaf"])
    assert ann["image_path"] == tmp_path / "sub" / "a.png" and (ann["height"], ann["width"]) == (30, 40)
    assert ann["labels"].tolist() == [2, 1]
    np.testing.assert_array_equal(ann["boxes"], [[2, 3, 12, 9], [20, 5, 35, 20]])
    ds = labelme.LabelMeDataset(tmp_path / "sub", ["house", "leaf"])
    img, t = ds[0]
    np.testing.assert_array_equal((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), image)
    with pytest.raises(ValueError, match="uint8"):
        labelme.write_labelme(tmp_path / "b.json", image.astype(np.float32), shapes)

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


def _labelme_tool_doc(tmp_path, shapes, name="tool", embed=True, image_path=None, h=40, w=50):
    """A file as the labelme tool saves it: group_id on every shape, the image embedded as base64."""
    import base64
    import io

    image = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    path = tmp_path / f"{name}.json"
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes,
           "imagePath": image_path if image_path is not None else path.name,
           "imageData": base64.b64encode(buf.getvalue()).decode() if embed else None,
           "imageHeight": h, "imageWidth": w}
    path.write_text(json.dumps(doc))
    return path, image


def _tool_shape(label, points, group_id=None, kind="polygon"):
    return {"label": label, "points": points, "group_id": group_id, "description": "",
            "shape_type": kind, "flags": {}, "mask": None}


def test_labelme_tool_files_ignore_groups_and_embedded_image(tmp_path):
    path, image = _labelme_tool_doc(tmp_path, [
        _tool_shape("__ignore__", [[0, 0], [5, 0], [5, 5]]),
        _tool_shape("mug", [[2, 3], [10, 3], [10, 8], [2, 8]], group_id=1),   # one mug, two parts
        _tool_shape("mug", [[30, 20], [40, 20], [40, 30], [30, 30]], group_id=1),
        _tool_shape("mug", [[12, 30], [20, 30], [20, 36], [12, 36]], group_id=2),  # another mug
        _tool_shape("plant", [[22, 3], [28, 3], [28, 9], [22, 9]], group_id=1),  # same id, other label
        _tool_shape("mug", [[42, 2], [48, 2], [48, 6], [42, 6]]),  # no group: its own object
    ])
    ann = labelme.read_labelme(path, ["mug", "plant"])
    assert ann["labels"].tolist() == [1, 1, 2, 1]
    np.testing.assert_array_equal(ann["boxes"], [[2, 3, 40, 30], [12, 30, 20, 36], [22, 3, 28, 9], [42, 2, 48, 6]])
    assert ann["masks"][0].sum() == 8 * 5 + 10 * 10
    ds = labelme.LabelMeDataset(tmp_path, ["mug", "plant"])
    img, t = ds[0]  # imagePath is the JSON itself: the embedded image is used
    np.testing.assert_array_equal((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), image)
    assert t["labels"].tolist() == [1, 1, 2, 1]


def test_labelme_without_any_image_is_a_clear_error(tmp_path):
    path, _ = _labelme_tool_doc(tmp_path, [], embed=False)
    with pytest.raises(ValueError, match="imageData is empty"):
        labelme.LabelMeDataset(tmp_path, ["mug"]).load(0)


@pytest.mark.parametrize("points", [
    [[60, 50], [70, 50], [70, 60]],          # wholly outside the 50 x 40 image
    [[2, 2], [10, 10], [20, 20]],            # collinear
])
def test_degenerate_polygons_are_skipped_with_a_warning(tmp_path, points):
    path = _doc(tmp_path, [_poly("mug", points), _poly("mug", [[2, 3], [10, 3], [10, 8], [2, 8]])])
    with pytest.warns(UserWarning, match="shape 0 .*skipped"):
        ann = labelme.read_labelme(path, ["mug"])
    assert ann["labels"].tolist() == [1] and ann["boxes"].tolist() == [[2, 3, 10, 8]]


def test_nan_vertex_is_an_error(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"imagePath": "x.png", "imageHeight": 10, "imageWidth": 10, "shapes": '
                    '[{"label": "mug", "points": [[1, 1], [NaN, 5], [8, 8]], "shape_type": "polygon"}]}')
    with pytest.raises(ValueError, match="finite"):
        labelme.read_labelme(path, ["mug"])


def test_absolute_image_path_is_refused(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "elsewhere.png")
    doc = {"imagePath": str(tmp_path / "elsewhere.png"), "imageHeight": 40, "imageWidth": 50, "shapes": []}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="imagePath must be relative"):
        labelme.read_labelme(tmp_path / "sub" / "a.json", ["mug"])


def test_write_labelme_never_overwrites_the_image(tmp_path):
    image = np.full((10, 12, 3), 7, np.uint8)
    Image.fromarray(image).save(tmp_path / "w.png")
    before = (tmp_path / "w.png").read_bytes()
    with pytest.raises(ValueError, match=r"\.json"):
        labelme.write_labelme(tmp_path / "w.png", image, [])
    assert (tmp_path / "w.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.png"]

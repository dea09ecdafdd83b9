"""course_lib.datasets.mp5: anchors, targets, the HDF5 files, WIDER FACE reading, offline failure."""
import dataclasses
import time

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import notebook
from course_lib.boxes import box_convert, box_iou
from course_lib.coding import decode
from course_lib.datasets import mp5 as data

TINY = dataclasses.replace(data.PROFILES["quick"], name="tiny", n_images=3, n_train=2)


def test_anchors_layout_axis1_is_y():
    anchors = data.make_anchors()
    assert anchors.shape == (8, 8, 9, 4) and anchors.dtype == np.float32
    # Cell (i, j): x follows j (axis 2), y follows i (axis 1); centres 56 .. 168 on a 16 px grid.
    np.testing.assert_array_equal(anchors[2, 5, 0, :2], [16 * 8 + 8, 16 * 5 + 8])
    assert anchors[..., 0].min() == 56 and anchors[..., 0].max() == 168
    # Same 9 shapes at every position: 3 sizes x 3 ratios (h / w), ratio-major.
    np.testing.assert_array_equal(anchors[0, 0, :, 2:], anchors[7, 3, :, 2:])
    wh = anchors[0, 0, :, 2:]
    np.testing.assert_allclose(wh[:, 1] / wh[:, 0], np.repeat([0.5, 1, 2], 3), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(wh.prod(1)), np.tile([24, 48, 96], 3), rtol=1e-5)


def test_targets_match_anchors_and_decode_back():
    anchors = data.make_anchors(TINY.anchor_scales, TINY.anchor_ratios)
    rects = np.zeros((2, 10, 10), np.float32)
    rects[0, 0, :4] = anchors[4, 2, 1]                    # a face exactly on an anchor
    rects[0, 1, :4] = anchors[1, 6, 0] * [1, 1, 1.1, 1.2] + [3, -2, 0, 0]
    t = data.make_targets(rects, anchors)
    assert t.shape == (2, 8, 8, 9, 5) and t.dtype == np.float32
    assert t[0, 4, 2, 1, 4] == 1 and np.all(t[0, 4, 2, 1, :4] == 0)
    assert t[1].sum() == 0                                # no faces, no targets
    pos = t[0, ..., 4] == 1
    boxes = decode(t[0][pos][:, :4].astype(np.float64), box_convert(anchors[pos].astype(np.float64), "cxcywh", "xyxy"))
    faces = box_convert(rects[0, :2, :4].astype(np.float64), "cxcywh", "xyxy")
    assert np.all(box_iou(boxes, faces).max(1) > 0.999)   # every target decodes to a face
    best = np.argmax(box_iou(faces, box_convert(anchors.reshape(-1, 4).astype(np.float64), "cxcywh", "xyxy")), 1)
    assert pos.reshape(-1)[best].all()                    # each face's best anchor is positive


def test_targets_reject_bad_shapes():
    with pytest.raises(ValueError, match="rects"):
        data.make_targets(np.zeros((2, 10)), data.make_anchors())


def test_initial_weights_shapes_and_determinism():
    W1, W2 = data.initial_weights(0)
    assert W1.shape == (3, 3, 512, 128) and W2.shape == (1, 1, 128, 9, 5) and W1.dtype == np.float32
    assert np.abs(W1).max() < 0.1
    np.testing.assert_array_equal(W1, data.initial_weights(0)[0])


def test_vgg_features_shape_and_bad_input():
    images = np.zeros((1, 224, 224, 3), np.uint8)
    f = data.vgg_features(images)
    assert f.shape == (1, 8, 8, 512) and f.dtype == np.float32 and (f >= 0).all()
    with pytest.raises(ValueError, match="images"):
        data.vgg_features(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="backbone"):
        data.vgg_features(images, backbone="resnet")


def test_build_writes_the_three_files_deterministically(tmp_path):
    root = data.build(TINY, tmp_path / "a")
    with h5py.File(root / "data.hdf5") as f:
        shapes = {k: f[k].shape for k in f}
        assert f.attrs["n_train"] == 2
    assert shapes == {"features": (3, 8, 8, 512), "rects": (3, 10, 10), "targets": (3, 8, 8, 9, 5),
                      "anchors": (8, 8, 9, 4)}
    d = data.load(TINY, tmp_path / "a")
    assert d["images"].shape == (3, 224, 224, 3) and d["W1"].shape == (3, 3, 512, 128)
    np.testing.assert_array_equal(d["targets"], data.make_targets(d["rects"], d["anchors"]))
    again = data.load(TINY, tmp_path / "b")
    for k in ("features", "rects", "images", "W2"):
        np.testing.assert_array_equal(d[k], again[k])
    assert not list((tmp_path / "a").glob(".*tmp"))        # written atomically, no leftovers


def test_build_never_overwrites_foreign_files(tmp_path):
    (tmp_path / "data.hdf5").write_text("someone else's file")
    with pytest.raises(FileExistsError, match="data.hdf5"):
        data.build(TINY, tmp_path)
    assert (tmp_path / "data.hdf5").read_text() == "someone else's file"


def test_full_profile_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(notebook.OfflineError, match="COURSE_PROFILE=quick"):
        data.build("full", tmp_path)
    with pytest.raises(notebook.OfflineError):
        data.vgg_features(np.zeros((1, 224, 224, 3), np.uint8), backbone="imagenet")
    assert time.perf_counter() - start < 5


def write_wider(root, faces_per_image):
    """A two-image WIDER FACE copy in torchvision's layout, annotations in the official text format."""
    base = root / "widerface"
    for d in ("WIDER_train", "WIDER_test", "WIDER_val/images/0--Parade", "wider_face_split"):
        (base / d).mkdir(parents=True, exist_ok=True)
    lines = []
    rng = np.random.default_rng(0)
    for i, faces in enumerate(faces_per_image):
        name = f"0--Parade/0_Parade_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(base / "WIDER_val/images" / name)
        lines += [name, str(len(faces))] + [" ".join(map(str, f)) + " " for f in faces]
    (base / "wider_face_split/wider_face_val_bbx_gt.txt").write_text("\n".join(lines) + "\n")


def test_read_wider_crops_the_real_format(tmp_path):
    # x y w h blur expression illumination invalid occlusion pose, as in wider_face_val_bbx_gt.txt
    write_wider(tmp_path, [[[100, 80, 40, 50, 0, 0, 0, 0, 0, 0], [150, 90, 20, 24, 1, 0, 0, 0, 0, 0],
                            [10, 10, 5, 5, 0, 0, 0, 1, 0, 0]],
                           [[0, 0, 0, 0, 0, 0, 0, 1, 0, 0]]])
    images, rects = data.read_wider(tmp_path, n=5)
    assert images.shape == (1, 224, 224, 3) and rects.shape == (1, 10, 10)   # 2nd image has no valid face
    # Crop: side clip(4 * 50, 224, 300) = 224 around the big face's centre (120, 105), kept inside
    x0, y0 = 120 - 112, 0                                  # clipped to the image
    np.testing.assert_allclose(rects[0, 0, :4], [120 - x0, 105 - y0, 40, 50])
    np.testing.assert_allclose(rects[0, 1, :5], [160 - x0, 102 - y0, 20, 24, 1])
    assert rects[0, 2:].sum() == 0                          # the invalid face (column 7) is dropped
    write_wider(tmp_path / "b", [[[100, 80, 40, 50, 2, 1, 0, 0, 1, 2]]])
    _, rects = data.read_wider(tmp_path / "b", n=1)
    np.testing.assert_array_equal(rects[0, 0, 4:], [2, 1, 0, 1, 2, 0])  # blur expr illum occl pose invalid
    with pytest.raises(FileNotFoundError, match="no WIDER FACE val split"):
        data.read_wider(tmp_path / "missing", n=1)


def test_a_truncated_cache_is_named_and_rebuilt(tmp_path, capsys):
    root = data.build(TINY, tmp_path)
    good = data.load(TINY, root)
    path = root / "data.hdf5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = data.load(TINY, root)  # lesson 1 calls load(), which has no overwrite argument
    assert "data.hdf5" in capsys.readouterr().out
    np.testing.assert_array_equal(again["features"], good["features"])


def test_nan_in_a_cache_is_detected_and_rebuilt(tmp_path, capsys):
    root = data.build(TINY, tmp_path)
    good = data.load(TINY, root)
    with h5py.File(root / "data.hdf5", "r+") as f:
        f["features"][0, 0, 0, 0] = np.nan
    again = data.load(TINY, root)
    out = capsys.readouterr().out
    assert "data.hdf5" in out and "NaN" in out and out.count("\n") == 1
    np.testing.assert_array_equal(again["features"], good["features"])
    assert np.isfinite(again["features"]).all()


def test_temporaries_of_killed_builds_are_removed(tmp_path):
    import os

    tmp_path.mkdir(exist_ok=True)
    dead, legacy = tmp_path / ".data.hdf5.999999999-0123abcd.tmp", tmp_path / ".images.hdf5.999999999.tmp"
    live = tmp_path / f".data.hdf5.{os.getpid()}-89abcdef.tmp"
    for p in (dead, legacy, live):
        p.write_bytes(b"half an hdf5 file")
    data.build(TINY, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [live.name]

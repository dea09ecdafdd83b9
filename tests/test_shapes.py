import json

import numpy as np
import pytest
import torch

from course_lib.datasets import shapes, voc


@pytest.fixture(scope="module")
def samples():
    return shapes.make_shapes(50, image_size=128, seed=3)


def test_class_lists():
    assert len(shapes.SHAPES) >= 10 and len(set(shapes.SHAPES)) == len(shapes.SHAPES)
    assert shapes.SOURCE_CLASSES == shapes.SHAPES[:6]
    assert shapes.TARGET_CLASSES == shapes.SHAPES[6:9]


def test_sample_types_and_shapes(samples):
    for s in samples:
        k = len(s["labels"])
        assert s["image"].dtype == np.uint8 and s["image"].shape == (128, 128, 3)
        assert s["boxes"].dtype == np.float32 and s["boxes"].shape == (k, 4)
        assert s["labels"].dtype == np.int64
        assert s["masks"].dtype == bool and s["masks"].shape == (k, 128, 128)


def test_deterministic_and_independent_of_batch(samples):
    again = shapes.make_shapes(5, image_size=128, seed=3)
    for a, b in zip(samples[:5], again):
        for key in ("image", "boxes", "labels", "masks"):
            np.testing.assert_array_equal(a[key], b[key])
    other = shapes.make_shapes(1, image_size=128, seed=4)[0]
    assert not np.array_equal(other["image"], samples[0]["image"])


def test_boxes_inside_and_equal_to_mask_extents(samples):
    for s in samples:
        b = s["boxes"]
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 128).all()
        assert (b[:, 2:] - b[:, :2] >= shapes.MIN_BOX).all()
        for box, mask in zip(b, s["masks"]):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_masks_are_disjoint_visible_parts(samples):
    for s in samples:
        assert (s["masks"].sum(0) <= 1).all()


def test_labels_counts_and_variety(samples):
    labels = np.concatenate([s["labels"] for s in samples])
    assert labels.min() >= 0 and labels.max() < len(shapes.SOURCE_CLASSES)
    assert len(np.unique(labels)) >= 6
    counts = [len(s["labels"]) for s in samples]
    assert min(counts) >= 1 and max(counts) <= 6
    assert len(set(counts)) >= 4  # the count varies


def test_sizes_range_from_small_to_large(samples):
    sides = np.concatenate([np.maximum(s["boxes"][:, 2] - s["boxes"][:, 0], s["boxes"][:, 3] - s["boxes"][:, 1])
                            for s in samples])
    assert sides.min() <= 16 and sides.max() >= 60


def test_background_is_not_flat(samples):
    for s in samples[:10]:
        free = ~s["masks"].any(0)
        assert s["image"][free].std(0).mean() > 8


def test_object_count_limits_and_other_classes():
    out = shapes.make_shapes(20, image_size=160, classes=shapes.TARGET_CLASSES, seed=1,
                             min_objects=2, max_objects=3)
    for s in out:
        assert 2 <= len(s["labels"]) <= 3 and s["labels"].max() < 3
        assert s["image"].shape == (160, 160, 3)


@pytest.mark.parametrize("kwargs", [dict(classes=("circle", "blob")), dict(min_objects=3, max_objects=2),
                                    dict(min_objects=0), dict(image_size=8)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        shapes.draw_scene(np.random.default_rng(0), **kwargs)


def test_split_indices():
    tr, te = shapes.split_indices(100, 0.3, seed=5)
    assert len(te) == 30 and len(tr) == 70
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(100))
    tr2, te2 = shapes.split_indices(100, 0.3, seed=5)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, shapes.split_indices(100, 0.3, seed=6)[1])


def test_voc_cache_written_read_and_reused(tmp_path):
    root = tmp_path / "set"
    out = shapes.write_shapes_voc(root, n_train=4, n_test=2, image_size=128, seed=2)
    assert out == root
    meta = json.loads((root / shapes.META_FILE).read_text())
    assert meta["n_train"] == 4 and meta["classes"] == list(shapes.SOURCE_CLASSES)
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 6
    stamp = (root / "Annotations" / "train_000000.xml").stat().st_mtime_ns
    assert shapes.write_shapes_voc(root, n_train=4, n_test=2, image_size=128, seed=2) == root
    assert (root / "Annotations" / "train_000000.xml").stat().st_mtime_ns == stamp  # not rewritten
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left

    ds = shapes.load_shapes_voc("train", root=root, n_train=4, n_test=2, image_size=128, seed=2)
    assert isinstance(ds, voc.VOCDetection) and len(ds) == 4 and ds.class_names == shapes.SOURCE_CLASSES
    image, target = ds[1]
    ref = shapes.make_shapes(2, image_size=128, seed=2)[1]
    np.testing.assert_array_equal(target["boxes"].numpy(), ref["boxes"])
    np.testing.assert_array_equal(target["labels"].numpy(), ref["labels"])
    assert image.shape == (3, 128, 128) and image.dtype == torch.float32
    assert (image * 255 - torch.from_numpy(ref["image"]).permute(2, 0, 1)).abs().mean() < 4  # JPEG q95
    test_ids = shapes.load_shapes_voc("test", root=root, n_train=4, n_test=2, image_size=128, seed=2).ids
    assert test_ids == ["test_000000", "test_000001"]


def test_voc_cache_refuses_foreign_or_different_folders(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a shapes data set"):
        shapes.write_shapes_voc(foreign, n_train=1, n_test=1)
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1

    ours = shapes.write_shapes_voc(tmp_path / "ours", n_train=1, n_test=1)
    with pytest.raises(FileExistsError, match="other parameters"):
        shapes.write_shapes_voc(ours, n_train=2, n_test=1)


def test_default_root_depends_on_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    a = shapes.write_shapes_voc(n_train=1, n_test=1, image_size=128, seed=0)
    b = shapes._default_root(shapes._meta(1, 1, 128, shapes.TARGET_CLASSES, 0, 6, "cluttered"))
    c = shapes._default_root(shapes._meta(1, 1, 128, shapes.SOURCE_CLASSES, 0, 6, "plain"))
    d = shapes._default_root(shapes._meta(1, 1, 128, shapes.SOURCE_CLASSES, 0, 3, "cluttered"))
    assert a.parent == tmp_path and a.name.startswith("shapes_voc_128_0_1_1_")
    assert len({a, b, c, d}) == 4


def _high_freq(image: np.ndarray, free: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours of 4x4 block means, over blocks that
    are all background (block means average the pixel noise away; stripes and lines stay)."""
    h, w, _ = image.shape
    blocks = image.astype(np.float32).reshape(h // 4, 4, w // 4, 4, 3).mean((1, 3))
    free = free.reshape(h // 4, 4, w // 4, 4).all((1, 3))
    diff = np.abs(np.diff(blocks, axis=1)).mean(2)
    return float(diff[free[:, 1:] & free[:, :-1]].mean())


def test_plain_style_is_smoother_with_larger_shapes():
    plain = shapes.make_shapes(30, image_size=128, seed=3, max_objects=3, style="plain")
    busy = shapes.make_shapes(30, image_size=128, seed=3, max_objects=3)
    hf = lambda out: np.mean([_high_freq(s["image"], ~s["masks"].any(0)) for s in out])  # noqa: E731
    assert hf(plain) < 0.6 * hf(busy)
    # the smallest diameter is 0.16 * 128 = 20.5 px; a visible box can be cut by the border or
    # by occlusion, but its longer side stays well above the cluttered style's 10 px shapes
    longest = np.concatenate([np.maximum(s["boxes"][:, 2] - s["boxes"][:, 0], s["boxes"][:, 3] - s["boxes"][:, 1])
                              for s in plain])
    assert np.median(longest) > 30 and all(1 <= len(s["labels"]) <= 3 for s in plain)


def test_style_is_checked_and_kept_in_the_cache(tmp_path):
    with pytest.raises(ValueError, match="style"):
        shapes.draw_scene(np.random.default_rng(0), style="easy")
    root = shapes.write_shapes_voc(tmp_path / "p", n_train=2, n_test=1, seed=1, max_objects=2, style="plain")
    meta = json.loads((root / shapes.META_FILE).read_text())
    assert meta["style"] == "plain" and meta["max_objects"] == 2
    ds = shapes.load_shapes_voc("train", root=root, n_train=2, n_test=1, seed=1, max_objects=2, style="plain")
    ref = shapes.make_shapes(2, seed=1, max_objects=2, style="plain")[1]
    np.testing.assert_array_equal(ds[1][1]["boxes"].numpy(), ref["boxes"])
    with pytest.raises(FileExistsError, match="other parameters"):
        shapes.write_shapes_voc(root, n_train=2, n_test=1, seed=1, max_objects=2)


def test_voc_cache_removes_the_temporaries_of_killed_runs_only(tmp_path):
    import os
    import time

    root = tmp_path / "set"
    dead = [tmp_path / ".set.999999999-0123abcd.tmp", tmp_path / ".set.tmp-999999999-0123abcd"]  # new, older naming
    live = tmp_path / f".set.{os.getpid()}-89abcdef.tmp"                # a concurrent run still writing
    old = tmp_path / f".set.tmp-{os.getpid()}-fedcba98"                 # a live pid, but hours old: reused id
    for d in (*dead, live, old):
        (d / "JPEGImages").mkdir(parents=True)
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    shapes.write_shapes_voc(root, n_train=1, n_test=1, image_size=32, max_objects=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["set", live.name])


def test_voc_cache_is_byte_identical_from_run_to_run(tmp_path):
    """<folder> names the set, not the temporary folder it was written in (which holds a pid)."""
    a = shapes.write_shapes_voc(tmp_path / "a" / "set", n_train=2, n_test=1, image_size=32, max_objects=1)
    b = shapes.write_shapes_voc(tmp_path / "b" / "set", n_train=2, n_test=1, image_size=32, max_objects=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 3 + 3 + 2 + 1
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert "<folder>set</folder>" in (a / "Annotations" / "train_000000.xml").read_text()

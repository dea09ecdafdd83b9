"""Penn-Fudan layout reader: masks -> boxes, torchvision targets, joint transforms, bad files."""
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.datasets import pennfudan as pf


def _write(root, name, image, ids):
    (root / "PNGImages").mkdir(parents=True, exist_ok=True)
    (root / "PedMasks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "PNGImages" / f"{name}.png")
    Image.fromarray(ids.astype(np.uint8), mode="L").save(root / "PedMasks" / f"{name}_mask.png")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.zeros((20, 30), np.uint8)
    ids[2:7, 3:9] = 1       # box x 3..9, y 2..7
    ids[10:18, 20:21] = 2   # one column wide
    ids[15, 5] = 3          # one pixel
    _write(tmp_path, "FudanPed00001", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), ids)
    _write(tmp_path, "FudanPed00002", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), np.zeros((20, 30)))
    return tmp_path


def test_masks_and_boxes_exact(folder):
    ds = pf.PennFudanDataset(folder)
    image, t = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 20, 30) and 0 <= image.min() <= image.max() <= 1
    assert t["boxes"].tolist() == [[3, 2, 9, 7], [20, 10, 21, 18], [5, 15, 6, 16]]
    assert t["labels"].tolist() == [1, 1, 1] and t["iscrowd"].tolist() == [0, 0, 0]
    assert t["masks"].shape == (3, 20, 30) and t["masks"].sum((1, 2)).tolist() == [30, 8, 1]
    assert t["area"].tolist() == [30, 8, 1] and t["image_id"] == 0
    assert ds.classes == ("__background__", "person")


def test_empty_mask_gives_zero_boxes(folder):
    image, t = pf.PennFudanDataset(folder)[1]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 20, 30)
    assert pf.boxes_from_masks(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_boxes_from_masks_matches_torchvision():
    from torchvision.ops import masks_to_boxes

    rng = np.random.default_rng(1)
    masks = rng.random((6, 17, 23)) > 0.97
    masks[:, 3, 4] = True
    ours = pf.boxes_from_masks(masks)
    ref = masks_to_boxes(torch.from_numpy(masks)).numpy() + np.array([0, 0, 1, 1])  # inclusive -> exclusive
    np.testing.assert_array_equal(ours, ref)


def test_corrupt_png_is_a_clear_error(folder):
    (folder / "PedMasks" / "FudanPed00001_mask.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match="corrupt"):
        pf.PennFudanDataset(folder)[0]


def test_missing_mask_and_bad_root(folder, tmp_path):
    with pytest.raises(ValueError, match="PNGImages"):
        pf.PennFudanDataset(tmp_path / "nowhere")
    (folder / "PedMasks" / "FudanPed00002_mask.png").unlink()
    with pytest.raises(ValueError, match="FudanPed00002_mask.png"):
        pf.PennFudanDataset(folder)


def test_joint_flip_moves_boxes_and_masks(folder):
    from torchvision.transforms import v2

    flip = v2.Compose([v2.RandomHorizontalFlip(1.0), v2.ToDtype(torch.float32, scale=True)])
    plain, t0 = pf.PennFudanDataset(folder)[0]
    image, t = pf.PennFudanDataset(folder, transforms=flip)[0]
    torch.testing.assert_close(image, plain.flip(-1))
    expect = t0["boxes"].clone()
    expect[:, [0, 2]] = 30 - t0["boxes"][:, [2, 0]]
    torch.testing.assert_close(t["boxes"].as_subclass(torch.Tensor), expect.as_subclass(torch.Tensor))
    assert torch.equal(t["masks"], t0["masks"].flip(-1))
    torch.manual_seed(0)
    image, t = pf.PennFudanDataset(folder, transforms=pf.train_transforms())[0]
    assert image.dtype == torch.float32 and len(t["boxes"]) == 3


def test_write_layout_round_trip_with_classes(tmp_path):
    from course_lib.datasets import shapes

    samples = shapes.make_shapes(3, image_size=64, classes=shapes.TARGET_CLASSES, seed=5)
    pf.write_pennfudan_layout(tmp_path, samples, shapes.TARGET_CLASSES)
    ds = pf.PennFudanDataset(tmp_path)
    assert ds.classes == ("__background__", *shapes.TARGET_CLASSES) and len(ds) == 3
    for i, s in enumerate(samples):
        _, t = ds.load(i)
        np.testing.assert_array_equal(t["boxes"], s["boxes"])
        np.testing.assert_array_equal(t["labels"], s["labels"] + 1)
        np.testing.assert_array_equal(t["masks"], s["masks"])


def test_split_and_collate():
    train, test = pf.split(170, 50, seed=0)
    assert len(train) == 120 and len(test) == 50 and sorted(train + test) == list(range(170))
    assert pf.split(170, 50, seed=0) == (train, test) and pf.split(170, 50, seed=1) != (train, test)
    with pytest.raises(ValueError, match="n_test"):
        pf.split(5, 6)
    assert pf.collate([(1, "a"), (2, "b")]) == ((1, 2), ("a", "b"))


# ---- the real data set's path: checksum, offline reuse, interrupted extraction, concurrent writers ----

from course_lib import notebook  # noqa: E402
from course_lib.datasets import download as dl  # noqa: E402
import full_fixtures as ff  # noqa: E402


def test_the_archive_checksum_is_pinned(tmp_path, monkeypatch):
    monkeypatch.delenv("PENNFUDAN_SHA256", raising=False)
    assert dl.parse_checksum(pf.PENNFUDAN_CHECKSUM) == ("md5", "5aaa3dee905cef73325923716e38fc6d")
    # Not the official archive: the download is checked against the pinned MD5 and refused
    # (before, it stopped earlier with "sha256 is needed", online or not).
    mirror = tmp_path / "mirror"
    ff.place(mirror, pf.PENNFUDAN_URL, ff.penn_fudan_zip(tmp_path / "PennFudanPed.zip", n=2))
    with ff.http_server(mirror) as url:
        monkeypatch.setenv("COURSE_MIRROR", url)
        with pytest.raises(dl.ChecksumError, match="MD5 .* does not match the expected 5aaa3dee.*PENNFUDAN_SHA256"):
            pf.pennfudan(tmp_path / "data")
    assert not (tmp_path / "data" / "PennFudanPed.zip").exists()


def test_a_verified_archive_is_used_offline(tmp_path, monkeypatch):
    archive = ff.penn_fudan_zip(tmp_path / "PennFudanPed.zip", n=6)
    monkeypatch.setenv("PENNFUDAN_SHA256", ff.sha256(archive))
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    train, test = pf.pennfudan(tmp_path, n_test=2)
    assert (len(train), len(test)) == (4, 2)
    image, target = test[0]
    assert image.shape == (3, 72, 96) and target["labels"].tolist() in ([1], [1, 1])
    monkeypatch.setenv("PENNFUDAN_SHA256", "0" * 64)  # a wrong checksum is never silently accepted
    (tmp_path / "PennFudanPed").rename(tmp_path / "moved")
    with pytest.raises(dl.ChecksumError, match="exists but its SHA-256"):
        pf.pennfudan(tmp_path, n_test=2)


@pytest.mark.parametrize("killed_after", ["masks", "images"])
def test_an_interrupted_extraction_is_detected_and_redone(tmp_path, monkeypatch, killed_after):
    """An older extraction killed halfway left PedMasks/ whole and PNGImages/ partial (masks come
    first in the archive), or the other way round: the next call extracts again."""
    archive = ff.penn_fudan_zip(tmp_path / "PennFudanPed.zip", n=8)
    monkeypatch.setenv("PENNFUDAN_SHA256", ff.sha256(archive))
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        keep = "PedMasks" if killed_after == "masks" else "PNGImages"
        partial = [n for n in names if "Annotation" in n or keep in n]
        other = [n for n in names if n not in partial and n.endswith(".png")][:3]
        zf.extractall(tmp_path, members=partial + other)
    train, test = pf.pennfudan(tmp_path, n_test=2)
    assert (len(train), len(test)) == (6, 2)
    assert len(list((tmp_path / "PennFudanPed" / "PedMasks").iterdir())) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_layout_refuses_a_folder_in_use(tmp_path):
    from course_lib.datasets import shapes

    samples = shapes.make_shapes(1, image_size=64, classes=shapes.TARGET_CLASSES, seed=5)
    (tmp_path / "mine.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="not empty"):
        pf.write_pennfudan_layout(tmp_path, samples)
    root = pf.write_pennfudan_layout(tmp_path / "set", samples)
    assert pf.write_pennfudan_layout(root, samples, exist_ok=True) == root
    with pytest.raises(FileExistsError):
        pf.write_pennfudan_layout(root, samples)

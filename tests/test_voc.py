import time

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import notebook
from course_lib.datasets import voc

GOOD = """<annotation>
  <filename>img.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <object><name>dog</name><difficult>1</difficult><truncated>0</truncated>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
  <object><name>cat</name>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>5</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


def test_read_converts_one_based_inclusive_to_continuous(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(GOOD)
    ann = voc.read_voc_xml(p)
    assert ann["filename"] == "img.jpg" and ann["image_hw"] == (30, 40)
    np.testing.assert_array_equal(ann["boxes"], [[0, 0, 10, 20], [4, 5, 5, 30]])  # 1-px wide box kept
    assert ann["boxes"].dtype == np.float32 and ann["names"] == ["dog", "cat"]
    np.testing.assert_array_equal(ann["difficult"], [True, False])  # missing tag -> False
    np.testing.assert_array_equal(ann["truncated"], [False, False])


def test_write_read_round_trip(tmp_path, rng):
    xy = rng.integers(0, 100, (7, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 50, (7, 2))], 1).astype(np.float32)
    names = [voc.VOC_CLASSES[i] for i in rng.integers(0, 20, 7)]
    difficult, truncated = rng.random(7) < 0.5, rng.random(7) < 0.5
    p = tmp_path / "r.xml"
    voc.write_voc_xml(p, "r.jpg", (150, 160), torch.from_numpy(boxes), names, difficult, truncated)
    ann = voc.read_voc_xml(p)
    np.testing.assert_array_equal(ann["boxes"], boxes)
    assert ann["names"] == names and ann["image_hw"] == (150, 160) and ann["filename"] == "r.jpg"
    np.testing.assert_array_equal(ann["difficult"], difficult)
    np.testing.assert_array_equal(ann["truncated"], truncated)
    assert "<xmin>" in p.read_text() and not list(tmp_path.glob(".*"))  # no temp file left


def test_empty_annotation_round_trip(tmp_path):
    p = tmp_path / "e.xml"
    voc.write_voc_xml(p, "e.jpg", (10, 20), np.zeros((0, 4)), [])
    ann = voc.read_voc_xml(p)
    assert ann["boxes"].shape == (0, 4) and ann["names"] == []
    assert ann["difficult"].shape == (0,) and ann["truncated"].dtype == bool


@pytest.mark.parametrize("text, message", [
    ("this is not xml <", "not a valid XML"),
    ("<root><filename>a.jpg</filename></root>", "must be <annotation>"),
    (GOOD.replace("<filename>img.jpg</filename>", ""), "no <filename>"),
    (GOOD.replace("<size><width>40</width><height>30</height><depth>3</depth></size>", ""), "no <size>"),
    (GOOD.replace("<name>dog</name>", ""), "no <name>"),
    (GOOD.replace("<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox>", ""), "no <bndbox>"),
    (GOOD.replace("<xmax>10</xmax>", "<xmax>ten</xmax>"), "not a number"),
    (GOOD.replace("<ymin>1</ymin>", ""), "no <ymin>"),
    (GOOD.replace("<xmax>10</xmax>", "<xmax>0</xmax>"), "xmax < xmin"),
    (GOOD.replace("<difficult>1</difficult>", "<difficult>yes</difficult>"), "<difficult> must be 0 or 1"),
])
def test_malformed_files_are_rejected_with_the_file_name(tmp_path, text, message):
    p = tmp_path / "bad.xml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        voc.read_voc_xml(p)
    assert "bad.xml" in str(err.value)


@pytest.mark.parametrize("boxes, names, message", [
    (np.zeros((2, 3)), ["a", "b"], "shape"),
    (np.array([[0, 0, 5, 5]]), ["a", "b"], "one entry per box"),
    (np.array([[0, 0, 0.5, 5]]), ["a"], "at least 1 px"),
    (np.array([[0, 0, np.nan, 5]]), ["a"], "NaN"),
])
def test_write_rejects_bad_input(tmp_path, boxes, names, message):
    with pytest.raises(ValueError, match=message):
        voc.write_voc_xml(tmp_path / "x.xml", "x.jpg", (10, 10), boxes, names)


def make_folder(root, entries, split="train"):
    """entries: id -> (names, boxes); writes a small VOC folder with random 24x32 images."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, (names, boxes, difficult) in entries.items():
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        voc.write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", (24, 32), boxes, names, difficult)
    (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(entries) + "\n")
    return root


def test_dataset_items(tmp_path):
    root = make_folder(tmp_path, {
        "a": (["cat", "dog"], np.array([[0, 0, 10, 10], [5, 6, 20, 24]]), [False, True]),
        "b": ([], np.zeros((0, 4)), None),
    })
    ds = voc.VOCDetection(root, "train")
    assert len(ds) == 2 and ds.ids == ["a", "b"] and ds.class_names == voc.VOC_CLASSES
    image, target = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 24, 32)
    assert 0 <= image.min() and image.max() <= 1
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (2, 4)
    assert target["labels"].dtype == torch.int64
    assert target["labels"].tolist() == [voc.VOC_CLASSES.index("cat"), voc.VOC_CLASSES.index("dog")]
    assert target["difficult"].tolist() == [False, True] and target["image_id"] == 0
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["image_id"] == 1

    easy = voc.VOCDetection(root, "train", keep_difficult=False)
    assert easy[0][1]["labels"].tolist() == [voc.VOC_CLASSES.index("cat")]

    flipped = voc.VOCDetection(root, "train", transforms=lambda im, t: (im.flip(-1), {**t, "flipped": True}))
    im, t = flipped[0]
    assert t["flipped"] and torch.equal(im, image.flip(-1))

    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=voc.collate_detection)
    images, targets = next(iter(loader))
    assert len(images) == 2 and [t["image_id"] for t in targets] == [0, 1]


def test_dataset_errors(tmp_path):
    root = make_folder(tmp_path, {"a": (["unicorn"], np.array([[0, 0, 5, 5]]), None)})
    with pytest.raises(ValueError, match="unknown class name.*unicorn"):
        voc.VOCDetection(root, "train")[0]
    assert voc.VOCDetection(root, "train", class_names=("unicorn",))[0][1]["labels"].tolist() == [0]
    with pytest.raises(FileNotFoundError, match="no split 'test'.*train"):
        voc.VOCDetection(root, "test")


def test_voc2007_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    start = time.monotonic()
    with pytest.raises(notebook.OfflineError, match="Pascal VOC 2007"):
        voc.voc2007(tmp_path, "trainval")
    assert time.monotonic() - start < 2
    assert not (tmp_path / "VOCdevkit").exists()
    with pytest.raises(ValueError, match="split"):
        voc.voc2007(tmp_path, "everything")


def test_voc2007_reads_extracted_folder_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: pytest.fail("no network check expected"))
    make_folder(tmp_path / "VOCdevkit" / "VOC2007", {"000005": (["chair"], np.array([[2, 3, 9, 12]]), None)},
                split="test")
    ds = voc.voc2007(tmp_path, "test")
    assert len(ds) == 1 and ds[0][1]["labels"].tolist() == [voc.VOC_CLASSES.index("chair")]


def test_collate_empty():
    assert voc.collate_detection([]) == ([], [])


@pytest.mark.parametrize("filename", ["/etc/hostname", "../secret.jpg", "sub/../../secret.jpg", "..\\\\secret.jpg"])
def test_filename_outside_the_folder_is_refused(tmp_path, filename):
    root = make_folder(tmp_path / "voc", {"a": (["cat"], np.array([[0, 0, 10, 10]]), None)})
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "secret.jpg")
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<filename>a.jpg</filename>", f"<filename>{filename}</filename>"))
    with pytest.raises(ValueError, match="<filename> must be a file name inside JPEGImages") as err:
        voc.VOCDetection(root, "train")[0]
    assert "a.xml" in str(err.value)


def test_boxes_crossing_the_border_are_clipped_and_outside_ones_refused(tmp_path):
    p = tmp_path / "b.xml"
    p.write_text(GOOD.replace("<xmax>10</xmax><ymax>20</ymax>", "<xmax>55</xmax><ymax>20</ymax>")
                 .replace("<xmin>1</xmin><ymin>1</ymin>", "<xmin>-3</xmin><ymin>1</ymin>"))
    np.testing.assert_array_equal(voc.read_voc_xml(p)["boxes"][0], [0, 0, 40, 20])  # 40 x 30 image
    p.write_text(GOOD.replace("<xmin>5</xmin><ymin>6</ymin><xmax>5</xmax><ymax>30</ymax>",
                              "<xmin>45</xmin><ymin>6</ymin><xmax>50</xmax><ymax>30</ymax>"))
    with pytest.raises(ValueError, match="object 1 \\(cat\\) lies outside the 40 x 30 image") as err:
        voc.read_voc_xml(p)
    assert "b.xml" in str(err.value)


def test_truncated_jpeg_names_the_file(tmp_path):
    root = make_folder(tmp_path, {"a": (["cat"], np.array([[0, 0, 10, 10]]), None)})
    jpg = root / "JPEGImages" / "a.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size * 3 // 4])
    with pytest.raises(ValueError, match=r"a\.jpg.*\(image file is truncated"):
        voc.VOCDetection(root, "train")[0]

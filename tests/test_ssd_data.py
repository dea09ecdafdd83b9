"""Lesson 2's data path (VOC folder -> tensors), its profiles, and the shared training loop."""
import time

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import notebook
from course_lib.datasets import voc
from course_lib.models import ssd
from course_lib.models.ssd.pretrain import pretrained_backbone
from course_lib.models.ssd.profile import FULL, QUICK, get_profile, load_split, stack_detection
from course_lib.train import TensorLoader, fit


def _voc_folder(root, entries, size=(40, 60)):
    """entries: {id: (names, boxes xyxy pixels, difficult, truncated)} -> a VOC folder with JPEGs."""
    from PIL import Image

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (names, boxes, difficult, truncated) in entries.items():
        Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        voc.write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", size,
                          torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), names, difficult, truncated)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(entries) + "\n")
    return root


def test_stack_detection_keeps_difficult_truncated_and_pads(tmp_path):
    root = _voc_folder(tmp_path, {
        "a": (["circle", "ring", "star"], [[0, 0, 30, 20], [30, 10, 60, 40], [5, 5, 15, 15]],
              [False, True, False], [True, False, True]),
        "b": ([], [], [], []),
    })
    ds = voc.VOCDetection(root, "train", class_names=("circle", "ring", "star"))
    data = stack_detection(ds, 32)
    assert data.images.shape == (2, 3, 32, 32) and data.labels.tolist() == [[0, 1, 2], [-1, -1, -1]]
    assert data.difficult.tolist() == [[False, True, False], [False] * 3]
    assert data.boxes[0, 1].tolist() == pytest.approx([16, 8, 32, 32])  # x * 32/60, y * 32/40
    targets = data.targets()
    assert [len(t["labels"]) for t in targets] == [3, 0] and targets[0]["difficult"].tolist() == [False, True, False]


def test_malformed_annotation_fails_with_the_file_name(tmp_path):
    root = _voc_folder(tmp_path, {"a": (["circle"], [[0, 0, 30, 20]], [False], [False])})
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<xmax>", "<xmax>oops"))
    with pytest.raises(ValueError, match="a.xml"):
        stack_detection(voc.VOCDetection(root, "train", class_names=("circle",)), 32)


def test_profiles():
    assert get_profile("quick") is QUICK and get_profile("full") is FULL
    assert QUICK.backbone == "small" and FULL.backbone == "resnet34" and FULL.data == "voc2007"
    with pytest.raises(ValueError, match="profile"):
        get_profile("medium")
    with pytest.raises(ValueError, match="split"):
        load_split(QUICK, "val")


def test_full_profile_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    monkeypatch.setattr("course_lib.paths.data_dir", lambda: tmp_path)
    start = time.monotonic()
    with pytest.raises(notebook.OfflineError, match="Pascal VOC 2007"):
        load_split(FULL, "train")
    with pytest.raises(notebook.OfflineError, match="ResNet-34"):
        pretrained_backbone(FULL.backbone)
    assert time.monotonic() - start < 30  # no download attempt, no network timeout


def test_tensor_loader_is_reproducible_and_covers_every_item():
    x = torch.arange(10)
    a = [b[0].tolist() for b in TensorLoader([x], 4, seed=1)]
    assert a == [b[0].tolist() for b in TensorLoader([x], 4, seed=1)]
    assert sorted(sum(a, [])) == list(range(10)) and [len(b) for b in a] == [4, 4, 2]
    assert len(TensorLoader([x], 4, drop_last=True)) == 2
    assert [b[0].tolist() for b in TensorLoader([x, x], 3, shuffle=False)][0] == [0, 1, 2]
    with pytest.raises(ValueError, match="first dimension"):
        TensorLoader([x, torch.zeros(3)])


def test_fit_reduces_the_loss_and_is_deterministic():
    def run():
        torch.manual_seed(0)
        x = torch.randn(64, 3)
        y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
        model = nn.Linear(3, 1)
        hist = fit(model, TensorLoader([x, y], 16), lambda m, b: ((m(b[0])[:, 0] - b[1]) ** 2).mean(), 20, lr=0.1)
        return hist, model.weight.detach().clone()
    (h1, w1), (h2, w2) = run(), run()
    assert h1 == h2 and torch.equal(w1, w2) and h1[-1] < 0.05 * h1[0]
    with pytest.raises(ValueError, match="epochs"):
        fit(nn.Linear(3, 1), TensorLoader([torch.zeros(4, 3)], 2), lambda m, b: m(b[0]).sum(), 0)


def test_largest_object_and_multi_hot():
    from course_lib.models.ssd.train import largest_object, multi_hot

    boxes = torch.tensor([[[0, 0, 2, 2], [0, 0, 5, 5], [0, 0, 9, 9.0]], [[1, 1, 4, 4], [0, 0, 0, 0], [0, 0, 0, 0]]])
    labels = torch.tensor([[2, 0, -1], [1, -1, -1]])  # the 9 x 9 box is padding
    b, lab = largest_object(boxes, labels)
    assert lab.tolist() == [0, 1] and b.tolist() == [[0, 0, 5, 5], [1, 1, 4, 4]]
    assert multi_hot(labels, 3).tolist() == [[1, 0, 1], [0, 1, 0]]
    assert multi_hot(torch.zeros(2, 0, dtype=torch.int64), 3).shape == (2, 3)


def test_train_ssd_runs_and_repeats_bit_for_bit():
    from course_lib.models.ssd.train import detect, train_ssd

    def run():
        torch.manual_seed(0)
        images = torch.rand(8, 3, 32, 32)
        boxes = torch.tensor([[[2.0, 3.0, 20.0, 25.0], [0, 0, 0, 0]]]).repeat(8, 1, 1)
        labels = torch.tensor([[1, -1]]).repeat(8, 1)
        anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
        backbone = nn.Sequential(ssd.conv_block(3, 8, 2, 0), ssd.conv_block(8, 8, 2, 0))  # 32 -> 8
        model = ssd.Detector(backbone, ssd.MultiScaleHead(8, 2, 9, width=8))
        hist = train_ssd(model, images, boxes, labels, anchors, 2, 1e-2, 4, focal=True)
        return hist, detect(model, images[:2], anchors, score_threshold=0.0, top_k=3)
    (h1, d1), (h2, d2) = run(), run()
    assert h1 == h2 and all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(d1, d2))
    assert [len(d["scores"]) for d in d1] == [3, 3]

"""Lesson 3's assembled Faster R-CNN: training and inference forwards, profiles, data, fail-fast offline."""
import dataclasses
import math
import time

import numpy as np
import pytest
import torch

from course_lib import notebook
from course_lib.models import faster_rcnn as fr
from course_lib.models.faster_rcnn import train as fr_train
from course_lib.models.faster_rcnn.proposals import ProposalConfig

TINY = dataclasses.replace(fr.QUICK, image_size=64, widths=(8, 16, 16), out_channels=16, rpn_mid=16, head_hidden=32,
                           proposals=ProposalConfig(200, 50, 200, 30, 0.7, 4.0), roi_samples=16)


def _model(seed=0):
    torch.manual_seed(seed)
    return fr.build_faster_rcnn(TINY, num_classes=3)


def _targets():
    return [dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64)),
            dict(boxes=torch.tensor([[8.0, 10, 40, 30]]), labels=torch.tensor([2])),
            dict(boxes=torch.tensor([[0.0, 0, 20, 20], [30, 30, 60, 62], [5, 40, 25, 60], [10, 10, 50, 50]]),
                 labels=torch.tensor([0, 1, 2, 1]))]


def test_training_forward_returns_four_finite_scalars_for_0_1_many_objects():
    model = _model().train()
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for i in range(3):  # each image alone (0, 1 and 4 objects), then the batch
        losses = model(images[i:i + 1], _targets()[i:i + 1])
        assert tuple(losses) == fr.LOSS_NAMES
        assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    losses = model(images, _targets())
    sum(losses.values()).backward()
    assert losses["rpn_loc"] > 0 and losses["roi_cls"] > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.rpn.conv.weight.grad.abs().sum() > 0 and model.head.fc1.weight.grad.abs().sum() > 0


def test_training_forward_needs_targets():
    with pytest.raises(ValueError, match="targets"):
        _model().train()(torch.rand(2, 3, 64, 64))


def test_inference_forward_format():
    model = _model().eval()
    model.score_threshold = 0.0
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert len(out) == 2
    for o in out:
        assert set(o) == {"boxes", "scores", "labels", "proposals"}
        K = len(o["scores"])
        assert o["boxes"].shape == (K, 4) and o["labels"].shape == (K,) and 0 < K <= 100
        assert o["proposals"].shape[1] == 4 and len(o["proposals"]) <= 30
        assert (o["scores"][:-1] >= o["scores"][1:]).all() and o["labels"].max() < 3 and o["labels"].min() >= 0
        assert (o["boxes"] >= 0).all() and (o["boxes"] <= 64).all()


def test_backbone_adapter_checks_channels_and_stride():
    body = fr.small_backbone((4, 8), 8)
    assert fr.BackboneAdapter(body, 8, 4)(torch.rand(1, 3, 32, 32)).shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="stride 8"):
        fr.BackboneAdapter(body, 8, 8)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="16 channels"):
        fr.BackboneAdapter(body, 16, 4)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="BackboneAdapter"):
        fr.FasterRCNN(body, 3)


def test_canonical_backbone_gives_50x50x512_for_800px():
    feats = fr.canonical_backbone("small")(torch.zeros(1, 3, 800, 800))
    assert feats.shape == (1, 512, 50, 50)


def test_profiles():
    assert fr.get_profile("quick") is fr.QUICK and fr.get_profile("full").backbone == "vgg16"
    assert fr.FULL.stride == 16 and fr.QUICK.stride == 8
    with pytest.raises(ValueError):
        fr.get_profile("medium")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    monkeypatch.setattr("course_lib.paths.data_dir", lambda: tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights
    return tmp_path


def test_full_profile_fails_fast_offline(offline):
    t = time.perf_counter()
    with pytest.raises(notebook.OfflineError, match="VGG16"):
        fr.build_faster_rcnn(fr.FULL, 20)
    with pytest.raises(notebook.OfflineError, match="VOC 2007"):
        fr_train.load_split(fr.FULL, "train")
    with pytest.raises(notebook.OfflineError):
        fr.canonical_backbone("vgg16")
    assert time.perf_counter() - t < 5


def _write_voc(folder, n=3):
    from PIL import Image

    from course_lib.datasets.voc import write_voc_xml

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"00000{i}" for i in range(n)]
    for i, name in enumerate(ids):
        Image.fromarray(rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)).save(folder / "JPEGImages" / f"{name}.jpg")
        write_voc_xml(folder / "Annotations" / f"{name}.xml", f"{name}.jpg", (100, 200),
                      np.array([[10.0, 20, 110, 60], [0, 0, 200, 100]])[: i + 1], ["dog", "cat"][: i + 1])
    (folder / "ImageSets/Main/trainval.txt").write_text("".join(i + "\n" for i in ids))


def test_full_data_path_reads_voc_2007_files_offline(offline):
    _write_voc(offline / "voc2007" / "VOCdevkit" / "VOC2007")
    data = fr_train.load_split(fr.FULL, "train")
    assert len(data) == 3 and len(data.class_names) == 20
    image, target = data[2]
    assert image.shape == (3, 600, 600)
    # boxes are scaled with the image: x by 600 / 200, y by 600 / 100
    assert torch.allclose(target["boxes"], torch.tensor([[30.0, 120, 330, 360], [0, 0, 600, 600]]))
    assert [data.class_names[c] for c in target["labels"]] == ["dog", "cat"]


def test_train_predict_evaluate_on_a_few_images():
    gen = torch.Generator().manual_seed(0)
    data = [(torch.rand(3, 64, 64, generator=gen), t) for t in _targets()]
    model = _model()
    history = fr_train.train_detector(model, data, epochs=1, batch_size=2, lr=1e-3)
    assert set(history) == set(fr.LOSS_NAMES) and all(len(v) == 2 for v in history.values())
    assert all(math.isfinite(x) for v in history.values() for x in v)
    outputs = fr_train.predict(model, data, batch_size=2)
    assert len(outputs) == 3 and all(o["proposals"].shape[1] == 4 for o in outputs)
    scores = fr_train.evaluate(outputs, data)
    assert 0 <= scores["recall"] <= 1 and (0 <= scores["map"] <= 1 or math.isnan(scores["map"]))
    images, boxes, labels = next(iter(fr_train.BatchLoader(data, 3, shuffle=False)))
    assert images.shape == (3, 3, 64, 64) and boxes.shape == (3, 4, 4) and labels[0].tolist() == [-1] * 4


def test_vgg16_layers_without_weights():
    features, fc = fr.vgg16_backbone(pretrained=False)
    out = features(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 512, 4, 6)
    assert not any(p.requires_grad for p in features[1][:10].parameters())
    assert all(p.requires_grad for p in features[1][10:].parameters())
    head = fr.FasterRCNN(fr.BackboneAdapter(features, 512, 16), 20).head
    head.fc1.load_state_dict(fc[0].state_dict())
    head.fc2.load_state_dict(fc[2].state_dict())
    assert head.fc1.in_features == 512 * 7 * 7 and head.fc2.out_features == 4096

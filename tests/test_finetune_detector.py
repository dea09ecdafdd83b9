"""torchvision Faster R-CNN builders: the tiny model, the predictor swap, profiles, offline `full`."""
import pytest
import torch

from course_lib import notebook
from course_lib.models.finetune import detector


def test_tiny_model_trains_and_predicts():
    torch.manual_seed(0)
    model = detector.tiny_fasterrcnn(4, image_size=64, width=32)
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [dict(boxes=torch.tensor([[5.0, 6, 30, 40]]), labels=torch.tensor([2])),
               dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))]
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
    assert all(((o["labels"] >= 1) & (o["labels"] <= 3)).all() for o in out)


def test_replace_predictor_keeps_the_rest():
    model = detector.tiny_fasterrcnn(7, image_size=64, width=32)
    before = {k: v.clone() for k, v in model.state_dict().items() if "box_predictor" not in k}
    detector.replace_predictor(model, 4)
    p = model.roi_heads.box_predictor
    assert p.cls_score.out_features == 4 and p.bbox_pred.out_features == 16
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="num_classes"):
        detector.replace_predictor(model, 1)


def test_bad_head_and_backbone():
    with pytest.raises(ValueError, match="head"):
        detector.tiny_fasterrcnn(3, head="transformer")
    vgg = detector.DetectorProfile("x", "vgg", "shapes", 64, 8, 2, "plain", 1, 1, 1, 1, 1, 1, 0.1)
    with pytest.raises(ValueError, match="backbone"):
        detector.build_detector(vgg, 3)


def test_profiles_and_cache_key():
    assert detector.PROFILES["quick"].backbone == "tiny"
    assert detector.PROFILES["full"].backbone == "resnet50_fpn"
    assert detector.FULL.n_target - detector.FULL.n_test == 120 and detector.FULL.n_test == 50
    assert detector.QUICK.key() == detector.QUICK.key() and detector.QUICK.key() != detector.FULL.key()


def test_full_offline_fails_fast(monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    with pytest.raises(notebook.OfflineError, match="COCO weights"):
        detector.build_detector(detector.FULL, 2)


def test_source_classes():
    from course_lib.datasets import shapes
    from course_lib.models.finetune import train as finetune_train

    assert finetune_train.source_classes(detector.QUICK) == ("__background__", *shapes.SOURCE_CLASSES)
    coco = finetune_train.source_classes(detector.FULL)
    assert len(coco) == 91 and coco[0] == "__background__" and coco[1] == "person"


def test_grid_roi_align_matches_torchvision():
    from torchvision.ops import roi_align

    torch.manual_seed(0)
    x = torch.randn(2, 5, 12, 16, requires_grad=True)          # stride 8 of a 96 x 128 image
    xy = torch.rand(2, 6, 2) * torch.tensor([100.0, 70.0])
    props = [torch.cat([p, p + torch.rand(6, 2) * 20 + 2], 1) for p in xy]  # xyxy, some < 8 px
    ours = detector.GridRoIAlign("0", 7)({"0": x}, props, [(96, 128)] * 2)
    rois = torch.cat([torch.cat([torch.full((6, 1), float(b)), p], 1) for b, p in enumerate(props)])
    ref = roi_align(x, rois, 7, 1 / 8, sampling_ratio=1, aligned=False)
    assert ours.shape == (12, 5, 7, 7)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    grad_ours, = torch.autograd.grad(ours, x, g)
    grad_ref, = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad_ours, grad_ref, atol=1e-5, rtol=1e-5)
